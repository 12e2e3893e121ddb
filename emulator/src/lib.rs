//! A local Netlify Blobs server: the wire protocol of `@netlify/blobs` (edge and API modes,
//! signed URLs, conditional writes, listings) over a storage engine from `backends`.
//!
//! The emulator keeps no data of its own: every site's store is a store of a
//! [`blobjobs_backends::Catalog`] (file by default, memory on request), so what it serves is
//! exactly what the project's backends guarantee. Every wire fact it shares with clients
//! (names, paths, headers, bodies, the status mapping) comes from [`blobjobs_protocol`].
//! `docs/protocol.md` describes every route.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let config = blobjobs_emulator::Config::new(blobjobs_backends::Catalog::memory(), "secret-token");
//! blobjobs_emulator::serve(listener, config, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod access_log;
pub mod app;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
mod handlers;
mod response;
pub mod route;
pub mod server;
pub mod ui;

pub use app::App;
pub use blobjobs_protocol::BlobsContext;
pub use config::Config;
pub use server::{serve, serve_app};

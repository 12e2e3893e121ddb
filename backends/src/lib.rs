//! Backends of the `BlobStore` trait: `memory` (process-local), `file` (durable, safe across
//! processes), `http` (a Netlify Blobs wire client), and two on engines that teams run at
//! scale: `s3` (S3-compatible object storage, feature `s3`) and `postgres` (a PostgreSQL
//! table, feature `postgres`); plus a [`Catalog`] of many named stores for servers.

pub mod catalog;
pub mod file;
pub mod http;
pub mod memory;
pub mod open;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "s3")]
pub mod s3;

pub use catalog::Catalog;
pub use file::{FileOptions, FileStore};
pub use http::HttpStore;
pub use memory::MemoryStore;
pub use open::{open_store, open_store_checked, open_store_with};
#[cfg(feature = "postgres")]
pub use postgres::PgStore;
#[cfg(feature = "s3")]
pub use s3::S3Store;

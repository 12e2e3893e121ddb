//! Backends of the `BlobStore` trait: `memory` (process-local), `file` (durable, safe across
//! processes) and `http` (a Netlify Blobs wire client), plus a [`Catalog`] of many named
//! stores for servers.

pub mod catalog;
pub mod file;
pub mod http;
pub mod memory;
pub mod open;

pub use catalog::Catalog;
pub use file::{FileOptions, FileStore};
pub use http::HttpStore;
pub use memory::MemoryStore;
pub use open::{open_store, open_store_with};

//! Backends of the `BlobStore` trait: `memory` (process-local), `file` (durable, safe across
//! processes) and `http` (a Netlify Blobs wire client), plus a [`Catalog`] of many named
//! stores for servers.

pub mod catalog;
pub mod memory;

pub use catalog::Catalog;
pub use memory::MemoryStore;

//! Backends of the `BlobStore` trait: `memory` (process-local), `file` (durable, safe across
//! processes) and, later, `blob-http` (a Netlify Blobs wire client).

pub mod memory;

pub use memory::MemoryStore;

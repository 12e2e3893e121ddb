//! The storage contract of the project: the `BlobStore` trait (one named store of keys with
//! metadata and ETags), the `JobStore` trait with the job model and its lifecycle, and the one
//! generic implementation of `JobStore` over any `BlobStore`.
//!
//! This crate does no I/O and picks no runtime. Backends live in the `backends` crate.

pub mod blob;
pub mod clock;
pub mod error;
mod ext;
pub mod job;
pub mod jobs;
pub mod list;
pub mod stream;
pub mod validate;

pub use blob::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Etag, ListEntry, ListOptions, ListPage,
    Metadata, SetOptions, SetOutcome, Timestamp, once_stream,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use ext::BlobStoreExt;
pub use job::{Job, JobId, JobStatus, Lease, NewJob, Progress};
pub use jobs::{BlobJobStore, JobFilter, JobPage, JobStore, JobStoreConfig};
pub use validate::{validate_key, validate_metadata, validate_store_name};

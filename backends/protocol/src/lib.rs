//! The Netlify Blobs wire protocol as both ends of it agree on it: the client in
//! `blobjobs-backends` (`HttpStore`) and the server in `blobjobs-emulator`.
//!
//! Every fact that must be the same on both sides lives here exactly once, and nothing here
//! does I/O: no sockets, no files, no runtime. The modules follow the sections of
//! `docs/protocol.md`:
//!
//! | module | what both sides agree on |
//! |---|---|
//! | [`context`] | `NETLIFY_BLOBS_CONTEXT` ([`BlobsContext`]) and the redacting [`Token`] |
//! | [`names`] | site IDs, raw store names ([`RawStore`]), deploy IDs, the legacy prefix, regions |
//! | [`path`] | keys and names in URL paths, query parameters ([`Query`]), the API prefix |
//! | [`headers`] | header names, metadata, conditions, ETags and `last-modified` |
//! | [`bodies`] | the JSON bodies of listings, signed URLs, store listings and store deletes |
//! | [`status`] | HTTP status ↔ [`ErrorKind`](blobjobs_store_api::ErrorKind), both directions |
//!
//! The two ends could still share one mistake; the official client's interop test
//! (`interop/test/blobs.test.mjs` against the emulator) and `HttpStore` against the
//! official `BlobsServer` are the independent checks.

pub mod bodies;
pub mod context;
pub mod headers;
pub mod names;
pub mod path;
pub mod status;

pub use context::{BlobsContext, CONTEXT_ENV, Token};
pub use names::{DEFAULT_SITE_ID, LEGACY_PREFIX, REGIONS, RawStore};
pub use path::Query;
pub use status::{kind_for_status, status_for_kind};

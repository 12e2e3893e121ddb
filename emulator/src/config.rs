//! What a running emulator is configured with, and the defaults the binary documents.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::Catalog;
use blobjobs_protocol::Token;
pub use blobjobs_protocol::names::{DEFAULT_DEPLOY_ID, DEFAULT_PRIMARY_REGION, DEFAULT_SITE_ID};
use blobjobs_store_api::{Clock, SystemClock};

/// The port `blobs-emulator serve` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 4733;

/// The largest value accepted by default: 5 GiB, Netlify's documented object size limit.
pub const DEFAULT_MAX_BLOB_SIZE: u64 = 5 * 1024 * 1024 * 1024;

/// How long a signed URL stays valid.
pub const DEFAULT_SIGNED_URL_TTL: Duration = Duration::from_secs(3600);

/// The most connections served at once by default. The server lowers it to half the files
/// the process may open (`ulimit -n`), keeping the rest for the storage.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How long a connection may take to send a request's headers, counted from when it starts
/// waiting for a request (when it opens, or after its last response): a connection idle for
/// this long is closed.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request body, or the client reading a response, may make no progress before the
/// connection is closed (a stalled upload first gets 408).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many bytes the listing caches of a file catalog may hold together by default.
pub use blobjobs_backends::file::DEFAULT_LIST_CACHE_BYTES;

/// Everything [`crate::serve`] needs besides a listener.
///
/// Its `Debug` output shows the token as `<redacted>`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the blobs live: every site's stores are catalog stores named `<site>/<raw store>`.
    pub catalog: Catalog,
    /// The one bearer token that authorizes requests for every site of this server.
    pub token: Token,
    /// The largest value a PUT may carry, in bytes; larger bodies get 413 and write nothing.
    pub max_blob_size: u64,
    /// Entries per page of a key listing and of a store listing.
    pub list_page_size: usize,
    /// How long a signed URL issued in API mode stays valid.
    pub signed_url_ttl: Duration,
    /// The wall clock signed URLs are issued and expire by: the system clock, or a
    /// [`ManualClock`](blobjobs_store_api::ManualClock) in tests.
    pub clock: Arc<dyn Clock>,
    /// The most connections served at once; at the limit, the connection idle the longest is
    /// closed to make room, and if none is idle new ones wait.
    pub max_connections: usize,
    /// See [`DEFAULT_HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// The memory the listing caches of a file catalog may hold, in bytes (their estimate).
    pub list_cache_bytes: usize,
}

impl Config {
    /// A configuration with the defaults: [`DEFAULT_MAX_BLOB_SIZE`],
    /// [`blobjobs_store_api::list::DEFAULT_PAGE_SIZE`], [`DEFAULT_SIGNED_URL_TTL`], the
    /// system clock, [`DEFAULT_MAX_CONNECTIONS`], [`DEFAULT_HEADER_TIMEOUT`],
    /// [`DEFAULT_IDLE_TIMEOUT`] and [`DEFAULT_LIST_CACHE_BYTES`].
    pub fn new(catalog: Catalog, token: impl Into<Token>) -> Self {
        Config {
            catalog,
            token: token.into(),
            max_blob_size: DEFAULT_MAX_BLOB_SIZE,
            list_page_size: blobjobs_store_api::list::DEFAULT_PAGE_SIZE,
            signed_url_ttl: DEFAULT_SIGNED_URL_TTL,
            clock: Arc::new(SystemClock),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            list_cache_bytes: DEFAULT_LIST_CACHE_BYTES,
        }
    }

    /// Sets the largest accepted value.
    pub fn max_blob_size(mut self, bytes: u64) -> Self {
        self.max_blob_size = bytes;
        self
    }

    /// Sets the page size of listings.
    pub fn list_page_size(mut self, entries: usize) -> Self {
        self.list_page_size = entries;
        self
    }

    /// Sets how long signed URLs stay valid.
    pub fn signed_url_ttl(mut self, ttl: Duration) -> Self {
        self.signed_url_ttl = ttl;
        self
    }

    /// Sets the clock signed URLs are issued and expire by.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the most connections served at once.
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = connections;
        self
    }

    /// Sets how long a request's headers may take to arrive (and so how long an idle
    /// connection stays open).
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets how long a request body or a response may make no progress.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets the memory the listing caches of a file catalog may hold.
    pub fn list_cache_bytes(mut self, bytes: usize) -> Self {
        self.list_cache_bytes = bytes;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_token() {
        let config = Config::new(Catalog::memory(), "emulator-secret-7f3a");
        let text = format!("{config:?}");
        assert!(!text.contains("emulator-secret-7f3a"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

//! The likely causes a failure is grouped under: one short label per fault a store can have,
//! such as "GET sends no ETag" or "conditional writes are not atomic".
//!
//! Every failed case carries one ([`crate::CaseReport::cause`]), so that a report can say
//! "GET sends no ETag: 9 cases" instead of listing nine failures. The cause is picked, in
//! this order, from what the case itself concluded (a race with two winners names
//! [`CONDITIONS_NOT_ATOMIC`]), from a symptom the suite saw on the way (a read that came
//! back without an ETag names [`GET_SENDS_NO_ETAG`] whatever failed later), or from the
//! promise the case checks first (see [`crate::promises`]).

/// What one instance writes, another does not read (the seed's bug: "job not found").
pub const NOT_VISIBLE_ACROSS_INSTANCES: &str = "writes are not visible across instances";
/// Reads or responses carry no ETag.
pub const GET_SENDS_NO_ETAG: &str = "GET sends no ETag";
/// A write is acknowledged without an ETag.
pub const WRITE_RETURNS_NO_ETAG: &str = "writes return no ETag";
/// An ETag repeats across writes, so a compare-and-swap can succeed against the wrong one.
pub const ETAGS_REUSED: &str = "ETags do not change on every write";
/// `set`, `get`, `get_metadata` and listings report different ETags for one version.
pub const ETAGS_DISAGREE: &str = "ETags disagree between writes, reads and listings";
/// Only-if-new or only-if-match writes are not checked at all.
pub const CONDITIONS_IGNORED: &str = "write conditions are not checked";
/// Conditional writes are checked, but not atomically: two racing writers both win.
pub const CONDITIONS_NOT_ATOMIC: &str = "conditional writes are not atomic";
/// Values do not come back byte for byte.
pub const VALUES_NOT_EXACT: &str = "values are not stored byte for byte";
/// A reader sees part of a write.
pub const PARTIAL_VALUES: &str = "readers see partial values";
/// Metadata is dropped, merged or changed.
pub const METADATA_ALTERED: &str = "metadata is lost or altered";
/// Listings miss, repeat or misorder keys, or page wrongly.
pub const LISTINGS_WRONG: &str = "listings are incomplete, repeated or out of order";
/// Keys are changed on the way, so that two of them alias.
pub const KEYS_MANGLED: &str = "keys are mangled or alias each other";
/// Input the contract refuses is accepted, or refused with the wrong error.
pub const BAD_INPUT_ACCEPTED: &str = "bad input is not refused as invalid input";
/// A size limit is enforced on the wrong side of its boundary.
pub const LIMITS_WRONG: &str = "size limits are not enforced at the boundary";
/// Streamed reads or writes differ from whole-value ones.
pub const STREAMS_DIFFER: &str = "streamed reads or writes differ from whole ones";
/// A deleted key or job is back after the store settled.
pub const DELETES_UNDONE: &str = "deleted data comes back";
/// An acknowledged write is gone or replaced after the store settled.
pub const WRITES_LOST: &str = "acknowledged writes are lost";
/// Job changes overwrite each other between instances (no compare-and-swap).
pub const JOB_UPDATES_LOST: &str = "job updates are not atomic";
/// Two workers both hold a job.
pub const CLAIMS_NOT_EXCLUSIVE: &str = "claims are not exclusive";
/// A job moves where the lifecycle forbids, or cannot move where it allows.
pub const LIFECYCLE_BROKEN: &str = "the job lifecycle is not enforced";
/// Leases expire early, late or never.
pub const LEASES_WRONG: &str = "leases do not expire when they should";
/// Jobs outlive their TTL, or vanish before it.
pub const TTLS_WRONG: &str = "TTLs are not honoured";
/// A repeated create with a caller's id does not return the first job.
pub const CREATE_NOT_IDEMPOTENT: &str = "creating a job with a caller's id is not idempotent";
/// Job listings miss, repeat or misfilter jobs.
pub const JOB_LISTINGS_WRONG: &str = "job listings are incomplete or misfiltered";
/// Calls time out or the service is unavailable.
pub const UNAVAILABLE: &str = "the store times out or is unavailable";
/// The credentials are rejected.
pub const UNAUTHORIZED: &str = "credentials are rejected";
/// Operations fail with errors the contract does not allow.
pub const UNEXPECTED_ERRORS: &str = "operations fail with unexpected errors";
/// The factory cannot open an instance.
pub const NO_INSTANCE: &str = "instances cannot be opened";
/// The store (or the suite) panicked.
pub const PANICS: &str = "the store panics";
/// A case did not finish in time.
pub const TOO_SLOW: &str = "cases do not finish in time";

/// Every cause, the most specific first: when a case shows several symptoms, the first in
/// this list names it.
pub const ALL: &[&str] = &[
    GET_SENDS_NO_ETAG,
    WRITE_RETURNS_NO_ETAG,
    NO_INSTANCE,
    UNAUTHORIZED,
    NOT_VISIBLE_ACROSS_INSTANCES,
    CONDITIONS_NOT_ATOMIC,
    CONDITIONS_IGNORED,
    ETAGS_REUSED,
    ETAGS_DISAGREE,
    JOB_UPDATES_LOST,
    CLAIMS_NOT_EXCLUSIVE,
    DELETES_UNDONE,
    WRITES_LOST,
    PARTIAL_VALUES,
    VALUES_NOT_EXACT,
    METADATA_ALTERED,
    STREAMS_DIFFER,
    KEYS_MANGLED,
    LISTINGS_WRONG,
    LIMITS_WRONG,
    BAD_INPUT_ACCEPTED,
    LIFECYCLE_BROKEN,
    LEASES_WRONG,
    TTLS_WRONG,
    CREATE_NOT_IDEMPOTENT,
    JOB_LISTINGS_WRONG,
    UNAVAILABLE,
    UNEXPECTED_ERRORS,
    PANICS,
    TOO_SLOW,
];

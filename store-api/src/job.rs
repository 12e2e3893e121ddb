//! The job model: ids, statuses, leases, and the lifecycle rules that say which change is legal.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::blob::Timestamp;
use crate::error::{Error, ErrorKind, Result};

/// Crockford's base32 alphabet: sortable, no ambiguous letters.
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A job identifier, unique across instances without coordination.
///
/// Generated ids are `job_` + 10 base32 characters of creation time in milliseconds + 16
/// base32 characters (80 bits) of randomness, so they sort by creation time and two
/// instances creating jobs in the same millisecond still differ. Callers may also choose
/// their own id (for an idempotent trigger); it must be 1 to 128 characters of ASCII
/// letters, digits, `_`, `-` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JobId(String);

impl JobId {
    /// A fresh id for a job created at `now`.
    pub fn generate(now: Timestamp) -> Result<Self> {
        let mut random = [0u8; 10];
        getrandom::fill(&mut random)
            .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a job id: {e}")))?;
        let mut s = String::with_capacity(30);
        s.push_str("job_");
        let t = now.as_millis();
        for i in (0..10).rev() {
            s.push(BASE32[((t >> (i * 5)) & 31) as usize] as char);
        }
        let r = random
            .iter()
            .fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        for i in (0..16).rev() {
            s.push(BASE32[((r >> (i * 5)) & 31) as usize] as char);
        }
        Ok(JobId(s))
    }

    /// Checks and wraps a caller-chosen id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            && id != "."
            && id != "..";
        if ok {
            Ok(JobId(id))
        } else {
            Err(Error::invalid(
                "job id must be 1 to 128 characters of letters, digits, '_', '-' and '.'",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for JobId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobId::new(s)
    }
}

impl TryFrom<String> for JobId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        JobId::new(s)
    }
}

impl From<JobId> for String {
    fn from(id: JobId) -> String {
        id.0
    }
}

/// Where a job is in its life.
///
/// ```text
/// Pending ──claim──► Running ──succeed──► Succeeded
///    │                │  ▲ └───fail─────► Failed
///    │                │  └─ claim after the lease expired (counts an attempt)
///    └────cancel──────┴──────cancel─────► Cancelled
/// ```
/// `Succeeded`, `Failed` and `Cancelled` are terminal: nothing leaves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, waiting for a worker.
    Pending,
    /// Claimed by a worker that holds a lease.
    Running,
    /// Finished with a result.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped by a caller before it finished.
    Cancelled,
}

impl JobStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Whether nothing can leave this status.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Whether the lifecycle allows moving from `self` to `to`. `Running` to `Running` is the
    /// reclaim of an expired lease.
    pub fn can_become(self, to: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, to),
            (Pending, Running)
                | (Running, Running)
                | (Running, Succeeded)
                | (Running, Failed)
                | (Pending, Cancelled)
                | (Running, Cancelled)
        )
    }

    /// The lowercase name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("unknown job status {s:?}")))
    }
}

/// A worker's exclusive, time-limited right to run a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Who holds it (a worker or instance name chosen by the caller).
    pub owner: String,
    /// When it runs out: it is held before this moment, and from this moment on another
    /// worker may claim the job.
    pub expires_at: Timestamp,
}

/// How far a running job has got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// 0 to 100.
    pub percent: u8,
    /// A short human-readable note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One unit of background work, as stored (JSON) under `jobs/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What kind of work it is (for example `extract`); free text chosen by the caller.
    pub kind: String,
    /// Where it is in its life.
    pub status: JobStatus,
    /// The caller's input.
    pub input: Value,
    /// The latest progress report, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// The result, once succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, once failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times it has been claimed, counting reclaims after an expired lease.
    pub attempts: u32,
    /// The current lease while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When it stops being visible (creation time plus its TTL), if it has a TTL: it is
    /// visible before this moment and hidden from it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl Job {
    /// Whether its TTL has run out at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|t| t <= now)
    }

    /// Whether a worker holds an unexpired lease at `now`.
    pub fn is_leased(&self, now: Timestamp) -> bool {
        self.status == JobStatus::Running && self.lease.as_ref().is_some_and(|l| l.expires_at > now)
    }

    /// Moves to `to` if the lifecycle allows it, or fails with
    /// [`ErrorKind::IllegalTransition`] and leaves the job unchanged.
    pub fn transition(&mut self, to: JobStatus, now: Timestamp) -> Result<()> {
        if !self.status.can_become(to) {
            return Err(Error::new(
                ErrorKind::IllegalTransition,
                format!("job {} cannot go from {} to {to}", self.id, self.status),
            ));
        }
        self.status = to;
        self.updated_at = now;
        if to != JobStatus::Running {
            self.lease = None;
        }
        Ok(())
    }
}

/// What `JobStore::create` needs.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// What kind of work it is.
    pub kind: String,
    /// The caller's input.
    pub input: Value,
    /// How long the job stays visible after creation; `None` for ever (until deleted).
    pub ttl: Option<Duration>,
    /// A caller-chosen id. Creating again with the same id returns the existing job instead
    /// of a second one, so a retried trigger is harmless.
    pub id: Option<JobId>,
}

impl NewJob {
    /// A job of `kind` with `input`, a generated id and no TTL.
    pub fn new(kind: impl Into<String>, input: Value) -> Self {
        NewJob {
            kind: kind.into(),
            input,
            ttl: None,
            id: None,
        }
    }

    /// Sets a TTL.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets a caller-chosen id.
    pub fn id(mut self, id: JobId) -> Self {
        self.id = Some(id);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    #[test]
    fn generated_ids_sort_by_time_and_differ() {
        let a = JobId::generate(Timestamp::from_millis(1_000)).unwrap();
        let b = JobId::generate(Timestamp::from_millis(1_000)).unwrap();
        let c = JobId::generate(Timestamp::from_millis(1_001)).unwrap();
        assert_ne!(a, b);
        assert!(a < c && b < c);
        assert_eq!(a.as_str().len(), 30);
        assert!(JobId::new(a.as_str()).is_ok());
    }

    #[test]
    fn caller_ids_are_checked() {
        assert!(JobId::new("order-42.retry_1").is_ok());
        for bad in ["", "a/b", "..", "a b", "ü"] {
            assert_eq!(JobId::new(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
        }
        assert!(JobId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn lifecycle_table() {
        let legal = [
            (Pending, Running),
            (Running, Running),
            (Running, Succeeded),
            (Running, Failed),
            (Pending, Cancelled),
            (Running, Cancelled),
        ];
        for from in JobStatus::ALL {
            for to in JobStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    legal.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
        for s in JobStatus::ALL {
            assert_eq!(
                s.is_terminal(),
                !JobStatus::ALL.iter().any(|t| s.can_become(*t))
            );
            assert_eq!(s.as_str().parse::<JobStatus>().unwrap(), s);
        }
    }

    #[test]
    fn illegal_transition_leaves_the_job_unchanged() {
        let now = Timestamp::from_millis(5);
        let mut job = Job {
            id: JobId::new("j").unwrap(),
            kind: "k".into(),
            status: Succeeded,
            input: Value::Null,
            progress: None,
            result: Some(Value::Bool(true)),
            error: None,
            attempts: 1,
            lease: None,
            created_at: now,
            updated_at: now,
            expires_at: None,
        };
        let before = job.clone();
        let err = job
            .transition(Running, Timestamp::from_millis(9))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::IllegalTransition);
        assert_eq!(job, before);
    }
}

//! Bounded retries: exponential backoff with jitter, rate-limit waits, per-request timeouts
//! and one deadline for a whole operation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blobjobs_store_api::{Error, ErrorKind};
use tokio::time::Instant;

/// How hard an operation tries before it gives up.
///
/// An operation makes at most [`max_attempts`](RetryPolicy::max_attempts) requests and
/// never runs longer than [`max_elapsed`](RetryPolicy::max_elapsed): each request gets at
/// most [`request_timeout`](RetryPolicy::request_timeout) and never more than the time
/// left, and a wait that would end after the deadline is not started. Between attempts it
/// waits `initial_backoff × 2^(n-1)`, capped at `max_backoff`, of which a random half is
/// jitter, so that many clients do not retry in step. After a 429 with `X-RateLimit-Reset`
/// (Unix seconds) it waits until that time instead, capped at `max_rate_limit_wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The most requests one operation makes, the first included (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure, before jitter.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts, before jitter.
    pub max_backoff: Duration,
    /// The longest an operation may take, all attempts and waits included.
    pub max_elapsed: Duration,
    /// The longest wait honoured for a 429's `X-RateLimit-Reset`.
    pub max_rate_limit_wait: Duration,
    /// The longest one request may take until its response (and, for values read whole,
    /// its body) has arrived. A streamed read (`get_stream`) is bounded until its head
    /// arrives; the caller paces the body.
    pub request_timeout: Duration,
    /// Whether waits are randomised (on by default; off makes tests exact).
    pub jitter: bool,
}

impl Default for RetryPolicy {
    /// Six attempts like the official client, but with exponential backoff from 100 ms to
    /// 5 s instead of a flat 5 s, 10 s per request and 30 s per operation.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(30),
            max_rate_limit_wait: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries, with the default timeouts.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the most attempts (clamped to at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the first and the largest backoff.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets the time limit of a whole operation.
    pub fn max_elapsed(mut self, limit: Duration) -> Self {
        self.max_elapsed = limit;
        self
    }

    /// Sets the longest rate-limit wait.
    pub fn max_rate_limit_wait(mut self, limit: Duration) -> Self {
        self.max_rate_limit_wait = limit;
        self
    }

    /// Sets the time limit of one request.
    pub fn request_timeout(mut self, limit: Duration) -> Self {
        self.request_timeout = limit;
        self
    }

    /// Turns jitter on or off.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// The backoff before attempt `attempts_made + 1`, before jitter.
    fn base_delay(&self, attempts_made: u32) -> Duration {
        let exp = attempts_made.saturating_sub(1).min(30);
        self.initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

/// The attempts and time left for one operation.
#[derive(Debug)]
pub(crate) struct Budget {
    policy: RetryPolicy,
    started: Instant,
    deadline: Instant,
    attempts: u32,
    /// The failure of the last attempt, reported if the budget runs out before another.
    last: Option<Error>,
}

impl Budget {
    /// Starts the clock of an operation.
    pub(crate) fn start(policy: &RetryPolicy) -> Self {
        let started = Instant::now();
        Budget {
            policy: policy.clone(),
            started,
            deadline: started + policy.max_elapsed,
            attempts: 0,
            last: None,
        }
    }

    /// Counts an attempt; `false` when no attempt or no time is left.
    pub(crate) fn begin_attempt(&mut self) -> bool {
        if self.attempts >= self.policy.max_attempts.max(1) || self.time_left().is_zero() {
            return false;
        }
        self.attempts += 1;
        true
    }

    /// The timeout of the next request: the request timeout, or the time left if shorter.
    pub(crate) fn timeout(&self) -> Duration {
        self.policy.request_timeout.min(self.time_left())
    }

    fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Remembers the failure of the attempt just made.
    pub(crate) fn record(&mut self, err: Error) {
        self.last = Some(err);
    }

    /// The final error of an operation that gives up after `err`.
    pub(crate) fn give_up(&self, err: Error) -> Error {
        Error::new(
            err.kind(),
            format!(
                "{} (gave up after {} attempts in {} ms)",
                err.message(),
                self.attempts,
                self.elapsed().as_millis()
            ),
        )
        .with_source(err)
    }

    /// The error of an operation that may not start another attempt: the last failure if
    /// there was one, else running out of time or attempts.
    pub(crate) fn exhausted(&mut self, what: &str) -> Error {
        if let Some(last) = self.last.take() {
            return self.give_up(last);
        }
        let (kind, why) = if self.time_left().is_zero() {
            (ErrorKind::Timeout, "ran out of time")
        } else {
            (ErrorKind::Unavailable, "ran out of attempts")
        };
        Error::new(
            kind,
            format!(
                "{what}: {why} after {} attempts in {} ms",
                self.attempts,
                self.elapsed().as_millis()
            ),
        )
    }

    /// The wait before the next attempt, or `None` to give up now. `rate_limit_reset` is a
    /// 429's `X-RateLimit-Reset` in Unix seconds.
    pub(crate) fn next_delay(&self, rate_limit_reset: Option<u64>) -> Option<Duration> {
        if self.attempts >= self.policy.max_attempts.max(1) {
            return None;
        }
        let delay = match rate_limit_reset {
            Some(reset) => {
                let now_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                let wait = Duration::from_millis(reset.saturating_mul(1000).saturating_sub(now_ms));
                wait.max(self.policy.initial_backoff)
                    .min(self.policy.max_rate_limit_wait)
            }
            None => {
                let base = self.policy.base_delay(self.attempts);
                if self.policy.jitter {
                    let half = base / 2;
                    half + half.mul_f64(random_fraction())
                } else {
                    base
                }
            }
        };
        // Only wait if an attempt can still start afterwards.
        if delay >= self.time_left() {
            return None;
        }
        Some(delay)
    }

    /// A budget with its own attempt count but the same deadline, for a step inside an
    /// operation (reading back a write whose outcome is unknown).
    pub(crate) fn child(&self) -> Budget {
        Budget {
            policy: self.policy.clone(),
            started: self.started,
            deadline: self.deadline,
            attempts: 0,
            last: None,
        }
    }

    /// Attempts made so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the operation started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A number in `[0, 1)` for jitter. Falls back to 0.5 if the system has no randomness.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .backoff(Duration::from_millis(100), Duration::from_millis(1000))
            .jitter(false)
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<_> = (1..=6).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let mut budget = Budget::start(&policy().max_attempts(3));
        for _ in 0..3 {
            assert!(budget.begin_attempt());
        }
        assert!(!budget.begin_attempt());
        assert!(budget.next_delay(None).is_none());
        assert_eq!(budget.exhausted("GET k").kind(), ErrorKind::Unavailable);
    }

    #[tokio::test]
    async fn jitter_stays_within_half_and_full_delay() {
        let mut budget = Budget::start(&policy().jitter(true));
        budget.begin_attempt();
        budget.begin_attempt();
        for _ in 0..50 {
            let d = budget.next_delay(None).unwrap();
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }

    #[tokio::test]
    async fn rate_limit_reset_is_honoured_and_capped() {
        let mut budget = Budget::start(&policy().max_rate_limit_wait(Duration::from_secs(3)));
        budget.begin_attempt();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let d = budget.next_delay(Some(now + 2)).unwrap();
        assert!(
            d > Duration::from_millis(900) && d <= Duration::from_secs(2),
            "{d:?}"
        );
        assert_eq!(
            budget.next_delay(Some(now + 100)).unwrap(),
            Duration::from_secs(3)
        );
        // A reset in the past waits the minimum.
        assert_eq!(
            budget.next_delay(Some(1)).unwrap(),
            Duration::from_millis(100)
        );
    }

    #[tokio::test]
    async fn no_wait_runs_past_the_deadline() {
        let mut budget = Budget::start(&policy().max_elapsed(Duration::from_millis(150)));
        assert!(budget.begin_attempt());
        assert!(budget.timeout() <= Duration::from_millis(150));
        budget.begin_attempt();
        // The next backoff (200 ms) would end after the deadline.
        assert!(budget.next_delay(None).is_none());
    }
}

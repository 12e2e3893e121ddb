//! Bounded retries: exponential backoff with jitter, rate-limit waits, per-request timeouts
//! and one deadline for a whole operation.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{Clock, Error, ErrorKind};
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
///
/// Deadlines, timeouts and waits run on tokio's clock (so tests can pause it); only a
/// 429's `X-RateLimit-Reset`, a Unix time, is read against the wall clock `clock`.
#[derive(Debug)]
pub(crate) struct Budget {
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    started: Instant,
    deadline: Instant,
    attempts: u32,
    /// The failure of the last attempt, reported if the budget runs out before another.
    last: Option<Error>,
}

impl Budget {
    /// Starts the clock of an operation; `clock` tells the Unix time for rate-limit resets.
    pub(crate) fn start(policy: &RetryPolicy, clock: &Arc<dyn Clock>) -> Self {
        let started = Instant::now();
        Budget {
            policy: policy.clone(),
            clock: clock.clone(),
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
                let now_ms = self.clock.now().as_millis();
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
            clock: self.clock.clone(),
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
    use blobjobs_store_api::{ManualClock, Timestamp};

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .backoff(Duration::from_millis(100), Duration::from_millis(1000))
            .jitter(false)
    }

    /// A wall clock stopped at 1 700 000 000.5 s, and the budget of an operation that
    /// starts now under `policy`.
    fn start(policy: RetryPolicy) -> (ManualClock, Budget) {
        let wall = ManualClock::new(Timestamp::from_millis(1_700_000_000_500));
        let clock: Arc<dyn Clock> = Arc::new(wall.clone());
        (wall, Budget::start(&policy, &clock))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let delays: Vec<_> = (1..=6).map(|n| p.base_delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_bounded() {
        let (_, mut budget) = start(policy().max_attempts(3));
        assert!(budget.begin_attempt());
        assert_eq!(budget.next_delay(None), Some(Duration::from_millis(100)));
        assert!(budget.begin_attempt());
        assert_eq!(budget.next_delay(None), Some(Duration::from_millis(200)));
        assert!(budget.begin_attempt());
        // No attempt is left, so there is nothing to wait for.
        assert!(budget.next_delay(None).is_none());
        assert!(!budget.begin_attempt());
        assert_eq!(budget.exhausted("GET k").kind(), ErrorKind::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_half_and_full_delay() {
        let (_, mut budget) = start(policy().jitter(true));
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

    #[tokio::test(start_paused = true)]
    async fn rate_limit_reset_is_honoured_and_capped() {
        let (wall, mut budget) = start(policy().max_rate_limit_wait(Duration::from_secs(3)));
        budget.begin_attempt();
        // The reset is 1 700 000 002 s; the wall clock reads 1 700 000 000.5 s.
        assert_eq!(
            budget.next_delay(Some(1_700_000_002)),
            Some(Duration::from_millis(1500))
        );
        wall.advance(Duration::from_millis(700));
        assert_eq!(
            budget.next_delay(Some(1_700_000_002)),
            Some(Duration::from_millis(800))
        );
        assert_eq!(
            budget.next_delay(Some(1_700_000_100)),
            Some(Duration::from_secs(3))
        );
        // A reset in the past waits the minimum.
        assert_eq!(budget.next_delay(Some(1)), Some(Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn no_wait_runs_past_the_deadline() {
        let policy = policy()
            .max_elapsed(Duration::from_millis(400))
            .request_timeout(Duration::from_millis(150));
        let (_, mut budget) = start(policy);
        assert!(budget.begin_attempt());
        assert_eq!(budget.timeout(), Duration::from_millis(150));
        tokio::time::advance(Duration::from_millis(300)).await;
        // The request timeout shrinks to the time left.
        assert_eq!(budget.timeout(), Duration::from_millis(100));
        assert_eq!(budget.elapsed(), Duration::from_millis(300));
        // The first backoff (100 ms) would end exactly at the deadline: not started.
        assert!(budget.next_delay(None).is_none());
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(budget.begin_attempt());
        assert_eq!(budget.timeout(), Duration::from_millis(1));
        tokio::time::advance(Duration::from_millis(1)).await;
        // At the deadline no attempt may start, and the error says time ran out.
        assert!(!budget.begin_attempt());
        assert_eq!(budget.timeout(), Duration::ZERO);
        assert_eq!(budget.exhausted("GET k").kind(), ErrorKind::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_child_budget_shares_the_deadline_but_counts_its_own_attempts() {
        let (_, mut budget) = start(policy().max_attempts(2).max_elapsed(Duration::from_secs(1)));
        budget.begin_attempt();
        budget.begin_attempt();
        tokio::time::advance(Duration::from_millis(600)).await;
        let mut child = budget.child();
        assert!(child.begin_attempt());
        assert_eq!(child.timeout(), Duration::from_millis(400));
        assert_eq!(child.elapsed(), Duration::from_millis(600));
    }
}

//! What a backend claims (`Capabilities`) and how a run is shaped (`Options`).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::report::Progress;

/// Optional features a backend declares. Cases that need a feature the backend does not claim
/// are reported as skipped.
///
/// Capabilities describe optional features only, never correctness: there is no switch to
/// declare a store "single-instance only". A store that loses writes between instances fails
/// the cross-instance cases; that is the point of the suite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The largest value the backend accepts, in bytes. The large-value case writes
    /// `min(max_value_bytes, 5 MiB)`; below 1 MiB it is skipped.
    pub max_value_bytes: u64,
    /// The longest key the backend accepts, in UTF-8 bytes (the protocol's limit is 600).
    pub max_key_bytes: usize,
    /// The backend stores user metadata.
    pub metadata: bool,
    /// The backend supports directories mode in listings.
    pub directories: bool,
    /// The backend honours [`blobjobs_store_api::ListOptions::page_size`]. Without it, paging cases
    /// still walk every page but do not check page sizes.
    pub page_size: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            max_value_bytes: 64 * 1024 * 1024,
            max_key_bytes: blobjobs_store_api::validate::MAX_KEY_BYTES,
            metadata: true,
            directories: true,
            page_size: true,
        }
    }
}

impl Capabilities {
    /// Everything the protocol offers: the default.
    pub fn full() -> Self {
        Capabilities::default()
    }

    /// Sets [`Capabilities::max_value_bytes`].
    pub fn max_value_bytes(mut self, n: u64) -> Self {
        self.max_value_bytes = n;
        self
    }

    /// Sets [`Capabilities::max_key_bytes`].
    pub fn max_key_bytes(mut self, n: usize) -> Self {
        self.max_key_bytes = n;
        self
    }

    /// Sets [`Capabilities::metadata`].
    pub fn metadata(mut self, on: bool) -> Self {
        self.metadata = on;
        self
    }

    /// Sets [`Capabilities::directories`].
    pub fn directories(mut self, on: bool) -> Self {
        self.directories = on;
        self
    }

    /// Sets [`Capabilities::page_size`].
    pub fn page_size(mut self, on: bool) -> Self {
        self.page_size = on;
        self
    }
}

/// How a run is shaped.
///
/// `Options::default()` is the same everywhere: it reads no environment variable, so a
/// variable left in a shell cannot change what a test checks. [`Options::from_env`] starts
/// from the defaults and applies the replay variables a failure report prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The backend's name in reports (for example `file` or `http+emulator`).
    pub backend: String,
    /// Generated operation sequences per model-based case (and workloads per history case).
    pub cases: u32,
    /// The longest generated operation sequence.
    pub max_ops: usize,
    /// The seed of every random choice of the run; `None` picks a fresh one, which the report
    /// prints so that a failure can be replayed.
    pub seed: Option<u64>,
    /// Run only cases whose name contains this text.
    pub filter: Option<String>,
    /// How many instances the concurrent cases use (at least 2).
    pub instances: usize,
    /// A case that runs longer fails with a timeout.
    pub case_timeout: Duration,
    /// One operation that runs longer fails the case with a timeout.
    pub op_timeout: Duration,
    /// How long a case lets the store settle before it reads everything it wrote again
    /// through a fresh instance (see [`Options::settle()`]).
    pub settle: Duration,
    /// Seeded schedule perturbation around every instance call: yields and spins of a few
    /// microseconds, so that a race in a store shows every run, not when the scheduler
    /// happens to interleave. Off only to measure what it adds.
    pub perturb: bool,
    /// How many cases run at once (at least 1; see [`Options::parallel()`]).
    pub parallel: usize,
    /// Called as each case finishes, for progress output (see [`Options::on_case`]).
    pub on_case: Option<CaseHook>,
}

/// A function called with the [`Progress`] of a run as each case finishes.
#[derive(Clone)]
pub struct CaseHook(Arc<dyn Fn(&Progress<'_>) + Send + Sync>);

impl CaseHook {
    /// Wraps `f`.
    pub fn new(f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Self {
        CaseHook(Arc::new(f))
    }

    /// Calls the hook.
    pub fn call(&self, progress: &Progress<'_>) {
        (self.0)(progress)
    }
}

impl fmt::Debug for CaseHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaseHook(..)")
    }
}

/// Two hooks are equal when they are the same function object (clones of one hook).
impl PartialEq for CaseHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CaseHook {}

/// The default of [`Options::settle()`].
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(300);

/// The environment variable that fixes the seed (see [`Options::from_env`]).
pub const SEED_ENV: &str = "CONFORMANCE_SEED";
/// The environment variable that sets [`Options::cases`] (see [`Options::from_env`]).
pub const CASES_ENV: &str = "CONFORMANCE_CASES";
/// The environment variable that sets [`Options::filter`] (see [`Options::from_env`]).
pub const FILTER_ENV: &str = "CONFORMANCE_FILTER";

impl Default for Options {
    /// Fixed defaults: 48 generated sequences per model case, up to 20 operations each, a
    /// fresh seed per run, no filter, 4 instances, 120 s per case, 20 s per operation, a
    /// settle interval of 300 ms, schedule perturbation on, and one case at a time.
    fn default() -> Self {
        Options {
            backend: "store".to_owned(),
            cases: 48,
            max_ops: 20,
            seed: None,
            filter: None,
            instances: 4,
            case_timeout: Duration::from_secs(120),
            op_timeout: Duration::from_secs(20),
            settle: DEFAULT_SETTLE,
            perturb: true,
            parallel: 1,
            on_case: None,
        }
    }
}

impl Options {
    /// The defaults, then three environment variables, so that a failure printed by one run
    /// can be replayed without editing code:
    ///
    /// - `CONFORMANCE_SEED`: the seed, in decimal or `0x` hexadecimal ([`Options::seed`]);
    /// - `CONFORMANCE_CASES`: generated sequences per model-based case ([`Options::cases`]);
    /// - `CONFORMANCE_FILTER`: run only cases whose name contains this text
    ///   ([`Options::filter`]).
    ///
    /// Unset, empty or unparsable variables leave the default in place. Runners call this;
    /// tests that assert on a whole report should use `Options::default()`, which no shell
    /// variable can change.
    pub fn from_env() -> Self {
        Options::default().with_env_vars(|name| std::env::var(name).ok())
    }

    /// [`Options::from_env`] over any source of variables (for tests, and for callers that
    /// hold the environment elsewhere).
    pub fn with_env_vars(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        if let Some(cases) = var(CASES_ENV).and_then(|v| v.trim().parse().ok()) {
            self.cases = cases;
        }
        if let Some(seed) = var(SEED_ENV).and_then(|v| parse_seed(&v)) {
            self.seed = Some(seed);
        }
        if let Some(filter) = var(FILTER_ENV) {
            self.filter = Some(filter);
        }
        self
    }

    /// Sets the backend's name in reports.
    pub fn backend(mut self, name: impl Into<String>) -> Self {
        self.backend = name.into();
        self
    }

    /// Sets the number of generated sequences per model-based case.
    pub fn cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }

    /// Sets the longest generated operation sequence.
    pub fn max_ops(mut self, n: usize) -> Self {
        self.max_ops = n.max(1);
        self
    }

    /// Fixes the seed, to replay a failure.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Runs only cases whose name contains `text`.
    pub fn filter(mut self, text: impl Into<String>) -> Self {
        self.filter = Some(text.into());
        self
    }

    /// Runs `n` cases at once (at least 1), each on its own key prefix and instances; they
    /// are still reported in order. For stores whose every call crosses a network (an
    /// engine, a remote endpoint), a few cases at once cut the run's time by about as much,
    /// since a case mostly waits. One at a time is the default because the cases that race
    /// on threads catch the narrowest windows of a fast, local store best when they have
    /// the cores to themselves.
    pub fn parallel(mut self, n: usize) -> Self {
        self.parallel = n.max(1);
        self
    }

    /// Sets the number of instances of the concurrent cases.
    pub fn instances(mut self, n: usize) -> Self {
        self.instances = n.max(2);
        self
    }

    /// Sets the per-case timeout.
    pub fn case_timeout(mut self, timeout: Duration) -> Self {
        self.case_timeout = timeout;
        self
    }

    /// Sets the per-operation timeout.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.op_timeout = timeout;
        self
    }

    /// Sets how long each concurrent case and model case lets the store settle before it
    /// reads everything again through a fresh instance: no deleted key or job may come back,
    /// no acknowledged write may be lost, listings must agree with reads. A case pays it once
    /// for all its sequences, and the runner overlaps it with the cases that follow, so a run
    /// pays it about once. Longer intervals catch slower faults (a delete undone by a lagging
    /// replica a second later); zero still re-reads, at once.
    pub fn settle(mut self, interval: Duration) -> Self {
        self.settle = interval;
        self
    }

    /// Turns seeded schedule perturbation around every instance call on or off (on by
    /// default).
    pub fn perturb(mut self, on: bool) -> Self {
        self.perturb = on;
        self
    }

    /// How many rounds each race case runs: one per two generated sequences
    /// ([`Options::cases`]), at least 8, so that `--cases` scales races as it scales models.
    /// Three in four race on threads, one in four interleaved (see the crate's `race`
    /// module).
    pub fn race_rounds(&self) -> usize {
        (self.cases as usize / 2).max(8)
    }

    /// Calls `f` as each case finishes, in run order, with the case's result and how far the
    /// run is; for progress output on long runs:
    ///
    /// ```
    /// let options = blobjobs_conformance::Options::default().on_case(|p| eprintln!("{}", p.line()));
    /// # let _ = options;
    /// ```
    pub fn on_case(mut self, f: impl Fn(&Progress<'_>) + Send + Sync + 'static) -> Self {
        self.on_case = Some(CaseHook::new(f));
        self
    }
}

/// Parses a seed written in decimal or as `0x` hexadecimal.
pub fn parse_seed(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_read_no_environment_and_from_env_reads_three_variables() {
        let vars = |name: &str| match name {
            "CONFORMANCE_SEED" => Some("0x2a".to_owned()),
            "CONFORMANCE_CASES" => Some(" 7 ".to_owned()),
            "CONFORMANCE_FILTER" => Some("claim".to_owned()),
            _ => None,
        };
        let from = Options::default().with_env_vars(vars);
        assert_eq!(
            (from.seed, from.cases, from.filter.as_deref()),
            (Some(42), 7, Some("claim"))
        );
        // Empty or unparsable values keep the defaults.
        let junk = |name: &str| (name != "CONFORMANCE_FILTER").then(|| "junk".to_owned());
        let kept = Options::default().with_env_vars(junk);
        assert_eq!(kept, Options::default());
        let empty = Options::default().with_env_vars(|_| Some(" ".to_owned()));
        assert_eq!(empty, Options::default());
        let plain = Options::default();
        assert_eq!((plain.seed, plain.cases, plain.filter), (None, 48, None));
    }

    #[test]
    fn seeds_parse_in_both_bases() {
        assert_eq!(parse_seed("42"), Some(42));
        assert_eq!(parse_seed("0x2a"), Some(42));
        assert_eq!(parse_seed("nope"), None);
    }
}

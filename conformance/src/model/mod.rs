//! Model-based testing: pure reference models of a blob store and of the job layer, proptest
//! state machines that generate operation sequences spread over 1 to 4 instances, and the
//! executor that replays a sequence against real instances and compares every result.
//!
//! Generation and shrinking come from `proptest-state-machine` (each model implements
//! [`proptest_state_machine::ReferenceStateMachine`]). The execution side follows
//! `StateMachineTest::test_sequential` step by step, but is async and reports a mismatch as a
//! readable timeline instead of a panic, because the system under test is built at run time
//! from the caller's factory.

pub mod blob;
pub mod jobs;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use proptest::strategy::{BoxedStrategy, Strategy};
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use proptest_state_machine::strategy::Sequential;

use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::seed::rng_from_seed;

/// A failed sequence: what went wrong, its likely cause, and the timeline that led there.
#[derive(Debug, Clone)]
pub(crate) struct Mismatch {
    pub(crate) message: String,
    pub(crate) timeline: Vec<String>,
    pub(crate) cause: Option<&'static str>,
}

impl Mismatch {
    pub(crate) fn new(message: impl Into<String>, timeline: Vec<String>) -> Self {
        Mismatch {
            message: message.into(),
            timeline,
            cause: None,
        }
    }

    /// Names the likely cause (one of [`crate::causes`]).
    pub(crate) fn because(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The mismatch as the text of a proptest failure: the cause, the message, then the
    /// timeline, one line each.
    fn encode(&self) -> String {
        let mut s = self.cause.unwrap_or("").to_owned();
        s.push('\n');
        s.push_str(&self.message.replace('\n', " "));
        for line in &self.timeline {
            s.push('\n');
            s.push_str(line);
        }
        s
    }

    fn decode(text: &str) -> Self {
        let mut lines = text.lines();
        let cause = lines.next().unwrap_or("");
        let message = lines.next().unwrap_or("").to_owned();
        Mismatch {
            message,
            timeline: lines.map(str::to_owned).collect(),
            cause: causes::ALL.iter().copied().find(|c| *c == cause),
        }
    }
}

/// Where one generated sequence runs: fresh instances of the case's factory under a prefix
/// (and job namespace) of its own.
pub(crate) struct Env {
    pub(crate) ctx: Ctx,
    pub(crate) prefix: String,
    /// Names the sequence in a settle failure, such as `sequence 17`.
    pub(crate) label: String,
}

impl Env {
    /// The environment of one run of a sequence of `ctx`'s case.
    pub(crate) fn fresh(ctx: &Ctx) -> Arc<Env> {
        let prefix = ctx.fresh_prefix();
        let n = prefix
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_start_matches('f')
            .to_owned();
        Arc::new(Env {
            ctx: ctx.clone(),
            prefix,
            label: format!("generated sequence {n}"),
        })
    }

    pub(crate) fn op_timeout(&self) -> std::time::Duration {
        self.ctx.options().op_timeout
    }

    /// Opens blob-store instance `i` of the sequence.
    pub(crate) async fn blob_instance(
        &self,
        i: usize,
    ) -> Result<Arc<dyn blobjobs_store_api::BlobStore>, Mismatch> {
        self.ctx
            .scoped_blobs(self.prefix.clone())
            .await
            .map_err(|e| {
                Mismatch::new(
                    format!("the factory could not open instance {i}: {}", e.message),
                    Vec::new(),
                )
                .because(causes::NO_INSTANCE)
            })
    }

    /// Opens job-store instance `i` of the sequence on `clock`.
    pub(crate) async fn job_instance(
        &self,
        i: usize,
        clock: &blobjobs_store_api::ManualClock,
    ) -> Result<Arc<dyn blobjobs_store_api::JobStore>, Mismatch> {
        let env = self
            .ctx
            .job_env_for(self.prefix.clone())
            .with_clock(clock.clone());
        crate::ctx::open_jobs(self.ctx.job_factory(), &env, self.op_timeout())
            .await
            .map_err(|e| {
                Mismatch::new(
                    format!(
                        "the factory could not open job-store instance {i} (error {}): {}",
                        e.kind(),
                        e.message()
                    ),
                    Vec::new(),
                )
                .because(causes::NO_INSTANCE)
            })
    }
}

/// The strategy type of a sequential state machine.
pub(crate) type SequentialStrategy<S, T> = Sequential<S, T, BoxedStrategy<S>, BoxedStrategy<T>>;

/// Generates `ctx.options().cases` sequences from `make_strategy`, runs each through `exec`
/// on the caller's runtime, and on failure shrinks to a minimal sequence whose timeline is
/// returned.
pub(crate) async fn run_machine<S, T, Fut>(
    ctx: &Ctx,
    make_strategy: impl Fn() -> SequentialStrategy<S, T> + Send + 'static,
    exec: impl Fn(S, Vec<T>, Option<Arc<AtomicUsize>>) -> Fut + Send + Sync + 'static,
) -> Result<(), Failure>
where
    S: Clone + std::fmt::Debug + 'static,
    T: Clone + std::fmt::Debug + 'static,
    Fut: Future<Output = Result<(), Mismatch>>,
{
    let cases = ctx.options().cases.max(1);
    let seed = ctx.seed();
    let handle = tokio::runtime::Handle::current();
    let joined = tokio::task::spawn_blocking(move || {
        let config = Config {
            cases,
            failure_persistence: None,
            max_shrink_iters: 4096,
            max_shrink_time: 30_000,
            max_global_rejects: 100_000,
            fork: false,
            timeout: 0,
            verbose: 0,
            ..Config::default()
        };
        let mut runner = TestRunner::new_with_rng(config, rng_from_seed(seed));
        let strategy = make_strategy();
        let result = runner.run(&strategy, |(state, steps, seen)| {
            handle
                .block_on(exec(state, steps, seen))
                .map_err(|m| TestCaseError::fail(m.encode()))
        });
        match result {
            Ok(()) => Ok(()),
            Err(TestError::Fail(reason, (_, steps, _))) => {
                let m = Mismatch::decode(reason.message());
                Err((m, steps.len()))
            }
            Err(TestError::Abort(reason)) => Err((
                Mismatch::new(
                    format!("the generator gave up: {}", reason.message()),
                    Vec::new(),
                ),
                0,
            )),
        }
    })
    .await;
    match joined {
        Ok(Ok(())) => Ok(()),
        Ok(Err((m, len))) => {
            let mut f = Failure::new(format!("{} (shrunk to {len} operations)", m.message));
            f.timeline = Some(m.timeline);
            f.cause = m.cause;
            Err(f)
        }
        Err(e) => Err(Failure::new(format!("the model run panicked: {e}"))),
    }
}

/// Builds a weighted union of boxed strategies (weights of zero are left out).
pub(crate) fn weighted<T: std::fmt::Debug + 'static>(
    arms: Vec<(u32, BoxedStrategy<T>)>,
) -> BoxedStrategy<T> {
    let arms: Vec<(u32, BoxedStrategy<T>)> = arms.into_iter().filter(|(w, _)| *w > 0).collect();
    proptest::strategy::Union::new_weighted(arms).boxed()
}

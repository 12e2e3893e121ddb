//! Starting racers together: a gate that releases every racer at once, so that on a
//! multi-threaded runtime two of them really run their calls in parallel, and the seeded
//! jitter that slides them across each other from round to round.
//!
//! A store whose only flaw is a check and a write that are not atomic loses a race only when
//! two calls overlap inside that window, which can be a few hundred nanoseconds wide when
//! the store never yields between them. The gate therefore spins (yielding to the scheduler
//! on every turn) instead of sleeping: sleeping racers wake one by one, tens of microseconds
//! apart, and would almost never overlap. Racers that must cross a window the store does
//! yield in are split by the perturbation around every call (see [`crate::probe`]).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::ctx::Failure;
use crate::probe::{Pauser, Probe};

/// Releases `n` racers at the same moment.
#[derive(Debug)]
pub(crate) struct Gate {
    arrived: AtomicUsize,
    n: usize,
}

/// A racer that has not arrived by then is not waited for any longer (it failed to start).
const GATE_LIMIT: Duration = Duration::from_secs(5);
/// How long a racer spins at the gate before it starts giving its core up.
const PATIENCE: Duration = Duration::from_millis(2);

tokio::task_local! {
    /// Set while a racer has not made its first call yet: that call is not perturbed, so
    /// that the gate and the jitter alone place it (see [`crate::probe::Pauser::pause`]).
    pub(crate) static STARTING: std::cell::Cell<bool>;
}

/// Whether the calling task is a racer about to make its first call; clears the mark.
pub(crate) fn first_call() -> bool {
    STARTING.try_with(|s| s.replace(false)).unwrap_or(false)
}

impl Gate {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Gate {
            arrived: AtomicUsize::new(0),
            n,
        })
    }

    /// Arrives and waits, blocking the thread, until every racer has. The racer spins on the
    /// count without giving up its core for [`PATIENCE`] (racers start within that of each
    /// other, and a racer that gives its core up may not get it back for a whole time slice
    /// on a busy machine), then gives it up now and then so that a racer without a core can
    /// arrive.
    pub(crate) fn wait_blocking(&self) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        let started = Instant::now();
        let mut turns = 0u32;
        while self.arrived.load(Ordering::SeqCst) < self.n {
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(256) {
                let waited = started.elapsed();
                if waited >= GATE_LIMIT {
                    return;
                }
                if waited >= PATIENCE {
                    std::thread::yield_now();
                }
            }
            std::hint::spin_loop();
        }
    }
}

/// Runs one racer per future, all released by one gate, each after its own seeded jitter,
/// and returns their results in racer order. Even rounds race on threads, odd rounds
/// interleaved on one task, since each catches what the other cannot:
///
/// - On threads (on a multi-threaded runtime), every racer runs on an OS thread of its own,
///   driving its future with the runtime's handle so that the store's I/O still runs on the
///   runtime, and the gate spins: whichever racers the operating system has on the cores
///   when the last one arrives start within nanoseconds of each other, inside the window of
///   a store that checks and writes without ever yielding. Tokio tasks cannot do that: a
///   task that yields comes back only after its worker has polled the driver, tens of
///   microseconds later.
/// - Interleaved, racers are polled in turn on one task, so a racer that yields between a
///   check and a write (the store's own await, or the suite's perturbation) hands over to
///   another racer, which then runs inside that window. A racer alone on a thread would
///   just be polled again.
///
/// On a current-thread runtime nothing runs in parallel, and every round is interleaved.
pub(crate) async fn race<T, Fut>(
    probe: &Arc<Probe>,
    round: usize,
    racers: Vec<Fut>,
) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    if round % 2 == 1 || handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
        return race_tasks(probe, racers).await;
    }
    let gate = Gate::new(racers.len());
    let mut results = Vec::with_capacity(racers.len());
    for (i, fut) in racers.into_iter().enumerate() {
        let gate = gate.clone();
        let pauser = Pauser::new(probe);
        let handle = handle.clone();
        let (sender, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("conformance-racer-{i}"))
            .spawn(move || {
                let out = handle.block_on(STARTING.scope(std::cell::Cell::new(true), async move {
                    gate.wait_blocking();
                    pauser.jitter();
                    fut.await
                }));
                let _ = sender.send(out);
            });
        if let Err(e) = spawned {
            // The racers already started are released by the deadline of the gate.
            return Err(Failure::new(format!("cannot start a racing thread: {e}")));
        }
        results.push(result);
    }
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        out.push(
            r.await
                .map_err(|_| Failure::new("a racing thread ended without a result"))?,
        );
    }
    Ok(out)
}

/// [`race`] interleaved on the calling task: every racer is polled in turn, and runs until
/// it yields, so that a racer that yields inside a store's window lets the next one in,
/// in an order the seeded perturbation decides.
async fn race_tasks<T, Fut>(probe: &Arc<Probe>, racers: Vec<Fut>) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let racers = racers.into_iter().map(|fut| {
        let pauser = Pauser::new(probe);
        STARTING.scope(std::cell::Cell::new(true), async move {
            pauser.jitter();
            fut.await
        })
    });
    Ok(futures_util::future::join_all(racers).await)
}

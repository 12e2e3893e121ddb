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
    /// A gate for `racers` racers that opens once as many have arrived as the machine has
    /// cores (or all of them, if fewer): only racers that run at the same moment can meet
    /// inside a window, and waiting for more would only keep the early ones spinning while
    /// the late ones wait for a core. Racers that arrive after it opened go straight on.
    pub(crate) fn new(racers: usize) -> Arc<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Arc::new(Gate {
            arrived: AtomicUsize::new(0),
            n: racers.min(cores.max(2)),
        })
    }

    /// Arrives and waits, blocking the thread, until enough racers have. The racer spins on the
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

/// How one round races: on threads or interleaved, and how many times in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Burst {
    /// Whether the racers run on OS threads (else interleaved on one task).
    pub(crate) threads: bool,
    /// How many races the round runs back to back, each on an item of its own (a key, a
    /// job), the racers meeting at a gate before each.
    pub(crate) size: usize,
}

/// About how long the races of one round on threads may take.
const BURST_TIME: Duration = Duration::from_millis(3);
/// The most races one round runs back to back.
const MAX_BURST: usize = 96;

impl Burst {
    /// The shape of round `round` for a store whose operations take about `op` each: one
    /// round in four (the second, the sixth, …) races once, interleaved; the others race on
    /// threads (when the runtime has several), as many times back to back as fit in about
    /// three milliseconds (at least once, at most [`MAX_BURST`] times). Interleaved rounds
    /// split a window at the store's or the suite's yields nearly every time; a narrow
    /// window without yields shows only when two threads happen to run at once, so those
    /// rounds need the numbers.
    ///
    /// Racing back to back is what makes a narrow window show on a busy machine: racing
    /// threads are seldom on the cores at the same moment, but once they are, the gates
    /// keep them in step for the rest of the burst, within nanoseconds of each other. A
    /// store whose operations take a millisecond has windows that wide, and races once.
    pub(crate) fn of_round(round: usize, op: Duration) -> Burst {
        let parallel = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread);
        if round % 4 == 1 || !parallel {
            return Burst {
                threads: false,
                size: 1,
            };
        }
        let fit = BURST_TIME.as_nanos() / op.as_nanos().max(1);
        Burst {
            threads: true,
            size: (fit as usize).clamp(1, MAX_BURST),
        }
    }

    /// One race, on threads or interleaved as round `round` would.
    pub(crate) fn single(round: usize) -> Burst {
        Burst {
            size: 1,
            ..Burst::of_round(round, BURST_TIME)
        }
    }
}

/// Runs `burst.size` races back to back among `racers` racers, where racer `i`'s part in
/// race `k` is `body(i, k)`, and returns each racer's results in race order.
///
/// - On threads, every racer runs on an OS thread of its own, driving its futures with the
///   runtime's handle (so that the store's I/O still runs on the runtime), and the racers
///   meet at a spinning gate before each race: whichever racers the operating system has on
///   the cores when the last one arrives start within nanoseconds of each other, inside the
///   window of a store that checks and writes without ever yielding. Tokio tasks cannot do
///   that: a task that yields comes back only after its worker has polled the driver, tens
///   of microseconds later.
/// - Interleaved, racers are polled in turn on the calling task, so a racer that yields
///   between a check and a write (the store's own await, or the suite's perturbation)
///   hands over to another racer, which then runs inside that window. A racer alone on a
///   thread would just be polled again.
///
/// Each racer takes a seeded jitter before each race, and its first call in a race is not
/// perturbed (see [`first_call`]).
pub(crate) async fn race_burst<T, F, Fut>(
    probe: &Arc<Probe>,
    burst: Burst,
    racers: usize,
    body: F,
) -> Result<Vec<Vec<T>>, Failure>
where
    T: Send + 'static,
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let body = Arc::new(body);
    if !burst.threads {
        let racers = (0..racers).map(|i| {
            let pauser = Pauser::new(probe);
            let body = body.clone();
            async move {
                let mut out = Vec::with_capacity(burst.size);
                for k in 0..burst.size {
                    pauser.jitter();
                    out.push(STARTING.scope(std::cell::Cell::new(true), body(i, k)).await);
                }
                out
            }
        });
        return Ok(futures_util::future::join_all(racers).await);
    }
    let handle = tokio::runtime::Handle::current();
    let gates: Arc<Vec<Arc<Gate>>> = Arc::new((0..burst.size).map(|_| Gate::new(racers)).collect());
    let mut results = Vec::with_capacity(racers);
    for i in 0..racers {
        let gates = gates.clone();
        let pauser = Pauser::new(probe);
        let handle = handle.clone();
        let body = body.clone();
        let (sender, result) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name(format!("conformance-racer-{i}"))
            .spawn(move || {
                let out = handle.block_on(async move {
                    let mut out = Vec::with_capacity(gates.len());
                    for (k, gate) in gates.iter().enumerate() {
                        gate.wait_blocking();
                        pauser.jitter();
                        out.push(STARTING.scope(std::cell::Cell::new(true), body(i, k)).await);
                    }
                    out
                });
                let _ = sender.send(out);
            });
        if let Err(e) = spawned {
            // The racers already started are released by the deadline of the gates.
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

/// One race among `racers` futures, on threads or interleaved as round `round` would (see
/// [`race_burst`]); the results come back in racer order.
pub(crate) async fn race<T, Fut>(
    probe: &Arc<Probe>,
    round: usize,
    racers: Vec<Fut>,
) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let n = racers.len();
    let slots: Arc<Vec<std::sync::Mutex<Option<Fut>>>> = Arc::new(
        racers
            .into_iter()
            .map(|f| std::sync::Mutex::new(Some(f)))
            .collect(),
    );
    let results = race_burst(probe, Burst::single(round), n, move |i, _| {
        let fut = slots[i].lock().ok().and_then(|mut s| s.take());
        async move {
            match fut {
                Some(f) => Some(f.await),
                None => None,
            }
        }
    })
    .await?;
    results
        .into_iter()
        .map(|mut r| {
            r.pop()
                .flatten()
                .ok_or_else(|| Failure::new("a racer ran without its part"))
        })
        .collect()
}

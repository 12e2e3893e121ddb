//! The suite's view of every instance: a key prefix that keeps cases apart, seeded schedule
//! perturbation around every call, a count of calls in flight, and the symptoms a failure's
//! cause is named after.
//!
//! Perturbation is what makes races show every run rather than when the scheduler happens to
//! interleave. Before and after each call an instance takes a seeded choice: go on, yield to
//! the scheduler once or a few times, or spin for a few microseconds. A store that checks a
//! condition with one call and writes with another (or a job layer that reads and then
//! writes without a compare-and-swap) is then split at that seam in some of the many rounds
//! a race case runs, whatever its own code does in between. The choices come from the case's
//! seed, so a printed seed replays the same perturbation.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Error, ErrorKind, ListOptions, ListPage, Result,
    SetOptions, SetOutcome,
};
use bytes::Bytes;

use crate::causes;
use crate::runner::splitmix;

/// What one case shares among the views of its instances.
#[derive(Debug)]
pub(crate) struct Probe {
    seed: u64,
    perturb: bool,
    streams: AtomicU64,
    in_flight: AtomicUsize,
    idle: tokio::sync::Notify,
    symptoms: Mutex<BTreeSet<&'static str>>,
}

impl Probe {
    /// The probe of a case with `seed`; `perturb` turns schedule perturbation on.
    pub(crate) fn new(seed: u64, perturb: bool) -> Self {
        Probe {
            seed,
            perturb,
            streams: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            idle: tokio::sync::Notify::new(),
            symptoms: Mutex::new(BTreeSet::new()),
        }
    }

    /// A probe that only counts: for views built outside a case.
    pub(crate) fn quiet() -> Self {
        Probe::new(0, false)
    }

    /// Notes something wrong that names a failure's likely cause.
    pub(crate) fn symptom(&self, cause: &'static str) {
        if let Ok(mut s) = self.symptoms.lock() {
            s.insert(cause);
        }
    }

    /// The symptoms seen so far, most telling first (in the order of [`causes::ALL`]).
    pub(crate) fn symptoms(&self) -> Vec<&'static str> {
        let seen = self.symptoms.lock().map(|s| s.clone()).unwrap_or_default();
        causes::ALL
            .iter()
            .copied()
            .filter(|c| seen.contains(c))
            .collect()
    }

    /// Waits until no call of the case's instances is in flight, for at most `limit`;
    /// returns whether they all finished.
    pub(crate) async fn wait_idle(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.in_flight.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// Counts a call made outside a [`Scoped`] view (a job store's) as in flight.
    pub(crate) fn enter(&self) -> impl Drop + '_ {
        InFlight::enter(self)
    }

    /// A new stream of perturbation choices, one per instance view.
    fn stream(&self) -> u64 {
        let n = self.streams.fetch_add(1, Ordering::SeqCst);
        splitmix(self.seed ^ splitmix(n.wrapping_add(0x5eed)))
    }
}

/// Counts a call as in flight until dropped (also when the call is abandoned).
struct InFlight<'a>(&'a Probe);

impl<'a> InFlight<'a> {
    fn enter(probe: &'a Probe) -> Self {
        probe.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(probe)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Spins for `nanos` nanoseconds without giving up the thread: a delay far shorter than a
/// timer (or a yield) can make, which shifts two truly parallel calls against each other.
fn spin(nanos: u64) {
    let until = Instant::now() + Duration::from_nanos(nanos);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// One stream of seeded perturbation choices (one per instance view or racer).
#[derive(Debug)]
pub(crate) struct Pauser {
    on: bool,
    choices: AtomicU64,
}

impl Pauser {
    pub(crate) fn new(probe: &Probe) -> Self {
        Pauser {
            on: probe.perturb,
            choices: AtomicU64::new(probe.stream()),
        }
    }

    fn next(&self) -> u64 {
        splitmix(
            self.choices
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed),
        )
    }

    /// One seeded perturbation: usually nothing or a yield, sometimes several yields or a
    /// spin of up to 24 µs. A racer's first call after the start of a race is left alone
    /// (see [`crate::race`]).
    pub(crate) async fn pause(&self) {
        if !self.on || crate::race::first_call() {
            return;
        }
        let r = self.next();
        match r % 16 {
            0..=5 => {}
            6..=10 => tokio::task::yield_now().await,
            11..=13 => {
                for _ in 0..2 + (r >> 8) % 5 {
                    tokio::task::yield_now().await;
                }
            }
            _ => {
                spin((r >> 16) % 25_000);
                tokio::task::yield_now().await;
            }
        }
    }

    /// The small seeded offset a racer takes after the start of a race: none in half the
    /// rounds, so that parallel racers start together, else a spin of up to 3 µs, so that
    /// over the rounds their calls slide across each other by less than a store's window
    /// between its check and its write.
    pub(crate) fn jitter(&self) {
        if !self.on {
            return;
        }
        let r = self.next();
        match r % 4 {
            0 | 1 => {}
            2 => spin((r >> 8) % 1_000),
            _ => spin(1_000 + (r >> 8) % 2_000),
        }
    }
}

/// A store seen through a key prefix, so that runs and cases never see each other's keys,
/// with every call perturbed, counted and checked for symptoms.
pub(crate) struct Scoped {
    inner: Arc<dyn BlobStore>,
    prefix: String,
    probe: Arc<Probe>,
    pauser: Pauser,
}

impl fmt::Debug for Scoped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scoped")
            .field("inner", &self.inner)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Scoped {
    pub(crate) fn new(inner: Arc<dyn BlobStore>, prefix: String, probe: Arc<Probe>) -> Self {
        let pauser = Pauser::new(&probe);
        Scoped {
            inner,
            prefix,
            probe,
            pauser,
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn strip(&self, key: String) -> Result<String> {
        match key.strip_prefix(&self.prefix) {
            Some(rest) => Ok(rest.to_owned()),
            None => Err(Error::new(
                ErrorKind::Protocol,
                format!("listing returned {key:?}, which is outside the listed prefix"),
            )),
        }
    }

    /// Runs `call` between two perturbations, counted as in flight.
    async fn around<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let _counted = InFlight::enter(&self.probe);
        self.pauser.pause().await;
        let r = call.await;
        self.pauser.pause().await;
        r
    }

    fn check_info(&self, info: &BlobInfo) {
        if info.etag.as_str().trim().is_empty() {
            self.probe.symptom(causes::GET_SENDS_NO_ETAG);
        }
    }
}

#[async_trait]
impl BlobStore for Scoped {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        let r = self.around(self.inner.get(&self.full(key))).await;
        if let Ok(Some(b)) = &r {
            self.check_info(&b.info);
        }
        r
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        let r = self.around(self.inner.get_metadata(&self.full(key))).await;
        if let Ok(Some(info)) = &r {
            self.check_info(info);
        }
        r
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        let r = self
            .around(self.inner.set(&self.full(key), value, options))
            .await;
        if let Ok(SetOutcome::Written { etag }) = &r
            && etag.as_str().trim().is_empty()
        {
            self.probe.symptom(causes::WRITE_RETURNS_NO_ETAG);
        }
        r
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.around(self.inner.delete(&self.full(key))).await
    }

    async fn list(&self, mut options: ListOptions) -> Result<ListPage> {
        options.prefix = self.full(&options.prefix);
        let page = self.around(self.inner.list(options)).await?;
        let mut blobs = Vec::with_capacity(page.blobs.len());
        for mut entry in page.blobs {
            entry.key = self.strip(entry.key)?;
            blobs.push(entry);
        }
        let directories = page
            .directories
            .into_iter()
            .map(|d| self.strip(d))
            .collect::<Result<Vec<_>>>()?;
        Ok(ListPage {
            blobs,
            directories,
            next_cursor: page.next_cursor,
        })
    }

    /// Forwarded, so that a backend's own streaming read is what the cases exercise.
    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        let r = self.around(self.inner.get_stream(&self.full(key))).await;
        if let Ok(Some((info, _))) = &r {
            self.check_info(info);
        }
        r
    }

    /// Forwarded, so that a backend's own streaming write is what the cases exercise.
    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let r = self
            .around(
                self.inner
                    .set_stream(&self.full(key), body, max_size, options),
            )
            .await;
        if let Ok(SetOutcome::Written { etag }) = &r
            && etag.as_str().trim().is_empty()
        {
            self.probe.symptom(causes::WRITE_RETURNS_NO_ETAG);
        }
        r
    }
}

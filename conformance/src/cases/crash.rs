//! A crash in the middle of writes. With every instance an OS process, one instance is killed
//! (SIGKILL) while it overwrites a value, appends acknowledged records and reports progress on
//! a job it leased, and other instances read all along. A store fit for serverless jobs never
//! lets a reader see a torn value, never loses a write it acknowledged, and lets another
//! instance take the killed instance's job over once its lease has expired.
//!
//! Instances inside the calling process cannot be killed on their own, so the case needs a
//! factory that spawns processes ([`crate::InstanceFactory::spawns_processes`]) and is skipped
//! on any other.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use blobjobs_store_api::{
    BlobJobStore, BlobStore, ErrorKind, JobId, JobStatus, JobStore as _, JobStoreConfig,
    ManualClock, NewJob, SetOptions, SetOutcome, Timestamp,
};
use proptest::prelude::Rng;
use serde_json::json;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::ctx::{CLOCK_START_MS, Ctx, Failure, limited};
use crate::probe::{Probe, Scoped};
use crate::seed::rng_from_seed;

pub(crate) fn cases() -> Vec<Case> {
    vec![case!(
        "crash",
        instance_killed_mid_write_tears_nothing_and_frees_its_jobs,
        CrossInstance,
        Processes
    )]
}

/// The lease the doomed instance takes.
const LEASE: Duration = Duration::from_secs(30);
/// The key the doomed instance overwrites again and again, with values of changing size.
const HOT: &str = "crash/hot";
/// The job the doomed instance leases and reports progress on.
const JOB: &str = "crash-job";
/// The lease owner of the doomed instance.
const DOOMED: &str = "doomed-worker";
/// The lease owner of the instance that takes the job over.
const SURVIVOR: &str = "surviving-worker";
/// How many readers read while the doomed instance writes.
const READERS: usize = 2;
/// The most write rounds of the doomed instance (each: one value, one record, and every
/// fourth round a progress report).
const MAX_ROUNDS: u32 = 2_000;
/// Rounds acknowledged before the kill may come, so that the kill finds writes in flow.
const MIN_ROUNDS: u32 = 8;
/// How long the doomed instance writes at least before the kill, so that the readers read
/// hundreds of times while a write may be under way.
const MIN_WRITING: Duration = Duration::from_millis(200);
/// The most the kill is put off beyond that, drawn from the case's seed.
const MAX_EXTRA_MILLIS: u32 = 100;
/// The most reads per reader.
const MAX_READS: u32 = 20_000;
/// The longest the writing phase may last, whatever the store's speed.
const MAX_WRITING: Duration = Duration::from_secs(10);

/// The value of round `round` under [`HOT`]: its round number (4 bytes, little-endian), then
/// bytes derived from it, between 1 and 32 KiB in all, so that a value missing its end, or
/// mixing the bytes of two rounds, is recognised.
fn hot_value(round: u32) -> Vec<u8> {
    let len = 1024 + (round as usize).wrapping_mul(7919) % (31 * 1024);
    let mut value = Vec::with_capacity(len);
    value.extend_from_slice(&round.to_le_bytes());
    let mut x = round.wrapping_mul(2_654_435_761) | 1;
    while value.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        value.push(x as u8);
    }
    value
}

/// The round of a whole [`hot_value`], or what is wrong with a torn one.
fn hot_round(bytes: &[u8]) -> Result<u32, String> {
    let Some(head) = bytes.get(..4) else {
        return Err(format!(
            "{} bytes, shorter than any value written",
            bytes.len()
        ));
    };
    let round = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let expected = hot_value(round);
    if bytes == expected.as_slice() {
        Ok(round)
    } else if bytes.len() != expected.len() {
        Err(format!(
            "{} bytes that start like the value of round {round}, which has {}",
            bytes.len(),
            expected.len()
        ))
    } else {
        let changed = bytes.iter().zip(&expected).filter(|(a, b)| a != b).count();
        Err(format!(
            "the value of round {round} with {changed} of its {} bytes from another write",
            bytes.len()
        ))
    }
}

fn record_key(round: u32) -> String {
    format!("crash/record/{round:05}")
}

fn record_value(round: u32) -> Vec<u8> {
    format!("record of round {round}").into_bytes()
}

/// What the doomed instance got acknowledged before it died.
#[derive(Debug, Default)]
struct Acked {
    /// The last round whose [`HOT`] value was acknowledged.
    hot: Option<u32>,
    /// Every record up to this round was acknowledged.
    records: u32,
    /// A write that failed before the kill: the store's fault, not the crash's.
    early_error: Option<String>,
}

/// What the readers saw that they must not have.
#[derive(Debug, Default)]
struct Seen {
    reads: u64,
    problems: Vec<String>,
}

async fn instance_killed_mid_write_tears_nothing_and_frees_its_jobs(
    ctx: Ctx,
) -> Result<(), Failure> {
    let mut rng = rng_from_seed(ctx.seed());
    let op_timeout = ctx.options().op_timeout;
    let factory = ctx.blob_factory().ok_or_else(|| {
        Failure::new("the run grades a job store, which has no instances to kill")
    })?;
    let (raw, kill) = limited(op_timeout, factory.killable_instance())
        .await
        .map_err(|e| {
            Failure::new(format!(
                "the factory could not start an instance to kill ({}): {}",
                e.kind(),
                e.message()
            ))
        })?;
    let doomed: Arc<dyn BlobStore> = Arc::new(Scoped::new(
        raw,
        ctx.prefix().to_owned(),
        // Not the case's probe: calls cut short by the kill must not count as work in flight.
        Arc::new(Probe::quiet()),
    ));
    let readers = ctx.instances(READERS).await?;
    let after = ctx.instance().await?;
    ctx.note("the doomed instance runs in a process of its own; it will be killed mid-write");

    // The doomed instance's job layer runs on a clock of its own that starts where the
    // case's clock does, so the lease it takes expires at a time the case controls.
    let doomed_jobs = BlobJobStore::with_config(
        doomed.clone(),
        JobStoreConfig {
            clock: Arc::new(ManualClock::new(Timestamp::from_millis(CLOCK_START_MS))),
            ..JobStoreConfig::default()
        },
    );
    let job = JobId::new(JOB).map_err(Failure::from)?;
    limited(
        op_timeout,
        doomed_jobs.create(NewJob::new("crash", json!({})).id(job.clone())),
    )
    .await?;
    limited(op_timeout, doomed_jobs.claim(&job, DOOMED, LEASE)).await?;
    ctx.note(format!(
        "doomed instance: create job {JOB} and claim it as {DOOMED} for {} ms → ok",
        LEASE.as_millis()
    ));

    let acked = Arc::new(Mutex::new(Acked::default()));
    let killed = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let writer = {
        let acked = acked.clone();
        let killed = killed.clone();
        let doomed = doomed.clone();
        let job = job.clone();
        tokio::spawn(async move {
            let fail = |what: String| {
                if !killed.load(Ordering::SeqCst)
                    && let Ok(mut a) = acked.lock()
                {
                    a.early_error.get_or_insert(what);
                }
            };
            for round in 1..=MAX_ROUNDS {
                if started.elapsed() > MAX_WRITING {
                    break;
                }
                match doomed
                    .set(HOT, hot_value(round).into(), SetOptions::new())
                    .await
                {
                    Ok(SetOutcome::Written { .. }) => {
                        if let Ok(mut a) = acked.lock() {
                            a.hot = Some(round);
                        }
                    }
                    Ok(SetOutcome::ConditionFailed) => {
                        fail(format!(
                            "an unconditional write of {HOT:?} reported a failed condition"
                        ));
                        break;
                    }
                    Err(e) => {
                        fail(format!(
                            "writing {HOT:?} failed ({}): {}",
                            e.kind(),
                            e.message()
                        ));
                        break;
                    }
                }
                let key = record_key(round);
                match doomed
                    .set(&key, record_value(round).into(), SetOptions::new())
                    .await
                {
                    Ok(_) => {
                        if let Ok(mut a) = acked.lock() {
                            a.records = round;
                        }
                    }
                    Err(e) => {
                        fail(format!(
                            "writing {key:?} failed ({}): {}",
                            e.kind(),
                            e.message()
                        ));
                        break;
                    }
                }
                if round % 4 == 0
                    && let Err(e) = doomed_jobs
                        .progress(&job, DOOMED, (round % 100) as u8, None)
                        .await
                {
                    fail(format!(
                        "reporting progress on job {JOB} failed ({}): {}",
                        e.kind(),
                        e.message()
                    ));
                    break;
                }
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut reading = Vec::new();
    for reader in &readers {
        let store = reader.store.clone();
        let name = format!("instance {}", reader.id);
        let stop = stop.clone();
        let seen = seen.clone();
        let jobs = BlobJobStore::new(store.clone());
        let job = job.clone();
        reading.push(tokio::spawn(async move {
            let problem = |text: String| {
                if let Ok(mut s) = seen.lock() {
                    s.problems.push(text);
                }
            };
            let mut last: Option<u32> = None;
            for n in 0..MAX_READS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                match store.get(HOT).await {
                    Ok(Some(blob)) => match hot_round(&blob.value) {
                        Ok(round) => {
                            if let Some(before) = last
                                && round < before
                            {
                                problem(format!(
                                    "{name} read the value of round {round} of {HOT:?} after \
                                     that of round {before}: a write it had seen was undone"
                                ));
                            }
                            last = Some(round);
                        }
                        Err(torn) => problem(format!(
                            "{name} read a torn value of {HOT:?} while it was being \
                             overwritten: {torn}"
                        )),
                    },
                    Ok(None) => {
                        if let Some(before) = last {
                            problem(format!(
                                "{name} found {HOT:?} missing after reading the value of \
                                 round {before}"
                            ));
                        }
                    }
                    Err(e) => problem(format!(
                        "{name} could not read {HOT:?} while it was being overwritten ({}): {}",
                        e.kind(),
                        e.message()
                    )),
                }
                if n % 8 == 0
                    && let Err(e) = jobs.get(&job).await
                {
                    problem(format!(
                        "{name} could not read job {JOB} while its progress was being \
                         written ({}): {}",
                        e.kind(),
                        e.message()
                    ));
                }
                if let Ok(mut s) = seen.lock() {
                    s.reads += 1;
                }
            }
        }));
    }

    // The kill comes once writes are flowing, after a delay drawn from the case's seed.
    let kill_after =
        MIN_WRITING + Duration::from_millis(u64::from(rng.next_u32() % (MAX_EXTRA_MILLIS + 1)));
    while (acked.lock().map(|a| a.records).unwrap_or(0) < MIN_ROUNDS
        || started.elapsed() < kill_after)
        && !writer.is_finished()
        && started.elapsed() < MAX_WRITING
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    killed.store(true, Ordering::SeqCst);
    let in_writing = started.elapsed();
    limited(op_timeout, kill.kill()).await.map_err(|e| {
        Failure::new(format!(
            "could not kill the doomed instance ({}): {}",
            e.kind(),
            e.message()
        ))
    })?;
    // Without its process, the writer's next answer never comes: it ends at once.
    let _ = tokio::time::timeout(op_timeout, writer).await;
    stop.store(true, Ordering::SeqCst);
    for r in reading {
        let _ = tokio::time::timeout(op_timeout, r).await;
    }
    let (hot, records, early) = {
        let a = acked
            .lock()
            .map_err(|_| Failure::new("the writer panicked"))?;
        (a.hot, a.records, a.early_error.clone())
    };
    let (reads, problems) = {
        let s = seen.lock().map_err(|_| Failure::new("a reader panicked"))?;
        (s.reads, s.problems.clone())
    };
    ctx.note(format!(
        "doomed instance: {records} rounds acknowledged ({} of {HOT:?}), then killed (SIGKILL) \
         after {} ms; {READERS} readers made {reads} reads meanwhile",
        hot.map(|r| format!("last value: round {r}"))
            .unwrap_or_else(|| "no value".to_owned()),
        in_writing.as_millis()
    ));
    if let Some(early) = early {
        return Err(Failure::new(format!(
            "before it was killed, the doomed instance failed a write: {early}"
        )));
    }
    if let Some(first) = problems.first() {
        return Err(Failure::new(format!(
            "{first}{}",
            if problems.len() > 1 {
                format!(" (and {} more such reads)", problems.len() - 1)
            } else {
                String::new()
            }
        )));
    }

    // A fresh instance, started after the kill, finds every acknowledged write whole.
    match after.get(HOT).await? {
        Some(blob) => {
            let round = hot_round(&blob.value).map_err(|torn| {
                Failure::new(format!(
                    "after the kill, instance {} read a torn value of {HOT:?}: {torn}",
                    after.id
                ))
            })?;
            if let Some(acked) = hot {
                ensure!(
                    round >= acked,
                    "after the kill, instance {} read the value of round {round} of {HOT:?}, \
                     but round {acked} had been acknowledged: an acknowledged write was lost",
                    after.id
                );
            }
        }
        None => ensure!(
            hot.is_none(),
            "after the kill, {HOT:?} is missing, though the doomed instance's write of round \
             {} was acknowledged",
            hot.unwrap_or_default()
        ),
    }
    for round in 1..=records {
        let key = record_key(round);
        let got = limited(op_timeout, after.store.get(&key)).await?;
        match got {
            Some(blob) => ensure!(
                blob.value.as_ref() == record_value(round).as_slice(),
                "after the kill, the acknowledged record {key:?} reads as {} bytes that are \
                 not what was written",
                blob.value.len()
            ),
            None => {
                return Err(Failure::new(format!(
                    "after the kill, the acknowledged record {key:?} is missing: an \
                     acknowledged write was lost"
                )));
            }
        }
    }
    // The write in flight when the process died either happened whole or not at all.
    let next = record_key(records + 1);
    if let Some(blob) = after.get(&next).await? {
        ensure!(
            blob.value.as_ref() == record_value(records + 1).as_slice(),
            "after the kill, the record {next:?} that was being written reads as {} bytes of \
             something else",
            blob.value.len()
        );
    }
    ctx.note(format!(
        "instance {}: all {records} acknowledged records read back whole",
        after.id
    ));

    // The lease outlives its holder until it expires; then another instance takes over.
    let jobs = ctx.blob_jobs(&after);
    let held = jobs.get(&job).await?;
    let Some(held) = held else {
        return Err(Failure::new(format!(
            "after the kill, job {JOB}, created and claimed by the doomed instance, is missing"
        )));
    };
    ensure_eq!(
        held.status,
        JobStatus::Running,
        "status of job {JOB} after its holder was killed"
    );
    match jobs.claim(&job, SURVIVOR, LEASE).await {
        Err(e) if e.kind() == ErrorKind::LeaseHeld => {}
        Err(e) => {
            return Err(Failure::new(format!(
                "claiming job {JOB} while the killed instance's lease was still live failed \
                 with {} instead of lease-held: {}",
                e.kind(),
                e.message()
            )));
        }
        Ok(_) => {
            return Err(Failure::new(format!(
                "instance {} claimed job {JOB} while the killed instance's lease was still \
                 live: two workers would run it",
                after.id
            )));
        }
    }
    ctx.advance(LEASE + Duration::from_millis(1));
    let taken = jobs.claim(&job, SURVIVOR, LEASE).await?;
    ensure_eq!(
        taken.lease.as_ref().map(|l| l.owner.as_str()),
        Some(SURVIVOR),
        "lease holder of job {JOB} after the takeover"
    );
    ensure_eq!(
        taken.attempts,
        2,
        "attempts of job {JOB} after the takeover"
    );
    jobs.succeed(&job, SURVIVOR, json!({"taken_over": true}))
        .await?;
    let seen_by = ctx.blob_jobs(&readers[0]).get(&job).await?;
    ensure_eq!(
        seen_by.map(|j| j.status),
        Some(JobStatus::Succeeded),
        "status of job {JOB} seen by instance {} after the survivor finished it",
        readers[0].id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_values_are_recognised_and_torn_ones_are_not() {
        for round in [1, 2, 17, 1999] {
            let v = hot_value(round);
            assert!((1024..=32 * 1024).contains(&v.len()));
            assert_eq!(hot_round(&v), Ok(round));
            assert!(hot_round(&v[..v.len() - 1]).is_err());
            assert!(hot_round(&v[..3]).is_err());
            let mut mixed = v.clone();
            let other = hot_value(round + 1);
            let n = mixed.len().min(other.len());
            mixed[n / 2..n].copy_from_slice(&other[n / 2..n]);
            assert!(hot_round(&mixed).is_err());
        }
        assert!(hot_round(&[]).is_err());
    }
}

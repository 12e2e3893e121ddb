//! `cargo xtask bench engines`: the engine backends against the engines' own clients, and the
//! emulator over each engine. SeaweedFS's S3 gateway and PostgreSQL are started by the run
//! (`blobjobs_test_support::engines`, as the tests start them) and stopped at its end.
//!
//! * A paired run per engine and operation: one `BlobStore` operation through the backend
//!   (`S3Store`, `PgStore`), then the same operation through the engine's own client (plain
//!   `object_store` `put`/`get` for S3; for PostgreSQL one `tokio-postgres` connection and a
//!   prepared statement on the same table), alternating which goes first, one at a time, 1 KiB
//!   values. The figure is the backend's throughput over the client's (the ratio of their
//!   median times); the target is at least 0.8. PostgreSQL's paired runs keep this thread and
//!   the server's client backends on one CPU ([`pin_to_one_cpu`]).
//! * `blobs-emulator --store-url` over each engine, GET and PUT of 1 KiB at 16 connections,
//!   with the load generator of the `http` group.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use blobjobs_backends::open::{Env, OpenOptions, open_store_with};
use blobjobs_backends::s3::S3Store;
use blobjobs_store_api::{BlobStore, SetOptions};
use blobjobs_test_support::engines::{Postgres, SeaweedFs, Unavailable};
use bytes::Bytes;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutPayload};

use super::markdown::{sig, time};
use super::results::Unit;
use super::servers::Server;
use super::{Ctx, MAX_REQUESTS_PER_POINT, http, load};

/// The engines, with their labels, in run and report order.
pub const ENGINES: [(&str, &str); 2] = [("s3", "S3 (SeaweedFS)"), ("postgres", "PostgreSQL")];

/// The operations of the paired runs.
pub const OPS: [&str; 2] = ["set", "get"];

/// Connections of the emulator's load points over an engine.
pub const CONNECTIONS: usize = 16;

/// Warm-up pairs, not counted.
const WARMUP: usize = 10;
/// Bounds on the counted pairs of one paired run, whatever its time budget. The set run
/// writes every key the get run then reads, so it must reach all [`KEYS`].
const MIN_PAIRS: usize = KEYS;
const MAX_PAIRS: usize = 100_000;
/// Keys a paired run cycles through (and that its reads find).
const KEYS: usize = 100;

/// The progress steps: per engine, a paired run per operation and a load point per operation
/// and round.
pub fn steps(rounds: usize) -> usize {
    ENGINES.len() * OPS.len() * (1 + rounds)
}

/// One side of a paired run: an operation on key number `i`.
type Side<'a> = Box<dyn Fn(usize) -> futures_util::future::BoxFuture<'a, Result<()>> + 'a>;

/// The paired run of one engine and operation: `ours` and `raw` alternate (which goes first
/// alternates too) for `budget`, within [`MIN_PAIRS`] and [`MAX_PAIRS`]; returns the two
/// medians in nanoseconds.
async fn paired(ours: &Side<'_>, raw: &Side<'_>, budget: Duration) -> Result<(f64, f64)> {
    let mut times = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..WARMUP + MAX_PAIRS {
        let counted = i >= WARMUP;
        if counted && times.0.len() >= MIN_PAIRS && started.elapsed() > budget {
            break;
        }
        let (a, b) = if i % 2 == 0 {
            let a = timed(ours, i).await?;
            (a, timed(raw, i).await?)
        } else {
            let b = timed(raw, i).await?;
            (timed(ours, i).await?, b)
        };
        if counted {
            times.0.push(a);
            times.1.push(b);
        }
    }
    times.0.sort_unstable();
    times.1.sort_unstable();
    Ok((
        load::percentile(&times.0, 0.5) as f64,
        load::percentile(&times.1, 0.5) as f64,
    ))
}

/// How long one operation of `side` on key `i mod KEYS` takes, in nanoseconds.
async fn timed(side: &Side<'_>, i: usize) -> Result<u64> {
    let op = side(i % KEYS);
    let t = Instant::now();
    op.await?;
    Ok(t.elapsed().as_nanos() as u64)
}

fn value() -> Bytes {
    Bytes::from(vec![0x5a; 1024])
}

/// Runs the group: each engine that starts, then the notes for those that did not.
pub async fn run(ctx: &mut Ctx, emulator: &Path) -> Result<()> {
    let token = crate::random_token()?;
    for (engine, label) in ENGINES {
        let outcome = match engine {
            "s3" => match SeaweedFs::try_start().await {
                Ok(weed) => s3(ctx, &weed, emulator, &token).await,
                Err(why) => Err(unavailable(label, &why)),
            },
            _ => match Postgres::try_start().await {
                Ok(pg) => postgres(ctx, &pg, emulator, &token).await,
                Err(why) => Err(unavailable(label, &why)),
            },
        };
        if let Err(e) = outcome {
            let note = format!("{label} was not measured: {e:#}");
            ctx.progress.note(&note);
            ctx.results.notes.push(note);
        }
    }
    Ok(())
}

fn unavailable(label: &str, why: &Unavailable) -> anyhow::Error {
    anyhow::anyhow!("{label} is not available here: {why}")
}

/// Records a paired run's figures and prints its line.
fn record(ctx: &mut Ctx, engine: &str, op: &str, (ours, raw): (f64, f64), what: &str) {
    let prefix = format!("engines/{engine}/{op}");
    ctx.results.set(format!("{prefix}/backend"), ours, Unit::Ns);
    ctx.results.set(format!("{prefix}/raw"), raw, Unit::Ns);
    let ratio = raw / ours;
    ctx.results
        .set(format!("{prefix}/backend_over_raw"), ratio, Unit::Ratio);
    ctx.progress.step(&format!(
        "engines: {engine} {op}, paired: backend {} against {what} {}, throughput ratio {}",
        time(ours),
        time(raw),
        sig(ratio)
    ));
}

/// The paired budget of one operation.
fn budget(ctx: &Ctx) -> Duration {
    ctx.point_duration() * 2
}

async fn s3(ctx: &mut Ctx, weed: &SeaweedFs, emulator: &Path, token: &str) -> Result<()> {
    let mut config = weed.config();
    config.prefix = "bench".to_owned();
    let ours: Arc<dyn BlobStore> = Arc::new(S3Store::open(&config, "paired")?);
    // object_store's own HTTP client wants a process-wide rustls provider (the backend gives
    // its client one of its own).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let raw: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_endpoint(weed.endpoint())
            .with_allow_http(true)
            .with_region(&config.region)
            .with_access_key_id(&config.credentials.access_key_id)
            .with_secret_access_key(config.credentials.secret_access_key.expose())
            .build()
            .context("cannot build the plain object_store client")?,
    );
    let raw_path = |i: usize| ObjectPath::from(format!("bench-raw/k{i}"));
    let set_ours: Side<'_> = Box::new(|i| {
        let ours = ours.clone();
        Box::pin(async move {
            ours.set(&format!("k{i}"), value(), SetOptions::new())
                .await?;
            Ok(())
        })
    });
    let set_raw: Side<'_> = Box::new(|i| {
        let raw = raw.clone();
        let path = raw_path(i);
        Box::pin(async move {
            raw.put(&path, PutPayload::from(value())).await?;
            Ok(())
        })
    });
    let get_ours: Side<'_> = Box::new(|i| {
        let ours = ours.clone();
        Box::pin(async move {
            let blob = ours.get(&format!("k{i}")).await?;
            if blob.is_none_or(|b| b.value.len() != 1024) {
                bail!("the backend lost k{i}");
            }
            Ok(())
        })
    });
    let get_raw: Side<'_> = Box::new(|i| {
        let raw = raw.clone();
        let path = raw_path(i);
        Box::pin(async move {
            let bytes = raw.get(&path).await?.bytes().await?;
            if bytes.len() != 1024 {
                bail!("the engine lost {path}");
            }
            Ok(())
        })
    });
    // The set run writes every key both sides then read.
    let medians = paired(&set_ours, &set_raw, budget(ctx)).await?;
    record(ctx, "s3", "set", medians, "object_store put");
    let medians = paired(&get_ours, &get_raw, budget(ctx)).await?;
    record(ctx, "s3", "get", medians, "object_store get");

    let url = weed.spec("bench-emulator");
    load_over(ctx, "s3", emulator, &url, &weed.env(), token).await
}

/// The upsert `PgStore::set` makes, as a plain client would send it.
const PG_SET: &str = "INSERT INTO blobjobs_blobs (store, key, value, metadata, etag, size, modified_ms) \
                      VALUES ($1, $2, $3, $4, $5, $6, $7) \
                      ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value, \
                      metadata = EXCLUDED.metadata, etag = EXCLUDED.etag, size = EXCLUDED.size, \
                      modified_ms = EXCLUDED.modified_ms";
/// The read `PgStore::get` makes.
const PG_GET: &str = "SELECT value, metadata, etag, size, modified_ms FROM blobjobs_blobs \
                      WHERE store = $1 AND key = $2";

async fn postgres(ctx: &mut Ctx, pg: &Postgres, emulator: &Path, token: &str) -> Result<()> {
    let open = OpenOptions {
        env: Env::from_pairs(Vec::<(String, String)>::new()),
        ..OpenOptions::default()
    };
    let ours = open_store_with(&pg.spec(), "paired", &open)?;
    // The first operation creates the table the plain client then uses.
    ours.get_metadata("k0").await?;
    let (client, connection) = tokio_postgres::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres password={} dbname=postgres",
            pg.port(),
            pg.password()
        ),
        tokio_postgres::NoTls,
    )
    .await
    .context("cannot connect the plain client")?;
    tokio::spawn(connection);
    let client = Arc::new(client);
    let set_statement = client.prepare(PG_SET).await?;
    let get_statement = client.prepare(PG_GET).await?;
    let raw_store: &[u8] = b"bench-raw";
    let set_ours: Side<'_> = Box::new(|i| {
        let ours = ours.clone();
        Box::pin(async move {
            ours.set(&format!("k{i}"), value(), SetOptions::new())
                .await?;
            Ok(())
        })
    });
    let set_raw: Side<'_> = Box::new(|i| {
        let (client, statement) = (client.clone(), set_statement.clone());
        Box::pin(async move {
            let key = format!("k{i}").into_bytes();
            let value = value();
            let etag = format!("\"{i:032x}\"");
            let now = i64::try_from(blobjobs_store_api::Timestamp::now().as_millis())?;
            client
                .execute(
                    &statement,
                    &[
                        &raw_store,
                        &key,
                        &value.as_ref(),
                        &"{}",
                        &etag,
                        &1024i64,
                        &now,
                    ],
                )
                .await?;
            Ok(())
        })
    });
    let get_ours: Side<'_> = Box::new(|i| {
        let ours = ours.clone();
        Box::pin(async move {
            let blob = ours.get(&format!("k{i}")).await?;
            if blob.is_none_or(|b| b.value.len() != 1024) {
                bail!("the backend lost k{i}");
            }
            Ok(())
        })
    });
    let get_raw: Side<'_> = Box::new(|i| {
        let (client, statement) = (client.clone(), get_statement.clone());
        Box::pin(async move {
            let key = format!("k{i}").into_bytes();
            let row = client.query_opt(&statement, &[&raw_store, &key]).await?;
            if row.is_none_or(|r| r.get::<_, &[u8]>(0).len() != 1024) {
                bail!("the plain client lost k{i}");
            }
            Ok(())
        })
    });
    let pinned = match pin_to_one_cpu(&client).await {
        Ok(pinned) => Some(pinned),
        Err(e) => {
            let note = format!("PostgreSQL's paired runs were not kept on one CPU: {e:#}");
            ctx.progress.note(&note);
            ctx.results.notes.push(note);
            None
        }
    };
    let medians = paired(&set_ours, &set_raw, budget(ctx)).await?;
    record(ctx, "postgres", "set", medians, "a prepared statement");
    let medians = paired(&get_ours, &get_raw, budget(ctx)).await?;
    record(ctx, "postgres", "get", medians, "a prepared statement");
    drop(pinned);

    // The password reaches the emulator through PGPASSWORD, not its command line; a pool of
    // one connection per load connection.
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/postgres?pool_size={CONNECTIONS}",
        pg.port()
    );
    let env = [("PGPASSWORD".to_owned(), pg.password().to_owned())];
    load_over(ctx, "postgres", emulator, &url, &env, token).await
}

/// Puts this thread and PostgreSQL's client backends (the plain client's and the backend's
/// pooled connection) on one CPU until the guard is dropped.
///
/// A PostgreSQL operation takes some 25 µs here, and on a virtual machine the wake-up of a
/// process on an idle second CPU adds about as much again. Which process lands where changes
/// by chance and lasts for seconds, so without this one side of a paired run could be woken
/// across CPUs for most of the run and the other not, and the medians would measure that luck
/// (ratios from 0.86 to 2.5 in otherwise identical runs, against 0.95 ± 0.01 pinned).
async fn pin_to_one_cpu(client: &tokio_postgres::Client) -> Result<Pinned> {
    let backends = client
        .query(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend'",
            &[],
        )
        .await
        .context("cannot list PostgreSQL's client backends")?;
    let pinned = Pinned::this_thread()?;
    for row in backends {
        let pid: i32 = row.get(0);
        let pid = rustix::process::Pid::from_raw(pid)
            .with_context(|| format!("bad backend pid {pid}"))?;
        rustix::thread::sched_setaffinity(Some(pid), &pinned.one)
            .with_context(|| format!("cannot move PostgreSQL's backend {pid:?}"))?;
    }
    Ok(pinned)
}

/// The calling thread kept on one CPU (the first it may run on); dropping it gives the thread
/// back the CPUs it had.
struct Pinned {
    previous: rustix::thread::CpuSet,
    one: rustix::thread::CpuSet,
}

impl Pinned {
    fn this_thread() -> Result<Pinned> {
        use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
        let previous = sched_getaffinity(None).context("cannot read this thread's CPUs")?;
        let cpu = (0..CpuSet::MAX_CPU)
            .find(|&c| previous.is_set(c))
            .context("this thread may run on no CPU")?;
        let mut one = CpuSet::new();
        one.set(cpu);
        sched_setaffinity(None, &one).context("cannot keep this thread on one CPU")?;
        Ok(Pinned { previous, one })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = rustix::thread::sched_setaffinity(None, &self.previous);
    }
}

/// The emulator over `url`: GET and PUT of 1 KiB at [`CONNECTIONS`] connections, each point
/// once per round, the better round kept, as in the `http` group.
async fn load_over(
    ctx: &mut Ctx,
    engine: &str,
    emulator: &Path,
    url: &str,
    env: &[(String, String)],
    token: &str,
) -> Result<()> {
    let server = Server::emulator_over(emulator, url, env, token).await?;
    let label = format!("blobs-emulator over {engine}");
    http::seed_get_keys(&server.target, &label).await?;
    let ops = [
        ("get", http::get_request as load::MakeRequest),
        ("put", http::put_request),
    ];
    let rounds = ctx.rounds();
    let mut best: [Option<load::Stats>; 2] = [None, None];
    for round in 1..=rounds {
        for (slot, (op, make)) in best.iter_mut().zip(ops) {
            let stats = load::run(
                &server.target,
                CONNECTIONS,
                ctx.point_duration(),
                MAX_REQUESTS_PER_POINT,
                make,
            )
            .await
            .with_context(|| format!("{op} x{CONNECTIONS} on {label}"))?;
            if stats.errors > 0 {
                ctx.results.notes.push(format!(
                    "{label}, {op} x{CONNECTIONS}, round {round}: {} failed requests (first: {})",
                    stats.errors,
                    stats.first_error.as_deref().unwrap_or("?")
                ));
            }
            ctx.progress.step(&format!(
                "engines: {} x{CONNECTIONS}, {label}: {}/s  p50 {} ms  p99 {} ms (round {round}/{rounds})",
                op.to_uppercase(),
                sig(stats.rate()),
                sig(stats.percentile_ms(0.5)),
                sig(stats.percentile_ms(0.99)),
            ));
            if slot.as_ref().is_none_or(|b| stats.rate() > b.rate()) {
                *slot = Some(stats);
            }
        }
    }
    for (stats, (op, _)) in best.iter().zip(ops) {
        if let Some(stats) = stats {
            let prefix = format!("load/emulator_{engine}/{op}/{CONNECTIONS}");
            ctx.results
                .set(format!("{prefix}/rate"), stats.rate(), Unit::PerSec);
            ctx.results
                .set(format!("{prefix}/p50"), stats.percentile_ms(0.5), Unit::Ms);
            ctx.results
                .set(format!("{prefix}/p99"), stats.percentile_ms(0.99), Unit::Ms);
        }
    }
    server.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_runs_on_one_cpu_until_the_guard_goes() {
        // In a thread of its own, so that the test harness's threads keep their CPUs.
        std::thread::spawn(|| {
            let before = rustix::thread::sched_getaffinity(None).unwrap();
            let pinned = Pinned::this_thread().unwrap();
            assert_eq!(rustix::thread::sched_getaffinity(None).unwrap().count(), 1);
            drop(pinned);
            let after = rustix::thread::sched_getaffinity(None).unwrap();
            assert_eq!(after.count(), before.count());
            assert!(
                (0..rustix::thread::CpuSet::MAX_CPU).all(|c| after.is_set(c) == before.is_set(c))
            );
        })
        .join()
        .unwrap();
    }
}

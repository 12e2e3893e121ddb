//! The `http` group of `cargo xtask bench`: the load run. The release `blobs-emulator` (without
//! fsync, durable, in memory) and the official Node `BlobsServer` serve GET and PUT of 1 KiB at
//! each connection count of [`CONNECTIONS`], and list a store of 10,000 keys, all driven by the
//! project's own load generator ([`super::load`]).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::Method;

use super::markdown::sig;
use super::results::Unit;
use super::servers::{Node, Server, Storage};
use super::targets::{CONNECTIONS, server_label};
use super::{Ctx, MAX_REQUESTS_PER_POINT, criterion, load};

/// Keys that GET cycles through.
const LOAD_KEYS: usize = 1000;

/// Keys that each PUT connection cycles through, overwriting them: updates, as a job store
/// makes, and a bounded number of files to remove afterwards.
const PUT_KEYS_PER_CONNECTION: usize = 100;

/// Keys of the listed store.
const LIST_KEYS: usize = 10_000;

/// The progress steps of the load run: every point of every round on every server, and a
/// listing per listed server. Three emulators (no fsync, durable, in memory) and, with
/// `node`, the official server; all but the durable emulator are listed.
pub fn steps(rounds: usize, node: bool) -> usize {
    let servers = if node { 4 } else { 3 };
    let lists = servers - 1;
    rounds * servers * 2 * CONNECTIONS.len() + lists
}

/// The request of a PUT point: connection `c` overwrites its own keys in turn.
pub(super) fn put_request(target: &load::Target, c: usize, i: usize) -> (Method, String, Bytes) {
    static VALUE: [u8; 1024] = [b'x'; 1024];
    let key = format!("put-{c}-{}", i % PUT_KEYS_PER_CONNECTION);
    (
        Method::PUT,
        target.key_path("site:load", &key),
        Bytes::from_static(&VALUE),
    )
}

/// The request of a GET point: the seeded keys, each connection from its own offset.
pub(super) fn get_request(target: &load::Target, c: usize, i: usize) -> (Method, String, Bytes) {
    let key = format!("k{}", (c * 7919 + i) % LOAD_KEYS);
    (
        Method::GET,
        target.key_path("site:load", &key),
        Bytes::new(),
    )
}

/// One server of the load run.
struct Loaded {
    id: &'static str,
    label: &'static str,
    server: Server,
    /// Whether the listing is timed on it.
    list: bool,
}

/// The load run. Every server runs for the whole run, idle unless its turn, and the points
/// alternate between them (GET x1 on each, PUT x1 on each, ...), so that the ratios compare
/// figures taken seconds apart even when the machine's speed drifts.
pub async fn run(ctx: &mut Ctx, emulator: &Path, node: Option<&Node>) -> Result<()> {
    criterion::settle_disk();
    let token = crate::random_token()?;
    let entry = |id: &'static str, server: Server, list: bool| Loaded {
        id,
        label: server_label(id),
        server,
        list,
    };
    // Listing does not depend on fsync: the durable emulator skips it (its 10,000 fsynced
    // writes would only slow the run). The in-memory emulator separates the cost of the
    // storage engine from that of the protocol.
    let mut loaded = vec![
        entry(
            "emulator_nosync",
            Server::emulator(emulator, Storage::NoFsync, &token).await?,
            true,
        ),
        entry(
            "emulator_durable",
            Server::emulator(emulator, Storage::Durable, &token).await?,
            false,
        ),
    ];
    if let Some(node) = node {
        loaded.push(entry(
            "blobs_server",
            Server::node(&node.interop, &token).await?,
            true,
        ));
    }
    loaded.push(entry(
        "emulator_memory",
        Server::emulator(emulator, Storage::Memory, &token).await?,
        true,
    ));
    for l in &loaded {
        ctx.progress
            .note(&format!("http: {} on {}", l.label, l.server.target.addr));
    }
    let outcome = load_points(ctx, &loaded).await;
    for l in loaded {
        ctx.leftovers.extend(l.server.stop().await);
    }
    outcome
}

/// Writes the keys that GET points read.
pub(super) async fn seed_get_keys(target: &load::Target, label: &str) -> Result<()> {
    let mut conn = load::Conn::open(target).await?;
    for i in 0..LOAD_KEYS {
        let path = target.key_path("site:load", &format!("k{i}"));
        let (status, _) = conn
            .send(Method::PUT, &path, Bytes::from(vec![b'x'; 1024]))
            .await?;
        if !status.is_success() {
            bail!("seeding {path} on {label}: {status}");
        }
    }
    Ok(())
}

async fn load_points(ctx: &mut Ctx, loaded: &[Loaded]) -> Result<()> {
    let duration = ctx.point_duration();
    for l in loaded {
        seed_get_keys(&l.server.target, l.label).await?;
    }
    // Each point runs once per round; the better round counts, so that a few seconds of
    // interference from outside (a disk stall, another process) do not decide a ratio.
    let rounds = ctx.rounds();
    let ops = [
        ("get", get_request as load::MakeRequest),
        ("put", put_request),
    ];
    let mut best: Vec<Option<load::Stats>> =
        vec![None; loaded.len() * CONNECTIONS.len() * ops.len()];
    for round in 1..=rounds {
        for (ci, connections) in CONNECTIONS.into_iter().enumerate() {
            for (oi, (op, make)) in ops.into_iter().enumerate() {
                for (li, l) in loaded.iter().enumerate() {
                    let stats = load::run(
                        &l.server.target,
                        connections,
                        duration,
                        MAX_REQUESTS_PER_POINT,
                        make,
                    )
                    .await
                    .with_context(|| format!("{op} x{connections} on {}", l.label))?;
                    report_run(ctx, l, op, connections, &stats, (round, rounds));
                    let slot = &mut best[(li * CONNECTIONS.len() + ci) * ops.len() + oi];
                    if slot.as_ref().is_none_or(|b| stats.rate() > b.rate()) {
                        *slot = Some(stats);
                    }
                }
            }
        }
    }
    for (li, l) in loaded.iter().enumerate() {
        for (ci, connections) in CONNECTIONS.into_iter().enumerate() {
            for (oi, (op, _)) in ops.into_iter().enumerate() {
                if let Some(stats) = &best[(li * CONNECTIONS.len() + ci) * ops.len() + oi] {
                    let prefix = format!("load/{}/{op}/{connections}", l.id);
                    ctx.results
                        .set(format!("{prefix}/rate"), stats.rate(), Unit::PerSec);
                    ctx.results
                        .set(format!("{prefix}/p50"), stats.percentile_ms(0.5), Unit::Ms);
                    ctx.results
                        .set(format!("{prefix}/p99"), stats.percentile_ms(0.99), Unit::Ms);
                }
            }
        }
    }

    let listed: Vec<&Loaded> = loaded.iter().filter(|l| l.list).collect();
    for l in &listed {
        load::fill(&l.server.target, "site:list", LIST_KEYS)
            .await
            .with_context(|| format!("filling the listed store on {}", l.label))?;
    }
    let reps = if ctx.args.quick { 3 } else { 7 };
    let budget = Duration::from_secs(if ctx.args.quick { 15 } else { 40 });
    let started = Instant::now();
    let mut times = vec![Vec::new(); listed.len()];
    for rep in 0..reps {
        if rep >= 3 && started.elapsed() > budget {
            break;
        }
        for (l, times) in listed.iter().zip(&mut times) {
            let t = Instant::now();
            let count = load::list_all(&l.server.target, "site:list").await?;
            times.push(t.elapsed().as_nanos() as u64);
            if count != LIST_KEYS {
                bail!("{} listed {count} keys, not {LIST_KEYS}", l.label);
            }
        }
    }
    for (l, mut times) in listed.into_iter().zip(times) {
        times.sort_unstable();
        let median_ms = load::percentile(&times, 0.5) as f64 / 1e6;
        ctx.results.set(
            format!("load/{}/list_10000/median", l.id),
            median_ms,
            Unit::Ms,
        );
        ctx.progress.step(&format!(
            "http: list {LIST_KEYS} keys, {}: median {} ms of {}",
            l.label,
            sig(median_ms),
            times.len()
        ));
    }
    Ok(())
}

/// The progress line of one timed run, and a note if requests failed.
fn report_run(
    ctx: &mut Ctx,
    l: &Loaded,
    op: &str,
    connections: usize,
    stats: &load::Stats,
    (round, rounds): (usize, usize),
) {
    let op = op.to_uppercase();
    if stats.errors > 0 {
        ctx.results.notes.push(format!(
            "{}, {op} x{connections}, round {round}: {} failed requests (first: {})",
            l.label,
            stats.errors,
            stats.first_error.as_deref().unwrap_or("?")
        ));
    }
    let round = if rounds > 1 {
        format!(" (round {round}/{rounds})")
    } else {
        String::new()
    };
    ctx.progress.step(&format!(
        "http: {op} x{connections}, {}: {}/s  p50 {} ms  p99 {} ms{}{round}",
        l.label,
        sig(stats.rate()),
        sig(stats.percentile_ms(0.5)),
        sig(stats.percentile_ms(0.99)),
        if stats.errors > 0 {
            format!("  ({} errors)", stats.errors)
        } else {
            String::new()
        }
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_address_the_load_store() {
        let target = load::Target {
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
            token: "t".into(),
            site: "s".into(),
        };
        let (m, path, body) = put_request(&target, 3, 105);
        assert_eq!(
            (m, path.as_str(), body.len()),
            (Method::PUT, "/s/site:load/put-3-5", 1024)
        );
        let (m, path, body) = get_request(&target, 0, 999);
        assert_eq!(
            (m, path.as_str(), body.len()),
            (Method::GET, "/s/site:load/k999", 0)
        );
    }
}

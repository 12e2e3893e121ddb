//! `cargo xtask bench`: every benchmark of the project in one go, with a progress line per
//! step and a report under `target/bench-report/` (Markdown table with the ratios that matter
//! and their targets, an SVG chart, the figures as JSON).
//!
//! Criterion benchmarks (`stores`, `jobs`, `emulator`) run through `cargo bench`. The load run
//! (`http`) and the client comparison (`client`) run in this process with the project's own
//! load generator, against servers started as child processes on 127.0.0.1: the release
//! `blobs-emulator` and the official Node `BlobsServer`. A load generator built without
//! optimizations would measure itself, so when those groups are asked for, a debug build of
//! this task re-runs itself as a release build first.

mod clients;
mod criterion;
mod load;
mod report;
mod servers;
mod svg;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::Method;

use report::{CONNECTIONS, Results, Unit};
use servers::{Node, Server, Storage};

pub const HELP: &str = "\
usage: cargo xtask bench [GROUP...] [options]

Runs the project's benchmarks (all groups by default) and writes a report to
target/bench-report/: report.md (medians, ratios and targets), throughput.svg,
results.json, and the raw logs. Loopback only; every run is bounded in time.

groups:
  stores     criterion: set, get, compare-and-swap, list 1,000 and 10,000 keys on memory and
             file (durable, no fsync); the raw disk loop (temp file, fsync, rename, fsync dir);
             a paired FileStore::set / raw loop run
  jobs       criterion: job create, claim, succeed, get (BlobJobStore) on memory and file
  emulator   criterion: the same blob and job operations through HttpStore and the emulator
  http       load run: blobs-emulator (--no-fsync and durable) against the official Node
             BlobsServer, GET and PUT of 1 KiB at 1, 16, 64 connections, list 10,000 keys
  client     the Rust client (HttpStore) against the official JS client, get and set at 1 and
             16 concurrent requests, against blobs-emulator

options:
  --quick                short runs for a quick look (rough numbers)
  --seconds S            length of each round of a load point (default 2, or 1 with
                         --quick); a full run times every point twice, alternating
                         servers, and keeps the better round
  --save-baseline NAME   save the figures as baseline NAME (criterion's baselines, and
                         target/bench-report/baselines/NAME.json for all figures)
  --baseline NAME        compare with baseline NAME; changes for the worse over 10% are flagged
                         in the report and on stdout
";

/// Every group, in run order. A virtual disk is slow for a while after heavy use (here, for
/// seconds after the `stores` group), so groups that write to disk are separated by groups that
/// do not: `emulator` and `client` keep their data in memory.
const GROUPS: [&str; 5] = ["stores", "emulator", "jobs", "client", "http"];

/// Set in the environment of the release re-run, so that it never re-runs itself.
const RELEASE_ENV: &str = "XTASK_BENCH_RELEASE";

/// An upper bound on the requests of one timed point, whatever its duration.
pub const MAX_REQUESTS_PER_POINT: usize = 1_000_000;

/// Keys that GET cycles through.
const LOAD_KEYS: usize = 1000;

/// Keys that each PUT connection cycles through, overwriting them: updates, as a job store
/// makes, and a bounded number of files to remove afterwards.
const PUT_KEYS_PER_CONNECTION: usize = 100;

/// Keys of the listed store.
const LIST_KEYS: usize = 10_000;

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Groups to run, in run order.
    pub groups: Vec<&'static str>,
    /// Short runs.
    pub quick: bool,
    /// Length of each load point.
    pub seconds: Option<f64>,
    /// Baseline to save.
    pub save_baseline: Option<String>,
    /// Baseline to compare with.
    pub baseline: Option<String>,
}

/// `None` for `--help`.
fn parse_args(args: &[String]) -> Result<Option<Args>> {
    let mut parsed = Args::default();
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v.parse().with_context(|| format!("bad --seconds {v:?}"))?;
                if !(0.1..=60.0).contains(&s) {
                    bail!("--seconds must be between 0.1 and 60");
                }
                parsed.seconds = Some(s);
            }
            "--save-baseline" => {
                parsed.save_baseline = Some(baseline_name(&value("--save-baseline")?)?)
            }
            "--baseline" => parsed.baseline = Some(baseline_name(&value("--baseline")?)?),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => match GROUPS.iter().find(|g| **g == other) {
                Some(group) => chosen.push(*group),
                None => {
                    eprint!("{HELP}");
                    bail!("unknown group or option {other:?}");
                }
            },
        }
    }
    parsed.groups = GROUPS
        .into_iter()
        .filter(|g| chosen.is_empty() || chosen.contains(g))
        .collect();
    Ok(Some(parsed))
}

/// A baseline name becomes a file name and a criterion directory: keep it plain.
fn baseline_name(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        bail!("a baseline name is letters, digits, '-', '_' and '.' (got {name:?})");
    }
    Ok(name.to_owned())
}

/// Progress lines: elapsed time, steps done out of the total, what just finished.
pub struct Progress {
    started: Instant,
    done: usize,
    total: usize,
}

impl Progress {
    fn clock(&self) -> String {
        let s = self.started.elapsed().as_secs();
        format!("{:02}:{:02}", s / 60, s % 60)
    }

    /// One step finished.
    pub fn step(&mut self, what: &str) {
        self.done += 1;
        eprintln!("[{}] {:>3}/{} {what}", self.clock(), self.done, self.total);
    }

    /// Something to know that is not a step.
    pub fn note(&self, what: &str) {
        eprintln!("[{}] {what}", self.clock());
    }
}

/// What every part of the run shares.
pub struct Ctx {
    /// Cargo's target directory (absolute).
    target_dir: PathBuf,
    /// `target/bench-report`.
    out: PathBuf,
    args: Args,
    progress: Progress,
    results: Results,
    /// Data directories of stopped servers, removed once the report is written.
    leftovers: Vec<tempfile::TempDir>,
}

impl Ctx {
    fn cargo(&self) -> Command {
        let mut cmd = crate::cargo();
        cmd.env("CARGO_TARGET_DIR", &self.target_dir);
        cmd
    }

    fn criterion_dir(&self) -> PathBuf {
        self.target_dir.join("criterion")
    }

    /// How long each load point runs.
    /// How long each round of a load point runs.
    fn point_duration(&self) -> Duration {
        let default = if self.args.quick { 1.0 } else { 2.0 };
        Duration::from_secs_f64(self.args.seconds.unwrap_or(default))
    }

    /// Rounds of each load point; the better one counts.
    fn rounds(&self) -> usize {
        rounds(&self.args)
    }
}

fn rounds(args: &Args) -> usize {
    if args.quick { 1 } else { 2 }
}

/// Cargo's target directory, as cargo itself resolves it.
fn target_dir(root: &Path) -> Result<PathBuf> {
    let output = crate::cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("cannot start cargo metadata")?;
    if !output.status.success() {
        bail!("cargo metadata failed ({})", output.status);
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed no JSON")?;
    json["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata has no target directory")
}

/// A fresh bearer token for a benchmark server.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs the task.
pub fn run(root: &Path, raw_args: &[String]) -> Result<()> {
    let Some(args) = parse_args(raw_args)? else {
        return Ok(());
    };
    let needs_release = args.groups.iter().any(|g| matches!(*g, "http" | "client"));
    if needs_release && cfg!(debug_assertions) && std::env::var_os(RELEASE_ENV).is_none() {
        eprintln!("==> the load generator must be optimized: running this task as a release build");
        let status = crate::cargo()
            .args([
                "run",
                "--release",
                "--quiet",
                "--package",
                "xtask",
                "--",
                "bench",
            ])
            .args(raw_args)
            .env(RELEASE_ENV, "1")
            .status()
            .context("cannot start cargo run --release")?;
        if !status.success() {
            bail!("cargo xtask bench failed ({status})");
        }
        return Ok(());
    }

    let target_dir = target_dir(root)?;
    let out = target_dir.join("bench-report");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let baseline = match &args.baseline {
        Some(name) => {
            let path = out.join("baselines").join(format!("{name}.json"));
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no baseline {name:?} at {} (save one with --save-baseline {name})",
                    path.display()
                )
            })?;
            let json: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            Some(report::parse_metrics(&json)?)
        }
        None => None,
    };

    let node = if needs_release {
        match servers::find_node(root) {
            Ok(node) => Some(node),
            Err(why) => {
                eprintln!("==> the official server and client are skipped: {why}");
                None
            }
        }
    } else {
        None
    };
    let mut results = Results {
        machine: report::Machine::detect(),
        date: blobjobs_store_api::Timestamp::now().to_rfc3339(),
        mode: if args.quick { "quick" } else { "full" }.to_owned(),
        groups: args.groups.iter().map(|g| (*g).to_owned()).collect(),
        node: node.as_ref().map(|n| n.blobs_version.clone()),
        node_runtime: node.as_ref().map(|n| n.node_version.clone()),
        notes: Vec::new(),
        metrics: Default::default(),
    };
    if needs_release && node.is_none() {
        results.notes.push(
            "node or `npm ci` in interop/ missing: the official server and client did not run"
                .into(),
        );
    }
    let total = total_steps(&args, node.is_some());
    let mut ctx = Ctx {
        target_dir,
        out,
        args,
        progress: Progress {
            started: Instant::now(),
            done: 0,
            total,
        },
        results,
        leftovers: Vec::new(),
    };
    ctx.progress.note(&format!(
        "cargo xtask bench: {} ({} run, {} steps)",
        ctx.args.groups.join(", "),
        ctx.results.mode,
        total
    ));

    let emulator = criterion::build(&ctx)?;
    let groups = ctx.args.groups.clone();
    for group in groups {
        match group {
            "stores" => criterion::run(&mut ctx, &criterion::STORES)?,
            "jobs" => criterion::run(&mut ctx, &criterion::JOBS)?,
            "emulator" => criterion::run(&mut ctx, &criterion::HTTP_BACKEND)?,
            "http" => {
                let runtime = runtime()?;
                runtime.block_on(load_run(&mut ctx, &emulator, node.as_ref()))?;
            }
            "client" => {
                let runtime = runtime()?;
                runtime.block_on(clients::run(&mut ctx, &emulator, node.as_ref()))?;
            }
            _ => unreachable!("parse_args only accepts known groups"),
        }
    }
    finish(&ctx, baseline.as_ref())?;
    if !ctx.leftovers.is_empty() {
        ctx.progress
            .note("removing the servers' temporary data directories");
        drop(std::mem::take(&mut ctx.leftovers));
        ctx.progress.note("done");
    }
    Ok(())
}

/// The runtime of the load generator and of the Rust client: one thread, so that the client
/// side takes at most one core whatever the server, and the Rust client is compared with the
/// JS client (one event loop) thread for thread.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The number of progress steps of a run.
fn total_steps(args: &Args, node: bool) -> usize {
    // Three emulators (no fsync, durable, in memory) and the official server; all but the
    // durable emulator are listed.
    let servers = if node { 4 } else { 3 };
    let lists = servers - 1;
    let clients = if node { 2 } else { 1 };
    args.groups
        .iter()
        .map(|g| match *g {
            "stores" => criterion::STORES.ids().len(),
            "jobs" => criterion::JOBS.ids().len(),
            "emulator" => criterion::HTTP_BACKEND.ids().len(),
            "http" => rounds(args) * servers * 2 * CONNECTIONS.len() + lists,
            "client" => clients * 2 * report::CLIENT_WORKERS.len(),
            _ => 0,
        })
        .sum()
}

/// The request of a PUT point: connection `c` overwrites its own keys in turn.
fn put_request(target: &load::Target, c: usize, i: usize) -> (Method, String, Bytes) {
    static VALUE: [u8; 1024] = [b'x'; 1024];
    let key = format!("put-{c}-{}", i % PUT_KEYS_PER_CONNECTION);
    (
        Method::PUT,
        target.key_path("site:load", &key),
        Bytes::from_static(&VALUE),
    )
}

/// The request of a GET point: the seeded keys, each connection from its own offset.
fn get_request(target: &load::Target, c: usize, i: usize) -> (Method, String, Bytes) {
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

fn server_label(id: &str) -> &'static str {
    report::SERVERS
        .iter()
        .find(|(s, _)| *s == id)
        .map_or("server", |(_, l)| l)
}

/// The load run. Every server runs for the whole run, idle unless its turn, and the points
/// alternate between them (GET x1 on each, PUT x1 on each, ...), so that the ratios compare
/// figures taken seconds apart even when the machine's speed drifts.
async fn load_run(ctx: &mut Ctx, emulator: &Path, node: Option<&Node>) -> Result<()> {
    criterion::settle_disk();
    let token = random_token()?;
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

async fn load_points(ctx: &mut Ctx, loaded: &[Loaded]) -> Result<()> {
    let duration = ctx.point_duration();
    // The keys GET reads.
    for l in loaded {
        let target = &l.server.target;
        let mut conn = load::Conn::open(target).await?;
        for i in 0..LOAD_KEYS {
            let path = target.key_path("site:load", &format!("k{i}"));
            let (status, _) = conn
                .send(Method::PUT, &path, Bytes::from(vec![b'x'; 1024]))
                .await?;
            if !status.is_success() {
                bail!("seeding {path} on {}: {status}", l.label);
            }
        }
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
            report::sig(median_ms),
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
        report::sig(stats.rate()),
        report::sig(stats.percentile_ms(0.5)),
        report::sig(stats.percentile_ms(0.99)),
        if stats.errors > 0 {
            format!("  ({} errors)", stats.errors)
        } else {
            String::new()
        }
    ));
}

/// Writes the report, saves or compares the baseline, prints the tables.
fn finish(
    ctx: &Ctx,
    baseline: Option<&std::collections::BTreeMap<String, report::Metric>>,
) -> Result<()> {
    let out = &ctx.out;
    let write = |name: &str, contents: &str| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    };
    let changes = baseline.map(|b| report::compare(b, &ctx.results.metrics));
    let comparison = match (&ctx.args.baseline, &changes) {
        (Some(name), Some(changes)) => Some((name.as_str(), changes.as_slice())),
        _ => None,
    };
    let markdown = report::markdown(&ctx.results, comparison);
    write("report.md", &markdown)?;
    write(
        "results.json",
        &serde_json::to_string_pretty(&ctx.results.to_json())?,
    )?;
    let chart = svg::chart(&ctx.results);
    if let Some(chart) = &chart {
        write("throughput.svg", chart)?;
    }
    if let Some(name) = &ctx.args.save_baseline {
        let dir = out.join("baselines");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.json"));
        let previous = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let merged = report::merged_baseline(previous.as_ref(), &ctx.results);
        std::fs::write(&path, serde_json::to_string_pretty(&merged)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        ctx.progress
            .note(&format!("baseline {name:?} saved to {}", path.display()));
    }

    println!("{markdown}");
    if let (Some(name), Some(changes)) = (&ctx.args.baseline, &changes) {
        let regressions: Vec<_> = changes.iter().filter(|c| c.regression).collect();
        if regressions.is_empty() {
            println!(
                "no regression over 10% against baseline {name:?} ({} figures)",
                changes.len()
            );
        } else {
            println!("REGRESSIONS over 10% against baseline {name:?}:");
            for c in regressions {
                println!("  {}: {:+.1} %", c.id, c.change * 100.0);
            }
        }
    }
    let failed: Vec<_> = report::ratios(&ctx.results)
        .into_iter()
        .filter(|r| r.passed() == Some(false))
        .collect();
    for r in &failed {
        println!("target missed: {}", r.label);
    }
    ctx.progress.note(&format!(
        "report: {}{}",
        out.join("report.md").display(),
        if chart.is_some() {
            format!(", {}", out.join("throughput.svg").display())
        } else {
            String::new()
        }
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_default_to_all_and_keep_run_order() {
        let all = parse_args(&[]).unwrap().unwrap();
        assert_eq!(all.groups, GROUPS.to_vec());
        assert!(!all.quick);
        let some = parse_args(&strings(&["client", "stores", "--quick"]))
            .unwrap()
            .unwrap();
        assert_eq!(some.groups, vec!["stores", "client"]);
        let order = parse_args(&strings(&["http", "jobs", "emulator"]))
            .unwrap()
            .unwrap();
        assert_eq!(order.groups, vec!["emulator", "jobs", "http"]);
        assert!(some.quick);
    }

    #[test]
    fn options_parse_and_bad_ones_fail() {
        let a = parse_args(&strings(&[
            "--save-baseline",
            "main-1",
            "--baseline",
            "v0.1",
            "--seconds",
            "2.5",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.save_baseline.as_deref(), Some("main-1"));
        assert_eq!(a.baseline.as_deref(), Some("v0.1"));
        assert_eq!(a.seconds, Some(2.5));
        for bad in [
            &["--baseline"][..],
            &["--baseline", "../x"],
            &["--save-baseline", ""],
            &["--seconds", "0"],
            &["nosuchgroup"],
        ] {
            assert!(parse_args(&strings(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn step_totals_follow_the_groups_and_node() {
        let args = parse_args(&strings(&["http", "client", "--quick"]))
            .unwrap()
            .unwrap();
        assert_eq!(total_steps(&args, true), 4 * 6 + 3 + 8);
        assert_eq!(total_steps(&args, false), 3 * 6 + 2 + 4);
        let all = parse_args(&[]).unwrap().unwrap();
        assert_eq!(total_steps(&all, true), 16 + 12 + 9 + 2 * 24 + 3 + 8);
    }

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

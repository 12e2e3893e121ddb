//! `cargo xtask bench`: every benchmark of the project in one go, with a progress line per
//! step and a report under `target/bench-report/` (Markdown table with the ratios that matter
//! and their targets, an SVG chart, the figures as JSON).
//!
//! Criterion benchmarks (`stores`, `jobs`, `emulator`) run through `cargo bench`. The load run
//! (`http`), the client comparison (`client`) and the engines (`engines`) run in this process
//! with the project's own load generator, against servers started as child processes on
//! 127.0.0.1: the release `blobs-emulator`, the official Node `BlobsServer`, SeaweedFS and
//! PostgreSQL. A load generator built without
//! optimizations would measure itself, so when those groups are asked for, a debug build of
//! this task re-runs itself as a release build first.

mod args;
mod baseline;
mod clients;
mod criterion;
mod engines;
mod http;
mod load;
mod markdown;
mod results;
mod servers;
mod svg;
mod targets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use args::Args;
use args::Group;
use results::Results;

/// Set in the environment of the release re-run, so that it never re-runs itself.
const RELEASE_ENV: &str = "XTASK_BENCH_RELEASE";

/// An upper bound on the requests of one timed point, whatever its duration.
pub const MAX_REQUESTS_PER_POINT: usize = 1_000_000;

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

    /// How long each round of a load point runs.
    fn point_duration(&self) -> Duration {
        let default = if self.args.quick { 1.0 } else { 2.0 };
        Duration::from_secs_f64(self.args.seconds.unwrap_or(default))
    }

    /// Rounds of each load point; the better one counts.
    fn rounds(&self) -> usize {
        self.args.rounds()
    }
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

/// Runs the task.
pub fn run(root: &Path, args: Args) -> Result<()> {
    let groups = args.groups();
    let needs_release = groups.iter().any(|g| g.needs_release());
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
            .args(args.to_command_line())
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
        Some(name) => Some(baseline::load(&out, name)?),
        None => None,
    };

    // The official server and client are half of the comparison: their npm packages are
    // installed when missing, and only a machine without Node.js runs without them, saying so
    // before and after the run and in the report.
    let (node, node_missing) = if needs_release {
        match runtime()?.block_on(servers::prepare_node(root))? {
            Ok(node) => (Some(node), None),
            Err(why) => {
                eprintln!("==> WITHOUT the official server and client: {why}");
                (None, Some(why))
            }
        }
    } else {
        (None, None)
    };
    let mut results = Results {
        machine: results::Machine::detect(),
        date: blobjobs_store_api::Timestamp::now().to_rfc3339(),
        mode: if args.quick { "quick" } else { "full" }.to_owned(),
        groups: groups.iter().map(|g| g.name().to_owned()).collect(),
        node: node.as_ref().map(|n| n.blobs_version.clone()),
        node_runtime: node.as_ref().map(|n| n.node_version.clone()),
        notes: Vec::new(),
        metrics: Default::default(),
    };
    if let Some(why) = &node_missing {
        results
            .notes
            .push(format!("the official server and client did not run: {why}"));
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
        ctx.results.groups.join(", "),
        ctx.results.mode,
        total
    ));

    let emulator = criterion::build(&ctx)?;
    for group in groups {
        match group {
            Group::Stores => criterion::run(&mut ctx, &criterion::STORES)?,
            Group::Jobs => criterion::run(&mut ctx, &criterion::JOBS)?,
            Group::Emulator => criterion::run(&mut ctx, &criterion::HTTP_BACKEND)?,
            Group::Http => {
                let runtime = runtime()?;
                runtime.block_on(http::run(&mut ctx, &emulator, node.as_ref()))?;
            }
            Group::Client => {
                let runtime = runtime()?;
                runtime.block_on(clients::run(&mut ctx, &emulator, node.as_ref()))?;
            }
            Group::Engines => {
                let runtime = runtime()?;
                runtime.block_on(engines::run(&mut ctx, &emulator))?;
            }
        }
    }
    finish(&ctx, baseline.as_ref())?;
    if let Some(why) = &node_missing {
        ctx.progress.note(&format!(
            "the official server and client did not run, so their columns are empty: {why}"
        ));
    }
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
    args.groups()
        .into_iter()
        .map(|g| match g {
            Group::Stores => criterion::STORES.ids().len(),
            Group::Jobs => criterion::JOBS.ids().len(),
            Group::Emulator => criterion::HTTP_BACKEND.ids().len(),
            Group::Http => http::steps(args.rounds(), node),
            Group::Client => clients::steps(node),
            Group::Engines => engines::steps(args.rounds()),
        })
        .sum()
}

/// Writes the report, saves or compares the baseline, prints the tables.
fn finish(
    ctx: &Ctx,
    baseline: Option<&std::collections::BTreeMap<String, results::Metric>>,
) -> Result<()> {
    let out = &ctx.out;
    let write = |name: &str, contents: &str| -> Result<()> {
        let path = out.join(name);
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))
    };
    let changes = baseline.map(|b| baseline::compare(b, &ctx.results.metrics));
    let comparison = match (&ctx.args.baseline, &changes) {
        (Some(name), Some(changes)) => Some((name.as_str(), changes.as_slice())),
        _ => None,
    };
    let markdown = markdown::markdown(&ctx.results, comparison);
    write("report.md", &markdown)?;
    write("results.json", &ctx.results.to_json()?)?;
    let chart = svg::chart(&ctx.results);
    if let Some(chart) = &chart {
        write("throughput.svg", chart)?;
    }
    if let Some(name) = &ctx.args.save_baseline {
        let path = baseline::save(out, name, &ctx.results)?;
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
    let failed: Vec<_> = targets::ratios(&ctx.results)
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

    #[test]
    fn step_totals_follow_the_groups_and_node() {
        let mut args = Args::with_groups(&[Group::Client, Group::Http]);
        args.quick = true;
        assert_eq!(total_steps(&args, true), 4 * 6 + 3 + 8);
        assert_eq!(total_steps(&args, false), 3 * 6 + 2 + 4);
        let all = Args::default();
        assert_eq!(
            total_steps(&all, true),
            16 + 12 + 9 + 2 * 24 + 3 + 8 + 2 * 2 * 3
        );
    }
}

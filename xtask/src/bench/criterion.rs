//! The criterion side of `cargo xtask bench`: builds every benchmark binary (and so the release
//! `blobs-emulator`), runs one benchmark target with a progress line per benchmark, and reads
//! the medians from `target/criterion/**/new/estimates.json`.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use super::Ctx;
use super::markdown::time;
use super::results::Unit;

/// The packages holding benchmarks. They are always built together, so that cargo resolves
/// features once and never rebuilds between two runs.
const PACKAGES: [&str; 2] = ["blobjobs-backends", "blobjobs-emulator"];

/// A criterion benchmark target and the benchmark ids it produces.
#[derive(Debug, Clone, Copy)]
pub struct BenchTarget {
    /// The `[[bench]]` name.
    pub name: &'static str,
    /// Criterion groups (one per backend).
    pub groups: &'static [&'static str],
    /// Benchmarks of each group.
    pub benches: &'static [&'static str],
    /// Ids outside the groups × benches grid.
    pub extra: &'static [&'static str],
}

impl BenchTarget {
    /// Every `group/bench` id the target reports.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.extra.iter().map(|s| (*s).to_owned()).collect();
        for g in self.groups {
            for b in self.benches {
                ids.push(format!("{g}/{b}"));
            }
        }
        ids
    }
}

/// Blob operations on memory and file, the raw disk loop (and a paired run, not criterion).
pub const STORES: BenchTarget = BenchTarget {
    name: "stores",
    groups: &["file_durable", "file_nosync", "memory"],
    benches: &["set_1k", "get_1k", "cas_update", "list_1000", "list_10000"],
    extra: &["raw_disk/tmp_write_fsync_rename_fsyncdir_1k"],
};

/// Job operations on memory and file.
pub const JOBS: BenchTarget = BenchTarget {
    name: "jobs",
    groups: &["file_durable", "file_nosync", "memory"],
    benches: &["job_create", "job_claim", "job_succeed", "job_get"],
    extra: &[],
};

/// Blob and job operations through `HttpStore` and the emulator.
pub const HTTP_BACKEND: BenchTarget = BenchTarget {
    name: "http_backend",
    groups: &["http_emulator"],
    benches: &[
        "set_1k",
        "get_1k",
        "cas_update",
        "list_1000",
        "list_10000",
        "job_create",
        "job_claim",
        "job_succeed",
        "job_get",
    ],
    extra: &[],
};

const ALL: [BenchTarget; 3] = [STORES, JOBS, HTTP_BACKEND];

fn package_args(cmd: &mut std::process::Command) {
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
}

/// Builds every benchmark binary in the bench profile; returns the release `blobs-emulator`
/// that cargo builds alongside the emulator's benchmarks.
pub fn build(ctx: &Ctx) -> Result<PathBuf> {
    ctx.progress
        .note("building the benchmarks and blobs-emulator (release)");
    let mut cmd = ctx.cargo();
    cmd.args([
        "bench",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    package_args(&mut cmd);
    for t in ALL {
        cmd.args(["--bench", t.name]);
    }
    cmd.stdout(Stdio::piped());
    let output = cmd.output().context("cannot start cargo bench --no-run")?;
    if !output.status.success() {
        bail!("building the benchmarks failed ({})", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "blobs-emulator"
            && message["profile"]["test"] == false
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo did not report the blobs-emulator executable")
}

/// The criterion arguments of this run (after `--`).
fn criterion_args(ctx: &Ctx) -> Vec<String> {
    let mut args: Vec<String> = ["--noplot", "--color", "never"].map(String::from).to_vec();
    if ctx.args.quick {
        args.extend(["--warm-up-time", "0.1", "--measurement-time", "0.4"].map(String::from));
    }
    // Criterion cannot save and compare in one run; saving wins, and the comparison is done
    // from the saved JSON anyway. A lenient comparison skips benchmarks newer than the
    // baseline instead of failing.
    if let Some(name) = &ctx.args.save_baseline {
        args.extend(["--save-baseline".to_owned(), name.clone()]);
    } else if let Some(name) = &ctx.args.baseline {
        args.extend(["--baseline-lenient".to_owned(), name.clone()]);
    }
    args
}

/// Writes back what earlier benchmarks left in the page cache, so that the kernel's writeback
/// of one group's files (tens of thousands of them without fsync) does not run during the next
/// group and slow it. Best effort: without a `sync` command the group just runs.
pub(super) fn settle_disk() {
    let _ = std::process::Command::new("sync")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Runs one benchmark target, printing a progress line per finished benchmark, and records
/// the medians (and the paired run of `stores`).
pub fn run(ctx: &mut Ctx, target: &BenchTarget) -> Result<()> {
    let logs = ctx.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("cannot create {}", logs.display()))?;
    let stdout_log = logs.join(format!("{}.log", target.name));
    let stderr_log = logs.join(format!("{}.stderr.log", target.name));
    let paired = logs.join("paired.json");
    let _ = std::fs::remove_file(&paired);
    settle_disk();

    let mut cmd = ctx.cargo();
    cmd.args(["bench", "--quiet"]);
    package_args(&mut cmd);
    cmd.args(["--bench", target.name, "--"])
        .args(criterion_args(ctx))
        .env("BENCH_PAIRED_OUT", &paired)
        .stdout(Stdio::piped())
        .stderr(
            File::create(&stderr_log)
                .with_context(|| format!("cannot create {}", stderr_log.display()))?,
        );
    let mut child = cmd.spawn().context("cannot start cargo bench")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut log = File::create(&stdout_log)
        .with_context(|| format!("cannot create {}", stdout_log.display()))?;
    let mut pending: Option<String> = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        if let Some(id) = finished_bench(&line, &mut pending) {
            let median = read_median(&ctx.criterion_dir(), &id);
            let shown = median.map_or_else(|| "no estimate".to_owned(), time);
            ctx.progress.step(&format!("{}: {id} {shown}", target.name));
        } else if line.starts_with("paired durable") {
            ctx.progress.note(&line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!(
            "cargo bench --bench {} failed ({status}); see {} and {}",
            target.name,
            stdout_log.display(),
            stderr_log.display()
        );
    }
    let mut missing = Vec::new();
    for id in target.ids() {
        match read_median(&ctx.criterion_dir(), &id) {
            Some(ns) => ctx.results.set(format!("criterion/{id}"), ns, Unit::Ns),
            None => missing.push(id),
        }
    }
    if !missing.is_empty() {
        bail!("criterion wrote no estimate for {}", missing.join(", "));
    }
    if let Ok(text) = std::fs::read_to_string(&paired) {
        let json: serde_json::Value = serde_json::from_str(&text).context("bad paired.json")?;
        if let (Some(raw), Some(set), Some(ratio)) = (
            json["raw_median_ns"].as_f64(),
            json["set_median_ns"].as_f64(),
            json["set_over_raw_throughput"].as_f64(),
        ) {
            ctx.results.set("paired/raw", raw, Unit::Ns);
            ctx.results.set("paired/set", set, Unit::Ns);
            ctx.results.set("paired/set_over_raw", ratio, Unit::Ratio);
        }
    }
    Ok(())
}

/// Recognizes criterion's result line (`<id>  time: [low median high]`, the id alone on the
/// line before when it is long); returns the id of the benchmark that just finished.
pub fn finished_bench(line: &str, pending: &mut Option<String>) -> Option<String> {
    if let Some((head, _)) = line.split_once("time:") {
        let head = head.trim();
        return if head.is_empty() {
            pending.take()
        } else {
            *pending = None;
            Some(head.to_owned())
        };
    }
    let first = line.chars().next();
    if first.is_some_and(|c| !c.is_whitespace()) && !line.contains(' ') && line.contains('/') {
        *pending = Some(line.trim().to_owned());
    }
    None
}

/// The median of benchmark `id` (`group/bench`), in nanoseconds.
pub fn read_median(criterion_dir: &Path, id: &str) -> Option<f64> {
    let path = criterion_dir.join(id).join("new").join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_name_the_benchmark() {
        let mut pending = None;
        assert_eq!(
            finished_bench(
                "memory/set_1k           time:   [1.08 µs 1.09 µs 1.10 µs]",
                &mut pending
            ),
            Some("memory/set_1k".to_owned())
        );
        assert_eq!(
            finished_bench("file_durable/job_succeed", &mut pending),
            None
        );
        assert_eq!(
            finished_bench(
                "                        time:   [465 µs 474 µs 491 µs]",
                &mut pending
            ),
            Some("file_durable/job_succeed".to_owned())
        );
        for noise in [
            "Found 1 outliers among 15 measurements (6.67%)",
            "  1 (6.67%) high mild",
            "                        change: [+29.8% +36.3% +43.9%] (p = 0.00 < 0.05)",
            "paired durable 1 KiB write, 100 pairs: raw loop median 423µs",
            "",
        ] {
            assert_eq!(finished_bench(noise, &mut pending), None, "{noise}");
        }
    }

    #[test]
    fn medians_come_from_new_estimates() {
        let dir = tempfile::tempdir().unwrap();
        let bench = dir.path().join("memory/set_1k/new");
        std::fs::create_dir_all(&bench).unwrap();
        std::fs::write(
            bench.join("estimates.json"),
            r#"{"mean":{"point_estimate":2.0},"median":{"point_estimate":1093.5}}"#,
        )
        .unwrap();
        assert_eq!(read_median(dir.path(), "memory/set_1k"), Some(1093.5));
        assert_eq!(read_median(dir.path(), "memory/get_1k"), None);
    }

    #[test]
    fn targets_list_their_ids() {
        let ids = STORES.ids();
        assert_eq!(ids.len(), 16);
        assert!(ids.contains(&"file_nosync/list_10000".to_owned()));
        assert_eq!(JOBS.ids().len(), 12);
        assert_eq!(HTTP_BACKEND.ids().len(), 9);
    }
}

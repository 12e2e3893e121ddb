//! The figures of a benchmark run, the ratios that matter with their targets, the Markdown
//! report, and saving and comparing baselines.
//!
//! Every figure is a [`Metric`] under a path-like id:
//! `criterion/<group>/<bench>` (median, ns), `paired/{raw,set}` (ns) and
//! `paired/set_over_raw` (ratio), `load/<server>/<get|put>/<connections>/{rate,p50,p99}`,
//! `load/<server>/list_10000/median` (ms), `client/<rust|js>/<get|set>/<workers>/{rate,p50,p99}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// A change beyond this fraction, for the worse, is a regression.
pub const REGRESSION_THRESHOLD: f64 = 0.10;

/// What a figure measures, and so which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A duration in nanoseconds; lower is better.
    Ns,
    /// A duration in milliseconds; lower is better.
    Ms,
    /// Operations per second; higher is better.
    PerSec,
    /// A dimensionless ratio; higher is better.
    Ratio,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Ns => "ns",
            Unit::Ms => "ms",
            Unit::PerSec => "per_s",
            Unit::Ratio => "ratio",
        }
    }

    fn parse(text: &str) -> Option<Unit> {
        [Unit::Ns, Unit::Ms, Unit::PerSec, Unit::Ratio]
            .into_iter()
            .find(|u| u.as_str() == text)
    }

    fn higher_is_better(self) -> bool {
        matches!(self, Unit::PerSec | Unit::Ratio)
    }
}

/// One figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    /// Its value in `unit`.
    pub value: f64,
    /// What it measures.
    pub unit: Unit,
}

/// The machine a run was on, for the report.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// The CPU model.
    pub cpu: String,
    /// Operating system and kernel.
    pub os: String,
}

impl Machine {
    /// What this machine is, from the standard library and `/proc` where there is one.
    pub fn detect() -> Machine {
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!(" {}", s.trim()))
            .unwrap_or_default();
        Machine {
            cpus,
            cpu,
            os: format!("{}{kernel}", std::env::consts::OS),
        }
    }
}

/// Everything one run measured, and how.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// The figures by id.
    pub metrics: BTreeMap<String, Metric>,
    /// Where and when.
    pub machine: Machine,
    /// When the run started (RFC 3339).
    pub date: String,
    /// `full` or `quick`.
    pub mode: String,
    /// The groups that ran.
    pub groups: Vec<String>,
    /// Version of the official server and client (`@netlify/blobs`), when Node ran.
    pub node: Option<String>,
    /// `node --version`, when Node ran.
    pub node_runtime: Option<String>,
    /// Things the reader must know (a skipped server, errors during a load point).
    pub notes: Vec<String>,
}

impl Results {
    /// Records a figure.
    pub fn set(&mut self, id: impl Into<String>, value: f64, unit: Unit) {
        self.metrics.insert(id.into(), Metric { value, unit });
    }

    /// The value of a figure, if it was measured.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.metrics.get(id).map(|m| m.value)
    }

    /// The results as JSON (the format of `results.json` and of baselines).
    pub fn to_json(&self) -> Value {
        json!({
            "version": 1,
            "date": self.date,
            "mode": self.mode,
            "groups": self.groups,
            "machine": {
                "cpus": self.machine.cpus,
                "cpu": self.machine.cpu,
                "os": self.machine.os,
            },
            "node": self.node,
            "node_runtime": self.node_runtime,
            "notes": self.notes,
            "metrics": metrics_json(&self.metrics),
        })
    }
}

fn metrics_json(metrics: &BTreeMap<String, Metric>) -> Value {
    Value::Object(
        metrics
            .iter()
            .map(|(id, m)| {
                (
                    id.clone(),
                    json!({ "value": m.value, "unit": m.unit.as_str() }),
                )
            })
            .collect(),
    )
}

/// The figures of a saved baseline (or of `results.json`).
pub fn parse_metrics(json: &Value) -> Result<BTreeMap<String, Metric>> {
    let Some(map) = json["metrics"].as_object() else {
        bail!("no metrics in the baseline");
    };
    let mut out = BTreeMap::new();
    for (id, m) in map {
        let value = m["value"]
            .as_f64()
            .with_context(|| format!("{id}: no value"))?;
        let unit = m["unit"]
            .as_str()
            .and_then(Unit::parse)
            .with_context(|| format!("{id}: unknown unit"))?;
        out.insert(id.clone(), Metric { value, unit });
    }
    Ok(out)
}

/// A baseline file updated with `results`: figures measured now replace the saved ones,
/// the others stay (so a baseline can be saved group by group).
pub fn merged_baseline(previous: Option<&Value>, results: &Results) -> Value {
    let mut metrics = previous
        .and_then(|p| parse_metrics(p).ok())
        .unwrap_or_default();
    metrics.extend(results.metrics.iter().map(|(k, v)| (k.clone(), *v)));
    let mut json = results.to_json();
    json["metrics"] = metrics_json(&metrics);
    json
}

/// One figure measured both in the baseline and now.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The figure's id.
    pub id: String,
    /// In the baseline.
    pub old: f64,
    /// Now.
    pub new: f64,
    /// Its unit.
    pub unit: Unit,
    /// Relative change of the value, `new / old - 1`.
    pub change: f64,
    /// Worse by more than [`REGRESSION_THRESHOLD`].
    pub regression: bool,
    /// Better by more than [`REGRESSION_THRESHOLD`].
    pub improvement: bool,
}

/// Compares every headline figure present in both (latency percentiles are left out: they
/// are too noisy to flag on their own).
pub fn compare(baseline: &BTreeMap<String, Metric>, now: &BTreeMap<String, Metric>) -> Vec<Change> {
    let mut out = Vec::new();
    for (id, new) in now {
        if id.ends_with("/p50") || id.ends_with("/p99") {
            continue;
        }
        let Some(old) = baseline.get(id) else {
            continue;
        };
        if old.unit != new.unit || old.value <= 0.0 || new.value <= 0.0 {
            continue;
        }
        // Worse means slower for durations, lower for rates: look at it as "how much
        // slower", so that a halved rate and a doubled time both read as +100 %.
        let slowdown = if new.unit.higher_is_better() {
            old.value / new.value - 1.0
        } else {
            new.value / old.value - 1.0
        };
        out.push(Change {
            id: id.clone(),
            old: old.value,
            new: new.value,
            unit: new.unit,
            change: new.value / old.value - 1.0,
            regression: slowdown > REGRESSION_THRESHOLD,
            improvement: slowdown < -REGRESSION_THRESHOLD,
        });
    }
    out
}

/// A target of a ratio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// The ratio must be at least this.
    AtLeast(f64),
    /// The ratio must be below this.
    Below(f64),
}

/// A ratio that matters, with its target.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// What is divided by what.
    pub label: String,
    /// The ratio, if both sides were measured.
    pub value: Option<f64>,
    /// Shown as a percentage rather than a factor.
    pub percent: bool,
    /// What it should be.
    pub target: Target,
}

impl Ratio {
    /// `Some(true)` if it meets the target, `None` if it was not measured.
    pub fn passed(&self) -> Option<bool> {
        let v = self.value?;
        Some(match self.target {
            Target::AtLeast(t) => v >= t,
            Target::Below(t) => v < t,
        })
    }

    fn show(&self, v: f64) -> String {
        if self.percent {
            format!("{:.2} %", v * 100.0)
        } else {
            format!("{}×", sig(v))
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtLeast(t) => format!("≥ {}", self.show(t)),
            Target::Below(t) => format!("< {}", self.show(t)),
        }
    }

    fn verdict(&self) -> &'static str {
        match self.passed() {
            Some(true) => "pass ✓",
            Some(false) => "FAIL ✗",
            None => "not measured",
        }
    }
}

/// Server ids of the load run, in report order, with their labels. The in-memory emulator
/// has no target: it shows what the storage engine costs the others.
pub const SERVERS: [(&str, &str); 4] = [
    ("emulator_nosync", "blobs-emulator --no-fsync"),
    ("emulator_durable", "blobs-emulator (durable, fsync)"),
    ("emulator_memory", "blobs-emulator --in-memory"),
    ("blobs_server", "BlobsServer (Node, official)"),
];

/// Connection counts of the load run.
pub const CONNECTIONS: [usize; 3] = [1, 16, 64];

/// Concurrency levels of the client comparison.
pub const CLIENT_WORKERS: [usize; 2] = [1, 16];

/// Backends of the criterion benchmarks, in report order, with their labels.
const BACKENDS: [(&str, &str); 4] = [
    ("memory", "memory"),
    ("file_durable", "file, durable"),
    ("file_nosync", "file, no fsync"),
    ("http_emulator", "HttpStore → emulator (in-memory)"),
];

const BLOB_OPS: [(&str, &str); 5] = [
    ("set_1k", "set 1 KiB"),
    ("get_1k", "get 1 KiB"),
    ("cas_update", "CAS update"),
    ("list_1000", "list 1,000"),
    ("list_10000", "list 10,000 (all pages)"),
];

const JOB_OPS: [(&str, &str); 4] = [
    ("job_create", "job create"),
    ("job_claim", "job claim"),
    ("job_succeed", "job succeed"),
    ("job_get", "job get"),
];

/// The raw disk loop's criterion id.
pub const RAW_DISK: &str = "criterion/raw_disk/tmp_write_fsync_rename_fsyncdir_1k";

fn quotient(results: &Results, top: &str, bottom: &str) -> Option<f64> {
    let (t, b) = (results.get(top)?, results.get(bottom)?);
    (b > 0.0).then(|| t / b)
}

/// The ratios that matter, with their targets.
pub fn ratios(results: &Results) -> Vec<Ratio> {
    let load = |server: &str, op: &str| format!("load/{server}/{op}/16/rate");
    let mut out = vec![
        Ratio {
            label: "GET 1 KiB, 16 connections: emulator / official server (req/s)".into(),
            value: quotient(
                results,
                &load("emulator_nosync", "get"),
                &load("blobs_server", "get"),
            ),
            percent: false,
            target: Target::AtLeast(10.0),
        },
        Ratio {
            label: "PUT 1 KiB, 16 connections: emulator --no-fsync / official server".into(),
            value: quotient(
                results,
                &load("emulator_nosync", "put"),
                &load("blobs_server", "put"),
            ),
            percent: false,
            target: Target::AtLeast(3.0),
        },
        Ratio {
            label:
                "PUT 1 KiB, 16 connections: emulator durable (fsync) / official server (no fsync)"
                    .into(),
            value: quotient(
                results,
                &load("emulator_durable", "put"),
                &load("blobs_server", "put"),
            ),
            percent: false,
            target: Target::AtLeast(1.0),
        },
        Ratio {
            label: "list 10,000 keys: emulator time / official server time".into(),
            value: quotient(
                results,
                "load/emulator_nosync/list_10000/median",
                "load/blobs_server/list_10000/median",
            ),
            percent: true,
            target: Target::Below(0.05),
        },
        Ratio {
            label: "durable 1 KiB write: FileStore::set / raw disk loop (throughput, paired run)"
                .into(),
            value: results
                .get("paired/set_over_raw")
                .or_else(|| quotient(results, RAW_DISK, "criterion/file_durable/set_1k")),
            percent: false,
            target: Target::AtLeast(0.8),
        },
    ];
    for op in ["get", "set"] {
        for workers in CLIENT_WORKERS {
            let what = if workers == 1 {
                "1 request at a time".to_owned()
            } else {
                format!("{workers} concurrent")
            };
            out.push(Ratio {
                label: format!("{op}, {what}: Rust client / official JS client (ops/s)"),
                value: quotient(
                    results,
                    &format!("client/rust/{op}/{workers}/rate"),
                    &format!("client/js/{op}/{workers}/rate"),
                ),
                percent: false,
                target: Target::AtLeast(2.0),
            });
        }
    }
    out
}

/// Three significant digits, with thousands separators for large numbers.
pub fn sig(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 1000.0 {
        thousands(v.round() as i64)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A duration in nanoseconds, in the unit that suits it.
pub fn time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{} ns", sig(ns))
    } else if ns < 1e6 {
        format!("{} µs", sig(ns / 1e3))
    } else if ns < 1e9 {
        format!("{} ms", sig(ns / 1e6))
    } else {
        format!("{} s", sig(ns / 1e9))
    }
}

fn cell(v: Option<String>) -> String {
    v.unwrap_or_else(|| "—".into())
}

/// `rate/s · p50 / p99 ms` of a load or client point.
fn point(results: &Results, prefix: &str) -> Option<String> {
    let rate = results.get(&format!("{prefix}/rate"))?;
    let p50 = results.get(&format!("{prefix}/p50")).unwrap_or(f64::NAN);
    let p99 = results.get(&format!("{prefix}/p99")).unwrap_or(f64::NAN);
    Some(format!("{}/s · {} / {} ms", sig(rate), sig(p50), sig(p99)))
}

/// The table of ratios and targets (also printed on stdout).
pub fn ratio_table(results: &Results) -> String {
    let mut md = String::from("| ratio | value | target | result |\n|---|---|---|---|\n");
    for r in ratios(results) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.label,
            cell(r.value.map(|v| r.show(v))),
            r.target_text(),
            r.verdict()
        );
    }
    md
}

fn criterion_tables(results: &Results, md: &mut String) {
    let present = |id: &str| results.metrics.contains_key(id);
    for (title, ops) in [
        ("Blob operations", &BLOB_OPS[..]),
        ("Job operations (`BlobJobStore`)", &JOB_OPS[..]),
    ] {
        let rows: Vec<_> = BACKENDS
            .iter()
            .filter(|(b, _)| {
                ops.iter()
                    .any(|(o, _)| present(&format!("criterion/{b}/{o}")))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "### {title}: criterion medians\n");
        let _ = write!(md, "| backend |");
        for (_, label) in ops {
            let _ = write!(md, " {label} |");
        }
        let _ = write!(md, "\n|---|");
        for _ in ops {
            md.push_str("---|");
        }
        md.push('\n');
        for (backend, label) in rows {
            let _ = write!(md, "| {label} |");
            for (op, _) in ops {
                let v = results.get(&format!("criterion/{backend}/{op}")).map(time);
                let _ = write!(md, " {} |", cell(v));
            }
            md.push('\n');
        }
        md.push('\n');
    }
    if let Some(raw) = results.get(RAW_DISK) {
        let _ = write!(
            md,
            "The disk's limit, a raw loop of temporary file, 1 KiB write, fsync, rename, fsync \
             directory: {} median.",
            time(raw)
        );
        if let (Some(r), Some(s), Some(q)) = (
            results.get("paired/raw"),
            results.get("paired/set"),
            results.get("paired/set_over_raw"),
        ) {
            let _ = write!(
                md,
                " Paired run (the two alternated op by op): raw loop {}, durable `FileStore::set` \
                 {}, set / raw throughput {}.",
                time(r),
                time(s),
                sig(q)
            );
        }
        md.push_str("\n\n");
    }
}

fn load_table(results: &Results, md: &mut String) {
    let servers: Vec<_> = SERVERS
        .iter()
        .filter(|(s, _)| {
            results
                .metrics
                .keys()
                .any(|k| k.starts_with(&format!("load/{s}/")))
        })
        .collect();
    if servers.is_empty() {
        return;
    }
    md.push_str("### HTTP load, 1 KiB values: req/s · p50 / p99 latency\n\n");
    md.push_str("| op | server |");
    for c in CONNECTIONS {
        let _ = write!(md, " {c} conn |");
    }
    md.push_str("\n|---|---|");
    for _ in CONNECTIONS {
        md.push_str("---|");
    }
    md.push('\n');
    for (op, op_label) in [("get", "GET"), ("put", "PUT")] {
        for (server, label) in &servers {
            let _ = write!(md, "| {op_label} | {label} |");
            for c in CONNECTIONS {
                let _ = write!(
                    md,
                    " {} |",
                    cell(point(results, &format!("load/{server}/{op}/{c}")))
                );
            }
            md.push('\n');
        }
        for (server, label) in &servers {
            if *server == "blobs_server" {
                continue;
            }
            let mut cells = Vec::new();
            for c in CONNECTIONS {
                let q = quotient(
                    results,
                    &format!("load/{server}/{op}/{c}/rate"),
                    &format!("load/blobs_server/{op}/{c}/rate"),
                );
                cells.push(q.map(|q| format!("{}×", sig(q))));
            }
            if cells.iter().any(Option::is_some) {
                let _ = write!(md, "| {op_label} | *{label} / official* |");
                for c in cells {
                    let _ = write!(md, " {} |", cell(c));
                }
                md.push('\n');
            }
        }
    }
    md.push('\n');
    let lists: Vec<_> = servers
        .iter()
        .filter_map(|(s, label)| {
            results
                .get(&format!("load/{s}/list_10000/median"))
                .map(|ms| (label, ms))
        })
        .collect();
    if !lists.is_empty() {
        md.push_str("| list a store of 10,000 keys (all pages) | median |\n|---|---|\n");
        for (label, ms) in lists {
            let _ = writeln!(md, "| {label} | {} |", time(ms * 1e6));
        }
        md.push('\n');
    }
}

fn client_table(results: &Results, md: &mut String, node: Option<&str>) {
    if !results.metrics.keys().any(|k| k.starts_with("client/")) {
        return;
    }
    md.push_str("### Clients against blobs-emulator (in-memory): ops/s · p50 / p99 latency\n\n");
    md.push_str("| op | client |");
    for w in CLIENT_WORKERS {
        let _ = write!(md, " {w} at a time |");
    }
    md.push_str("\n|---|---|");
    for _ in CLIENT_WORKERS {
        md.push_str("---|");
    }
    md.push('\n');
    let js = match node {
        Some(v) => format!("JS, @netlify/blobs {v}"),
        None => "JS, @netlify/blobs".to_owned(),
    };
    for op in ["get", "set"] {
        for (client, label) in [("rust", "Rust, HttpStore"), ("js", js.as_str())] {
            let _ = write!(md, "| {op} | {label} |");
            for w in CLIENT_WORKERS {
                let _ = write!(
                    md,
                    " {} |",
                    cell(point(results, &format!("client/{client}/{op}/{w}")))
                );
            }
            md.push('\n');
        }
    }
    md.push('\n');
}

/// The regressions and improvements beyond the threshold, as Markdown.
pub fn changes_table(name: &str, changes: &[Change]) -> String {
    let mut md = format!(
        "### Compared with baseline `{name}`\n\n{} figures compared; {} regressed and {} improved \
         by more than {:.0} %.\n\n",
        changes.len(),
        changes.iter().filter(|c| c.regression).count(),
        changes.iter().filter(|c| c.improvement).count(),
        REGRESSION_THRESHOLD * 100.0
    );
    let notable: Vec<_> = changes
        .iter()
        .filter(|c| c.regression || c.improvement)
        .collect();
    if !notable.is_empty() {
        md.push_str("| figure | baseline | now | change | |\n|---|---|---|---|---|\n");
        for c in notable {
            let show = |v: f64| match c.unit {
                Unit::Ns => time(v),
                Unit::Ms => time(v * 1e6),
                Unit::PerSec => format!("{}/s", sig(v)),
                Unit::Ratio => sig(v),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:+.1} % | {} |",
                c.id,
                show(c.old),
                show(c.new),
                c.change * 100.0,
                if c.regression {
                    "REGRESSION"
                } else {
                    "improved"
                }
            );
        }
        md.push('\n');
    }
    md
}

/// The whole report.
pub fn markdown(results: &Results, comparison: Option<(&str, &[Change])>) -> String {
    let mut md = String::from("## Benchmarks\n\n");
    let _ = write!(
        md,
        "{} CPUs ({}), {}; {} run of {} on {}",
        results.machine.cpus,
        results.machine.cpu,
        results.machine.os,
        results.mode,
        results.groups.join(", "),
        results.date
    );
    if let (Some(blobs), Some(node)) = (&results.node, &results.node_runtime) {
        let _ = write!(
            md,
            "; official server and client: @netlify/blobs {blobs} on Node {node}"
        );
    }
    md.push_str(".\n\n");
    let measured: Vec<Ratio> = ratios(results);
    if measured.iter().any(|r| r.value.is_some()) {
        md.push_str("### Ratios and targets\n\n");
        md.push_str(&ratio_table(results));
        md.push('\n');
    }
    criterion_tables(results, &mut md);
    load_table(results, &mut md);
    client_table(results, &mut md, results.node.as_deref());
    if !results.notes.is_empty() {
        md.push_str("Notes:\n\n");
        for n in &results.notes {
            let _ = writeln!(md, "- {n}");
        }
        md.push('\n');
    }
    if let Some((name, changes)) = comparison {
        md.push_str(&changes_table(name, changes));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(pairs: &[(&str, f64, Unit)]) -> Results {
        let mut r = Results::default();
        for (id, v, u) in pairs {
            r.set(*id, *v, *u);
        }
        r
    }

    #[test]
    fn ratios_divide_the_right_figures_and_check_targets() {
        let r = results(&[
            ("load/emulator_nosync/get/16/rate", 30_000.0, Unit::PerSec),
            ("load/blobs_server/get/16/rate", 2_000.0, Unit::PerSec),
            ("load/emulator_nosync/put/16/rate", 4_000.0, Unit::PerSec),
            ("load/blobs_server/put/16/rate", 2_000.0, Unit::PerSec),
            ("load/emulator_nosync/list_10000/median", 4.0, Unit::Ms),
            ("load/blobs_server/list_10000/median", 200.0, Unit::Ms),
            (RAW_DISK, 400_000.0, Unit::Ns),
            ("criterion/file_durable/set_1k", 800_000.0, Unit::Ns),
        ]);
        let all = ratios(&r);
        let by = |prefix: &str| all.iter().find(|x| x.label.starts_with(prefix)).unwrap();
        let get = by("GET");
        assert_eq!(get.value, Some(15.0));
        assert_eq!(get.passed(), Some(true));
        let put = by("PUT 1 KiB, 16 connections: emulator --no-fsync");
        assert_eq!(put.value, Some(2.0));
        assert_eq!(put.passed(), Some(false));
        assert_eq!(
            by("PUT 1 KiB, 16 connections: emulator durable").passed(),
            None
        );
        let list = by("list");
        assert_eq!(list.value, Some(0.02));
        assert_eq!(list.passed(), Some(true));
        // Without a paired run the criterion medians give the disk ratio.
        let disk = by("durable");
        assert_eq!(disk.value, Some(0.5));
        assert_eq!(disk.passed(), Some(false));
        assert!(ratio_table(&r).contains("| 2.00 % | < 5.00 % | pass ✓ |"));
    }

    #[test]
    fn regressions_are_flagged_in_the_worse_direction_only() {
        let old = results(&[
            ("criterion/memory/set_1k", 1000.0, Unit::Ns),
            ("criterion/memory/get_1k", 1000.0, Unit::Ns),
            ("load/x/get/16/rate", 10_000.0, Unit::PerSec),
            ("load/x/put/16/rate", 10_000.0, Unit::PerSec),
            ("load/x/get/16/p99", 1.0, Unit::Ms),
        ])
        .metrics;
        let new = results(&[
            ("criterion/memory/set_1k", 1150.0, Unit::Ns),
            ("criterion/memory/get_1k", 850.0, Unit::Ns),
            ("load/x/get/16/rate", 8_500.0, Unit::PerSec),
            ("load/x/put/16/rate", 9_500.0, Unit::PerSec),
            ("load/x/get/16/p99", 9.0, Unit::Ms),
            ("load/x/new/16/rate", 1.0, Unit::PerSec),
        ])
        .metrics;
        let changes = compare(&old, &new);
        let flagged = |id: &str| changes.iter().find(|c| c.id == id).map(|c| c.regression);
        assert_eq!(flagged("criterion/memory/set_1k"), Some(true));
        assert_eq!(flagged("criterion/memory/get_1k"), Some(false));
        assert_eq!(flagged("load/x/get/16/rate"), Some(true));
        assert_eq!(flagged("load/x/put/16/rate"), Some(false));
        assert_eq!(flagged("load/x/get/16/p99"), None);
        assert_eq!(flagged("load/x/new/16/rate"), None);
        assert!(
            changes
                .iter()
                .any(|c| c.id == "criterion/memory/get_1k" && c.improvement)
        );
        let md = changes_table("main", &changes);
        assert!(md.contains("2 regressed and 1 improved"), "{md}");
        assert!(
            md.contains("| criterion/memory/set_1k | 1.00 µs | 1.15 µs | +15.0 % | REGRESSION |")
        );
    }

    #[test]
    fn baselines_round_trip_and_merge() {
        let first = results(&[("a", 1.0, Unit::Ns), ("b", 2.0, Unit::PerSec)]);
        let saved = merged_baseline(None, &first);
        let second = results(&[("b", 3.0, Unit::PerSec), ("c", 4.0, Unit::Ratio)]);
        let merged = parse_metrics(&merged_baseline(Some(&saved), &second)).unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged["a"].value, 1.0);
        assert_eq!(merged["b"].value, 3.0);
        assert_eq!(merged["c"].unit, Unit::Ratio);
        assert!(parse_metrics(&json!({})).is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(time(857.2), "857 ns");
        assert_eq!(time(12_345.0), "12.3 µs");
        assert_eq!(time(6_871_100.0), "6.87 ms");
        assert_eq!(sig(1_234_567.0), "1,234,567");
        assert_eq!(sig(0.914), "0.91");
    }

    #[test]
    fn the_report_has_every_measured_table_and_nothing_else() {
        let mut r = results(&[
            ("criterion/memory/set_1k", 1000.0, Unit::Ns),
            ("criterion/memory/job_get", 900.0, Unit::Ns),
            ("load/emulator_nosync/get/1/rate", 9000.0, Unit::PerSec),
            ("load/emulator_nosync/get/1/p50", 0.1, Unit::Ms),
            ("load/emulator_nosync/get/1/p99", 0.3, Unit::Ms),
        ]);
        r.notes
            .push("the official server was skipped: node is not installed".into());
        let md = markdown(&r, None);
        assert!(md.contains("| memory | 1.00 µs | — | — | — | — |"), "{md}");
        assert!(
            md.contains("| GET | blobs-emulator --no-fsync | 9,000/s · 0.10 / 0.30 ms | — | — |")
        );
        assert!(md.contains("node is not installed"));
        assert!(!md.contains("Clients against"));
        assert!(!md.contains("file, durable"));
    }
}

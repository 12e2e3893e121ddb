//! The Markdown report of a benchmark run (`target/bench-report/report.md`, also printed):
//! the ratios and their targets, the criterion medians, the load run, the client comparison,
//! and how numbers are written.

use std::fmt::Write as _;

use super::baseline::{Change, changes_table};
use super::engines::{ENGINES, OPS as ENGINE_OPS};
use super::results::Results;
use super::targets::{
    BACKENDS, BLOB_OPS, CLIENT_WORKERS, CONNECTIONS, JOB_OPS, RAW_DISK, Ratio, SERVERS, quotient,
    ratios,
};

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

/// The table of ratios and targets.
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

fn engines_table(results: &Results, md: &mut String) {
    let rows: Vec<_> = ENGINES
        .iter()
        .flat_map(|(engine, label)| ENGINE_OPS.iter().map(move |op| (engine, label, op)))
        .filter_map(|(engine, label, op)| {
            let prefix = format!("engines/{engine}/{op}");
            Some((
                label,
                op,
                results.get(&format!("{prefix}/backend"))?,
                results.get(&format!("{prefix}/raw"))?,
                results.get(&format!("{prefix}/backend_over_raw"))?,
            ))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    md.push_str(
        "### Engines: the backend against the engine's own client, 1 KiB, one at a time \
         (paired run, medians)\n\n\
         | engine | op | backend | engine's client | backend / client (throughput) |\n\
         |---|---|---|---|---|\n",
    );
    for (label, op, ours, raw, ratio) in rows {
        let _ = writeln!(
            md,
            "| {label} | {op} | {} | {} | {}× |",
            time(ours),
            time(raw),
            sig(ratio)
        );
    }
    md.push('\n');
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

/// The whole report; `comparison` is the baseline's name and the changes against it.
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
    engines_table(results, &mut md);
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
    use super::super::results::Unit;
    use super::*;

    fn results(pairs: &[(&str, f64, Unit)]) -> Results {
        let mut r = Results::default();
        for (id, v, u) in pairs {
            r.set(*id, *v, *u);
        }
        r
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
    fn the_ratio_table_shows_value_target_and_verdict() {
        let r = results(&[
            ("load/emulator_nosync/list_10000/median", 4.0, Unit::Ms),
            ("load/blobs_server/list_10000/median", 200.0, Unit::Ms),
        ]);
        let table = ratio_table(&r);
        assert!(table.contains("| 2.00 % | < 5.00 % | pass ✓ |"), "{table}");
        assert!(table.contains("| — | ≥ 10.0× | not measured |"), "{table}");
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
        assert!(!md.contains("Compared with baseline"));
        assert!(markdown(&r, Some(("main", &[]))).contains("Compared with baseline `main`"));
        assert!(!md.contains("### Engines"));
    }

    #[test]
    fn engine_figures_get_their_table_and_ratios() {
        let r = results(&[
            ("engines/postgres/set/backend", 250_000.0, Unit::Ns),
            ("engines/postgres/set/raw", 200_000.0, Unit::Ns),
            ("engines/postgres/set/backend_over_raw", 0.8, Unit::Ratio),
            ("load/emulator_postgres/get/16/rate", 5000.0, Unit::PerSec),
        ]);
        let md = markdown(&r, None);
        assert!(
            md.contains("| PostgreSQL | set | 250 µs | 200 µs | 0.80× |"),
            "{md}"
        );
        assert!(
            md.contains("set 1 KiB on PostgreSQL: backend / a prepared statement (throughput, paired run) | 0.80× | ≥ 0.80× | pass ✓"),
            "{md}"
        );
        assert!(
            md.contains("| GET | blobs-emulator over PostgreSQL | — | 5,000/s"),
            "{md}"
        );
    }
}

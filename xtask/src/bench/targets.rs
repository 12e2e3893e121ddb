//! What the benchmarks measure and what they must show: the servers, backends, operations and
//! concurrency levels by id (with their labels in the report), and the ratios that matter with
//! their targets.

use super::engines::{ENGINES, OPS as ENGINE_OPS};
use super::markdown::sig;
use super::results::Results;

/// Server ids of the load run, in report order, with their labels. The in-memory emulator
/// has no target: it shows what the storage engine costs the others.
pub const SERVERS: [(&str, &str); 6] = [
    ("emulator_nosync", "blobs-emulator --no-fsync"),
    ("emulator_durable", "blobs-emulator (durable, fsync)"),
    ("emulator_memory", "blobs-emulator --in-memory"),
    ("emulator_s3", "blobs-emulator over S3 (SeaweedFS)"),
    ("emulator_postgres", "blobs-emulator over PostgreSQL"),
    ("blobs_server", "BlobsServer (Node, official)"),
];

/// Connection counts of the load run.
pub const CONNECTIONS: [usize; 3] = [1, 16, 64];

/// Concurrency levels of the client comparison.
pub const CLIENT_WORKERS: [usize; 2] = [1, 16];

/// Backends of the criterion benchmarks, in report order, with their labels.
pub const BACKENDS: [(&str, &str); 4] = [
    ("memory", "memory"),
    ("file_durable", "file, durable"),
    ("file_nosync", "file, no fsync"),
    ("http_emulator", "HttpStore → emulator (in-memory)"),
];

/// Blob operations of the criterion benchmarks, with their labels.
pub const BLOB_OPS: [(&str, &str); 5] = [
    ("set_1k", "set 1 KiB"),
    ("get_1k", "get 1 KiB"),
    ("cas_update", "CAS update"),
    ("list_1000", "list 1,000"),
    ("list_10000", "list 10,000 (all pages)"),
];

/// Job operations of the criterion benchmarks, with their labels.
pub const JOB_OPS: [(&str, &str); 4] = [
    ("job_create", "job create"),
    ("job_claim", "job claim"),
    ("job_succeed", "job succeed"),
    ("job_get", "job get"),
];

/// The raw disk loop's criterion id.
pub const RAW_DISK: &str = "criterion/raw_disk/tmp_write_fsync_rename_fsyncdir_1k";

/// The label of load-run server `id`.
pub fn server_label(id: &str) -> &'static str {
    SERVERS
        .iter()
        .find(|(s, _)| *s == id)
        .map_or("server", |(_, l)| l)
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

    /// A value of this ratio as the report shows it.
    pub fn show(&self, v: f64) -> String {
        if self.percent {
            format!("{:.2} %", v * 100.0)
        } else {
            format!("{}×", sig(v))
        }
    }

    /// The target as the report shows it.
    pub fn target_text(&self) -> String {
        match self.target {
            Target::AtLeast(t) => format!("≥ {}", self.show(t)),
            Target::Below(t) => format!("< {}", self.show(t)),
        }
    }

    /// Pass, fail or not measured, for the report.
    pub fn verdict(&self) -> &'static str {
        match self.passed() {
            Some(true) => "pass ✓",
            Some(false) => "FAIL ✗",
            None => "not measured",
        }
    }
}

/// `top / bottom`, if both were measured and the divisor is positive.
pub fn quotient(results: &Results, top: &str, bottom: &str) -> Option<f64> {
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
    for (engine, label) in ENGINES {
        for op in ENGINE_OPS {
            let client = match engine {
                "s3" => format!("object_store {}", if op == "set" { "put" } else { "get" }),
                _ => "a prepared statement".to_owned(),
            };
            out.push(Ratio {
                label: format!(
                    "{op} 1 KiB on {label}: backend / {client} (throughput, paired run)"
                ),
                value: results.get(&format!("engines/{engine}/{op}/backend_over_raw")),
                percent: false,
                target: Target::AtLeast(0.8),
            });
        }
    }
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

#[cfg(test)]
mod tests {
    use super::super::results::Unit;
    use super::*;

    #[test]
    fn ratios_divide_the_right_figures_and_check_targets() {
        let mut r = Results::default();
        for (id, v, u) in [
            ("load/emulator_nosync/get/16/rate", 30_000.0, Unit::PerSec),
            ("load/blobs_server/get/16/rate", 2_000.0, Unit::PerSec),
            ("load/emulator_nosync/put/16/rate", 4_000.0, Unit::PerSec),
            ("load/blobs_server/put/16/rate", 2_000.0, Unit::PerSec),
            ("load/emulator_nosync/list_10000/median", 4.0, Unit::Ms),
            ("load/blobs_server/list_10000/median", 200.0, Unit::Ms),
            (RAW_DISK, 400_000.0, Unit::Ns),
            ("criterion/file_durable/set_1k", 800_000.0, Unit::Ns),
        ] {
            r.set(id, v, u);
        }
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
        assert_eq!(
            (list.show(0.02), list.target_text(), list.verdict()),
            ("2.00 %".to_owned(), "< 5.00 %".to_owned(), "pass ✓")
        );
        // Without a paired run the criterion medians give the disk ratio.
        let disk = by("durable");
        assert_eq!(disk.value, Some(0.5));
        assert_eq!(disk.passed(), Some(false));
    }

    #[test]
    fn servers_have_labels() {
        assert_eq!(server_label("blobs_server"), "BlobsServer (Node, official)");
        assert_eq!(server_label("nosuch"), "server");
    }
}

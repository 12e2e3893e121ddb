//! The figures of a benchmark run and how they are stored: `results.json` and the baselines
//! under `target/bench-report/baselines/` share one JSON shape, written and read with serde.
//!
//! Every figure is a [`Metric`] under a path-like id:
//! `criterion/<group>/<bench>` (median, ns), `paired/{raw,set}` (ns) and
//! `paired/set_over_raw` (ratio), `load/<server>/<get|put>/<connections>/{rate,p50,p99}`,
//! `load/<server>/list_10000/median` (ms), `client/<rust|js>/<get|set>/<workers>/{rate,p50,p99}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version written into `results.json` and baselines. Readers ignore it: every version so
/// far has the same shape.
const FORMAT_VERSION: u32 = 1;

/// What a figure measures, and so which direction is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unit {
    /// A duration in nanoseconds; lower is better.
    #[serde(rename = "ns")]
    Ns,
    /// A duration in milliseconds; lower is better.
    #[serde(rename = "ms")]
    Ms,
    /// Operations per second; higher is better.
    #[serde(rename = "per_s")]
    PerSec,
    /// A dimensionless ratio; higher is better.
    #[serde(rename = "ratio")]
    Ratio,
}

impl Unit {
    /// Whether a larger value is an improvement.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Unit::PerSec | Unit::Ratio)
    }
}

/// One figure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// Its value in `unit`.
    pub value: f64,
    /// What it measures.
    pub unit: Unit,
}

/// The machine a run was on, for the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
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
///
/// Only `metrics` is required when reading: a baseline is its figures, and the rest is there
/// for the reader of the file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Results {
    /// The figures by id.
    pub metrics: BTreeMap<String, Metric>,
    /// Where and when.
    #[serde(default)]
    pub machine: Machine,
    /// When the run started (RFC 3339).
    #[serde(default)]
    pub date: String,
    /// `full` or `quick`.
    #[serde(default)]
    pub mode: String,
    /// The groups that ran.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Version of the official server and client (`@netlify/blobs`), when Node ran.
    #[serde(default)]
    pub node: Option<String>,
    /// `node --version`, when Node ran.
    #[serde(default)]
    pub node_runtime: Option<String>,
    /// Things the reader must know (a skipped server, errors during a load point).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// What is written to disk: the results with the format version in front.
#[derive(Serialize)]
struct Stored<'a> {
    version: u32,
    #[serde(flatten)]
    results: &'a Results,
}

impl Results {
    /// Records a figure. A value that is not finite (a percentile of a phase without a
    /// successful request) is left out: JSON has no NaN, and the `null` serde would write in
    /// its place would make the file unreadable as a baseline.
    pub fn set(&mut self, id: impl Into<String>, value: f64, unit: Unit) {
        if value.is_finite() {
            self.metrics.insert(id.into(), Metric { value, unit });
        }
    }

    /// The value of a figure, if it was measured.
    pub fn get(&self, id: &str) -> Option<f64> {
        self.metrics.get(id).map(|m| m.value)
    }

    /// The results as pretty JSON (the format of `results.json` and of baselines).
    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&Stored {
            version: FORMAT_VERSION,
            results: self,
        })
    }

    /// Results read back from [`Results::to_json`]'s format.
    pub fn from_json(text: &str) -> serde_json::Result<Results> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_json() {
        let mut r = Results {
            date: "2025-01-01T00:00:00Z".into(),
            mode: "quick".into(),
            groups: vec!["stores".into()],
            node: Some("11.1.1".into()),
            ..Results::default()
        };
        r.set("criterion/memory/set_1k", 1093.5, Unit::Ns);
        r.set("load/x/get/16/rate", 9000.0, Unit::PerSec);
        r.set("client/js/get/1/p50", f64::NAN, Unit::Ms);
        let text = r.to_json().unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
        assert!(text.contains("\"unit\": \"per_s\""), "{text}");
        assert!(!text.contains("null,\n    \"unit\""), "{text}");
        let back = Results::from_json(&text).unwrap();
        assert_eq!(back.metrics, r.metrics);
        assert_eq!(back.metrics.len(), 2);
        assert_eq!(back.node.as_deref(), Some("11.1.1"));
        assert_eq!(back.groups, ["stores"]);
    }

    /// A baseline as the hand-built JSON of earlier versions wrote it still reads.
    #[test]
    fn baselines_of_earlier_versions_still_read() {
        let old = r#"{
          "date": "2025-06-01T10:00:00Z",
          "groups": ["stores", "http"],
          "machine": {"cpu": "x", "cpus": 2, "os": "linux 6.1"},
          "metrics": {
            "criterion/memory/set_1k": {"unit": "ns", "value": 1093},
            "load/blobs_server/get/16/rate": {"unit": "per_s", "value": 2000.5},
            "paired/set_over_raw": {"unit": "ratio", "value": 0.9},
            "load/blobs_server/list_10000/median": {"unit": "ms", "value": 200.0}
          },
          "mode": "full",
          "node": null,
          "node_runtime": null,
          "notes": [],
          "version": 1
        }"#;
        let r = Results::from_json(old).unwrap();
        assert_eq!(r.metrics.len(), 4);
        assert_eq!(r.get("criterion/memory/set_1k"), Some(1093.0));
        assert_eq!(r.metrics["paired/set_over_raw"].unit, Unit::Ratio);
        assert_eq!(r.machine.cpus, 2);
        // Only the figures are required; a file without them, or with an unknown unit, is not
        // a baseline.
        assert!(Results::from_json(r#"{"metrics": {}}"#).is_ok());
        assert!(Results::from_json("{}").is_err());
        assert!(
            Results::from_json(r#"{"metrics": {"a": {"value": 1, "unit": "parsec"}}}"#).is_err()
        );
    }
}

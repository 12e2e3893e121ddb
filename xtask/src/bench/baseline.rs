//! Baselines: saving a run's figures under a name (`--save-baseline`), and comparing a run with
//! a saved one (`--baseline`), flagging changes for the worse beyond a threshold.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::markdown::{sig, time};
use super::results::{Metric, Results, Unit};

/// A change beyond this fraction, for the worse, is a regression.
pub const REGRESSION_THRESHOLD: f64 = 0.10;

/// Where baseline `name` is kept under the report directory `out`.
pub fn path(out: &Path, name: &str) -> PathBuf {
    out.join("baselines").join(format!("{name}.json"))
}

/// The figures of baseline `name`.
pub fn load(out: &Path, name: &str) -> Result<BTreeMap<String, Metric>> {
    let path = path(out, name);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no baseline {name:?} at {} (save one with --save-baseline {name})",
            path.display()
        )
    })?;
    let saved = Results::from_json(&text)
        .with_context(|| format!("{} is not a baseline", path.display()))?;
    Ok(saved.metrics)
}

/// Saves `results` as baseline `name`, keeping the saved figures that this run did not
/// measure; returns the file's path.
pub fn save(out: &Path, name: &str, results: &Results) -> Result<PathBuf> {
    let path = path(out, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // An unreadable previous file is replaced rather than a reason to lose this run.
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| Results::from_json(&t).ok());
    let merged = merged(previous, results);
    std::fs::write(&path, merged.to_json()?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// A baseline updated with `results`: figures measured now replace the saved ones, the others
/// stay (so a baseline can be saved group by group). Everything but the figures is this run's.
pub fn merged(previous: Option<Results>, results: &Results) -> Results {
    let mut metrics = previous.map(|p| p.metrics).unwrap_or_default();
    metrics.extend(results.metrics.iter().map(|(k, v)| (k.clone(), *v)));
    Results {
        metrics,
        ..results.clone()
    }
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
        let saved = Results::from_json(&merged(None, &first).to_json().unwrap()).unwrap();
        let second = results(&[("b", 3.0, Unit::PerSec), ("c", 4.0, Unit::Ratio)]);
        let merged = merged(Some(saved), &second).metrics;
        assert_eq!(merged.len(), 3);
        assert_eq!(merged["a"].value, 1.0);
        assert_eq!(merged["b"].value, 3.0);
        assert_eq!(merged["c"].unit, Unit::Ratio);
    }

    #[test]
    fn saved_baselines_load_and_merge_on_disk() {
        let out = tempfile::tempdir().unwrap();
        let first = results(&[("a", 1.0, Unit::Ns), ("b", 2.0, Unit::PerSec)]);
        let saved = save(out.path(), "main", &first).unwrap();
        assert_eq!(saved, out.path().join("baselines/main.json"));
        save(out.path(), "main", &results(&[("b", 3.0, Unit::PerSec)])).unwrap();
        let loaded = load(out.path(), "main").unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded["a"].value, 1.0);
        assert_eq!(loaded["b"].value, 3.0);
        let missing = load(out.path(), "nope").unwrap_err().to_string();
        assert!(missing.contains("--save-baseline nope"), "{missing}");
        std::fs::write(path(out.path(), "bad"), "{}").unwrap();
        assert!(load(out.path(), "bad").is_err());
    }
}

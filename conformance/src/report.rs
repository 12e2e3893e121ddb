//! The result of a run and its renderings: human text, JSON lines, JUnit XML and a Markdown
//! matrix of backends by property. Every writer is a pure function of the report.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Whether a case exercises one instance or several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything happens through one instance: the contract of a single handle.
    SingleInstance,
    /// Several instances share the store: what serverless job tracking needs.
    CrossInstance,
}

impl Scope {
    /// `single-instance` or `cross-instance`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::SingleInstance => "single-instance",
            Scope::CrossInstance => "cross-instance",
        }
    }
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// The backend behaved as the contract says.
    Passed,
    /// The backend broke the contract (or the case could not finish).
    Failed {
        /// What went wrong, in one or a few sentences.
        message: String,
        /// The operations that led there, one line each, naming the instance.
        timeline: Vec<String>,
        /// How to replay exactly this failure.
        replay: Option<String>,
    },
    /// The backend does not claim a capability the case needs.
    Skipped {
        /// Which capability is missing.
        reason: String,
    },
}

/// The result of one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseReport {
    /// The case's name, phrased as the behaviour it checks.
    pub name: String,
    /// The area (one source file of cases) it belongs to.
    pub area: String,
    /// Single-instance or cross-instance.
    pub scope: Scope,
    /// Its verdict.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// For a failure, its likely cause: one of the short labels of [`crate::causes`] (such
    /// as "GET sends no ETag"), so that a report can group failures by what would fix them.
    /// `None` for cases that passed or were skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// How long it took, in milliseconds.
    pub millis: u64,
}

impl CaseReport {
    /// Whether it passed.
    pub fn passed(&self) -> bool {
        matches!(self.verdict, Verdict::Passed)
    }

    /// Whether it failed.
    pub fn failed(&self) -> bool {
        matches!(self.verdict, Verdict::Failed { .. })
    }

    /// Whether it was skipped.
    pub fn skipped(&self) -> bool {
        matches!(self.verdict, Verdict::Skipped { .. })
    }
}

/// The result of running cases against one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The backend's name (from [`crate::Options::backend`]).
    pub backend: String,
    /// The seed of the run; passing it back replays the run.
    pub seed: u64,
    /// One entry per case, in the order they ran.
    pub cases: Vec<CaseReport>,
    /// How long the whole run took, in milliseconds.
    pub millis: u64,
}

impl Report {
    /// An empty report, to which runs of several areas can be appended.
    pub fn new(backend: impl Into<String>, seed: u64) -> Self {
        Report {
            backend: backend.into(),
            seed,
            cases: Vec::new(),
            millis: 0,
        }
    }

    /// Appends the cases of `other` (a run of further cases against the same backend).
    pub fn merge(&mut self, other: Report) {
        self.cases.extend(other.cases);
        self.millis += other.millis;
    }

    /// The total time as a `Duration`.
    pub fn elapsed(&self) -> Duration {
        Duration::from_millis(self.millis)
    }

    /// Whether no case failed (skipped cases do not count as failures).
    pub fn passed(&self) -> bool {
        !self.cases.iter().any(CaseReport::failed)
    }

    /// The failed cases.
    pub fn failures(&self) -> impl Iterator<Item = &CaseReport> {
        self.cases.iter().filter(|c| c.failed())
    }

    /// The case with this name, if it ran.
    pub fn case(&self, name: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.name == name)
    }

    /// Panics with the readable report if any case failed. Made for `#[tokio::test]`s.
    #[track_caller]
    pub fn assert_passed(&self) {
        if !self.passed() {
            panic!("{}", self.to_text());
        }
    }

    /// Counts of passed, failed and skipped cases.
    pub fn counts(&self) -> (usize, usize, usize) {
        let p = self.cases.iter().filter(|c| c.passed()).count();
        let f = self.cases.iter().filter(|c| c.failed()).count();
        (p, f, self.cases.len() - p - f)
    }

    /// Human-readable text: one line per case, then every failure with its timeline and how
    /// to replay it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let (p, f, s) = self.counts();
        let _ = writeln!(
            out,
            "conformance of {}: {p} passed, {f} failed, {s} skipped in {:.1} s (seed {})",
            self.backend,
            self.millis as f64 / 1000.0,
            self.seed
        );
        for c in &self.cases {
            let mark = match &c.verdict {
                Verdict::Passed => "ok  ",
                Verdict::Failed { .. } => "FAIL",
                Verdict::Skipped { .. } => "skip",
            };
            let _ = writeln!(
                out,
                "  {mark} {:<58} {:<15} {:>6} ms",
                c.name,
                c.scope.as_str(),
                c.millis
            );
        }
        for c in &self.cases {
            match &c.verdict {
                Verdict::Failed {
                    message,
                    timeline,
                    replay,
                } => {
                    let _ = writeln!(out, "\nFAILED {} ({}):", c.name, c.scope.as_str());
                    for line in message.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                    if !timeline.is_empty() {
                        let _ = writeln!(out, "  timeline:");
                        for line in timeline {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                    if let Some(replay) = replay {
                        let _ = writeln!(out, "  replay: {replay}");
                    }
                }
                Verdict::Skipped { reason } => {
                    let _ = writeln!(out, "\nskipped {}: {reason}", c.name);
                }
                Verdict::Passed => {}
            }
        }
        out
    }

    /// One JSON object per line: one per case, each carrying the backend and the seed.
    pub fn to_json_lines(&self) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            backend: &'a str,
            seed: u64,
            #[serde(flatten)]
            case: &'a CaseReport,
        }
        let mut out = String::new();
        for case in &self.cases {
            let line = Line {
                backend: &self.backend,
                seed: self.seed,
                case,
            };
            if let Ok(text) = serde_json::to_string(&line) {
                out.push_str(&text);
                out.push('\n');
            }
        }
        out
    }

    /// JUnit XML with one test suite for the backend and one test case per case.
    pub fn to_junit(&self) -> String {
        junit(std::slice::from_ref(self))
    }
}

/// One case has finished: what [`crate::Options::on_case`] hooks receive.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The backend's name in the report.
    pub backend: &'a str,
    /// How many cases have finished, this one included.
    pub done: usize,
    /// How many cases the run has.
    pub total: usize,
    /// The case's result.
    pub case: &'a CaseReport,
}

impl Progress<'_> {
    /// One line for a terminal or a CI log, such as
    /// `[file  7/42] ok   etag_changes_on_every_write  single-instance  3 ms`.
    pub fn line(&self) -> String {
        let mark = match self.case.verdict {
            Verdict::Passed => "ok  ",
            Verdict::Failed { .. } => "FAIL",
            Verdict::Skipped { .. } => "skip",
        };
        let width = self.total.to_string().len();
        format!(
            "[{} {:>width$}/{}] {mark} {:<58} {:<15} {:>6} ms",
            self.backend,
            self.done,
            self.total,
            self.case.name,
            self.case.scope.as_str(),
            self.case.millis,
        )
    }
}

/// JUnit XML for several backends: one `<testsuite>` each.
pub fn junit(reports: &[Report]) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for r in reports {
        let (_, f, s) = r.counts();
        let _ = writeln!(
            out,
            "  <testsuite name=\"conformance.{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\" time=\"{:.3}\">",
            xml_escape(&r.backend),
            r.cases.len(),
            r.millis as f64 / 1000.0
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"seed\" value=\"{}\"/></properties>",
            r.seed
        );
        for c in &r.cases {
            let _ = write!(
                out,
                "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{:.3}\"",
                xml_escape(&r.backend),
                xml_escape(&c.area),
                xml_escape(&c.name),
                c.millis as f64 / 1000.0
            );
            match &c.verdict {
                Verdict::Passed => out.push_str("/>\n"),
                Verdict::Skipped { reason } => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml_escape(reason)
                    );
                }
                Verdict::Failed {
                    message,
                    timeline,
                    replay,
                } => {
                    let first = message.lines().next().unwrap_or("");
                    let mut body = message.clone();
                    for line in timeline {
                        body.push_str("\n  ");
                        body.push_str(line);
                    }
                    if let Some(replay) = replay {
                        body.push_str("\nreplay: ");
                        body.push_str(replay);
                    }
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml_escape(first),
                        xml_escape(&body)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// A Markdown table with one row per property and one column per backend: `pass`, `**FAIL**`,
/// `skip`, or empty where the case did not run.
pub fn markdown_matrix(reports: &[Report]) -> String {
    let mut rows: Vec<(String, Scope)> = Vec::new();
    for r in reports {
        for c in &r.cases {
            if !rows.iter().any(|(n, _)| *n == c.name) {
                rows.push((c.name.clone(), c.scope));
            }
        }
    }
    let mut out = String::from("| property | scope |");
    for r in reports {
        let _ = write!(out, " {} |", md_escape(&r.backend));
    }
    out.push_str("\n|---|---|");
    for _ in reports {
        out.push_str(":---:|");
    }
    out.push('\n');
    for (name, scope) in &rows {
        let _ = write!(out, "| `{name}` | {} |", scope.as_str());
        for r in reports {
            let cell = match r.case(name).map(|c| &c.verdict) {
                Some(Verdict::Passed) => "pass",
                Some(Verdict::Failed { .. }) => "**FAIL**",
                Some(Verdict::Skipped { .. }) => "skip",
                None => "",
            };
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
    out
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn md_escape(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            backend: "mem<1>".into(),
            seed: 7,
            millis: 12,
            cases: vec![
                CaseReport {
                    name: "a_works".into(),
                    area: "blob_rw".into(),
                    scope: Scope::SingleInstance,
                    verdict: Verdict::Passed,
                    cause: None,
                    millis: 1,
                },
                CaseReport {
                    name: "b_is_shared".into(),
                    area: "cross_instance".into(),
                    scope: Scope::CrossInstance,
                    verdict: Verdict::Failed {
                        message: "instance 1 saw nothing".into(),
                        timeline: vec!["instance 0: set \"k\" → written".into()],
                        replay: Some("CONFORMANCE_SEED=7".into()),
                    },
                    cause: Some(crate::causes::NOT_VISIBLE_ACROSS_INSTANCES.into()),
                    millis: 2,
                },
            ],
        }
    }

    #[test]
    fn writers_render_every_case() {
        let r = sample();
        assert!(!r.passed());
        let text = r.to_text();
        assert!(text.contains("FAILED b_is_shared") && text.contains("CONFORMANCE_SEED=7"));
        let lines: Vec<serde_json::Value> = r
            .to_json_lines()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["verdict"], "failed");
        assert_eq!(lines[1]["scope"], "cross_instance");
        assert_eq!(lines[0]["backend"], "mem<1>");
        let xml = r.to_junit();
        assert!(xml.contains("failures=\"1\"") && xml.contains("mem&lt;1&gt;"));
        let md = markdown_matrix(&[r.clone(), r]);
        assert!(md.contains("| `b_is_shared` | cross-instance | **FAIL** | **FAIL** |"));
    }

    #[test]
    fn assert_passed_panics_with_the_report() {
        let r = sample();
        let err = std::panic::catch_unwind(|| r.assert_passed()).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("instance 1 saw nothing"));
    }
}

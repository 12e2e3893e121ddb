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
    /// The area (one source file or folder of cases) it belongs to.
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
    /// Operations that ended in a server error (an HTTP 5xx answer), as counted by a runner
    /// that can tell; 0 when nothing counted them.
    #[serde(default)]
    pub server_errors: u64,
}

/// One likely cause of failures and the cases it explains (see [`Report::causes`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    /// What is probably wrong with the store, in one phrase.
    pub label: String,
    /// The failed cases it explains, in run order.
    pub cases: Vec<String>,
}

impl Report {
    /// An empty report, to which runs of several areas can be appended.
    pub fn new(backend: impl Into<String>, seed: u64) -> Self {
        Report {
            backend: backend.into(),
            seed,
            cases: Vec::new(),
            millis: 0,
            server_errors: 0,
        }
    }

    /// Appends the cases of `other` (a run of further cases against the same backend).
    pub fn merge(&mut self, other: Report) {
        self.cases.extend(other.cases);
        self.millis += other.millis;
        self.server_errors += other.server_errors;
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

    /// The failures grouped by likely cause, the cause explaining most cases first: one
    /// group per [`CaseReport::cause`], and for failures without one, per first line of
    /// the message with its particulars (numbers, quoted keys, paths) blanked out, so that
    /// the same symptom in different cases lands in one group.
    pub fn causes(&self) -> Vec<Cause> {
        let mut groups: Vec<Cause> = Vec::new();
        for case in &self.cases {
            let Verdict::Failed { message, .. } = &case.verdict else {
                continue;
            };
            let label = match &case.cause {
                Some(cause) => cause.clone(),
                None => symptom(message),
            };
            match groups.iter_mut().find(|g| g.label == label) {
                Some(group) => group.cases.push(case.name.clone()),
                None => groups.push(Cause {
                    label,
                    cases: vec![case.name.clone()],
                }),
            }
        }
        // Stable: equal counts keep run order.
        groups.sort_by_key(|g| std::cmp::Reverse(g.cases.len()));
        groups
    }

    /// The diagnosis as text: a heading, then one line per likely cause with the cases it
    /// explains. Empty when no case failed.
    pub fn diagnosis_text(&self) -> String {
        let causes = self.causes();
        let failed: usize = causes.iter().map(|c| c.cases.len()).sum();
        if failed == 0 {
            return String::new();
        }
        let mut out = format!(
            "diagnosis of {}: {failed} failed {}, {} likely {}\n",
            self.backend,
            plural(failed, "case", "cases"),
            causes.len(),
            plural(causes.len(), "cause", "causes"),
        );
        for cause in &causes {
            let _ = writeln!(
                out,
                "  {}: {} {} ({})",
                cause.label,
                cause.cases.len(),
                plural(cause.cases.len(), "case", "cases"),
                cause.cases.join(", ")
            );
        }
        if self.server_errors > 0 {
            let _ = writeln!(
                out,
                "  ({} {} ended in a server error, a 5xx answer)",
                self.server_errors,
                plural(self.server_errors as usize, "operation", "operations")
            );
        }
        out
    }

    /// Human-readable text: one line per case, then every failure with its timeline and how
    /// to replay it, then the failures grouped by likely cause.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let (p, f, s) = self.counts();
        let _ = write!(
            out,
            "conformance of {}: {p} passed, {f} failed, {s} skipped in {:.1} s (seed {})",
            self.backend,
            self.millis as f64 / 1000.0,
            self.seed
        );
        if self.server_errors > 0 {
            let _ = write!(
                out,
                "; {} {} ended in a server error",
                self.server_errors,
                plural(self.server_errors as usize, "operation", "operations")
            );
        }
        out.push('\n');
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
        let diagnosis = self.diagnosis_text();
        if !diagnosis.is_empty() {
            out.push('\n');
            out.push_str(&diagnosis);
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
                    let kind = c
                        .cause
                        .as_deref()
                        .map(|cause| format!(" type=\"{}\"", xml_escape(cause)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\"{kind}>{}</failure>\n    </testcase>",
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

/// The failures of each report grouped by likely cause, in Markdown: a heading per backend
/// with failures, then a table with one row per cause and the cases it explains. Empty when
/// no case failed.
pub fn markdown_diagnosis(reports: &[Report]) -> String {
    let mut out = String::new();
    for r in reports {
        let causes = r.causes();
        if causes.is_empty() {
            continue;
        }
        let failed: usize = causes.iter().map(|c| c.cases.len()).sum();
        let _ = writeln!(
            out,
            "### {}: {failed} failed {}, {} likely {}\n",
            md_escape(&r.backend),
            plural(failed, "case", "cases"),
            causes.len(),
            plural(causes.len(), "cause", "causes"),
        );
        out.push_str("| likely cause | cases |\n|---|---|\n");
        for cause in &causes {
            let names: Vec<String> = cause.cases.iter().map(|n| format!("`{n}`")).collect();
            let _ = writeln!(
                out,
                "| {} | {}: {} |",
                md_escape(&cause.label),
                cause.cases.len(),
                names.join(", ")
            );
        }
        if r.server_errors > 0 {
            let _ = writeln!(
                out,
                "\n{} {} ended in a server error (5xx).",
                r.server_errors,
                plural(r.server_errors as usize, "operation", "operations")
            );
        }
        out.push('\n');
    }
    out
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// The longest symptom label, in characters.
const SYMPTOM_CHARS: usize = 120;

/// The symptom of a failure that names no cause: the first line of its message (only its
/// `got …, expected …` end when it compares typed values) with the particulars of the case
/// blanked out (quoted text becomes `"…"`, paths and runs of 8 or more hexadecimal digits
/// `…`, other numbers `N`, except a status after "answered"), so that one symptom seen by
/// several cases reads the same.
fn symptom(message: &str) -> String {
    let mut line = message.lines().next().unwrap_or("").trim();
    // A comparison of typed values ("etag after overwrite: got Etag(), expected Etag(…)")
    // says more by its values than by what the case compared: `Etag()` is the symptom.
    if let Some(at) = line.rfind(": got ")
        && line[at..].contains('(')
    {
        line = &line[at + 2..];
    }
    let line = unquote(line);
    let mut words: Vec<String> = Vec::new();
    for word in line.split(' ') {
        let keep_numbers = words.last().is_some_and(|w| w == "answered");
        words.push(blank_word(word, keep_numbers));
    }
    let mut out = words.join(" ");
    if out.chars().count() > SYMPTOM_CHARS {
        out = out.chars().take(SYMPTOM_CHARS - 1).collect::<String>() + "…";
    }
    if out.is_empty() {
        "failed without a message".to_owned()
    } else {
        out
    }
}

/// `text` with every double-quoted string (backslash escapes included) replaced by `"…"`.
fn unquote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '"' {
            out.push(c);
            continue;
        }
        out.push_str("\"…\"");
        while let Some(q) = chars.next() {
            match q {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
    }
    out
}

/// One word of [`symptom`].
fn blank_word(word: &str, keep_numbers: bool) -> String {
    if word.contains('/') && !word.contains('"') {
        // A key or a path; keep the punctuation that ends it.
        let tail: String = word
            .chars()
            .rev()
            .take_while(|c| matches!(c, ':' | ',' | ';' | ')' | '.'))
            .collect();
        return format!("…{}", tail.chars().rev().collect::<String>());
    }
    let mut out = String::with_capacity(word.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let digits = run.chars().any(|c| c.is_ascii_digit());
        if run.len() >= 8 && digits {
            out.push('…');
        } else if digits && !keep_numbers && run.chars().all(|c| c.is_ascii_digit()) {
            out.push('N');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in word.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
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
mod tests;

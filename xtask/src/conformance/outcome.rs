//! What a `cargo xtask conformance` run concludes from its reports: the memory backend's
//! counterexample, whether every failure is an expected one, the deviations from the expected
//! outcome, and the report files (text, JSON lines, JUnit with expected failures as skipped,
//! Markdown).

use std::path::Path;

use anyhow::{Context, Result};
use blobjobs_conformance::{CaseReport, Report, Scope, Verdict};

/// The readable shrunk timeline of one cross-instance failure of `report`: the job model's
/// if it failed, else the blob model's, else any cross-instance failure with a timeline.
pub(super) fn counterexample(report: &Report) -> Option<String> {
    let preferred = [
        "job_operations_match_the_model_across_instances",
        "blob_operations_match_the_model_across_instances",
    ];
    let case = preferred
        .iter()
        .filter_map(|name| report.case(name))
        .chain(
            report
                .cases
                .iter()
                .filter(|c| c.scope == Scope::CrossInstance),
        )
        .find(|c| matches!(&c.verdict, Verdict::Failed { timeline, .. } if !timeline.is_empty()))?;
    let Verdict::Failed {
        message,
        timeline,
        replay,
    } = &case.verdict
    else {
        return None;
    };
    let mut text = format!(
        "Counterexample on {} (instances share nothing), shrunk by proptest:\n\nFAILED {} ({}):\n",
        report.backend,
        case.name,
        case.scope.as_str()
    );
    for line in message.lines() {
        text.push_str(&format!("  {line}\n"));
    }
    text.push_str("  timeline:\n");
    for line in timeline {
        text.push_str(&format!("    {line}\n"));
    }
    if let Some(replay) = replay {
        text.push_str(&format!("  replay: {replay}\n"));
    }
    Some(text)
}

/// Whether `case` must fail on the backend of `report`: the memory backend is the negative
/// control, whose instances share nothing, so every cross-instance case must catch it.
pub(super) fn is_expected_failure(backend: &str, case: &CaseReport) -> bool {
    backend == "memory" && case.scope == Scope::CrossInstance
}

/// The reports as JUnit sees them: an expected failure (the negative control doing its job)
/// is a skipped test case that quotes the failure, as test runners report an expected failure,
/// and an expected failure that did not happen is a failed one. A CI dashboard then shows red
/// exactly when the run differs from the expected outcome.
pub(super) fn junit_view(reports: &[Report]) -> Vec<Report> {
    let mut view = reports.to_vec();
    for report in &mut view {
        for case in &mut report.cases {
            if !is_expected_failure(&report.backend, case) {
                continue;
            }
            case.verdict = match &case.verdict {
                Verdict::Failed { message, .. } => Verdict::Skipped {
                    reason: format!(
                        "expected failure (negative control, instances share nothing): {}",
                        message.lines().next().unwrap_or("failed")
                    ),
                },
                Verdict::Skipped { .. } => continue,
                Verdict::Passed => Verdict::Failed {
                    message: format!(
                        "expected to fail on {} (its instances share nothing), but it did not: \
                         the case cannot tell a shared store from separate ones",
                        report.backend
                    ),
                    timeline: Vec::new(),
                    replay: None,
                },
            };
        }
    }
    view
}

/// Everything that differs from the expected outcome, one sentence each.
pub(super) fn deviations(reports: &[Report]) -> Vec<String> {
    let mut out = Vec::new();
    for report in reports {
        if report.cases.is_empty() {
            out.push(format!("{}: no case ran", report.backend));
        }
        // A row whose every case failed for one reason (an engine CI lacks) is one line.
        let mut messages = report.cases.iter().map(|c| match &c.verdict {
            Verdict::Failed { message, .. } => Some(message.as_str()),
            _ => None,
        });
        if report.cases.len() > 1
            && let Some(Some(first)) = messages.next()
            && messages.all(|m| m == Some(first))
            && report
                .cases
                .iter()
                .all(|c| !is_expected_failure(&report.backend, c))
        {
            out.push(format!(
                "{} failed every case ({}): {first}",
                report.backend,
                report.cases.len()
            ));
            continue;
        }
        for case in &report.cases {
            let what = match &case.verdict {
                Verdict::Passed => "passed".to_owned(),
                Verdict::Failed { message, .. } => {
                    format!("failed: {}", message.lines().next().unwrap_or("no message"))
                }
                Verdict::Skipped { reason } => format!("was skipped: {reason}"),
            };
            let expected_failure = is_expected_failure(&report.backend, case);
            if case.skipped() {
                // The case says why it cannot run here; the summary lists it.
                continue;
            }
            if expected_failure && !case.failed() {
                out.push(format!(
                    "memory {what} on the cross-instance case {}: the suite has no teeth there",
                    case.name
                ));
            } else if !expected_failure && !case.passed() {
                out.push(format!(
                    "{} {what} on the {} case {}",
                    report.backend,
                    case.scope.as_str(),
                    case.name
                ));
            }
        }
    }
    out
}

/// Writes `conformance.txt`, `conformance.jsonl`, `junit.xml` and `matrix.md` under `out`.
pub(super) fn write_reports(out: &Path, reports: &[Report]) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let text: String = reports.iter().map(|r| r.to_text() + "\n").collect();
    let json: String = reports.iter().map(Report::to_json_lines).collect();
    let files = [
        ("conformance.txt", text),
        ("conformance.jsonl", json),
        (
            "junit.xml",
            blobjobs_conformance::junit(&junit_view(reports)),
        ),
        (
            "matrix.md",
            blobjobs_conformance::markdown_matrix(reports)
                + "\n"
                + &blobjobs_conformance::markdown_diagnosis(reports),
        ),
    ];
    for (name, contents) in files {
        let path = out.join(name);
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

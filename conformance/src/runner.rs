//! Runs cases one after another against a factory and turns their results into a `Report`;
//! each case's settle check (see [`crate::settle`]) overlaps the cases that follow it.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::{FutureExt as _, StreamExt as _};

use crate::case::Case;
use crate::ctx::{Ctx, Failure, Target};
use crate::options::{Capabilities, Options};
use crate::report::{CaseReport, Progress, Report, Verdict};
use crate::{causes, promises, settle};

/// A random 64-bit number, or a time-based one if the system has no randomness.
pub(crate) fn random_u64() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        splitmix(t ^ u64::from(std::process::id()))
    })
}

/// One step of SplitMix64: a good 64-bit mixer for deriving seeds.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one case: the run's seed mixed with the case's name, so that each case is
/// reproducible on its own (with a filter) and independent of which other cases ran.
pub(crate) fn case_seed(run_seed: u64, name: &str) -> u64 {
    let mut h = run_seed;
    for b in name.bytes() {
        h = splitmix(h ^ u64::from(b));
    }
    h
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// A case that has run, waiting for its settle check before it is reported.
struct Finished {
    report: CaseReport,
    check: Option<(Ctx, tokio::task::JoinHandle<Result<(), Failure>>)>,
}

/// The likely cause of a failure of `case`: what the failure itself names, else the first
/// symptom the case showed, else the cause of the first promise the case checks.
fn cause_of(case: &Case, failure: Option<&'static str>, ctx: &Ctx) -> &'static str {
    failure
        .or_else(|| ctx.probe().symptoms().first().copied())
        .or_else(|| promises::default_cause(case.name))
        .unwrap_or(causes::UNEXPECTED_ERRORS)
}

fn replay_line(seed: u64, name: &str) -> String {
    format!(
        "CONFORMANCE_SEED={seed} CONFORMANCE_FILTER={name} (read by Options::from_env), or Options::default().seed({seed}).filter(\"{name}\")"
    )
}

pub(crate) async fn run_cases(
    target: Target,
    caps: Capabilities,
    options: Options,
    cases: Vec<Case>,
) -> Report {
    let started = Instant::now();
    let seed = options.seed.unwrap_or_else(random_u64);
    let run_prefix = format!("conformance-{:012x}/", random_u64() >> 16);
    let mut report = Report::new(options.backend.clone(), seed);
    let selected: Vec<Case> = cases
        .into_iter()
        .filter(|c| options.filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    // Settle checks run in the background while later cases run; a case is reported, in run
    // order, once its check is done. `Options::parallel` cases run at once (by default one).
    let mut pending: VecDeque<Finished> = VecDeque::new();
    let mut runs = futures_util::stream::iter(selected.iter().copied().enumerate())
        .map(|(index, case)| {
            let (target, caps, options) = (target.clone(), caps.clone(), options.clone());
            let run_prefix = run_prefix.clone();
            async move { run_one(&target, &caps, &options, seed, &run_prefix, index, &case).await }
                .boxed()
        })
        .buffered(options.parallel.max(1));
    loop {
        let next = runs.next().await;
        let all_ran = next.is_none();
        pending.extend(next);
        // Report every case at the front whose check has finished; once every case has run,
        // wait for the remaining checks in turn.
        while pending.front().is_some_and(|f| {
            all_ran
                || f.check
                    .as_ref()
                    .is_none_or(|(_, handle)| handle.is_finished())
        }) {
            if let Some(finished) = pending.pop_front() {
                report_one(&mut report, finished, seed, &selected, &options).await;
            }
        }
        if all_ran {
            break;
        }
    }
    report.millis = started.elapsed().as_millis() as u64;
    report
}

/// Runs case number `index` of a run (or skips it) and returns it with its settle check,
/// if it has one, under way.
async fn run_one(
    target: &Target,
    caps: &Capabilities,
    options: &Options,
    seed: u64,
    run_prefix: &str,
    index: usize,
    case: &Case,
) -> Finished {
    let case_started = Instant::now();
    let missing = if target.blobs.is_none() && !case.is_job() {
        Some("the run grades a job store alone; blob-store cases do not apply")
    } else {
        case.needs
            .iter()
            .find_map(|n| n.missing(caps, target.blobs.as_deref()))
    };
    let mut check = None;
    let (verdict, cause) = if let Some(reason) = missing {
        (
            Verdict::Skipped {
                reason: reason.to_owned(),
            },
            None,
        )
    } else {
        let ctx = Ctx::new(
            target.clone(),
            format!("{run_prefix}c{index:02}/"),
            caps.clone(),
            options.clone(),
            case_seed(seed, case.name),
        );
        let body = AssertUnwindSafe((case.run)(ctx.clone())).catch_unwind();
        match tokio::time::timeout(options.case_timeout, body).await {
            Ok(Ok(Ok(()))) => {
                if !ctx.ledger().is_empty() {
                    let handle = tokio::spawn(settle::check(ctx.clone()));
                    check = Some((ctx, handle));
                }
                (Verdict::Passed, None)
            }
            Ok(Ok(Err(failure))) => {
                let cause = cause_of(case, failure.cause, &ctx);
                (
                    Verdict::Failed {
                        message: failure.message,
                        timeline: failure.timeline.unwrap_or_else(|| ctx.timeline()),
                        replay: Some(
                            failure
                                .replay
                                .unwrap_or_else(|| replay_line(seed, case.name)),
                        ),
                    },
                    Some(cause),
                )
            }
            Ok(Err(payload)) => (
                Verdict::Failed {
                    message: format!("the case panicked: {}", panic_text(payload.as_ref())),
                    timeline: ctx.timeline(),
                    replay: Some(replay_line(seed, case.name)),
                },
                Some(causes::PANICS),
            ),
            Err(_) => (
                Verdict::Failed {
                    message: format!(
                        "the case did not finish within {} s",
                        options.case_timeout.as_secs()
                    ),
                    timeline: ctx.timeline(),
                    replay: Some(replay_line(seed, case.name)),
                },
                Some(cause_of(case, Some(causes::TOO_SLOW), &ctx)),
            ),
        }
    };
    Finished {
        report: CaseReport {
            name: case.name.to_owned(),
            area: case.area.to_owned(),
            scope: case.scope,
            verdict,
            cause: cause.map(str::to_owned),
            millis: case_started.elapsed().as_millis() as u64,
        },
        check,
    }
}

/// Completes a finished case with its settle check (waiting for it), adds it to the report
/// and tells the progress hook how many of `cases` are reported.
async fn report_one(
    report: &mut Report,
    finished: Finished,
    seed: u64,
    cases: &[Case],
    options: &Options,
) {
    let mut case_report = finished.report;
    if let Some((ctx, handle)) = finished.check {
        let outcome = match tokio::time::timeout(options.case_timeout, handle).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                Err(Failure::new(format!("the settle check failed: {e}")).because(causes::PANICS))
            }
            Err(_) => Err(Failure::new(format!(
                "the settle check did not finish within {} s",
                options.case_timeout.as_secs()
            ))
            .because(causes::TOO_SLOW)),
        };
        if let Err(failure) = outcome {
            let case = cases.iter().find(|c| c.name == case_report.name);
            let cause = match case {
                Some(case) => cause_of(case, failure.cause, &ctx),
                None => failure.cause.unwrap_or(causes::UNEXPECTED_ERRORS),
            };
            case_report.verdict = Verdict::Failed {
                message: failure.message,
                timeline: failure.timeline.unwrap_or_else(|| ctx.timeline()),
                replay: Some(replay_line(seed, &case_report.name)),
            };
            case_report.cause = Some(cause.to_owned());
        }
    }
    report.cases.push(case_report);
    if let (Some(hook), Some(case)) = (&options.on_case, report.cases.last()) {
        hook.call(&Progress {
            backend: &report.backend,
            done: report.cases.len(),
            total: cases.len(),
            case,
        });
    }
}

//! Runs cases one after another against a factory and turns their results into a `Report`.

use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures_util::FutureExt as _;

use crate::case::Case;
use crate::ctx::Ctx;
use crate::factory::SharedFactory;
use crate::options::{Capabilities, Options};
use crate::report::{CaseReport, Progress, Report, Verdict};

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

pub(crate) async fn run_cases(
    factory: SharedFactory,
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
    let total = selected.len();
    for (index, case) in selected.into_iter().enumerate() {
        let case_started = Instant::now();
        let missing = case
            .needs
            .iter()
            .find_map(|n| n.missing(&caps, factory.as_ref()));
        let verdict = if let Some(reason) = missing {
            Verdict::Skipped {
                reason: reason.to_owned(),
            }
        } else {
            let ctx = Ctx::new(
                factory.clone(),
                format!("{run_prefix}c{index:02}/"),
                caps.clone(),
                options.clone(),
                case_seed(seed, case.name),
            );
            let body = AssertUnwindSafe((case.run)(ctx.clone())).catch_unwind();
            let replay = || {
                format!(
                    "CONFORMANCE_SEED={seed} CONFORMANCE_FILTER={} (read by Options::from_env), or Options::default().seed({seed}).filter(\"{}\")",
                    case.name, case.name
                )
            };
            match tokio::time::timeout(options.case_timeout, body).await {
                Ok(Ok(Ok(()))) => Verdict::Passed,
                Ok(Ok(Err(failure))) => Verdict::Failed {
                    message: failure.message,
                    timeline: failure.timeline.unwrap_or_else(|| ctx.timeline()),
                    replay: Some(failure.replay.unwrap_or_else(replay)),
                },
                Ok(Err(payload)) => Verdict::Failed {
                    message: format!("the case panicked: {}", panic_text(payload.as_ref())),
                    timeline: ctx.timeline(),
                    replay: Some(replay()),
                },
                Err(_) => Verdict::Failed {
                    message: format!(
                        "the case did not finish within {} s",
                        options.case_timeout.as_secs()
                    ),
                    timeline: ctx.timeline(),
                    replay: Some(replay()),
                },
            }
        };
        report.cases.push(CaseReport {
            name: case.name.to_owned(),
            area: case.area.to_owned(),
            scope: case.scope,
            verdict,
            cause: None,
            millis: case_started.elapsed().as_millis() as u64,
        });
        if let (Some(hook), Some(case)) = (&options.on_case, report.cases.last()) {
            hook.call(&Progress {
                backend: &report.backend,
                done: index + 1,
                total,
                case,
            });
        }
    }
    report.millis = started.elapsed().as_millis() as u64;
    report
}

//! Races are caught every run: each racy store of the catalogue (see `negative_controls.rs`)
//! fails its race case in every one of a sample of default runs, each with a fresh seed.
//!
//! The sample is 20 runs per store, of the first case of each row. To measure the catch
//! rate of every case of every row over many runs (the figures the suite's documentation
//! quotes), run `CONFORMANCE_CATCH_RUNS=1000 cargo test -p blobjobs-conformance --test
//! race_catch_rates -- --nocapture`, which prints a table. The settle interval is zero
//! here: it starts after a race has been judged and plays no part in catching it.

mod common;

use std::time::{Duration, Instant};

use blobjobs_conformance::{BlobJobFactory, Capabilities, Options, Report};
use common::{JobFault, RacyCondition, UnconditionalJobWrites, faulty, map_jobs};

/// Runs per store; `CONFORMANCE_CATCH_RUNS` overrides it (and then every case of a row
/// runs, not only its first).
const DEFAULT_RUNS: usize = 20;

/// One racy store and the race cases that must catch it.
struct Control {
    name: &'static str,
    cases: &'static [&'static str],
}

const IF_NEW: &[&str] = &[
    "only_if_new_has_a_single_winner_across_instances",
    "only_if_new_has_a_single_winner",
];
const IF_MATCH: &[&str] = &[
    "only_if_match_has_a_single_winner_across_instances",
    "only_if_match_has_a_single_winner",
    "compare_and_swap_loses_no_update_across_instances",
];
const CLAIMS: &[&str] = &[
    "claim_is_exclusive_across_instances",
    "claim_is_exclusive",
    "an_expired_lease_is_reclaimed_by_one_worker_across_instances",
];
const JOB_UPDATES: &[&str] = &[
    "racing_progress_and_succeed_lose_no_update_across_instances",
    "claim_is_exclusive_across_instances",
    "racing_progress_and_cancel_lose_no_update_across_instances",
    "racing_succeed_and_fail_have_one_winner_across_instances",
    "racing_updates_and_a_delete_leave_the_job_deleted_across_instances",
];

fn options(case: &str) -> Options {
    Options::default()
        .backend("racy")
        .settle(Duration::ZERO)
        .filter(case)
}

/// The report of `case` (and of any case whose name contains it) against the store
/// `control` names.
async fn run(control: &str, case: &str) -> Report {
    let yields = control.contains("(yields)");
    if control.starts_with("racy only-if-") {
        let if_new = control.starts_with("racy only-if-new");
        let f = faulty(move |_| RacyCondition {
            if_new,
            if_match: !if_new,
            yields,
        });
        return blobjobs_conformance::run_blob(f, Capabilities::default(), options(case)).await;
    }
    if control.starts_with("claim without") {
        let f = map_jobs(true, JobFault::ClaimWithoutCas { yields });
        return blobjobs_conformance::run_jobs(f, options(case)).await;
    }
    let f = BlobJobFactory::new(faulty(move |_| UnconditionalJobWrites { yields }));
    blobjobs_conformance::run_jobs(f, options(case)).await
}

fn controls() -> Vec<Control> {
    let mut out = Vec::new();
    for yields in ["(yields)", "(never yields)"] {
        let name =
            |base: &str| -> &'static str { Box::leak(format!("{base} {yields}").into_boxed_str()) };
        out.push(Control {
            name: name("racy only-if-new"),
            cases: IF_NEW,
        });
        out.push(Control {
            name: name("racy only-if-match"),
            cases: IF_MATCH,
        });
        out.push(Control {
            name: name("claim without a conditional write"),
            cases: CLAIMS,
        });
        out.push(Control {
            name: name("job updates without a conditional write"),
            cases: JOB_UPDATES,
        });
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_racy_store_is_caught_in_every_run() {
    let measured: Option<usize> = std::env::var("CONFORMANCE_CATCH_RUNS")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let runs = measured.unwrap_or(DEFAULT_RUNS);
    let started = Instant::now();
    let mut missed = Vec::new();
    println!("| racy store | case | caught |\n|---|---|---:|");
    // `CONFORMANCE_CATCH_ONLY=TEXT` measures only the stores whose name contains TEXT.
    let only = std::env::var("CONFORMANCE_CATCH_ONLY").unwrap_or_default();
    for mut control in controls() {
        if !control.name.contains(only.as_str()) {
            continue;
        }
        if measured.is_none() {
            control.cases = &control.cases[..1];
        }
        let mut any = 0;
        let mut per_case = vec![0usize; control.cases.len()];
        for _ in 0..runs {
            let mut caught = false;
            for (i, case) in control.cases.iter().enumerate() {
                let report = run(control.name, case).await;
                let Some(result) = report.case(case) else {
                    panic!("{case} did not run");
                };
                if result.failed() {
                    per_case[i] += 1;
                    caught = true;
                }
            }
            any += usize::from(caught);
        }
        for (case, n) in control.cases.iter().zip(&per_case) {
            println!("| {} | `{case}` | {n}/{runs} |", control.name);
            if *n < runs && control.cases[0] == *case {
                missed.push(format!(
                    "{}: {case} caught it in {n} of {runs} runs",
                    control.name
                ));
            }
        }
        println!("| {} | any of them | {any}/{runs} |", control.name);
        if any < runs {
            missed.push(format!("{}: caught in {any} of {runs} runs", control.name));
        }
    }
    println!(
        "{} runs per store in {:.1} s",
        runs,
        started.elapsed().as_secs_f64()
    );
    assert!(missed.is_empty(), "races were missed: {missed:#?}");
}

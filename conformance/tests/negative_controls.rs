//! The suite has teeth: it fails the memory backend on every cross-instance case (and passes
//! it on every single-instance one), passes correctly shared stores (a blob store and a job
//! store written directly on a map), and catches every one of a catalogue of deliberately
//! broken stores, each with one fault, in every default run.
//!
//! The catalogue (the stores are in `common/`; "never yields" means nothing but a few
//! instructions lie between the store's check and its write):
//!
//! | broken store | its one fault | the case that catches it | reported cause |
//! |---|---|---|---|
//! | `memory` (a new `MemoryStore` per instance) | instances share nothing (the seed's `Map`) | every cross-instance case | writes are not visible across instances |
//! | separate job maps (`MapJobs`, no `BlobStore`) | each instance keeps its own job map | every cross-instance job case, e.g. `job_created_on_one_instance_is_found_on_another` | writes are not visible across instances |
//! | `IgnoresConditions` | only-if-new and only-if-match are not checked | `only_if_new_writes_once` | write conditions are not checked |
//! | `StaleCache` | reads come from a per-instance cache | `updates_are_visible_across_instances` | writes are not visible across instances |
//! | `DelayedVisibility` (200 ms) | other instances see a write 200 ms late | `writes_are_visible_across_instances` | writes are not visible across instances |
//! | `DropsLastPage` | listings lose their last page | `listing_pages_partition_the_set` | listings are incomplete, repeated or out of order |
//! | `ReusesEtags` | ETags are made from the size | `etag_changes_on_every_write` | ETags do not change on every write |
//! | `NoEtagOnReads` | reads carry an empty ETag (as the official `BlobsServer`'s GET) | `etag_agrees_between_set_get_metadata_and_list` | GET sends no ETag |
//! | `RacyCondition` only-if-new, yields | checks, yields, then writes | `only_if_new_has_a_single_winner_across_instances` | conditional writes are not atomic |
//! | `RacyCondition` only-if-new, never yields | checks then writes | `only_if_new_has_a_single_winner_across_instances` | conditional writes are not atomic |
//! | `RacyCondition` only-if-match, yields | checks, yields, then writes | `only_if_match_has_a_single_winner_across_instances` | conditional writes are not atomic |
//! | `RacyCondition` only-if-match, never yields | checks then writes | `only_if_match_has_a_single_winner_across_instances` | conditional writes are not atomic |
//! | `UnconditionalJobWrites`, yields | the job layer's writes lose their only-if-match | `racing_progress_and_succeed_lose_no_update_across_instances` | job updates are not atomic |
//! | `UnconditionalJobWrites`, never yields | the same, without a yield before the write | `racing_progress_and_succeed_lose_no_update_across_instances` | job updates are not atomic |
//! | `MapJobs` claim without a conditional write, yields | claim reads, yields, then writes | `claim_is_exclusive_across_instances` | claims are not exclusive |
//! | `MapJobs` claim without a conditional write, never yields | claim reads then writes | `claim_is_exclusive_across_instances` | claims are not exclusive |
//! | `UndoesDeletes` (100 ms) | a lagging replica puts a deleted key back | `deletes_racing_updates_leave_no_ghost_across_instances` (settle) | deleted data comes back |
//! | `ForgetsWrites` (200 ms) | an acknowledged write is reverted later | `only_if_new_has_a_single_winner_across_instances` (settle) | acknowledged writes are lost |
//! | `TornWrites` | a write lands half first | `readers_never_see_a_partial_value_across_instances` | readers see partial values |
//! | `StreamDropsMetadata` | streamed writes drop their metadata | `every_value_and_metadata_shape_round_trips_through_every_path` | metadata is lost or altered |
//! | `MetadataLimitTooLow` | refuses metadata over 1,400 bytes | `metadata_size_limit_is_exact` | size limits are not enforced at the boundary |
//! | `FoldsKeyCase` | keys are stored in lower case | `awkward_keys_round_trip_and_never_alias` | keys are mangled or alias each other |
//! | `MapJobs` lease off by one | a lease is held 1 ms past its end | `lease_expiry_is_exact` | leases do not expire when they should |
//! | `MapJobs` TTL off by one | a job stays visible 1 ms past its TTL | `ttl_expiry_is_exact` | TTLs are not honoured |
//! | `MapJobs` listing ignores the cursor | every page of a job listing is the first | `job_listing_pages_cover_every_job_once` | job listings are incomplete or misfiltered |
//!
//! Every row runs here with default options (a fresh seed each time) and its case must fail
//! with that cause. The racy rows are also measured over many runs in `race_catch_rates.rs`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_conformance::{
    BlobJobFactory, Capabilities, InstanceFactory, JobStoreFactory, Options, Report, Scope,
    Verdict, causes,
};
use common::{
    DropsLastPage, FoldsKeyCase, ForgetsWrites, IgnoresConditions, JobFault, MetadataLimitTooLow,
    NoEtagOnReads, RacyCondition, ReusesEtags, StaleCache, StreamDropsMetadata, TornWrites,
    UnconditionalJobWrites, UndoesDeletes, delayed_visibility, faulty, map_jobs, separate_memory,
    shared_memory,
};

/// Few generated sequences for the whole-suite runs below: the broken stores fail fast, and
/// the correct ones are covered by the default counts in their own tests.
fn options(name: &str) -> Options {
    Options::default().backend(name).cases(24)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_fails_every_cross_instance_case_and_passes_every_single_instance_case() {
    let report = blobjobs_conformance::run_all(
        separate_memory(),
        Capabilities::default(),
        options("memory"),
    )
    .await;
    let cross = blobjobs_conformance::cases()
        .iter()
        .filter(|c| c.scope == Scope::CrossInstance)
        .count();
    assert!(cross >= 15, "only {cross} cross-instance cases");
    for case in &report.cases {
        match case.scope {
            // Skipped: the crash case, whose instances must be processes.
            Scope::CrossInstance if case.skipped() => {}
            Scope::CrossInstance => {
                assert!(
                    case.failed(),
                    "memory passed the cross-instance case {}: the suite has no teeth there",
                    case.name
                );
                assert!(case.cause.is_some(), "{} failed without a cause", case.name);
            }
            Scope::SingleInstance => assert!(
                case.passed(),
                "memory failed the single-instance case {}:\n{}",
                case.name,
                report.to_text()
            ),
        }
    }
    assert_eq!(report.cases.len(), blobjobs_conformance::cases().len());
    // The shrunk counterexample of the model names instances and operations.
    let model = report
        .case("job_operations_match_the_model_across_instances")
        .unwrap();
    let Verdict::Failed {
        timeline, replay, ..
    } = &model.verdict
    else {
        panic!("expected a failure");
    };
    assert!(timeline.len() <= 4, "not shrunk: {timeline:#?}");
    let named: std::collections::BTreeSet<&str> = timeline
        .iter()
        .filter_map(|l| l.split(':').next())
        .filter(|p| p.starts_with("instance "))
        .collect();
    assert!(
        named.len() >= 2,
        "the counterexample names one instance: {timeline:#?}"
    );
    assert!(
        timeline.last().unwrap().contains("(model: "),
        "{timeline:#?}"
    );
    assert!(
        replay
            .as_deref()
            .unwrap()
            .contains(&report.seed.to_string())
    );
    // Most failures of a store whose instances share nothing are the seed's bug, and say so.
    let visible = report
        .failures()
        .filter(|c| c.cause.as_deref() == Some(causes::NOT_VISIBLE_ACROSS_INSTANCES))
        .count();
    assert!(
        visible * 4 >= cross * 3,
        "only {visible} of {cross} failures are put down to writes not visible across instances"
    );
    // Messages read as English: no Rust `Debug` output.
    for case in report.failures() {
        let Verdict::Failed { message, .. } = &case.verdict else {
            continue;
        };
        for debug in ["Some(", "None", "Etag(", "Written {", "ConditionFailed"] {
            assert!(
                !message.contains(debug),
                "{}: the message shows Rust debug output ({debug}): {message}",
                case.name
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_passes_everything() {
    let report = blobjobs_conformance::run_all(
        shared_memory(),
        Capabilities::default(),
        Options::default().backend("shared-memory"),
    )
    .await;
    report.assert_passed();
    assert!(report.cases.iter().all(|c| c.passed() || c.skipped()));
}

/// The seed's bug, in a job store that has no `BlobStore` underneath: with one map shared by
/// every instance it passes every job case; with a map per instance (the seed's
/// `new Map()`), every cross-instance job case fails, and the counterexample says what the
/// seed's log said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_job_store_passes_when_shared_and_fails_across_instances_when_not() {
    let shared = blobjobs_conformance::run_jobs(
        map_jobs(true, JobFault::None),
        Options::default().backend("map-jobs"),
    )
    .await;
    shared.assert_passed();
    assert_eq!(
        shared.cases.len(),
        blobjobs_conformance::job_cases().len(),
        "every job case runs against a job store"
    );
    let separate = blobjobs_conformance::run_jobs(
        map_jobs(false, JobFault::None),
        options("map-jobs-per-instance"),
    )
    .await;
    for case in &separate.cases {
        match case.scope {
            Scope::CrossInstance => {
                assert!(
                    case.failed(),
                    "a job store whose instances keep their own maps passed {}",
                    case.name
                );
                assert_eq!(
                    case.cause.as_deref(),
                    Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
                    "{}: {:?}",
                    case.name,
                    case.verdict
                );
            }
            Scope::SingleInstance => assert!(
                case.passed(),
                "{} failed:\n{}",
                case.name,
                separate.to_text()
            ),
        }
    }
    let Some(Verdict::Failed { message, .. }) = separate
        .case("job_created_on_one_instance_is_found_on_another")
        .map(|c| &c.verdict)
    else {
        panic!("the seed's case did not fail");
    };
    assert_eq!(
        message,
        "instance 1 polled job J created by instance 0: not found"
    );
    let Some(Verdict::Failed { message, .. }) = separate
        .case("job_operations_match_the_model_across_instances")
        .map(|c| &c.verdict)
    else {
        panic!("the model did not fail");
    };
    assert!(
        message.contains("created by instance") || message.contains("anew"),
        "the shrunk counterexample does not read like the seed: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_replays_from_its_seed() {
    let factory = separate_memory();
    let opts = options("memory")
        .seed(42)
        .filter("blob_operations_match_the_model_across");
    let first = blobjobs_conformance::run_all(factory, Capabilities::default(), opts.clone()).await;
    let second = blobjobs_conformance::run_all(factory, Capabilities::default(), opts).await;
    assert_eq!(first.cases.len(), 1);
    assert!(first.cases[0].failed());
    // Same seed, same shrunk counterexample (ETags are random, so compare without them).
    let strip = |r: &Report| match &r.cases[0].verdict {
        Verdict::Failed { timeline, .. } => timeline
            .iter()
            .map(|l| l.split(" → ").next().unwrap_or("").to_owned())
            .collect::<Vec<_>>(),
        _ => panic!("expected a failure"),
    };
    assert_eq!(strip(&first), strip(&second));
}

/// The blob store or job store a row of the catalogue grades.
enum Store {
    Blobs(Box<dyn FnOnce() -> Arc<dyn InstanceFactory> + Send>),
    Jobs(Box<dyn FnOnce() -> Arc<dyn JobStoreFactory> + Send>),
}

fn blobs<F: InstanceFactory>(make: impl FnOnce() -> F + Send + 'static) -> Store {
    Store::Blobs(Box::new(move || {
        Arc::new(make()) as Arc<dyn InstanceFactory>
    }))
}

fn jobs<F: JobStoreFactory>(make: impl FnOnce() -> F + Send + 'static) -> Store {
    Store::Jobs(Box::new(move || {
        Arc::new(make()) as Arc<dyn JobStoreFactory>
    }))
}

/// One row: a broken store, the case that must catch it, and the cause it must be put down
/// to.
struct Row {
    name: &'static str,
    store: Store,
    case: &'static str,
    cause: &'static str,
}

/// Runs `row.case` with default options against the row's store; the verdict, or why it is
/// wrong.
async fn check(row: Row) -> Result<String, String> {
    let options = Options::default().backend(row.name).filter(row.case);
    let report = match row.store {
        Store::Blobs(make) => {
            blobjobs_conformance::run_all(make(), Capabilities::default(), options).await
        }
        Store::Jobs(make) => blobjobs_conformance::run_jobs(make(), options).await,
    };
    let Some(case) = report.case(row.case) else {
        return Err(format!("{}: the case {} did not run", row.name, row.case));
    };
    match (&case.verdict, case.cause.as_deref()) {
        (Verdict::Failed { message, .. }, Some(cause)) if cause == row.cause => Ok(format!(
            "{}: caught by {} ({cause}): {}",
            row.name,
            row.case,
            message.lines().next().unwrap_or("")
        )),
        (Verdict::Failed { message, .. }, cause) => Err(format!(
            "{}: {} failed as it should, but put down to {cause:?} instead of {:?}: {message}",
            row.name, row.case, row.cause
        )),
        (verdict, _) => Err(format!(
            "{}: {} did not catch it ({verdict:?})",
            row.name, row.case
        )),
    }
}

fn racy(if_new: bool, yields: bool) -> impl FnOnce() -> Arc<dyn InstanceFactory> + Send {
    move || {
        Arc::new(faulty(move |_| RacyCondition {
            if_new,
            if_match: !if_new,
            yields,
        })) as Arc<dyn InstanceFactory>
    }
}

fn catalogue() -> Vec<Row> {
    let ms = Duration::from_millis;
    vec![
        Row {
            name: "separate job maps",
            store: jobs(|| map_jobs(false, JobFault::None)),
            case: "job_created_on_one_instance_is_found_on_another",
            cause: causes::NOT_VISIBLE_ACROSS_INSTANCES,
        },
        Row {
            name: "ignores conditions",
            store: blobs(|| faulty(|_| IgnoresConditions)),
            case: "only_if_new_writes_once",
            cause: causes::CONDITIONS_IGNORED,
        },
        Row {
            name: "stale cache",
            store: blobs(|| faulty(|_| StaleCache::default())),
            case: "updates_are_visible_across_instances",
            cause: causes::NOT_VISIBLE_ACROSS_INSTANCES,
        },
        Row {
            name: "delayed visibility",
            store: blobs(move || delayed_visibility(ms(200))),
            case: "writes_are_visible_across_instances",
            cause: causes::NOT_VISIBLE_ACROSS_INSTANCES,
        },
        Row {
            name: "drops the last page",
            store: blobs(|| faulty(|_| DropsLastPage)),
            case: "listing_pages_partition_the_set",
            cause: causes::LISTINGS_WRONG,
        },
        Row {
            name: "reuses ETags",
            store: blobs(|| faulty(|_| ReusesEtags)),
            case: "etag_changes_on_every_write",
            cause: causes::ETAGS_REUSED,
        },
        Row {
            name: "no ETag on reads",
            store: blobs(|| faulty(|_| NoEtagOnReads)),
            case: "etag_agrees_between_set_get_metadata_and_list",
            cause: causes::GET_SENDS_NO_ETAG,
        },
        Row {
            name: "racy only-if-new (yields)",
            store: Store::Blobs(Box::new(racy(true, true))),
            case: "only_if_new_has_a_single_winner_across_instances",
            cause: causes::CONDITIONS_NOT_ATOMIC,
        },
        Row {
            name: "racy only-if-match (yields)",
            store: Store::Blobs(Box::new(racy(false, true))),
            case: "only_if_match_has_a_single_winner_across_instances",
            cause: causes::CONDITIONS_NOT_ATOMIC,
        },
        Row {
            name: "job updates without a conditional write (yields)",
            store: jobs(|| {
                BlobJobFactory::new(faulty(|_| UnconditionalJobWrites { yields: true }))
            }),
            case: "racing_progress_and_succeed_lose_no_update_across_instances",
            cause: causes::JOB_UPDATES_LOST,
        },
        Row {
            name: "job updates without a conditional write (never yields)",
            store: jobs(|| {
                BlobJobFactory::new(faulty(|_| UnconditionalJobWrites { yields: false }))
            }),
            case: "racing_progress_and_succeed_lose_no_update_across_instances",
            cause: causes::JOB_UPDATES_LOST,
        },
        Row {
            name: "claim without a conditional write (yields)",
            store: jobs(|| map_jobs(true, JobFault::ClaimWithoutCas { yields: true })),
            case: "claim_is_exclusive_across_instances",
            cause: causes::CLAIMS_NOT_EXCLUSIVE,
        },
        Row {
            name: "undoes deletes",
            store: blobs(move || {
                faulty(move |store| UndoesDeletes {
                    after: ms(100),
                    store,
                })
            }),
            case: "deletes_racing_updates_leave_no_ghost_across_instances",
            cause: causes::DELETES_UNDONE,
        },
        Row {
            name: "forgets writes",
            // Late enough that on a loaded machine the case's own rounds seldom see the
            // revert (it would show as a non-linearizable history), early enough that the
            // settle re-read, 300 ms after the last write, always does.
            store: blobs(move || {
                faulty(move |store| ForgetsWrites {
                    after: ms(200),
                    store,
                })
            }),
            case: "only_if_new_has_a_single_winner_across_instances",
            cause: causes::WRITES_LOST,
        },
        Row {
            name: "torn writes",
            store: blobs(|| faulty(|_| TornWrites)),
            case: "readers_never_see_a_partial_value_across_instances",
            cause: causes::PARTIAL_VALUES,
        },
        Row {
            name: "streamed writes drop metadata",
            store: blobs(|| faulty(|_| StreamDropsMetadata)),
            case: "every_value_and_metadata_shape_round_trips_through_every_path",
            cause: causes::METADATA_ALTERED,
        },
        Row {
            name: "metadata limit too low",
            store: blobs(|| faulty(|_| MetadataLimitTooLow)),
            case: "metadata_size_limit_is_exact",
            cause: causes::LIMITS_WRONG,
        },
        Row {
            name: "folds key case",
            store: blobs(|| faulty(|_| FoldsKeyCase)),
            case: "awkward_keys_round_trip_and_never_alias",
            cause: causes::KEYS_MANGLED,
        },
        Row {
            name: "lease off by one",
            store: jobs(|| map_jobs(true, JobFault::LeaseOffByOne)),
            case: "lease_expiry_is_exact",
            cause: causes::LEASES_WRONG,
        },
        Row {
            name: "TTL off by one",
            store: jobs(|| map_jobs(true, JobFault::TtlOffByOne)),
            case: "ttl_expiry_is_exact",
            cause: causes::TTLS_WRONG,
        },
        Row {
            name: "job listing ignores the cursor",
            store: jobs(|| map_jobs(true, JobFault::ListIgnoresCursor)),
            case: "job_listing_pages_cover_every_job_once",
            cause: causes::JOB_LISTINGS_WRONG,
        },
    ]
}

/// Every row of the catalogue whose fault does not depend on the scheduler, caught by its
/// case with its cause in this default run. (The rows whose store never yields inside its
/// race are caught only by truly parallel racers, in nearly every run rather than by
/// construction: `race_catch_rates.rs` asserts them over a sample of runs and measures them
/// over many.) The rows run together, so that their settle intervals overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_store_is_caught_with_its_cause() {
    let started = Instant::now();
    let rows = catalogue();
    let count = rows.len();
    let results = futures_util::future::join_all(rows.into_iter().map(check)).await;
    let mut wrong = Vec::new();
    for r in results {
        match r {
            Ok(line) => println!("{line}"),
            Err(e) => wrong.push(e),
        }
    }
    println!(
        "checked {count} broken stores in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(wrong.is_empty(), "broken stores not caught: {wrong:#?}");
    assert!(
        count + 1 >= 15,
        "the catalogue has only {count} broken stores"
    );
}

//! The suite as ordinary tests: [`Backend`] describes what a test binary grades, and the
//! [`tests!`](crate::tests!) macro stamps one `#[test]` per case for it, so that a failing
//! case shows up under its own name in `cargo test`.

use std::future::Future;
use std::sync::Arc;

use crate::case::Case;
use crate::ctx::Target;
use crate::factory::{BlobJobFactory, InstanceFactory, JobStoreFactory, SharedFactory};
use crate::options::{Capabilities, Options};
use crate::report::{Report, Scope, Verdict};
use crate::{cases, runner};

/// What to expect of a backend across instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Every case passes (or is skipped for a capability the backend does not claim).
    Pass,
    /// The backend's instances share nothing: every single-instance case passes and every
    /// cross-instance case fails.
    NegativeControl,
}

/// One backend as stamped tests grade it: a factory of its instances, what it claims, how
/// runs are shaped, and what to expect.
///
/// Built anew for every test by the setup function given to [`tests!`](crate::tests!), so
/// each case runs on fresh data (a new temporary directory, a new server).
pub struct Backend {
    target: Target,
    capabilities: Capabilities,
    options: Options,
    expect: Expect,
    after_case: Vec<Box<dyn FnOnce() + Send>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("name", &self.options.backend)
            .field("capabilities", &self.capabilities)
            .field("expect", &self.expect)
            .finish_non_exhaustive()
    }
}

impl Backend {
    /// The backend called `name` in reports, whose instances `factory` builds, claiming
    /// every capability.
    ///
    /// Its options start from [`Options::from_env`], so that a failing stamped test replays
    /// with the seed its report prints (`CONFORMANCE_SEED=… cargo test NAME`), and
    /// `CONFORMANCE_CASES` scales the model-based cases; the filter is ignored, since each
    /// stamped test runs exactly one case (use cargo's own test filter).
    pub fn new(name: impl Into<String>, factory: impl InstanceFactory) -> Self {
        let blobs: SharedFactory = Arc::new(factory);
        Backend::with_target(
            name,
            Target {
                jobs: Arc::new(BlobJobFactory::shared(blobs.clone())),
                blobs: Some(blobs),
            },
        )
    }

    /// A job store called `name` in reports, whose instances `factory` builds: the job
    /// cases run against it, and the blob-store cases are skipped (they need a `BlobStore`).
    pub fn jobs(name: impl Into<String>, factory: impl JobStoreFactory) -> Self {
        Backend::with_target(
            name,
            Target {
                blobs: None,
                jobs: Arc::new(factory),
            },
        )
    }

    fn with_target(name: impl Into<String>, target: Target) -> Self {
        Backend {
            target,
            capabilities: Capabilities::default(),
            options: Options::from_env().backend(name),
            expect: Expect::Pass,
            after_case: Vec::new(),
        }
    }

    /// Sets what the backend claims.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Changes the run's options (for example fewer generated sequences for a slow backend).
    pub fn options(mut self, change: impl FnOnce(Options) -> Options) -> Self {
        self.options = change(self.options);
        self
    }

    /// Marks the backend as the suite's negative control: its instances share nothing (the
    /// memory backend), so every cross-instance case must fail on it and every
    /// single-instance case must pass. A cross-instance case that passes fails its test:
    /// the case has no teeth.
    pub fn negative_control(mut self) -> Self {
        self.expect = Expect::NegativeControl;
        self
    }

    /// Runs `check` after each case whose verdict was as expected, for invariants of the
    /// backend's own (for example that no temporary file was left behind). It may panic.
    pub fn after_each_case(mut self, check: impl FnOnce() + Send + 'static) -> Self {
        self.after_case.push(Box::new(check));
        self
    }

    /// Runs the case called `name` and returns the report of that one case.
    ///
    /// # Panics
    ///
    /// If the suite has no case of that name.
    pub async fn run_case(&self, name: &str) -> Report {
        let mut options = self.options.clone();
        options.filter = None;
        runner::run_cases(
            self.target.clone(),
            self.capabilities.clone(),
            options,
            vec![find(name)],
        )
        .await
    }

    /// Runs the case called `name` and panics, with the readable report, unless its verdict
    /// is the expected one; then runs the [`Backend::after_each_case`] checks. This is the
    /// body of every test [`tests!`](crate::tests!) stamps.
    pub async fn check_case(self, name: &str) {
        let report = self.run_case(name).await;
        let Some(case) = report.cases.first() else {
            panic!("the case {name} did not run");
        };
        match (&case.verdict, self.expect, case.scope) {
            (Verdict::Skipped { reason }, _, _) => println!("skipped: {reason}"),
            (Verdict::Passed, Expect::Pass, _)
            | (Verdict::Passed, Expect::NegativeControl, Scope::SingleInstance) => {}
            (Verdict::Failed { .. }, Expect::NegativeControl, Scope::CrossInstance) => {
                println!(
                    "failed as it must on a backend whose instances share nothing:\n{}",
                    report.to_text()
                );
            }
            (Verdict::Passed, Expect::NegativeControl, Scope::CrossInstance) => panic!(
                "{} passed the cross-instance case {name}, but its instances share nothing: \
                 the case has no teeth",
                report.backend
            ),
            (Verdict::Failed { .. }, _, _) => panic!(
                "{}\nReplay this test alone: CONFORMANCE_SEED={} cargo test {name}",
                report.to_text(),
                report.seed
            ),
        }
        for check in self.after_case {
            check();
        }
    }
}

/// The case called `name`.
fn find(name: &str) -> Case {
    let mut all = cases::blob();
    all.extend(cases::jobs());
    match all.into_iter().find(|c| c.name == name) {
        Some(case) => case,
        None => panic!("the conformance suite has no case named {name}"),
    }
}

/// What the tests [`tests!`](crate::tests!) stamps call; not for direct use.
#[doc(hidden)]
pub fn run_stamped<F, Fut>(case: &str, setup: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Backend>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(async { setup().await.check_case(case).await }),
        Err(e) => panic!("cannot start a tokio runtime: {e}"),
    }
}

/// Stamps out one `#[test]` per conformance case for one backend, in a module of its own:
///
/// ```no_run
/// use std::sync::Arc;
///
/// use blobjobs_backends::{FileOptions, FileStore};
/// use blobjobs_conformance::Backend;
/// use blobjobs_store_api::BlobStore;
///
/// async fn file() -> Backend {
///     // The directory lives as long as the factory that holds it: one test.
///     let dir = Arc::new(tempfile::tempdir().unwrap());
///     Backend::new("file", move || {
///         let dir = dir.clone();
///         async move {
///             let store = FileStore::open(dir.path(), "store", FileOptions::default())?;
///             Ok(Arc::new(store) as Arc<dyn BlobStore>)
///         }
///     })
/// }
///
/// // Tests `file::read_your_write_is_byte_exact`, `file::claim_is_exclusive_across_instances`, …
/// blobjobs_conformance::tests!(file, file());
/// # fn main() {}
/// ```
///
/// The second argument is an expression evaluated inside each test, in the module the macro
/// is invoked in, to a future of a [`Backend`] (typically a call of an `async fn`, which may
/// start servers or create directories that live as long as the backend's factory). Each
/// test runs on a multi-threaded tokio runtime of its own, so the caller needs no tokio
/// dependency for it. A skipped case (a capability the backend does not claim) passes and
/// prints why.
#[macro_export]
macro_rules! tests {
    ($name:ident, $backend:expr $(,)?) => {
        $crate::__with_case_names!(@stamp $name, $backend);
    };
}

/// Calls `__stamp!` with the given arguments and the name of every case, in run order. The
/// suite's own tests check that this list is exactly `cases()`.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_case_names {
    ($($args:tt)*) => {
        $crate::__stamp! { $($args)*; [
            read_your_write_is_byte_exact,
            empty_value_round_trips,
            large_value_round_trips,
            reads_and_listings_agree_on_every_field,
            missing_key_reads_as_not_found,
            overwrite_replaces_the_value,
            delete_removes_the_key,
            deleting_a_missing_key_is_fine,
            deleting_long_and_nested_keys_leaves_no_trace,
            metadata_round_trips,
            overwrite_replaces_the_metadata,
            oversized_metadata_is_rejected_and_writes_nothing,
            etag_changes_on_every_write,
            etag_changes_when_the_same_content_is_written_again,
            etag_agrees_between_set_get_metadata_and_list,
            only_if_new_writes_once,
            only_if_match_accepts_the_current_etag,
            only_if_match_rejects_a_stale_etag,
            only_if_match_rejects_a_missing_key,
            only_if_new_succeeds_after_delete,
            listing_is_exact_under_a_prefix,
            listing_pages_partition_the_set,
            listing_directories_mode_collapses_subtrees,
            listing_reflects_writes_and_deletes,
            a_full_last_page_has_no_next_cursor,
            malformed_cursors_and_page_sizes_are_invalid_input,
            paginated_walk_is_stable_under_concurrent_writes,
            paginated_walk_is_stable_under_concurrent_writes_across_instances,
            awkward_keys_round_trip_and_never_alias,
            longest_key_round_trips,
            invalid_keys_are_rejected_as_invalid_input,
            awkward_keys_work_through_every_operation,
            key_length_limit_is_exact,
            metadata_size_limit_is_exact,
            streamed_values_round_trip,
            streamed_writes_over_max_size_write_nothing,
            streamed_writes_honour_conditions,
            streamed_size_bounds_are_exact_on_both_sides,
            every_value_and_metadata_shape_round_trips_through_every_path,
            every_value_and_metadata_shape_is_read_alike_across_instances,
            writes_are_visible_across_instances,
            updates_are_visible_across_instances,
            deletes_are_visible_across_instances,
            metadata_is_visible_across_instances,
            etags_agree_across_instances,
            only_if_new_is_checked_across_instances,
            only_if_match_is_checked_across_instances,
            listing_is_complete_across_instances,
            only_if_new_has_a_single_winner,
            only_if_new_has_a_single_winner_across_instances,
            only_if_match_has_a_single_winner,
            only_if_match_has_a_single_winner_across_instances,
            compare_and_swap_loses_no_update,
            compare_and_swap_loses_no_update_across_instances,
            deletes_racing_updates_leave_no_ghost_across_instances,
            readers_never_see_a_partial_value_across_instances,
            concurrent_histories_are_linearizable,
            concurrent_histories_are_linearizable_across_instances,
            blob_operations_match_the_model,
            blob_operations_match_the_model_across_instances,
            instance_killed_mid_write_tears_nothing_and_frees_its_jobs,
            job_lifecycle_allows_only_legal_transitions,
            job_create_with_caller_id_is_idempotent,
            expired_lease_can_be_reclaimed,
            deleted_job_stays_deleted,
            ttl_expired_jobs_are_hidden_and_purged,
            job_listing_filters_by_status_and_kind,
            lease_expiry_is_exact,
            ttl_expiry_is_exact,
            job_listing_pages_cover_every_job_once,
            awkward_job_ids_work_through_every_operation,
            job_updates_apply_one_change_at_a_time,
            job_created_on_one_instance_is_found_on_another,
            job_progress_is_visible_across_instances,
            expired_lease_can_be_reclaimed_across_instances,
            deleted_job_stays_deleted_across_instances,
            ttl_purge_works_across_instances,
            job_create_with_caller_id_is_idempotent_across_instances,
            job_listing_is_complete_across_instances,
            job_updates_apply_one_change_at_a_time_across_instances,
            claim_is_exclusive,
            claim_is_exclusive_across_instances,
            an_expired_lease_is_reclaimed_by_one_worker_across_instances,
            racing_claim_and_cancel_have_one_order_across_instances,
            racing_progress_and_succeed_lose_no_update_across_instances,
            racing_progress_and_cancel_lose_no_update_across_instances,
            racing_succeed_and_fail_have_one_winner_across_instances,
            racing_finish_and_cancel_have_one_winner_across_instances,
            racing_updates_and_a_delete_leave_the_job_deleted_across_instances,
            racing_creates_with_one_id_make_one_job_across_instances,
            job_operations_match_the_model,
            job_operations_match_the_model_across_instances,
        ] }
    };
}

/// The two uses of the case list: stamping tests, and (for the suite's own check) the names.
#[doc(hidden)]
#[macro_export]
macro_rules! __stamp {
    (@names; [$($case:ident),* $(,)?]) => {
        &[$(stringify!($case)),*]
    };
    (@stamp $name:ident, $backend:expr; [$($case:ident),* $(,)?]) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn __blobjobs_conformance_backend() -> $crate::Backend {
                $backend.await
            }

            $(
                #[test]
                fn $case() {
                    $crate::__private::run_stamped(
                        stringify!($case),
                        __blobjobs_conformance_backend,
                    );
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use crate::case::Case;

    #[test]
    fn the_stamped_list_is_every_case_in_run_order() {
        let stamped: &[&str] = crate::__with_case_names!(@names);
        let mut all: Vec<Case> = crate::cases::blob();
        all.extend(crate::cases::jobs());
        let names: Vec<&str> = all.iter().map(|c| c.name).collect();
        assert_eq!(stamped, names.as_slice());
    }
}

//! The promise catalogue: every behaviour the `BlobStore` and `JobStore` traits document and
//! every invariant of the design that a store can break, each mapped to the cases that fail
//! a store breaking it.
//!
//! [`promises()`] is the catalogue as data (`blobs-conformance --list` prints it);
//! [`markdown()`] renders it as the table in the crate's `PROMISES.md`, which a test keeps
//! equal to the data. The suite's own tests check that every promise has a case and every
//! case checks a promise: a promise without a case is a gap to close, not a row to leave.
//!
//! Two invariants of the design are not behaviours of a store and have no row: that the
//! memory backend is correct inside one instance and isolated across instances (the suite's
//! own tests assert it, as the negative control), and that the engines tests need are
//! installed and started by the project's scripts.

use serde::Serialize;

use crate::causes;

/// One documented behaviour and the cases that check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Promise {
    /// A short stable id, such as `blob.etag.changes`.
    pub id: &'static str,
    /// Where it is promised: a trait method, a type, or `DESIGN.md`.
    pub source: &'static str,
    /// The promise, in one sentence.
    pub text: &'static str,
    /// The likely cause (one of [`crate::causes`]) a failure of these cases is reported
    /// under, unless the failure names a more specific one.
    pub cause: &'static str,
    /// The cases that fail a store breaking it.
    pub cases: &'static [&'static str],
}

/// Every promise, in catalogue order.
pub fn promises() -> &'static [Promise] {
    PROMISES
}

/// The catalogue as a Markdown table: one row per promise with where it is promised and the
/// cases that check it.
pub fn markdown() -> String {
    let mut out = String::from(
        "| promise | promised by | the cases that fail a store breaking it |\n|---|---|---|\n",
    );
    for p in PROMISES {
        let cases: Vec<String> = p.cases.iter().map(|c| format!("`{c}`")).collect();
        out.push_str(&format!(
            "| **{}**: {} | {} | {} |\n",
            p.id,
            p.text.replace('|', "\\|"),
            p.source,
            cases.join(", ")
        ));
    }
    out
}

/// The promises that `case` checks, in catalogue order.
pub fn of_case(case: &str) -> Vec<&'static Promise> {
    PROMISES
        .iter()
        .filter(|p| p.cases.contains(&case))
        .collect()
}

/// The cause of the first promise that lists `case`.
pub(crate) fn default_cause(case: &str) -> Option<&'static str> {
    PROMISES
        .iter()
        .find(|p| p.cases.contains(&case))
        .map(|p| p.cause)
}

const PROMISES: &[Promise] = &[
    Promise {
        id: "jobs.shared",
        source: "DESIGN.md (the problem; instances), JobStore",
        text: "a job one instance creates, every other instance finds, changes and lists (the seed's bug is \"job not found\" in the next instance)",
        cause: causes::NOT_VISIBLE_ACROSS_INSTANCES,
        cases: &[
            "job_created_on_one_instance_is_found_on_another",
            "job_progress_is_visible_across_instances",
            "expired_lease_can_be_reclaimed_across_instances",
            "deleted_job_stays_deleted_across_instances",
            "ttl_purge_works_across_instances",
            "job_create_with_caller_id_is_idempotent_across_instances",
            "job_listing_is_complete_across_instances",
            "job_operations_match_the_model_across_instances",
        ],
    },
    Promise {
        id: "blob.shared",
        source: "DESIGN.md (instances), BlobStore",
        text: "what one instance writes, deletes or lists, every other instance built from the same configuration reads at once",
        cause: causes::NOT_VISIBLE_ACROSS_INSTANCES,
        cases: &[
            "writes_are_visible_across_instances",
            "updates_are_visible_across_instances",
            "deletes_are_visible_across_instances",
            "metadata_is_visible_across_instances",
            "etags_agree_across_instances",
            "only_if_new_is_checked_across_instances",
            "only_if_match_is_checked_across_instances",
            "listing_is_complete_across_instances",
            "paginated_walk_is_stable_under_concurrent_writes_across_instances",
            "every_value_and_metadata_shape_is_read_alike_across_instances",
            "blob_operations_match_the_model_across_instances",
        ],
    },
    Promise {
        id: "blob.get.exact",
        source: "BlobStore::get, Blob::value",
        text: "get returns the bytes exactly as written: empty, one byte, every byte value, multi-page and large values",
        cause: causes::VALUES_NOT_EXACT,
        cases: &[
            "read_your_write_is_byte_exact",
            "empty_value_round_trips",
            "large_value_round_trips",
            "every_value_and_metadata_shape_round_trips_through_every_path",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.get.missing",
        source: "BlobStore::get, BlobStore::get_metadata",
        text: "a key that does not exist reads as none, from get and from get_metadata",
        cause: causes::DELETES_UNDONE,
        cases: &[
            "missing_key_reads_as_not_found",
            "delete_removes_the_key",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.get_metadata",
        source: "BlobStore::get_metadata, BlobInfo",
        text: "get_metadata is get without the value: the same ETag, metadata, size and time",
        cause: causes::ETAGS_DISAGREE,
        cases: &[
            "reads_and_listings_agree_on_every_field",
            "every_value_and_metadata_shape_round_trips_through_every_path",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.set.replaces",
        source: "BlobStore::set",
        text: "a write replaces the value of a key whole",
        cause: causes::VALUES_NOT_EXACT,
        cases: &[
            "overwrite_replaces_the_value",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.metadata",
        source: "SetOptions::metadata, BlobInfo::metadata",
        text: "metadata (absent, {}, nested, unicode, at the size limit) is stored with the value, read back exactly, and replaced, never merged, by the next write",
        cause: causes::METADATA_ALTERED,
        cases: &[
            "metadata_round_trips",
            "overwrite_replaces_the_metadata",
            "every_value_and_metadata_shape_round_trips_through_every_path",
            "metadata_size_limit_is_exact",
        ],
    },
    Promise {
        id: "blob.set.whole",
        source: "BlobStore::set, DESIGN.md (durability)",
        text: "value and metadata change together: a reader sees the old version or the new one, never part of one",
        cause: causes::PARTIAL_VALUES,
        cases: &[
            "readers_never_see_a_partial_value_across_instances",
            "concurrent_histories_are_linearizable",
            "concurrent_histories_are_linearizable_across_instances",
        ],
    },
    Promise {
        id: "blob.if_new",
        source: "Condition::IfNew",
        text: "only-if-new writes only when the key does not exist, including after a delete, and writes nothing otherwise",
        cause: causes::CONDITIONS_IGNORED,
        cases: &[
            "only_if_new_writes_once",
            "only_if_new_succeeds_after_delete",
            "streamed_writes_honour_conditions",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.if_match",
        source: "Condition::IfMatch",
        text: "only-if-match writes only when the key exists with exactly that ETag; a stale, invented or deleted key's ETag writes nothing",
        cause: causes::CONDITIONS_IGNORED,
        cases: &[
            "only_if_match_accepts_the_current_etag",
            "only_if_match_rejects_a_stale_etag",
            "only_if_match_rejects_a_missing_key",
            "streamed_writes_honour_conditions",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.conditions.atomic",
        source: "BlobStore::set, DESIGN.md (compare-and-swap)",
        text: "conditional writes are atomic: of racing only-if-new or only-if-match writes exactly one wins, no compare-and-swap update is lost, a delete is not undone by a racing update, and every history is linearizable",
        cause: causes::CONDITIONS_NOT_ATOMIC,
        cases: &[
            "only_if_new_has_a_single_winner",
            "only_if_new_has_a_single_winner_across_instances",
            "only_if_match_has_a_single_winner",
            "only_if_match_has_a_single_winner_across_instances",
            "compare_and_swap_loses_no_update",
            "compare_and_swap_loses_no_update_across_instances",
            "deletes_racing_updates_leave_no_ghost_across_instances",
            "concurrent_histories_are_linearizable",
            "concurrent_histories_are_linearizable_across_instances",
        ],
    },
    Promise {
        id: "blob.etag.changes",
        source: "Etag, DESIGN.md (ETags)",
        text: "the ETag changes on every successful write, identical content included, and never comes back for a key",
        cause: causes::ETAGS_REUSED,
        cases: &[
            "etag_changes_on_every_write",
            "etag_changes_when_the_same_content_is_written_again",
            "only_if_match_accepts_the_current_etag",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.etag.agrees",
        source: "SetOutcome::Written, ListEntry::etag",
        text: "the ETag a write returns is the one get, get_metadata, get_stream and listings report, on every instance",
        cause: causes::ETAGS_DISAGREE,
        cases: &[
            "etag_agrees_between_set_get_metadata_and_list",
            "etags_agree_across_instances",
            "reads_and_listings_agree_on_every_field",
            "every_value_and_metadata_shape_round_trips_through_every_path",
        ],
    },
    Promise {
        id: "blob.delete",
        source: "BlobStore::delete",
        text: "delete removes a key from reads and listings; deleting a missing key, however deep, is not an error; the key can be written again",
        cause: causes::DELETES_UNDONE,
        cases: &[
            "delete_removes_the_key",
            "deleting_a_missing_key_is_fine",
            "deleting_long_and_nested_keys_leaves_no_trace",
            "deletes_are_visible_across_instances",
        ],
    },
    Promise {
        id: "blob.list.prefix",
        source: "BlobStore::list, ListOptions::prefix, ListPage",
        text: "a listing holds exactly the keys under its prefix, in ascending byte order, and follows writes and deletes",
        cause: causes::LISTINGS_WRONG,
        cases: &[
            "listing_is_exact_under_a_prefix",
            "listing_reflects_writes_and_deletes",
            "awkward_keys_round_trip_and_never_alias",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.list.pages",
        source: "ListOptions::page_size, ListOptions::cursor, ListPage::next_cursor",
        text: "pages hold at most page_size entries, partition the listing, end without a cursor (also when the last page is full), and keep every key that exists throughout a walk exactly once",
        cause: causes::LISTINGS_WRONG,
        cases: &[
            "listing_pages_partition_the_set",
            "a_full_last_page_has_no_next_cursor",
            "paginated_walk_is_stable_under_concurrent_writes",
            "paginated_walk_is_stable_under_concurrent_writes_across_instances",
        ],
    },
    Promise {
        id: "blob.list.directories",
        source: "ListOptions::directories",
        text: "directories mode collapses keys with a further / into directory names, each once across pages",
        cause: causes::LISTINGS_WRONG,
        cases: &[
            "listing_directories_mode_collapses_subtrees",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.list.fields",
        source: "ListEntry",
        text: "a listed entry's ETag, size and time agree with what get reports",
        cause: causes::LISTINGS_WRONG,
        cases: &[
            "reads_and_listings_agree_on_every_field",
            "every_value_and_metadata_shape_round_trips_through_every_path",
        ],
    },
    Promise {
        id: "blob.keys.exact",
        source: "BlobStore, validate_key",
        text: "every valid key is stored as given (slashes, dots, percent signs, unicode, control characters, the longest) and never aliases another, through every operation",
        cause: causes::KEYS_MANGLED,
        cases: &[
            "awkward_keys_round_trip_and_never_alias",
            "awkward_keys_work_through_every_operation",
            "longest_key_round_trips",
        ],
    },
    Promise {
        id: "blob.input.invalid",
        source: "BlobStore, validate_key, validate_metadata, DESIGN.md (bad input)",
        text: "bad input (an empty or leading-slash key, a key or metadata over the limit, a bad cursor, page size 0) is refused as invalid input by every operation and writes nothing",
        cause: causes::BAD_INPUT_ACCEPTED,
        cases: &[
            "invalid_keys_are_rejected_as_invalid_input",
            "malformed_cursors_and_page_sizes_are_invalid_input",
            "oversized_metadata_is_rejected_and_writes_nothing",
            "key_length_limit_is_exact",
            "metadata_size_limit_is_exact",
        ],
    },
    Promise {
        id: "blob.limits.exact",
        source: "MAX_KEY_BYTES, MAX_METADATA_JSON_BYTES",
        text: "the key and metadata limits are exact and count bytes: one byte under and at the limit are taken, one, two and many bytes over are refused",
        cause: causes::LIMITS_WRONG,
        cases: &[
            "key_length_limit_is_exact",
            "metadata_size_limit_is_exact",
            "longest_key_round_trips",
        ],
    },
    Promise {
        id: "blob.stream.same",
        source: "BlobStore::get_stream, BlobStore::set_stream",
        text: "streamed reads and writes carry the same value, metadata and ETag as whole ones, and honour write conditions",
        cause: causes::STREAMS_DIFFER,
        cases: &[
            "streamed_values_round_trip",
            "streamed_writes_honour_conditions",
            "every_value_and_metadata_shape_round_trips_through_every_path",
            "blob_operations_match_the_model",
        ],
    },
    Promise {
        id: "blob.stream.max_size",
        source: "BlobStore::set_stream",
        text: "a streamed body longer than max_size fails as too large and writes nothing; one of exactly max_size is taken",
        cause: causes::LIMITS_WRONG,
        cases: &[
            "streamed_writes_over_max_size_write_nothing",
            "streamed_size_bounds_are_exact_on_both_sides",
        ],
    },
    Promise {
        id: "crash.safe",
        source: "DESIGN.md (durability), BlobStore::set, JobStore::claim",
        text: "an instance killed mid-write leaves no torn value and loses no write it acknowledged, and its job can be claimed by another instance once its lease has run out",
        cause: causes::PARTIAL_VALUES,
        cases: &["instance_killed_mid_write_tears_nothing_and_frees_its_jobs"],
    },
    Promise {
        id: "settle.deletes_stay",
        source: "DESIGN.md (durability), BlobStore::delete, JobStore::delete",
        text: "once the store has settled, no deleted key or job comes back",
        cause: causes::DELETES_UNDONE,
        cases: &[
            "blob_operations_match_the_model",
            "blob_operations_match_the_model_across_instances",
            "deletes_racing_updates_leave_no_ghost_across_instances",
            "concurrent_histories_are_linearizable_across_instances",
            "job_operations_match_the_model",
            "job_operations_match_the_model_across_instances",
            "racing_updates_and_a_delete_leave_the_job_deleted_across_instances",
        ],
    },
    Promise {
        id: "settle.writes_stay",
        source: "DESIGN.md (durability), SetOutcome::Written",
        text: "once the store has settled, every acknowledged write and job change is still there, on a fresh instance",
        cause: causes::WRITES_LOST,
        cases: &[
            "blob_operations_match_the_model",
            "blob_operations_match_the_model_across_instances",
            "only_if_new_has_a_single_winner_across_instances",
            "only_if_match_has_a_single_winner_across_instances",
            "compare_and_swap_loses_no_update_across_instances",
            "readers_never_see_a_partial_value_across_instances",
            "job_operations_match_the_model_across_instances",
            "claim_is_exclusive_across_instances",
            "job_updates_apply_one_change_at_a_time_across_instances",
        ],
    },
    Promise {
        id: "settle.listings_agree",
        source: "BlobStore::list, JobStore::list",
        text: "once the store has settled, listings (of keys and of jobs) agree with reads",
        cause: causes::LISTINGS_WRONG,
        cases: &[
            "blob_operations_match_the_model",
            "blob_operations_match_the_model_across_instances",
            "concurrent_histories_are_linearizable",
            "job_operations_match_the_model",
            "job_operations_match_the_model_across_instances",
        ],
    },
    Promise {
        id: "jobs.create",
        source: "JobStore::create, Job",
        text: "create makes a pending job with no attempts, the given kind, input and TTL, and an id of its own when none is given",
        cause: causes::LIFECYCLE_BROKEN,
        cases: &[
            "job_lifecycle_allows_only_legal_transitions",
            "job_create_with_caller_id_is_idempotent",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.create.idempotent",
        source: "JobStore::create",
        text: "creating with a caller's id that exists returns the existing job unchanged (another kind is invalid input), also when the creates race on several instances",
        cause: causes::CREATE_NOT_IDEMPOTENT,
        cases: &[
            "job_create_with_caller_id_is_idempotent",
            "job_create_with_caller_id_is_idempotent_across_instances",
            "racing_creates_with_one_id_make_one_job_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.get",
        source: "JobStore::get",
        text: "get returns the job, or none when it does not exist or its TTL has run out",
        cause: causes::TTLS_WRONG,
        cases: &[
            "deleted_job_stays_deleted",
            "ttl_expired_jobs_are_hidden_and_purged",
            "ttl_expiry_is_exact",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.update",
        source: "JobStore::update",
        text: "update applies a change as one atomic read-modify-write: racing changes are all kept, a change that fails aborts and leaves the job as it was, a change of the id is refused",
        cause: causes::JOB_UPDATES_LOST,
        cases: &[
            "job_updates_apply_one_change_at_a_time",
            "job_updates_apply_one_change_at_a_time_across_instances",
        ],
    },
    Promise {
        id: "jobs.claim.exclusive",
        source: "JobStore::claim",
        text: "of several concurrent claimants exactly one wins; the others get lease_held",
        cause: causes::CLAIMS_NOT_EXCLUSIVE,
        cases: &[
            "claim_is_exclusive",
            "claim_is_exclusive_across_instances",
            "an_expired_lease_is_reclaimed_by_one_worker_across_instances",
            "racing_claim_and_cancel_have_one_order_across_instances",
        ],
    },
    Promise {
        id: "jobs.claim.lease",
        source: "JobStore::claim, Lease",
        text: "a claim takes a pending job, or a running one whose lease has run out (held before its end to the millisecond, claimable from it on), and counts an attempt",
        cause: causes::LEASES_WRONG,
        cases: &[
            "expired_lease_can_be_reclaimed",
            "expired_lease_can_be_reclaimed_across_instances",
            "lease_expiry_is_exact",
            "an_expired_lease_is_reclaimed_by_one_worker_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.owner",
        source: "JobStore::progress, JobStore::succeed, JobStore::fail",
        text: "progress, succeed and fail are allowed only to the lease's owner on a running job (lease_held or illegal_transition otherwise); a worker that lost its lease to a reclaim can no longer finish",
        cause: causes::LIFECYCLE_BROKEN,
        cases: &[
            "job_lifecycle_allows_only_legal_transitions",
            "expired_lease_can_be_reclaimed",
            "expired_lease_can_be_reclaimed_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.lifecycle",
        source: "JobStatus::can_become, JobStore::cancel",
        text: "a job moves only along the lifecycle (pending, running, then succeeded, failed or cancelled); terminal statuses never change, also when finishing and cancelling race",
        cause: causes::LIFECYCLE_BROKEN,
        cases: &[
            "job_lifecycle_allows_only_legal_transitions",
            "racing_succeed_and_fail_have_one_winner_across_instances",
            "racing_finish_and_cancel_have_one_winner_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.no_lost_update",
        source: "DESIGN.md (compare-and-swap), JobStore",
        text: "every change of a job is a compare-and-swap: of racing changes from several instances none is lost, and some order of them explains every result",
        cause: causes::JOB_UPDATES_LOST,
        cases: &[
            "racing_claim_and_cancel_have_one_order_across_instances",
            "racing_progress_and_succeed_lose_no_update_across_instances",
            "racing_progress_and_cancel_lose_no_update_across_instances",
            "racing_succeed_and_fail_have_one_winner_across_instances",
            "racing_finish_and_cancel_have_one_winner_across_instances",
            "racing_updates_and_a_delete_leave_the_job_deleted_across_instances",
            "job_updates_apply_one_change_at_a_time_across_instances",
        ],
    },
    Promise {
        id: "jobs.delete",
        source: "JobStore::delete",
        text: "delete removes a job and says whether it existed; a deleted job stays deleted, also when updates race the delete",
        cause: causes::DELETES_UNDONE,
        cases: &[
            "deleted_job_stays_deleted",
            "deleted_job_stays_deleted_across_instances",
            "racing_updates_and_a_delete_leave_the_job_deleted_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.list",
        source: "JobStore::list, JobFilter, JobPage",
        text: "a listing pages through every live job once, in id order (creation order for generated ids), filtered by status and kind, each job whole and current",
        cause: causes::JOB_LISTINGS_WRONG,
        cases: &[
            "job_listing_filters_by_status_and_kind",
            "job_listing_pages_cover_every_job_once",
            "job_listing_is_complete_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.ttl",
        source: "NewJob::ttl, JobStore::purge_expired",
        text: "a TTL hides a job from the moment it runs out (to the millisecond), and purge_expired deletes and counts exactly the expired jobs",
        cause: causes::TTLS_WRONG,
        cases: &[
            "ttl_expired_jobs_are_hidden_and_purged",
            "ttl_expiry_is_exact",
            "ttl_purge_works_across_instances",
            "job_operations_match_the_model",
        ],
    },
    Promise {
        id: "jobs.ids",
        source: "JobId",
        text: "every valid job id (letters, digits, dots, dashes and underscores, up to 128 characters) works through every operation and never aliases another",
        cause: causes::KEYS_MANGLED,
        cases: &["awkward_job_ids_work_through_every_operation"],
    },
    Promise {
        id: "design.any_job_store",
        source: "DESIGN.md (one job layer)",
        text: "the suite grades a team's own JobStore exactly as the project's own job layer: every job case, model and race runs against any job-store factory",
        cause: causes::LIFECYCLE_BROKEN,
        cases: &[
            "job_operations_match_the_model",
            "job_operations_match_the_model_across_instances",
        ],
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_promise_has_a_case_and_every_case_a_promise() {
        let cases: BTreeSet<&str> = crate::cases().iter().map(|c| c.name).collect();
        let mut ids = BTreeSet::new();
        for p in promises() {
            assert!(ids.insert(p.id), "the promise {} is listed twice", p.id);
            assert!(
                !p.cases.is_empty(),
                "the promise {} has no case: a gap",
                p.id
            );
            for c in p.cases {
                assert!(cases.contains(c), "the promise {} names no case {c}", p.id);
            }
            assert!(
                causes::ALL.contains(&p.cause),
                "the promise {} names an unknown cause",
                p.id
            );
        }
        for c in &cases {
            assert!(
                !of_case(c).is_empty(),
                "the case {c} checks no promise of the catalogue"
            );
        }
    }

    #[test]
    fn the_promises_file_is_the_catalogue() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("PROMISES.md");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let table = markdown();
        if std::env::var_os("BLOBJOBS_WRITE_PROMISES").is_some() {
            let (head, _) = text
                .split_once("| promise |")
                .unwrap_or((text.as_str(), ""));
            std::fs::write(&path, format!("{head}{table}")).unwrap_or_else(|e| panic!("{e}"));
            return;
        }
        assert!(
            text.ends_with(&table),
            "PROMISES.md is out of date with promises::PROMISES; rewrite its table with \
             BLOBJOBS_WRITE_PROMISES=1 cargo test -p blobjobs-conformance --lib promises"
        );
    }
}

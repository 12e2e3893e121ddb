//! The job lifecycle through the one generic job layer: legal transitions only, idempotent
//! creation, leases, deletes that stay deleted, TTLs, and all of it across instances. One
//! area, `jobs`, whose cases live by topic in `lifecycle.rs`, `expiry.rs` (leases and TTLs),
//! `listing.rs` and `updates.rs`; this file lists them in run order and holds the helpers
//! they share.

mod expiry;
mod lifecycle;
mod listing;
mod updates;

use std::time::Duration;

use blobjobs_store_api::{Job, JobId};

use expiry::{
    expired_lease_can_be_reclaimed, expired_lease_can_be_reclaimed_across_instances,
    lease_expiry_is_exact, ttl_expired_jobs_are_hidden_and_purged, ttl_expiry_is_exact,
    ttl_purge_works_across_instances,
};
use lifecycle::{
    awkward_job_ids_work_through_every_operation, deleted_job_stays_deleted,
    deleted_job_stays_deleted_across_instances, job_create_with_caller_id_is_idempotent,
    job_create_with_caller_id_is_idempotent_across_instances,
    job_created_on_one_instance_is_found_on_another, job_lifecycle_allows_only_legal_transitions,
    job_progress_is_visible_across_instances,
};
use listing::{
    job_listing_filters_by_status_and_kind, job_listing_is_complete_across_instances,
    job_listing_pages_cover_every_job_once,
};
use updates::{
    job_updates_apply_one_change_at_a_time, job_updates_apply_one_change_at_a_time_across_instances,
};

pub(crate) use crate::case::expect_kind;
use crate::case::{Case, case};
use crate::causes;
use crate::ctx::{Ctx, Failure, JobHandle};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "jobs",
            job_lifecycle_allows_only_legal_transitions,
            SingleInstance
        ),
        case!(
            "jobs",
            job_create_with_caller_id_is_idempotent,
            SingleInstance
        ),
        case!("jobs", expired_lease_can_be_reclaimed, SingleInstance),
        case!("jobs", deleted_job_stays_deleted, SingleInstance),
        case!(
            "jobs",
            ttl_expired_jobs_are_hidden_and_purged,
            SingleInstance
        ),
        case!(
            "jobs",
            job_listing_filters_by_status_and_kind,
            SingleInstance
        ),
        case!("jobs", lease_expiry_is_exact, SingleInstance),
        case!("jobs", ttl_expiry_is_exact, SingleInstance),
        case!(
            "jobs",
            job_listing_pages_cover_every_job_once,
            SingleInstance
        ),
        case!(
            "jobs",
            awkward_job_ids_work_through_every_operation,
            SingleInstance
        ),
        case!(
            "jobs",
            job_updates_apply_one_change_at_a_time,
            SingleInstance
        ),
        case!(
            "jobs",
            job_created_on_one_instance_is_found_on_another,
            CrossInstance
        ),
        case!(
            "jobs",
            job_progress_is_visible_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            expired_lease_can_be_reclaimed_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            deleted_job_stays_deleted_across_instances,
            CrossInstance
        ),
        case!("jobs", ttl_purge_works_across_instances, CrossInstance),
        case!(
            "jobs",
            job_create_with_caller_id_is_idempotent_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            job_listing_is_complete_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            job_updates_apply_one_change_at_a_time_across_instances,
            CrossInstance
        ),
    ]
}

pub(crate) fn id(s: &str) -> Result<JobId, Failure> {
    JobId::new(s).map_err(Failure::from)
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Reads a job that must exist: `reader` polls the job `creator` created. Not finding it is
/// the seed's bug when the two are different instances.
pub(crate) async fn must_get(
    reader: &JobHandle,
    job: &JobId,
    creator: &JobHandle,
) -> Result<Job, Failure> {
    match reader.get(job).await? {
        Some(found) => Ok(found),
        None if reader.id == creator.id => Err(Failure::new(format!(
            "instance {} polled job {job}, which it created itself: not found",
            reader.id
        ))),
        None => Err(Failure::new(format!(
            "instance {} polled job {job} created by instance {}: not found",
            reader.id, creator.id
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
    }
}

/// The job layers of three new instances.
async fn jobs_on_three_instances(ctx: &Ctx) -> Result<[JobHandle; 3], Failure> {
    let jobs: Vec<JobHandle> = ctx.job_instances(3).await?;
    <[_; 3]>::try_from(jobs).map_err(|_| Failure::new("could not open three instances"))
}

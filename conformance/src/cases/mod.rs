//! The case library, one area per file or folder. Each case is named as the behaviour it
//! checks and is tagged single-instance or cross-instance.

pub(crate) mod blob_model;
pub(crate) mod blob_rw;
pub(crate) mod concurrency;
pub(crate) mod conditions;
pub(crate) mod crash;
pub(crate) mod cross_instance;
pub(crate) mod jobs;
pub(crate) mod jobs_concurrency;
pub(crate) mod jobs_model;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod listing;
pub(crate) mod shapes;
pub(crate) mod streams;

use crate::case::Case;

/// The blob-store cases, in run order.
pub(crate) fn blob() -> Vec<Case> {
    let mut all = blob_rw::cases();
    all.extend(conditions::cases());
    all.extend(listing::cases());
    all.extend(keys::cases());
    all.extend(limits::cases());
    all.extend(streams::cases());
    all.extend(shapes::cases());
    all.extend(cross_instance::cases());
    all.extend(concurrency::cases());
    all.extend(blob_model::cases());
    all.extend(crash::cases());
    all
}

/// The job-store cases, in run order.
pub(crate) fn jobs() -> Vec<Case> {
    let mut all = jobs::cases();
    all.extend(jobs_concurrency::cases());
    all.extend(jobs_model::cases());
    all
}

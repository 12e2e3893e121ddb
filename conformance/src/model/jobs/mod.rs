//! The reference model of the job lifecycle, written independently of the job layer, and its
//! state machine over instances that share one manual clock; `replay.rs` performs its
//! actions on real job stores and compares.

mod replay;

use std::collections::BTreeMap;

use blobjobs_store_api::{ErrorKind, Job, JobId, JobStatus, Lease, Progress, Timestamp};
use proptest::prelude::*;
use proptest::sample::select;
use proptest_state_machine::ReferenceStateMachine;
use serde::{Deserialize, Serialize};
use serde_json::json;

pub(crate) use replay::{describe_action, execute, perform, show};

use super::{SequentialStrategy, weighted};
use crate::ctx::CLOCK_START_MS;

/// The job ids sequences use.
pub const MODEL_JOB_IDS: [&str; 3] = ["j1", "j2", "j3"];
/// The worker names sequences use.
pub const MODEL_OWNERS: [&str; 3] = ["w0", "w1", "w2"];
const KINDS: [&str; 2] = ["extract", "report"];

/// One job operation of a sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JobAction {
    /// Create with a caller-chosen id, input `{"label": label}` and an optional TTL.
    Create {
        /// The id.
        id: String,
        /// The kind.
        kind: String,
        /// The TTL in milliseconds.
        ttl_ms: Option<u64>,
        /// Names the input.
        label: u32,
    },
    /// Read a job.
    Get {
        /// The id.
        id: String,
    },
    /// Claim for `owner`.
    Claim {
        /// The id.
        id: String,
        /// The worker.
        owner: String,
        /// The lease in milliseconds.
        lease_ms: u64,
    },
    /// Report progress.
    Progress {
        /// The id.
        id: String,
        /// The worker.
        owner: String,
        /// 0 to 100.
        percent: u8,
    },
    /// Finish with result `{"label": label}`.
    Succeed {
        /// The id.
        id: String,
        /// The worker.
        owner: String,
        /// Names the result.
        label: u32,
    },
    /// Finish with an error.
    Fail {
        /// The id.
        id: String,
        /// The worker.
        owner: String,
    },
    /// Cancel.
    Cancel {
        /// The id.
        id: String,
    },
    /// Delete.
    Delete {
        /// The id.
        id: String,
    },
    /// List (one page) with an optional status filter.
    List {
        /// The status filter.
        status: Option<JobStatus>,
    },
    /// Purge expired jobs.
    Purge,
    /// Move the shared clock forward (not tied to an instance).
    Advance {
        /// Milliseconds.
        ms: u64,
    },
}

/// A job operation and the instance that performs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStep {
    /// Which instance (0-based).
    pub instance: usize,
    /// What it does.
    pub action: JobAction,
}

/// The model: the jobs every instance should see, and the shared clock.
#[derive(Debug, Clone)]
pub struct JobModel {
    /// How many instances the sequence spreads over.
    pub instances: usize,
    now: u64,
    jobs: BTreeMap<String, Job>,
    labels: u32,
}

impl JobModel {
    /// An empty model with `instances` instances, at the suite's start time.
    pub fn new(instances: usize) -> Self {
        JobModel::starting_at(instances, CLOCK_START_MS)
    }

    /// An empty model with `instances` instances whose clock reads `now` (milliseconds since
    /// the Unix epoch).
    pub fn starting_at(instances: usize, now: u64) -> Self {
        JobModel {
            instances,
            now,
            jobs: BTreeMap::new(),
            labels: 0,
        }
    }
}

/// What the model says an operation returns (and, for a real store, what it returned).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expect {
    Job(Box<Job>),
    Missing,
    Error(ErrorKind),
    Deleted(bool),
    Listed(Vec<Job>),
    Purged(usize),
    Advanced,
}

fn ts(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

impl JobModel {
    /// The model's clock, in milliseconds since the Unix epoch.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// The job `id` as a read must see it: present and not expired.
    pub(crate) fn live(&self, id: &str) -> Option<&Job> {
        let now = self.now;
        self.jobs
            .get(id)
            .filter(|j| j.expires_at.is_none_or(|t| t.as_millis() > now))
    }

    /// The owner check of progress, succeed and fail.
    fn owned(&self, id: &str, owner: &str) -> Result<(), Expect> {
        let Some(job) = self.live(id) else {
            return Err(Expect::Error(ErrorKind::NotFound));
        };
        if job.status != JobStatus::Running {
            return Err(Expect::Error(ErrorKind::IllegalTransition));
        }
        match &job.lease {
            Some(l) if l.owner == owner => Ok(()),
            _ => Err(Expect::Error(ErrorKind::LeaseHeld)),
        }
    }

    fn finish(&mut self, id: &str, f: impl FnOnce(&mut Job, u64)) -> Expect {
        let now = self.now;
        match self.jobs.get_mut(id) {
            Some(job) => {
                f(job, now);
                job.updated_at = ts(now);
                Expect::Job(Box::new(job.clone()))
            }
            None => Expect::Error(ErrorKind::NotFound),
        }
    }

    /// Applies `action` and says what it returns.
    pub(crate) fn step(&mut self, action: &JobAction) -> Expect {
        let now = self.now;
        match action {
            JobAction::Create {
                id,
                kind,
                ttl_ms,
                label,
            } => {
                if let Some(existing) = self.live(id) {
                    return if existing.kind == *kind {
                        Expect::Job(Box::new(existing.clone()))
                    } else {
                        Expect::Error(ErrorKind::InvalidInput)
                    };
                }
                let Ok(job_id) = JobId::new(id.clone()) else {
                    return Expect::Error(ErrorKind::InvalidInput);
                };
                let job = Job {
                    id: job_id,
                    kind: kind.clone(),
                    status: JobStatus::Pending,
                    input: json!({ "label": label }),
                    progress: None,
                    result: None,
                    error: None,
                    attempts: 0,
                    lease: None,
                    created_at: ts(now),
                    updated_at: ts(now),
                    expires_at: ttl_ms.map(|t| ts(now + t)),
                };
                self.jobs.insert(id.clone(), job.clone());
                Expect::Job(Box::new(job))
            }
            JobAction::Get { id } => match self.live(id) {
                Some(j) => Expect::Job(Box::new(j.clone())),
                None => Expect::Missing,
            },
            JobAction::Claim {
                id,
                owner,
                lease_ms,
            } => {
                let Some(job) = self.live(id) else {
                    return Expect::Error(ErrorKind::NotFound);
                };
                let leased = job.status == JobStatus::Running
                    && job
                        .lease
                        .as_ref()
                        .is_some_and(|l| l.expires_at.as_millis() > now);
                if leased {
                    return Expect::Error(ErrorKind::LeaseHeld);
                }
                if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
                    return Expect::Error(ErrorKind::IllegalTransition);
                }
                self.finish(id, |job, now| {
                    job.status = JobStatus::Running;
                    job.attempts += 1;
                    job.lease = Some(Lease {
                        owner: owner.clone(),
                        expires_at: ts(now + lease_ms),
                    });
                })
            }
            JobAction::Progress { id, owner, percent } => {
                if let Err(e) = self.owned(id, owner) {
                    return e;
                }
                self.finish(id, |job, _| {
                    job.progress = Some(Progress {
                        percent: *percent,
                        message: Some(progress_message(*percent)),
                    });
                })
            }
            JobAction::Succeed { id, owner, label } => {
                if let Err(e) = self.owned(id, owner) {
                    return e;
                }
                self.finish(id, |job, _| {
                    job.status = JobStatus::Succeeded;
                    job.lease = None;
                    job.result = Some(json!({ "label": label }));
                    let message = job.progress.take().and_then(|p| p.message);
                    job.progress = Some(Progress {
                        percent: 100,
                        message,
                    });
                })
            }
            JobAction::Fail { id, owner } => {
                if let Err(e) = self.owned(id, owner) {
                    return e;
                }
                self.finish(id, |job, _| {
                    job.status = JobStatus::Failed;
                    job.lease = None;
                    job.error = Some(format!("failed by {owner}"));
                })
            }
            JobAction::Cancel { id } => {
                let Some(job) = self.live(id) else {
                    return Expect::Error(ErrorKind::NotFound);
                };
                if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
                    return Expect::Error(ErrorKind::IllegalTransition);
                }
                self.finish(id, |job, _| {
                    job.status = JobStatus::Cancelled;
                    job.lease = None;
                })
            }
            JobAction::Delete { id } => {
                let existed = self.live(id).is_some();
                self.jobs.remove(id);
                Expect::Deleted(existed)
            }
            JobAction::List { status } => {
                let jobs = self
                    .jobs
                    .keys()
                    .filter_map(|id| self.live(id))
                    .filter(|j| status.is_none_or(|s| j.status == s))
                    .cloned()
                    .collect();
                Expect::Listed(jobs)
            }
            JobAction::Purge => {
                let before = self.jobs.len();
                self.jobs
                    .retain(|_, j| j.expires_at.is_none_or(|t| t.as_millis() > now));
                Expect::Purged(before - self.jobs.len())
            }
            JobAction::Advance { ms } => {
                self.now += ms;
                Expect::Advanced
            }
        }
    }

    /// The state after `step` (the expected result is dropped).
    pub fn apply(mut self, step: &JobStep) -> Self {
        if let JobAction::Create { label, .. } | JobAction::Succeed { label, .. } = &step.action {
            self.labels = self.labels.max(label + 1);
        }
        self.step(&step.action);
        self
    }

    /// Whether `step` may follow in this state.
    pub fn accepts(&self, step: &JobStep) -> bool {
        step.instance < self.instances
    }

    /// Operations that may follow.
    pub fn transitions(&self) -> BoxedStrategy<JobStep> {
        let instance = 0..self.instances.max(1);
        let id = || select(MODEL_JOB_IDS.to_vec()).prop_map(str::to_owned);
        let owner = || select(MODEL_OWNERS.to_vec()).prop_map(str::to_owned);
        let label = self.labels;
        let create = (
            id(),
            prop_oneof![4 => Just(KINDS[0]), 1 => Just(KINDS[1])],
            proptest::option::weighted(0.3, select(vec![2_000u64, 10_000, 60_000])),
        )
            .prop_map(move |(id, kind, ttl_ms)| JobAction::Create {
                id,
                kind: kind.to_owned(),
                ttl_ms,
                label,
            })
            .boxed();
        let claim = (id(), owner(), select(vec![1_000u64, 5_000, 30_000]))
            .prop_map(|(id, owner, lease_ms)| JobAction::Claim {
                id,
                owner,
                lease_ms,
            })
            .boxed();
        let progress = (id(), owner(), 0u8..=100)
            .prop_map(|(id, owner, percent)| JobAction::Progress { id, owner, percent })
            .boxed();
        let succeed = (id(), owner())
            .prop_map(move |(id, owner)| JobAction::Succeed { id, owner, label })
            .boxed();
        let fail = (id(), owner())
            .prop_map(|(id, owner)| JobAction::Fail { id, owner })
            .boxed();
        let status = proptest::option::of(select(JobStatus::ALL.to_vec()));
        let action = weighted(vec![
            (4, create),
            (4, id().prop_map(|id| JobAction::Get { id }).boxed()),
            (4, claim),
            (1, progress),
            (2, succeed),
            (1, fail),
            (1, id().prop_map(|id| JobAction::Cancel { id }).boxed()),
            (1, id().prop_map(|id| JobAction::Delete { id }).boxed()),
            (
                1,
                status.prop_map(|status| JobAction::List { status }).boxed(),
            ),
            (1, Just(JobAction::Purge).boxed()),
            (
                2,
                select(vec![500u64, 1_500, 6_000, 40_000])
                    .prop_map(|ms| JobAction::Advance { ms })
                    .boxed(),
            ),
        ]);
        (instance, action)
            .prop_map(|(instance, action)| JobStep { instance, action })
            .boxed()
    }
}

/// The machine as `proptest-state-machine` sees it: 1 to 4 instances.
#[derive(Debug, Clone, Copy)]
pub struct JobMachine;

impl ReferenceStateMachine for JobMachine {
    type State = JobModel;
    type Transition = JobStep;

    fn init_state() -> BoxedStrategy<JobModel> {
        (1usize..=4).prop_map(JobModel::new).boxed()
    }

    fn transitions(state: &JobModel) -> BoxedStrategy<JobStep> {
        state.transitions()
    }

    fn apply(state: JobModel, step: &JobStep) -> JobModel {
        state.apply(step)
    }

    fn preconditions(state: &JobModel, step: &JobStep) -> bool {
        state.accepts(step)
    }
}

/// The sequential strategy for `instances` (an inclusive range).
pub(crate) fn strategy(
    instances: (usize, usize),
    max_ops: usize,
) -> SequentialStrategy<JobModel, JobStep> {
    SequentialStrategy::new(
        (1..=max_ops).into(),
        move || (instances.0..=instances.1).prop_map(JobModel::new).boxed(),
        |state: &JobModel, step: &JobStep| state.accepts(step),
        |state: &JobModel| state.transitions(),
        |state: JobModel, step: &JobStep| state.apply(step),
    )
}

/// The message a progress report of the model carries. A job's message outlives its
/// success (which sets the percentage to 100), so a progress report that a racing finish
/// overwrote shows.
fn progress_message(percent: u8) -> String {
    format!("at {percent}%")
}

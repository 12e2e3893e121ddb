//! The job layer over one instance as a case uses it: every call bounded in time and
//! recorded in the case's timeline at the job level, and a job another instance created
//! that this one does not find named for what it is.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{
    Error, ErrorKind, Job, JobFilter, JobId, JobPage, JobStore, NewJob, Result,
};
use serde_json::Value;

use super::limited;
use super::timeline::{Owners, Timeline, show_err, show_job};
use crate::causes;
use crate::probe::Probe;

/// The job layer over one instance, recorded in the timeline at the job level.
#[derive(Clone)]
pub(crate) struct JobHandle {
    pub(crate) id: usize,
    pub(crate) jobs: Arc<dyn JobStore>,
    pub(super) log: Arc<Timeline>,
    pub(super) op_timeout: Duration,
    pub(super) owners: Arc<Owners>,
    pub(super) probe: Arc<Probe>,
}

fn show_job_result(r: &Result<Job>) -> String {
    match r {
        Ok(job) => show_job(job),
        Err(e) => show_err(e),
    }
}

impl JobHandle {
    fn note(&self, what: String) {
        self.log.push(format!("instance {}: {what}", self.id));
    }

    fn job_key(id: &JobId) -> String {
        format!("job {id}")
    }

    /// Names a job another instance created and this one does not find: the seed's bug,
    /// told as its log told it ("instance 2 claimed job j1 created by instance 0: not
    /// found").
    fn lost(&self, id: &JobId, verb: &str, r: Result<Job>) -> Result<Job> {
        match r {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match self.owners.other_writer(&Self::job_key(id), self.id) {
                    Some(creator) => {
                        self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
                        Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "instance {} {verb} job {id} created by instance {creator}: not found",
                                self.id
                            ),
                        ))
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    pub(crate) async fn create(&self, new: NewJob) -> Result<Job> {
        let what = match &new.id {
            Some(id) => format!("create job {id} ({})", new.kind),
            None => format!("create job ({})", new.kind),
        };
        let r = limited(self.op_timeout, self.jobs.create(new)).await;
        if let Ok(job) = &r
            && self
                .owners
                .other_writer(&Self::job_key(&job.id), usize::MAX)
                .is_none()
        {
            self.owners.wrote(&Self::job_key(&job.id), self.id);
        }
        self.note(format!("{what} → {}", show_job_result(&r)));
        r
    }

    pub(crate) async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        let r = limited(self.op_timeout, self.jobs.get(id)).await;
        if let Ok(None) = &r
            && self
                .owners
                .other_writer(&Self::job_key(id), self.id)
                .is_some()
        {
            self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
        }
        let shown = match &r {
            Ok(Some(job)) => show_job(job),
            Ok(None) => "not found".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("get job {id} → {shown}"));
        r
    }

    pub(crate) async fn claim(&self, id: &JobId, owner: &str, lease: Duration) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.claim(id, owner, lease)).await;
        let r = self.lost(id, "claimed", r);
        self.note(format!(
            "claim job {id} as {owner} for {} ms → {}",
            lease.as_millis(),
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn progress(&self, id: &JobId, owner: &str, percent: u8) -> Result<Job> {
        let r = limited(
            self.op_timeout,
            self.jobs.progress(id, owner, percent, None),
        )
        .await;
        let r = self.lost(id, "reported progress on", r);
        self.note(format!(
            "progress job {id} as {owner} {percent}% → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn succeed(&self, id: &JobId, owner: &str, result: Value) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.succeed(id, owner, result)).await;
        let r = self.lost(id, "finished", r);
        self.note(format!(
            "succeed job {id} as {owner} → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn fail(&self, id: &JobId, owner: &str, error: &str) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.fail(id, owner, error.to_owned())).await;
        let r = self.lost(id, "failed", r);
        self.note(format!(
            "fail job {id} as {owner} → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn cancel(&self, id: &JobId) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.cancel(id)).await;
        let r = self.lost(id, "cancelled", r);
        self.note(format!("cancel job {id} → {}", show_job_result(&r)));
        r
    }

    pub(crate) async fn delete(&self, id: &JobId) -> Result<bool> {
        let r = limited(self.op_timeout, self.jobs.delete(id)).await;
        match &r {
            Ok(false)
                if self
                    .owners
                    .other_writer(&Self::job_key(id), self.id)
                    .is_some() =>
            {
                self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
            }
            Ok(_) => self.owners.deleted(&Self::job_key(id)),
            Err(_) => {}
        }
        let shown = match &r {
            Ok(existed) => format!("ok (existed: {existed})"),
            Err(e) => show_err(e),
        };
        self.note(format!("delete job {id} → {shown}"));
        r
    }

    pub(crate) async fn list(&self, filter: JobFilter) -> Result<JobPage> {
        let r = limited(self.op_timeout, self.jobs.list(filter)).await;
        let shown = match &r {
            Ok(page) => format!(
                "[{}]",
                page.jobs
                    .iter()
                    .map(show_job)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(e) => show_err(e),
        };
        self.note(format!("list jobs → {shown}"));
        r
    }

    /// [`JobStore::update`] with `change`, shown in the timeline as `what`.
    pub(crate) async fn update(
        &self,
        id: &JobId,
        what: &str,
        change: blobjobs_store_api::jobs::UpdateFn<'_>,
    ) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.update(id, change)).await;
        let r = self.lost(id, "updated", r);
        self.note(format!(
            "update job {id} ({what}) → {}",
            show_job_result(&r)
        ));
        r
    }

    /// A listing with `filter`, page by page, shown in the timeline page by page.
    pub(crate) async fn list_page(&self, filter: JobFilter) -> Result<JobPage> {
        let what = format!(
            "list jobs{}{}{}",
            filter
                .page_size
                .map(|n| format!(" page-size {n}"))
                .unwrap_or_default(),
            filter.status.map(|s| format!(" {s}")).unwrap_or_default(),
            if filter.cursor.is_some() {
                " (next page)"
            } else {
                ""
            }
        );
        let r = limited(self.op_timeout, self.jobs.list(filter)).await;
        let shown = match &r {
            Ok(page) => format!(
                "[{}]{}",
                page.jobs
                    .iter()
                    .map(|j| j.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if page.next_cursor.is_some() {
                    " more"
                } else {
                    ""
                }
            ),
            Err(e) => show_err(e),
        };
        self.note(format!("{what} → {shown}"));
        r
    }

    pub(crate) async fn purge_expired(&self) -> Result<usize> {
        let r = limited(self.op_timeout, self.jobs.purge_expired()).await;
        let shown = match &r {
            Ok(n) => format!("{n} purged"),
            Err(e) => show_err(e),
        };
        self.note(format!("purge expired jobs → {shown}"));
        r
    }
}

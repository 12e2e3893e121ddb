//! Performing the job model's actions on real job stores and replaying a generated sequence
//! against instances that share one manual clock: every result compared with the model's,
//! a mismatch told as the seed's log would tell it, and the final jobs left to the settle
//! check.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Job, JobFilter, JobId, JobStore, ManualClock, NewJob};
use serde_json::json;

use super::{Expect, JobAction, JobModel, JobStep, MODEL_JOB_IDS, progress_message, ts};
use crate::causes;
use crate::ctx::{CLOCK_START_MS, limited, show_job};
use crate::model::{Env, Mismatch};
use crate::settle::{Group, Reader};

/// One action in words, such as `claim job j1 as w0 for 1000 ms`.
pub(crate) fn describe_action(action: &JobAction) -> String {
    match action {
        JobAction::Create {
            id,
            kind,
            ttl_ms,
            label,
        } => format!(
            "create job {id} ({kind}, input {label}{})",
            ttl_ms.map(|t| format!(", ttl {t} ms")).unwrap_or_default()
        ),
        JobAction::Get { id } => format!("get job {id}"),
        JobAction::Claim {
            id,
            owner,
            lease_ms,
        } => format!("claim job {id} as {owner} for {lease_ms} ms"),
        JobAction::Progress { id, owner, percent } => {
            format!("progress job {id} as {owner} {percent}%")
        }
        JobAction::Succeed { id, owner, .. } => format!("succeed job {id} as {owner}"),
        JobAction::Fail { id, owner } => format!("fail job {id} as {owner}"),
        JobAction::Cancel { id } => format!("cancel job {id}"),
        JobAction::Delete { id } => format!("delete job {id}"),
        JobAction::List { status } => match status {
            Some(s) => format!("list {s} jobs"),
            None => "list jobs".to_owned(),
        },
        JobAction::Purge => "purge expired jobs".to_owned(),
        JobAction::Advance { ms } => format!("clock: advance {ms} ms"),
    }
}

fn describe(step: &JobStep) -> String {
    match &step.action {
        JobAction::Advance { .. } => describe_action(&step.action),
        other => format!("instance {}: {}", step.instance, describe_action(other)),
    }
}

/// An expected or observed result in words.
pub(crate) fn show(e: &Expect) -> String {
    match e {
        Expect::Job(j) => show_job(j),
        Expect::Missing => "not found".to_owned(),
        Expect::Error(k) => format!("error {k}"),
        Expect::Deleted(existed) => format!("ok (existed: {existed})"),
        Expect::Listed(jobs) => format!(
            "[{}]",
            jobs.iter().map(show_job).collect::<Vec<_>>().join("; ")
        ),
        Expect::Purged(n) => format!("{n} purged"),
        Expect::Advanced => "ok".to_owned(),
    }
}

/// The fields in which two jobs differ, as ` (input: {…} versus model {…}; …)`.
pub(crate) fn field_diff(got: &Job, want: &Job) -> String {
    let (Ok(serde_json::Value::Object(g)), Ok(serde_json::Value::Object(w))) =
        (serde_json::to_value(got), serde_json::to_value(want))
    else {
        return String::new();
    };
    let mut names: Vec<&String> = g.keys().chain(w.keys()).collect();
    names.sort();
    names.dedup();
    let diffs: Vec<String> = names
        .into_iter()
        .filter(|n| g.get(*n) != w.get(*n))
        .map(|n| {
            let show = |v: Option<&serde_json::Value>| {
                v.map(|v| v.to_string())
                    .unwrap_or_else(|| "absent".to_owned())
            };
            format!("{n}: {} versus model {}", show(g.get(n)), show(w.get(n)))
        })
        .collect();
    if diffs.is_empty() {
        String::new()
    } else {
        format!(" ({})", diffs.join("; "))
    }
}

fn observed<T>(r: blobjobs_store_api::Result<T>, f: impl FnOnce(T) -> Expect) -> Expect {
    match r {
        Ok(v) => f(v),
        Err(e) => Expect::Error(e.kind()),
    }
}

/// Performs `action` on `jobs` within `lim` (an `Advance` moves `clock`) and returns what it
/// observed, in the model's terms.
pub(crate) async fn perform(
    jobs: &dyn JobStore,
    action: &JobAction,
    clock: &ManualClock,
    lim: Duration,
) -> Expect {
    let id = |s: &str| JobId::new(s);
    match action {
        JobAction::Create {
            id: raw_id,
            kind,
            ttl_ms,
            label,
        } => {
            let mut new = NewJob::new(kind.clone(), json!({ "label": label }));
            new.ttl = ttl_ms.map(Duration::from_millis);
            match id(raw_id) {
                Ok(job_id) => observed(limited(lim, jobs.create(new.id(job_id))).await, |j| {
                    Expect::Job(Box::new(j))
                }),
                Err(e) => Expect::Error(e.kind()),
            }
        }
        JobAction::Get { id: raw_id } => match id(raw_id) {
            Ok(job_id) => observed(limited(lim, jobs.get(&job_id)).await, |j| match j {
                Some(j) => Expect::Job(Box::new(j)),
                None => Expect::Missing,
            }),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Claim {
            id: raw_id,
            owner,
            lease_ms,
        } => match id(raw_id) {
            Ok(job_id) => observed(
                limited(
                    lim,
                    jobs.claim(&job_id, owner, Duration::from_millis(*lease_ms)),
                )
                .await,
                |j| Expect::Job(Box::new(j)),
            ),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Progress {
            id: raw_id,
            owner,
            percent,
        } => match id(raw_id) {
            Ok(job_id) => observed(
                limited(
                    lim,
                    jobs.progress(&job_id, owner, *percent, Some(progress_message(*percent))),
                )
                .await,
                |j| Expect::Job(Box::new(j)),
            ),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Succeed {
            id: raw_id,
            owner,
            label,
        } => match id(raw_id) {
            Ok(job_id) => observed(
                limited(lim, jobs.succeed(&job_id, owner, json!({ "label": label }))).await,
                |j| Expect::Job(Box::new(j)),
            ),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Fail { id: raw_id, owner } => match id(raw_id) {
            Ok(job_id) => observed(
                limited(lim, jobs.fail(&job_id, owner, format!("failed by {owner}"))).await,
                |j| Expect::Job(Box::new(j)),
            ),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Cancel { id: raw_id } => match id(raw_id) {
            Ok(job_id) => observed(limited(lim, jobs.cancel(&job_id)).await, |j| {
                Expect::Job(Box::new(j))
            }),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::Delete { id: raw_id } => match id(raw_id) {
            Ok(job_id) => observed(limited(lim, jobs.delete(&job_id)).await, Expect::Deleted),
            Err(e) => Expect::Error(e.kind()),
        },
        JobAction::List { status } => {
            let filter = JobFilter {
                status: *status,
                ..JobFilter::default()
            };
            observed(limited(lim, jobs.list(filter)).await, |p| {
                Expect::Listed(p.jobs)
            })
        }
        JobAction::Purge => observed(limited(lim, jobs.purge_expired()).await, Expect::Purged),
        JobAction::Advance { ms } => {
            clock.advance(Duration::from_millis(*ms));
            Expect::Advanced
        }
    }
}

/// The job an action addresses, if any.
fn target(action: &JobAction) -> Option<&str> {
    match action {
        JobAction::Create { id, .. }
        | JobAction::Get { id }
        | JobAction::Claim { id, .. }
        | JobAction::Progress { id, .. }
        | JobAction::Succeed { id, .. }
        | JobAction::Fail { id, .. }
        | JobAction::Cancel { id }
        | JobAction::Delete { id } => Some(id),
        JobAction::List { .. } | JobAction::Purge | JobAction::Advance { .. } => None,
    }
}

/// What an instance was doing with a job, as the seed's log would say it.
fn verb(action: &JobAction) -> &'static str {
    match action {
        JobAction::Create { .. } => "created",
        JobAction::Get { .. } => "polled",
        JobAction::Claim { .. } => "claimed",
        JobAction::Progress { .. } => "reported progress on",
        JobAction::Succeed { .. } => "finished",
        JobAction::Fail { .. } => "failed",
        JobAction::Cancel { .. } => "cancelled",
        JobAction::Delete { .. } => "deleted",
        JobAction::List { .. } => "listed",
        JobAction::Purge => "purged",
        JobAction::Advance { .. } => "advanced",
    }
}

/// Why `got` differs from `expect` for `step`: when the model holds a job another instance
/// created and this one does not find it, the sentence the seed's log would have printed
/// ("instance 2 polled job j1 created by instance 0: not found").
fn explain(
    step: &JobStep,
    got: &Expect,
    expect: &Expect,
    creators: &BTreeMap<String, usize>,
) -> (String, Option<&'static str>) {
    let generic = (
        format!(
            "instance {} disagrees with the model of the job lifecycle",
            step.instance
        ),
        None,
    );
    let Some(id) = target(&step.action) else {
        if let (Expect::Listed(g), Expect::Listed(w)) = (got, expect) {
            let missing: Vec<&Job> = w
                .iter()
                .filter(|j| !g.iter().any(|x| x.id == j.id))
                .collect();
            if let Some(job) = missing.first()
                && let Some(c) = creators.get(job.id.as_str())
                && *c != step.instance
            {
                return (
                    format!(
                        "instance {} listed jobs without job {} created by instance {c}",
                        step.instance, job.id
                    ),
                    Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
                );
            }
        }
        return generic;
    };
    let Some(creator) = creators.get(id).copied().filter(|c| *c != step.instance) else {
        return generic;
    };
    let not_found = matches!(
        got,
        Expect::Missing | Expect::Error(ErrorKind::NotFound) | Expect::Deleted(false)
    );
    let model_has_it = !matches!(
        expect,
        Expect::Missing | Expect::Error(ErrorKind::NotFound) | Expect::Deleted(false)
    );
    if not_found && model_has_it {
        return (
            format!(
                "instance {} {} job {id} created by instance {creator}: not found",
                step.instance,
                verb(&step.action)
            ),
            Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
        );
    }
    if let (JobAction::Create { .. }, Expect::Job(g), Expect::Job(w)) = (&step.action, got, expect)
        && g.input != w.input
    {
        return (
            format!(
                "instance {} created job {id} anew: it did not find the one instance {creator} created",
                step.instance
            ),
            Some(causes::NOT_VISIBLE_ACROSS_INSTANCES),
        );
    }
    generic
}

/// Replays `steps` against job-store instances sharing one manual clock, and compares every
/// result with the model; a sequence that passes leaves its final jobs to be re-read once
/// the case has settled.
pub(crate) async fn execute(
    env: Arc<Env>,
    mut model: JobModel,
    steps: Vec<JobStep>,
    seen: Option<Arc<AtomicUsize>>,
) -> Result<(), Mismatch> {
    let clock = ManualClock::new(ts(CLOCK_START_MS));
    let mut stores = Vec::new();
    for i in 0..model.instances {
        stores.push(env.job_instance(i, &clock).await?);
    }
    let mut lines = Vec::new();
    let mut creators: BTreeMap<String, usize> = BTreeMap::new();
    let lim = env.op_timeout();
    for step in steps {
        if let Some(seen) = &seen {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        let existed = target(&step.action).is_some_and(|id| model.live(id).is_some());
        let expect = model.step(&step.action);
        let Some(jobs) = stores.get(step.instance) else {
            continue;
        };
        let got = perform(jobs.as_ref(), &step.action, &clock, lim).await;
        let what = describe(&step);
        if got == expect {
            lines.push(format!("{what} → {}", show(&got)));
            if let (JobAction::Create { id, .. }, false) = (&step.action, existed) {
                creators.insert(id.clone(), step.instance);
            }
        } else {
            let detail = match (&got, &expect) {
                (Expect::Job(g), Expect::Job(w)) => field_diff(g, w),
                _ => String::new(),
            };
            lines.push(format!(
                "{what} → {} (model: {}){detail}",
                show(&got),
                show(&expect)
            ));
            let (message, cause) = explain(&step, &got, &expect, &creators);
            let mut m = Mismatch::new(message, lines);
            m.cause = cause;
            return Err(m);
        }
    }
    let reader = if model.instances == 1 {
        Reader::Jobs(stores[0].clone())
    } else {
        Reader::Fresh
    };
    let mut group = Group::new(env.prefix.clone(), reader, ts(model.now));
    group.label = env.label.clone();
    group.jobs = MODEL_JOB_IDS
        .iter()
        .filter_map(|id| {
            let job_id = JobId::new(*id).ok()?;
            Some((job_id, model.live(id).cloned()))
        })
        .collect();
    group.jobs_complete = true;
    group.timeline = lines;
    env.ctx.ledger().push(group);
    Ok(())
}

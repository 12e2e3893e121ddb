//! The background-job story of a serverless app, as three separate processes that share
//! nothing but the store: a *trigger* creates a job, a *background* worker runs it, and a
//! *status* endpoint reports it to a polling front end.
//!
//! ```text
//! cargo run -p blobjobs-backends --example serverless_jobs -- trigger    --store SPEC
//! cargo run -p blobjobs-backends --example serverless_jobs -- background --store SPEC JOB_ID
//! cargo run -p blobjobs-backends --example serverless_jobs -- status     --store SPEC JOB_ID [--wait SECS]
//! ```
//!
//! `SPEC` is any store spec of `blobjobs_backends::open` (`memory://`, `file://DIR`, `netlify://`,
//! `http://127.0.0.1:4733` with `NETLIFY_BLOBS_TOKEN` set). With `memory://` every process
//! starts with an empty job table, so `status` and `background` answer
//! `404 job not found: job_…`, the bug of the original app. With a shared store the job goes
//! pending, running and succeeded, and `status` prints the result.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_store_api::{BlobJobStore, ErrorKind, Job, JobId, JobStatus, JobStore, NewJob};
use serde_json::json;

/// The store the jobs live in, as in the original app.
const STORE_NAME: &str = "rubric-jobs";

const USAGE: &str = "usage: serverless_jobs <trigger|background|status> --store SPEC [JOB_ID] \
                     [--wait SECS] [--step-ms MS]";

#[tokio::main]
async fn main() -> ExitCode {
    ExitCode::from(run(std::env::args().skip(1).collect()).await)
}

/// The parsed command line.
struct Args {
    command: String,
    store: String,
    job: Option<String>,
    /// How long `status` polls for a finished job (0: report once).
    wait: Duration,
    /// How long each of the background worker's steps takes.
    step: Duration,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut it = args.into_iter();
    let command = it.next().ok_or(USAGE)?;
    let mut parsed = Args {
        command,
        store: String::new(),
        job: None,
        wait: Duration::ZERO,
        step: Duration::from_millis(300),
    };
    let mut store = None;
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--store" => store = Some(value("--store")?),
            "--wait" => {
                let secs: f64 = value("--wait")?
                    .parse()
                    .map_err(|_| "--wait takes seconds")?;
                parsed.wait = Duration::from_secs_f64(secs.max(0.0));
            }
            "--step-ms" => {
                let ms: u64 = value("--step-ms")?
                    .parse()
                    .map_err(|_| "--step-ms takes ms")?;
                parsed.step = Duration::from_millis(ms);
            }
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}\n{USAGE}")),
            _ => parsed.job = Some(arg),
        }
    }
    parsed.store = store.ok_or(format!("--store is required\n{USAGE}"))?;
    Ok(parsed)
}

/// Runs one command; returns the process exit code.
pub async fn run(args: Vec<String>) -> u8 {
    let args = match parse(args) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    match command(&args).await {
        Ok(()) => 0,
        Err(err) if err.kind() == ErrorKind::NotFound => {
            // What the original status function answered.
            eprintln!("404 {}", err.message());
            1
        }
        Err(err) => {
            eprintln!("error ({}): {err}", err.kind());
            1
        }
    }
}

async fn command(args: &Args) -> blobjobs_store_api::Result<()> {
    let blobs = blobjobs_backends::open_store(&args.store, STORE_NAME)?;
    let jobs = BlobJobStore::new(Arc::clone(&blobs));
    let job_id = || -> blobjobs_store_api::Result<JobId> {
        let id = args.job.as_deref().ok_or_else(|| {
            blobjobs_store_api::Error::invalid(format!("a job id is required\n{USAGE}"))
        })?;
        JobId::new(id)
    };
    match args.command.as_str() {
        "trigger" => {
            let job = jobs
                .create(NewJob::new("extract", json!({ "pdf": "rubric.pdf" })))
                .await?;
            eprintln!("[{STORE_NAME}] Created extract job: {}", job.id);
            println!("{}", job.id);
            Ok(())
        }
        "background" => background(&jobs, &job_id()?, args.step).await,
        "status" => status(&jobs, &job_id()?, args.wait).await,
        other => Err(blobjobs_store_api::Error::invalid(format!(
            "unknown command {other:?}\n{USAGE}"
        ))),
    }
}

fn not_found(id: &JobId) -> blobjobs_store_api::Error {
    eprintln!("[{STORE_NAME}] Job not found: {id}");
    blobjobs_store_api::Error::new(ErrorKind::NotFound, format!("job not found: {id}"))
}

/// The background function: claim, work in steps with progress reports, store the result.
async fn background<S>(
    jobs: &BlobJobStore<S>,
    id: &JobId,
    step: Duration,
) -> blobjobs_store_api::Result<()>
where
    S: blobjobs_store_api::BlobStore + ?Sized,
{
    if jobs.get(id).await?.is_none() {
        return Err(not_found(id));
    }
    let owner = format!("background-{}", std::process::id());
    jobs.claim(id, &owner, Duration::from_secs(60)).await?;
    eprintln!("[{STORE_NAME}] {owner} claimed {id}");
    for (percent, message) in [
        (25, "reading the pdf"),
        (50, "finding criteria"),
        (75, "scoring"),
    ] {
        tokio::time::sleep(step).await;
        jobs.progress(id, &owner, percent, Some(message.to_owned()))
            .await?;
    }
    tokio::time::sleep(step).await;
    let result = json!({ "criteria": ["clarity", "evidence", "structure"], "points": 30 });
    jobs.succeed(id, &owner, result).await?;
    eprintln!("[{STORE_NAME}] {owner} finished {id}");
    Ok(())
}

fn describe(job: &Job) -> String {
    match (job.status, &job.progress) {
        (JobStatus::Succeeded, _) => {
            let result = job
                .result
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default();
            format!("job {} succeeded: {result}", job.id)
        }
        (JobStatus::Failed, _) => format!(
            "job {} failed: {}",
            job.id,
            job.error.as_deref().unwrap_or("")
        ),
        (JobStatus::Running, Some(p)) => format!(
            "job {} is running ({}%: {})",
            job.id,
            p.percent,
            p.message.as_deref().unwrap_or("")
        ),
        (status, _) => format!("job {} is {status}", job.id),
    }
}

/// The status function, polled by the front end: print every change until the job is
/// finished or `wait` has passed.
async fn status<S>(
    jobs: &BlobJobStore<S>,
    id: &JobId,
    wait: Duration,
) -> blobjobs_store_api::Result<()>
where
    S: blobjobs_store_api::BlobStore + ?Sized,
{
    let deadline = Instant::now() + wait;
    let mut last = String::new();
    loop {
        let Some(job) = jobs.get(id).await? else {
            return Err(not_found(id));
        };
        let line = describe(&job);
        if line != last {
            println!("{line}");
            last = line;
        }
        if job.status.is_terminal() || Instant::now() >= deadline {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

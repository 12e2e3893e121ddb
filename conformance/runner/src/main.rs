//! `blobs-conformance`: grades a store with the conformance suite.
//!
//! ```text
//! cargo run -p blobjobs-conformance-runner -- --url memory://              # the negative control: fails
//! cargo run -p blobjobs-conformance-runner -- --url file://./blobs --processes --junit junit.xml
//! NETLIFY_BLOBS_TOKEN=… cargo run -p blobjobs-conformance-runner -- --url http://127.0.0.1:4733 --site local-site
//! NETLIFY_BLOBS_CONTEXT=… cargo run -p blobjobs-conformance-runner --      # a Netlify function's context
//! ```
//!
//! First a read, a write and a delete check that the store can be reached and the
//! credentials work (within 3 s). Each case's line goes to stderr as it finishes; the report
//! (every failure with its shrunk timeline and the command line that replays it, then the
//! failures grouped by likely cause) goes to stdout. The run then deletes every key it wrote,
//! unless `--keep`. Exit status: 0 when every case passed, 1 when a case failed, 2 when the
//! flags are wrong or the store cannot be opened, reached or written with the credentials.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use blobjobs_backends::http::Token;
use blobjobs_backends::open::{OpenOptions, StoreSpec};
use blobjobs_conformance::{Capabilities, Options, Report, SharedFactory};
use blobjobs_conformance_runner::preflight::{PREFLIGHT_LIMIT, preflight, preflight_retry};
use blobjobs_conformance_runner::tracked::Tracked;
use blobjobs_conformance_runner::{
    DEFAULT_STORE_NAME, ReplayCommand, backend_label, fresh_seed, grading_retry, process_factory,
    run_with_progress, selected_cases, serve_instance, spec_factory, target_label,
};
use clap::{Args, Parser, Subcommand};

/// Grades a Netlify Blobs endpoint or a local store with the conformance suite: the
/// behaviours serverless job tracking needs, within one instance and across instances.
#[derive(Parser)]
#[command(
    name = "blobs-conformance",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    grade: Grade,
}

#[derive(Subcommand)]
enum Command {
    /// Serves one instance of a store on stdin/stdout, one JSON request per line (what
    /// `--processes` runs for every instance).
    #[command(hide = true)]
    Instance {
        /// The store spec, as for `--url`.
        #[arg(long, value_name = "SPEC")]
        store: String,
        /// The store's name.
        #[arg(long, value_name = "NAME", default_value = DEFAULT_STORE_NAME)]
        name: String,
    },
}

#[derive(Args)]
struct Grade {
    /// The store to grade: memory://, file://PATH, http(s)://HOST[:PORT][/PATH] (a server
    /// such as blobs-emulator; takes ?site=, ?mode=api, ?consistency=) or netlify:// (the
    /// default: the NETLIFY_BLOBS_CONTEXT of a Netlify function or build).
    #[arg(long, value_name = "SPEC", default_value = "netlify://")]
    url: String,
    /// The bearer token of an http(s):// store. Never printed.
    #[arg(long, env = "NETLIFY_BLOBS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The site ID of an http(s):// store.
    #[arg(long, env = "NETLIFY_BLOBS_SITE_ID", value_name = "ID")]
    site: Option<String>,
    /// The store's name. Runs work under random key prefixes and never see each other.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_STORE_NAME)]
    store: String,
    /// Run every instance as a separate OS process (this binary's `instance` subcommand).
    #[arg(long)]
    processes: bool,
    /// The backend's name in reports (default: the URL's host:port, or memory, file or
    /// netlify; with "-processes" after it under --processes).
    #[arg(long, value_name = "NAME")]
    backend: Option<String>,
    /// Keep the keys the run wrote (by default the run deletes them when it ends).
    #[arg(long)]
    keep: bool,
    /// Generated operation sequences per model-based case (and workloads per history case).
    #[arg(long, env = "CONFORMANCE_CASES", value_name = "N")]
    cases: Option<u32>,
    /// The seed of every random choice; a failure prints the one that replays it.
    #[arg(long, env = "CONFORMANCE_SEED", value_name = "S", value_parser = parse_seed)]
    seed: Option<u64>,
    /// Run only cases whose name contains this text.
    #[arg(long, env = "CONFORMANCE_FILTER", value_name = "TEXT")]
    filter: Option<String>,
    /// The longest generated operation sequence.
    #[arg(long, value_name = "N")]
    max_ops: Option<usize>,
    /// Instances of the concurrent cases (at least 2).
    #[arg(long, value_name = "N", default_value_t = 4)]
    instances: usize,
    /// Cases at once, each on its own keys (they are still reported in order). A few speed
    /// up a store behind a network, where a case mostly waits; keep 1 for a local store.
    #[arg(long, value_name = "N", default_value_t = 1)]
    parallel: usize,
    /// Fail a case that runs longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    case_timeout: u64,
    /// Fail a case when one operation runs longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20)]
    op_timeout: u64,
    /// The largest value the store accepts, in bytes (below 1 MiB the large-value case is
    /// skipped).
    #[arg(long, value_name = "BYTES")]
    max_value_bytes: Option<u64>,
    /// The longest key the store accepts, in UTF-8 bytes.
    #[arg(long, value_name = "BYTES")]
    max_key_bytes: Option<usize>,
    /// The store keeps no user metadata: skip the cases that need it.
    #[arg(long)]
    no_metadata: bool,
    /// The store has no directories mode in listings: skip the cases that need it.
    #[arg(long)]
    no_directories: bool,
    /// The store ignores custom page sizes: do not check page sizes.
    #[arg(long)]
    no_page_size: bool,
    /// Write a JUnit XML report to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write the report as JSON lines (one object per case) to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a Markdown table of the results to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// List the cases (that --filter selects) with the promises they check, then the
    /// promise map (each promise with the cases that check it), and exit.
    #[arg(long)]
    list: bool,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// What `--list` prints: the cases `filter` selects, each with its scope, area and the
/// promises it checks, then the promise catalogue (`conformance/PROMISES.md`) for those
/// cases: every promise with where it is made and the cases that fail a store breaking it.
fn listing(filter: Option<&str>) -> String {
    use std::fmt::Write as _;
    let cases = selected_cases(filter);
    let mut out = format!("{} cases:\n", cases.len());
    for case in &cases {
        let ids: Vec<&str> = blobjobs_conformance::promises::of_case(case.name)
            .iter()
            .map(|p| p.id)
            .collect();
        let _ = writeln!(
            out,
            "  {:<60} {:<15} {:<18} {}",
            case.name,
            case.scope.as_str(),
            case.area,
            ids.join(", ")
        );
    }
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let promises: Vec<_> = blobjobs_conformance::promises()
        .iter()
        .filter(|p| p.cases.iter().any(|c| names.contains(c)))
        .collect();
    let _ = writeln!(
        out,
        "\n{} promises, each with the cases that check it:",
        promises.len()
    );
    for p in promises {
        let _ = writeln!(out, "  {} ({}): {}", p.id, p.source, p.text);
        let checked: Vec<&str> = p
            .cases
            .iter()
            .copied()
            .filter(|c| names.contains(c))
            .collect();
        let _ = writeln!(out, "    checked by: {}", checked.join(", "));
    }
    out
}

fn parse_seed(text: &str) -> Result<u64, String> {
    blobjobs_conformance::parse_seed(text)
        .ok_or_else(|| "a seed is a decimal or 0x number".to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Instance { store, name }) => instance(&store, &name).map(|()| true),
        None => grade(cli.grade),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("blobs-conformance: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// The `instance` subcommand. Its stdout carries the protocol and nothing else.
fn instance(spec: &str, name: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime
        .block_on(serve_instance(spec, name))
        .context("instance failed")
}

/// Grades the store; `Ok(true)` when every case passed.
fn grade(args: Grade) -> Result<bool> {
    if args.list {
        print!("{}", listing(args.filter.as_deref()));
        return Ok(true);
    }
    let token = args.token.as_deref().filter(|t| !t.is_empty());
    let site = args.site.as_deref().filter(|s| !s.is_empty());
    let open = OpenOptions {
        token: token.map(Token::new),
        site_id: site.map(str::to_owned),
        retry: grading_retry(),
        ..OpenOptions::default()
    };
    // Opening in this process first checks the configuration in both modes.
    let in_process = spec_factory(&args.url, &args.store, open.clone())
        .with_context(|| format!("cannot open the store {:?}", args.store))?;

    let mut caps = Capabilities::default()
        .metadata(!args.no_metadata)
        .directories(!args.no_directories)
        .page_size(!args.no_page_size);
    if let Some(n) = args.max_value_bytes {
        caps = caps.max_value_bytes(n);
    }
    if let Some(n) = args.max_key_bytes {
        caps = caps.max_key_bytes(n);
    }
    let backend = args
        .backend
        .clone()
        .unwrap_or_else(|| backend_label(&args.url, args.processes));
    // The flags (which clap also fills from the same variables) win over the environment.
    let mut options = Options::from_env()
        .backend(backend)
        .instances(args.instances)
        .parallel(args.parallel)
        .case_timeout(Duration::from_secs(args.case_timeout))
        .op_timeout(Duration::from_secs(args.op_timeout));
    options.filter = args.filter.clone().filter(|f| !f.is_empty());
    if let Some(n) = args.cases {
        options = options.cases(n);
    }
    let seed = args.seed.or(options.seed).unwrap_or_else(fresh_seed);
    options = options.seed(seed);
    if let Some(n) = args.max_ops {
        options = options.max_ops(n);
    }
    if selected_cases(options.filter.as_deref()).is_empty() {
        anyhow::bail!("no case matches the filter; see --list");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let spec = StoreSpec::parse(&args.url)?;
    let is_memory = spec == StoreSpec::Memory;
    let checked = OpenOptions {
        retry: preflight_retry(),
        ..open.clone()
    };
    let probe = spec.open(&args.store, &checked)?;
    let probe_key = format!("conformance-preflight-{:016x}", fresh_seed());
    runtime
        .block_on(preflight(
            probe,
            &target_label(&args.url),
            &probe_key,
            PREFLIGHT_LIMIT,
        ))
        .map_err(anyhow::Error::new)?;

    let factory: SharedFactory = if args.processes {
        let program = std::env::current_exe().context("cannot find this program's path")?;
        std::sync::Arc::new(process_factory(
            program,
            &args.url,
            &args.store,
            token,
            site,
        ))
    } else {
        in_process.clone()
    };
    let tracked = Tracked::new(factory);
    let quiet = args.quiet;
    let mut report = runtime.block_on(run_with_progress(
        std::sync::Arc::new(tracked.clone()),
        caps,
        options,
        |p| {
            if !quiet {
                eprintln!("{}", p.line());
            }
        },
    ));
    report.server_errors = tracked.server_errors();
    replay_command(&args, token.is_some()).apply(&mut report);

    print!("{}", report.to_text());
    write_reports(&args, &report)?;

    // Separate memory instances share nothing: there is nothing to delete.
    if !args.keep && !is_memory {
        let started = std::time::Instant::now();
        let cleanup = runtime.block_on(async {
            match in_process.instance().await {
                Ok(store) => Some(
                    tracked
                        .clean_up(store, Duration::from_secs(args.op_timeout))
                        .await,
                ),
                Err(_) => None,
            }
        });
        match cleanup {
            Some(c) if c.failed == 0 => {
                if !quiet {
                    eprintln!(
                        "deleted the {} keys the run wrote in {:.1} s (--keep keeps them)",
                        c.deleted,
                        started.elapsed().as_secs_f32()
                    );
                }
            }
            Some(c) => eprintln!(
                "could not delete {} of the {} keys the run wrote; first: {}",
                c.failed,
                c.failed + c.deleted,
                c.first_error.unwrap_or_default()
            ),
            None => eprintln!("could not open the store to delete the keys the run wrote"),
        }
    }
    drop(runtime);
    Ok(report.passed())
}

/// The flags that shaped the run, for the replay line of each failure: everything but the
/// token, the seed, the filter and the report files.
fn replay_command(args: &Grade, uses_token: bool) -> ReplayCommand {
    let mut words: Vec<String> = vec!["--url".into(), args.url.clone()];
    let mut flag = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            words.push(name.to_owned());
            words.push(value);
        }
    };
    flag("--site", args.site.clone().filter(|s| !s.is_empty()));
    flag(
        "--store",
        (args.store != DEFAULT_STORE_NAME).then(|| args.store.clone()),
    );
    flag("--backend", args.backend.clone());
    flag("--cases", args.cases.map(|n| n.to_string()));
    flag("--max-ops", args.max_ops.map(|n| n.to_string()));
    flag(
        "--instances",
        (args.instances != 4).then(|| args.instances.to_string()),
    );
    flag(
        "--case-timeout",
        (args.case_timeout != 120).then(|| args.case_timeout.to_string()),
    );
    flag(
        "--op-timeout",
        (args.op_timeout != 20).then(|| args.op_timeout.to_string()),
    );
    flag(
        "--max-value-bytes",
        args.max_value_bytes.map(|n| n.to_string()),
    );
    flag("--max-key-bytes", args.max_key_bytes.map(|n| n.to_string()));
    for (on, name) in [
        (args.processes, "--processes"),
        (args.no_metadata, "--no-metadata"),
        (args.no_directories, "--no-directories"),
        (args.no_page_size, "--no-page-size"),
    ] {
        if on {
            words.push(name.to_owned());
        }
    }
    ReplayCommand::new(words, uses_token)
}

fn write_reports(args: &Grade, report: &Report) -> Result<()> {
    if let Some(path) = &args.junit {
        write(path, &report.to_junit())?;
    }
    if let Some(path) = &args.json {
        write(path, &report.to_json_lines())?;
    }
    if let Some(path) = &args.markdown {
        let reports = std::slice::from_ref(report);
        let mut text = blobjobs_conformance::markdown_matrix(reports);
        let diagnosis = blobjobs_conformance::markdown_diagnosis(reports);
        if !diagnosis.is_empty() {
            text.push('\n');
            text.push_str(&diagnosis);
        }
        write(path, &text)?;
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

//! The engine behind `blobs-conformance` and `cargo xtask conformance`: instance factories
//! opened from a store spec (in this process, or each instance a separate OS process), the
//! checks before a run ([`preflight`]), instances that remember what they wrote
//! ([`tracked`]), and a run of the suite that reports every case as soon as it finishes.

pub mod preflight;
pub mod tracked;

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::http::RetryPolicy;
use blobjobs_backends::open::{OpenOptions, SITE_ID_ENV, StoreSpec, TOKEN_ENV};
pub use blobjobs_conformance::Progress;
use blobjobs_conformance::remote::ProcessFactory;
use blobjobs_conformance::{
    Capabilities, CaseInfo, CaseReport, Options, Report, SharedFactory, Verdict,
};
use blobjobs_store_api::{BlobStore, Result};

/// The hidden subcommand of `blobs-conformance` that serves one instance on stdin/stdout.
pub const INSTANCE_SUBCOMMAND: &str = "instance";

/// The store graded when no name is given. Every run works under its own random key prefix,
/// so runs against the same store never see each other's keys.
pub const DEFAULT_STORE_NAME: &str = "conformance";

/// The cases whose name contains `filter` (all of them without one), in run order.
pub fn selected_cases(filter: Option<&str>) -> Vec<CaseInfo> {
    blobjobs_conformance::cases()
        .into_iter()
        .filter(|c| filter.is_none_or(|f| c.name.contains(f)))
        .collect()
}

/// A factory whose every instance is a new handle opened from `spec` (see
/// [`blobjobs_backends::open`]): a new, empty `MemoryStore` for `memory://` (so its instances share
/// nothing, as separate serverless instances would not), a new `FileStore` on the same
/// directory for `file://PATH`, a new `HttpStore` client for `http://` and `netlify://`.
///
/// One instance is opened at once, so that a bad configuration (no token, a bad spec) is
/// reported here rather than as a failure of every case.
pub fn spec_factory(spec: &str, store_name: &str, open: OpenOptions) -> Result<SharedFactory> {
    let spec = StoreSpec::parse(spec)?;
    spec.open(store_name, &open)?;
    let name = store_name.to_owned();
    let factory = move || std::future::ready(spec.open(&name, &open));
    Ok(Arc::new(factory))
}

/// A factory whose every instance is a new OS process running
/// `program instance --store SPEC --name NAME`, where `program` is the `blobs-conformance`
/// binary. The token and the site ID reach the processes through their environment
/// (`NETLIFY_BLOBS_TOKEN`, `NETLIFY_BLOBS_SITE_ID`), never through the command line, where
/// any user of the machine could read them.
pub fn process_factory(
    program: impl Into<OsString>,
    spec: &str,
    store_name: &str,
    token: Option<&str>,
    site_id: Option<&str>,
) -> ProcessFactory {
    let mut factory = ProcessFactory::new(program)
        .arg(INSTANCE_SUBCOMMAND)
        .arg("--store")
        .arg(spec)
        .arg("--name")
        .arg(store_name);
    if let Some(token) = token {
        factory = factory.env(TOKEN_ENV, token);
    }
    if let Some(site) = site_id {
        factory = factory.env(SITE_ID_ENV, site);
    }
    factory
}

/// Opens the store named by `spec` once and serves it on stdin/stdout until stdin closes:
/// the body of the `instance` subcommand. The token and site come from the environment;
/// HTTP requests follow [`grading_retry`].
pub async fn serve_instance(spec: &str, store_name: &str) -> std::io::Result<()> {
    let open = OpenOptions {
        retry: grading_retry(),
        ..OpenOptions::default()
    };
    let store: Arc<dyn BlobStore> = StoreSpec::parse(spec)
        .and_then(|s| s.open(store_name, &open))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    blobjobs_conformance::remote::serve_instance_stdio(store).await
}

/// How HTTP stores retry while they are graded: two attempts per operation, 100 ms apart.
///
/// One retry absorbs a blip of the network; more would hide what is being graded. A server
/// that answers 500 to a request answers it again, and six attempts with backoff (the
/// client's default) cost seconds per case for no new fact. The runner counts the
/// operations that still end in a server error ([`tracked`]).
pub fn grading_retry() -> RetryPolicy {
    RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(100), Duration::from_millis(100))
}

/// The name a spec's backend gets in reports when none is given: the `host:port` of an
/// `http(s)://` URL, else the scheme (`memory`, `file` or `netlify`), with `-processes` when
/// every instance is a separate process.
pub fn backend_label(spec: &str, processes: bool) -> String {
    let base = match StoreSpec::parse(spec) {
        Ok(StoreSpec::Memory) => "memory".to_owned(),
        Ok(StoreSpec::File(_)) => "file".to_owned(),
        Ok(StoreSpec::Http { url, .. }) => url
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest).to_owned())
            .filter(|authority| !authority.is_empty())
            .unwrap_or_else(|| "http".to_owned()),
        Ok(StoreSpec::S3 { .. }) => "s3".to_owned(),
        Ok(StoreSpec::Postgres(_)) => "postgres".to_owned(),
        Ok(StoreSpec::Netlify(_)) | Err(_) => "netlify".to_owned(),
    };
    if processes {
        format!("{base}-processes")
    } else {
        base
    }
}

/// Where a spec points, for messages: the URL without its query, the directory, or the
/// scheme. Never the query, which could hold a secret pasted by mistake.
pub fn target_label(spec: &str) -> String {
    match StoreSpec::parse(spec) {
        Ok(StoreSpec::Memory) => "memory://".to_owned(),
        Ok(StoreSpec::File(path)) => format!("file://{}", path.display()),
        Ok(StoreSpec::Http { url, .. }) => url,
        Ok(StoreSpec::S3 { bucket, prefix, .. }) if prefix.is_empty() => format!("s3://{bucket}"),
        Ok(StoreSpec::S3 { bucket, prefix, .. }) => format!("s3://{bucket}/{prefix}"),
        Ok(StoreSpec::Postgres(url)) => url.redacted(),
        Ok(StoreSpec::Netlify(_)) | Err(_) => {
            "the Netlify Blobs store of NETLIFY_BLOBS_CONTEXT".to_owned()
        }
    }
}

/// The command line that replays one case of a run: `blobs-conformance` with the flags that
/// shaped the run, then `--seed` and `--filter`. The token never appears; when the run used
/// one, the line ends with a shell comment saying where the replay takes it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayCommand {
    args: Vec<String>,
    token_note: bool,
}

impl ReplayCommand {
    /// `blobs-conformance` followed by `args` (flags and values, one per item; never the
    /// token); `uses_token` adds the note about `NETLIFY_BLOBS_TOKEN`.
    pub fn new(args: Vec<String>, uses_token: bool) -> Self {
        ReplayCommand {
            args,
            token_note: uses_token,
        }
    }

    /// The line for `case` of a run with `seed`, quoted for a POSIX shell.
    pub fn line(&self, seed: u64, case: &str) -> String {
        let mut words = vec!["blobs-conformance".to_owned()];
        words.extend(self.args.iter().map(|a| shell_quote(a)));
        words.push("--seed".to_owned());
        words.push(seed.to_string());
        words.push("--filter".to_owned());
        words.push(shell_quote(case));
        let mut line = words.join(" ");
        if self.token_note {
            line.push_str("  # with the token in NETLIFY_BLOBS_TOKEN");
        }
        line
    }

    /// Sets the replay line of every failed case of `report` to this command.
    pub fn apply(&self, report: &mut Report) {
        let seed = report.seed;
        for case in &mut report.cases {
            if let Verdict::Failed { replay, .. } = &mut case.verdict {
                *replay = Some(self.line(seed, &case.name));
            }
        }
    }
}

/// `word` as one word of a POSIX shell: unchanged when it has no special character, else in
/// single quotes.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// A random seed, or a time-based one if the system has no randomness.
pub fn fresh_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ u64::from(std::process::id())
    })
}

/// Runs every case that `options.filter` selects, calling `on_case` on the caller's task as
/// each one finishes (through [`Options::on_case`]), and returns the report of
/// [`blobjobs_conformance::run_all`].
///
/// The run's seed is fixed up front (a fresh one unless `options.seed` is set), and each
/// case's randomness derives from that seed and the case's name only, so the printed replay
/// line (`CONFORMANCE_SEED=… CONFORMANCE_FILTER=…`, or the command of a [`ReplayCommand`])
/// reproduces a failure exactly.
pub async fn run_with_progress(
    factory: SharedFactory,
    capabilities: Capabilities,
    options: Options,
    mut on_case: impl FnMut(&Progress<'_>),
) -> Report {
    let seed = options.seed.unwrap_or_else(fresh_seed);
    let (sender, mut finished) = tokio::sync::mpsc::unbounded_channel();
    let options = options.seed(seed).on_case(move |p| {
        let _ = sender.send((p.case.clone(), p.done, p.total));
    });
    let mut show = |(case, done, total): (CaseReport, usize, usize), backend: &str| {
        on_case(&Progress {
            backend,
            done,
            total,
            case: &case,
        });
    };
    let backend = options.backend.clone();
    let run = blobjobs_conformance::run_all(factory, capabilities, options);
    tokio::pin!(run);
    let report = loop {
        tokio::select! {
            report = &mut run => break report,
            Some(done) = finished.recv() => show(done, &backend),
        }
    };
    while let Ok(done) = finished.try_recv() {
        show(done, &backend);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_backends::MemoryStore;

    #[test]
    fn labels_name_the_backend() {
        assert_eq!(backend_label("memory://", false), "memory");
        assert_eq!(backend_label("file:///x", true), "file-processes");
        assert_eq!(
            backend_label("http://127.0.0.1:4800", false),
            "127.0.0.1:4800"
        );
        assert_eq!(
            backend_label("https://blobs.example.com/base?site=s", true),
            "blobs.example.com-processes"
        );
        assert_eq!(backend_label("", false), "netlify");
        assert_eq!(
            target_label("http://127.0.0.1:9/x?site=s"),
            "http://127.0.0.1:9/x"
        );
    }

    #[test]
    fn replay_lines_are_pastable_and_carry_no_token() {
        let cmd = ReplayCommand::new(
            vec![
                "--url".into(),
                "http://127.0.0.1:4733?site=a b".into(),
                "--processes".into(),
            ],
            true,
        );
        assert_eq!(
            cmd.line(42, "claim_is_exclusive"),
            "blobs-conformance --url 'http://127.0.0.1:4733?site=a b' --processes --seed 42 \
             --filter claim_is_exclusive  # with the token in NETLIFY_BLOBS_TOKEN"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        let mut report = Report::new("x", 9);
        report.cases.push(CaseReport {
            name: "c".into(),
            area: "a".into(),
            scope: blobjobs_conformance::Scope::SingleInstance,
            verdict: Verdict::Failed {
                message: "m".into(),
                timeline: vec![],
                replay: Some("CONFORMANCE_SEED=9".into()),
            },
            cause: None,
            millis: 0,
        });
        ReplayCommand::new(vec!["--url".into(), "memory://".into()], false).apply(&mut report);
        let Verdict::Failed { replay, .. } = &report.cases[0].verdict else {
            unreachable!()
        };
        assert_eq!(
            replay.as_deref(),
            Some("blobs-conformance --url memory:// --seed 9 --filter c")
        );
    }

    #[test]
    fn filters_select_by_substring() {
        let all = selected_cases(None);
        assert_eq!(all.len(), blobjobs_conformance::cases().len());
        let some = selected_cases(Some("across_instances"));
        assert!(!some.is_empty() && some.len() < all.len());
        assert!(some.iter().all(|c| c.name.contains("across_instances")));
        assert!(selected_cases(Some("no case has this name")).is_empty());
    }

    #[test]
    fn bad_specs_fail_before_the_run() {
        let err = spec_factory("ftp://x", "s", OpenOptions::default()).err();
        assert_eq!(
            err.map(|e| e.kind()),
            Some(blobjobs_store_api::ErrorKind::InvalidInput)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn progress_reports_each_case_once_in_run_order() {
        let factory: SharedFactory =
            Arc::new(|| async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn BlobStore>) });
        let options = Options::default()
            .backend("memory")
            .cases(4)
            .seed(7)
            .filter("round_trip");
        let mut seen = Vec::new();
        let report = run_with_progress(factory, Capabilities::default(), options, |p| {
            assert_eq!(p.done, seen.len() + 1);
            assert!(p.line().contains(&p.case.name));
            seen.push(p.case.name.clone());
        })
        .await;
        let expected: Vec<String> = selected_cases(Some("round_trip"))
            .iter()
            .map(|c| c.name.to_owned())
            .collect();
        assert!(!expected.is_empty());
        let mut sorted_seen = seen.clone();
        sorted_seen.sort();
        let mut sorted_expected = expected.clone();
        sorted_expected.sort();
        assert_eq!(sorted_seen, sorted_expected);
        let names: Vec<String> = report.cases.iter().map(|c| c.name.clone()).collect();
        assert_eq!(names, expected);
        assert_eq!(report.seed, 7);
    }
}

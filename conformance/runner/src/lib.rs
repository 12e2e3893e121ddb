//! The engine behind `blobs-conformance` and `cargo xtask conformance`: instance factories
//! opened from a store spec (in this process, or each instance a separate OS process), and a
//! run of the suite that reports every case as soon as it finishes.

use std::ffi::OsString;
use std::sync::Arc;

use blobjobs_backends::open::{OpenOptions, SITE_ID_ENV, StoreSpec, TOKEN_ENV};
pub use blobjobs_conformance::Progress;
use blobjobs_conformance::remote::ProcessFactory;
use blobjobs_conformance::{Capabilities, CaseInfo, CaseReport, Options, Report, SharedFactory};
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
/// the body of the `instance` subcommand. The token and site come from the environment.
pub async fn serve_instance(spec: &str, store_name: &str) -> std::io::Result<()> {
    let store: Arc<dyn BlobStore> = StoreSpec::parse(spec)
        .and_then(|s| s.open(store_name, &OpenOptions::default()))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    blobjobs_conformance::remote::serve_instance_stdio(store).await
}

/// The name a spec's backend gets in reports when none is given: `memory`, `file`, `http` or
/// `netlify`, with `-processes` when every instance is a separate process.
pub fn backend_label(spec: &str, processes: bool) -> String {
    let base = match StoreSpec::parse(spec) {
        Ok(StoreSpec::Memory) => "memory",
        Ok(StoreSpec::File(_)) => "file",
        Ok(StoreSpec::Http { .. }) => "http",
        Ok(StoreSpec::S3 { .. }) => "s3",
        Ok(StoreSpec::Postgres(_)) => "postgres",
        Ok(StoreSpec::Netlify(_)) | Err(_) => "netlify",
    };
    if processes {
        format!("{base}-processes")
    } else {
        base.to_owned()
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
/// line (`CONFORMANCE_SEED=… CONFORMANCE_FILTER=…`) reproduces a failure exactly.
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
        assert_eq!(backend_label("http://127.0.0.1:1", false), "http");
        assert_eq!(backend_label("", false), "netlify");
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

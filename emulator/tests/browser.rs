//! The browser view in a real browser: the `blobs-emulator` binary serves a data directory,
//! and `interop/browser/ui.test.mjs` drives Debian's Chromium headless with `playwright-core`
//! (sign in, keys written by the official client, a JSON preview, a job that the
//! `serverless_jobs` example drives from pending to succeeded, 10,000 keys paged, a delete).
//! Screenshots land in `target/ui-screenshots/`.
//!
//! Needs `node` and `npm` (without them the test prints why and passes); it installs the npm
//! packages and, when `/usr/bin/chromium` is missing, Debian's `chromium` itself.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blobjobs_backends::{Catalog, FileOptions};
use blobjobs_store_api::SetOptions;
use blobjobs_test_support::{browser, child, example, interop};
use bytes::Bytes;

const BIN: &str = env!("CARGO_BIN_EXE_blobs-emulator");

/// How many keys the paged store holds.
const MANY: usize = 10_000;

/// How long the whole browser run may take.
const LIMIT: Duration = Duration::from_secs(240);

/// The emulator as a child process, killed if the test ends early.
struct Emulator {
    child: Child,
    base: String,
    link: String,
    context: String,
    log: PathBuf,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary on a free port over `data`, with its access log in `log`, and reads
/// the banner: the base URL, the signed-in link and the export line.
fn start(data: &Path, log: &Path) -> Emulator {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("BLOBS_EMULATOR_")
            || name == "RUST_LOG"
            || name == "NETLIFY_BLOBS_CONTEXT"
        {
            cmd.env_remove(&*name);
        }
    }
    cmd.args(["serve", "--port", "0", "--dir"])
        .arg(data)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut emulator = Emulator {
        child,
        base: String::new(),
        link: String::new(),
        context: String::new(),
        log: log.to_path_buf(),
    };
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("blobs-emulator listening on ") {
            emulator.base = rest.split_whitespace().next().unwrap().to_owned();
        } else if let Some(link) = line.strip_prefix("browser view: ") {
            emulator.link = link.to_owned();
        } else if let Some(context) = line.strip_prefix("export NETLIFY_BLOBS_CONTEXT=") {
            emulator.context = context.to_owned();
            break;
        }
    }
    assert!(
        !emulator.base.is_empty() && !emulator.link.is_empty() && !emulator.context.is_empty(),
        "the banner lacks the url, the browser link or the export line"
    );
    // Nothing more is printed to stdout; a thread keeps the pipe drained all the same.
    std::thread::spawn(move || for _ in lines {});
    emulator
}

/// Writes `MANY` keys straight into the data directory, as another process sharing it
/// would: the emulator serves whatever the directory holds.
async fn fill_many(data: &Path) {
    let catalog = Catalog::file(data.to_path_buf(), FileOptions { fsync: false }).unwrap();
    let store = catalog.store("local-site/site:many").unwrap();
    for i in 0..MANY {
        store
            .set(
                &format!("item/{i:05}"),
                Bytes::from_static(b"x"),
                SetOptions::new(),
            )
            .await
            .unwrap();
    }
}

fn screenshots_dir() -> PathBuf {
    // `CARGO_TARGET_TMPDIR` is `target/tmp`; the pictures belong next to it, in `target/`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("ui-screenshots")
}

#[test]
fn the_browser_view_in_chromium() {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(interop_dir) = runtime.block_on(interop::prepare("the browser test")) else {
        return;
    };
    let driver_dir = interop_dir.join("browser");
    runtime
        .block_on(interop::install_folder(&driver_dir, "playwright-core"))
        .unwrap_or_else(|e| panic!("{e}"));
    let chromium = browser::chromium();
    let example = example::binary();
    let prepared = started.elapsed();

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    runtime.block_on(fill_many(&data));
    let emulator = start(&data, &tmp.path().join("emulator.log"));
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).unwrap();
    for name in ["store.png", "jobs.png", "jobs-pending.png"] {
        let _ = std::fs::remove_file(shots.join(name));
    }

    let node = Command::new("node")
        .args(["--test", "--test-reporter=spec", "ui.test.mjs"])
        .current_dir(&driver_dir)
        .env("CHROMIUM", &chromium)
        .env("CHROMIUM_FLAGS", browser::FLAGS.join(" "))
        .env("BLOBS_URL", &emulator.base)
        .env("BLOBS_UI_LINK", &emulator.link)
        .env("BLOBS_TOKEN", token.trim())
        .env("NETLIFY_BLOBS_CONTEXT", &emulator.context)
        .env("SERVERLESS_JOBS", example)
        .env("SCREENSHOTS", &shots)
        // The official client's retry delay becomes 1 ms instead of 5 s.
        .env("NODE_ENV", "test")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child::wait(node, LIMIT);
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser run failed:\n{report}");
    println!("{report}");

    drop(emulator_stopped(emulator, &token));
    for name in ["store.png", "jobs.png"] {
        let shot = shots.join(name);
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is missing or blank", shot.display());
        println!("screenshot: {}", shot.display());
    }
    println!(
        "browser test: {:.1?} in all, {prepared:.1?} of it preparing (npm, chromium, example)",
        started.elapsed()
    );
}

/// Stops the emulator with SIGTERM and checks its access log: the page's API calls are
/// there, the token is not (the signed-in link keeps it in the fragment, which browsers never
/// send).
fn emulator_stopped(mut emulator: Emulator, token: &str) -> Emulator {
    let pid = emulator.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while emulator.child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the emulator did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(&emulator.log).unwrap();
    assert!(
        log.contains("path=/.well-known/blobs-emulator/ui/api/jobs"),
        "no access-log line for the page's API:\n{log}"
    );
    assert!(
        !log.contains(token.trim()),
        "the token reached the emulator's log"
    );
    emulator
}

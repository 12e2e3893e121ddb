//! The npm packages as a user installs them: both packed with `npm pack` (around this test
//! build's binary, stripped), installed from the tarballs into a fresh project with the
//! official `@netlify/blobs` 11.1.1, then started through `npx @blobjobs/emulator` and
//! through `startEmulator()` (`npm/test/tarball.test.mjs`, plus the `node:test` example of
//! the package README as it is written). A SIGTERM to `npx` alone must stop the emulator
//! cleanly and leave no process of its group behind.
//!
//! `cargo xtask npm` packs the release binary with the same code; this test packs the debug
//! binary that `cargo test` has already built, so it costs no release build. Needs `node`
//! and `npm` (without them the test prints why and passes); `@netlify/blobs` comes from the
//! npm registry (or npm's cache).
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use blobjobs_test_support::{child, interop, npm, workspace_root};

const BIN: &str = env!("CARGO_BIN_EXE_blobs-emulator");

/// How long `npm install` or the node tests may take.
const LIMIT: Duration = Duration::from_secs(240);

/// The marker in the package README before the `node:test` example this test runs.
const EXAMPLE_MARKER: &str = "<!-- node:test example";

/// `npx` and everything it starts, in a process group of their own, killed if the test ends
/// early.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// The processes of process group `pgid` that are still running (zombies are not).
fn live_members(pgid: u32) -> Vec<String> {
    let mut live = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; the command name may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            live.push(stat.trim().to_owned());
        }
    }
    live
}

fn run(cmd: &mut Command, what: &str) -> String {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let out = child::wait(child, LIMIT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{text}",
        out.status
    );
    text
}

/// The README's `node:test` example, exactly as written there.
fn readme_example() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("npm/emulator/README.md")).unwrap();
    let after = &readme[readme.find(EXAMPLE_MARKER).expect("the example marker")..];
    let start = after.find("```js\n").expect("a js block after the marker") + "```js\n".len();
    let end = after[start..].find("```").unwrap();
    after[start..start + end].to_owned()
}

/// Answers whether the health route says `200` at `base`.
fn healthy(base: &str) -> bool {
    let address = base.trim_start_matches("http://");
    let Ok(mut stream) = TcpStream::connect(address) else {
        return false;
    };
    let request = format!(
        "GET /.well-known/blobs-emulator/health HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

fn size(path: &Path) -> String {
    let bytes = std::fs::metadata(path).unwrap().len();
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

#[test]
fn the_packages_work_from_their_tarballs() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if runtime
        .block_on(interop::prepare("the npm package test"))
        .is_none()
    {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let packs = tmp.path().join("packs");
    std::fs::create_dir_all(&packs).unwrap();
    let packed = npm::pack(Path::new(BIN), &packs, true).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "packed {} ({}) and {} ({}) in {:.1?}",
        packed.main.file_name().unwrap().to_string_lossy(),
        size(&packed.main),
        packed.platform.file_name().unwrap().to_string_lossy(),
        size(&packed.platform),
        started.elapsed()
    );

    let project = tmp.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{ "name": "tarball-test", "private": true, "type": "module" }"#,
    )
    .unwrap();
    let installing = Instant::now();
    run(
        Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--prefer-offline",
                "--save-exact",
            ])
            .arg(&packed.main)
            .arg(&packed.platform)
            .arg("@netlify/blobs@11.1.1")
            .current_dir(&project),
        "npm install of the tarballs",
    );
    println!("installed in {:.1?}", installing.elapsed());
    std::fs::copy(
        workspace_root().join("npm/test/tarball.test.mjs"),
        project.join("tarball.test.mjs"),
    )
    .unwrap();
    std::fs::write(project.join("readme.test.mjs"), readme_example()).unwrap();

    // `npx` with the same flags as the binary, in a process group of its own.
    let launched = Instant::now();
    let mut npx = Command::new("npx");
    npx.args(["@blobjobs/emulator", "--port", "0", "--dir", "npx-data"])
        .current_dir(&project)
        .env_remove("NETLIFY_BLOBS_CONTEXT")
        .env_remove("BLOBS_EMULATOR_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut group = Group(npx.spawn().unwrap());
    let mut lines = BufReader::new(group.0.stdout.take().unwrap()).lines();
    let mut base = String::new();
    let mut context = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("blobs-emulator listening on ") {
            base = rest.split_whitespace().next().unwrap().to_owned();
        }
        if let Some(rest) = line.strip_prefix("export NETLIFY_BLOBS_CONTEXT=") {
            context = rest.to_owned();
            break;
        }
    }
    assert!(!context.is_empty(), "npx printed no export line");
    std::thread::spawn(move || for _ in lines {});
    while !healthy(&base) {
        assert!(
            launched.elapsed() < Duration::from_secs(30),
            "npx never got healthy"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "npx @blobjobs/emulator: healthy {:.0?} after launch",
        launched.elapsed()
    );

    let report = run(
        Command::new("node")
            .args([
                "--test",
                "--test-reporter=spec",
                "tarball.test.mjs",
                "readme.test.mjs",
            ])
            .current_dir(&project)
            .env("BLOBS_NPX_CONTEXT", &context)
            .env_remove("NETLIFY_BLOBS_CONTEXT")
            .env_remove("BLOBS_EMULATOR_BINARY")
            // The official client's retry delay becomes 1 ms instead of 5 s.
            .env("NODE_ENV", "test"),
        "the node tests in the installed project",
    );
    println!("{report}");

    // A supervisor's SIGTERM to npx alone: the emulator must stop cleanly (it removes its
    // server record) and nothing of the group may be left.
    let record = project.join("npx-data/server.json");
    let record_text = std::fs::read_to_string(&record).unwrap();
    let record_json: serde_json::Value = serde_json::from_str(&record_text).unwrap();
    let emulator_pid = record_json["pid"].as_u64().unwrap();
    let pgid = group.0.id();
    let members = live_members(pgid);
    assert!(
        members
            .iter()
            .any(|m| m.starts_with(&format!("{emulator_pid} "))),
        "the emulator (pid {emulator_pid}) is not in npx's group:\n{}",
        members.join("\n")
    );
    let killed = Command::new("kill")
        .args(["-TERM", &pgid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while group.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "npx did not end on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    loop {
        let live = live_members(pgid);
        if live.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left running after npx ended:\n{}",
            live.join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !record.exists(),
        "the emulator did not stop cleanly: its server record is still there"
    );
    println!("npm package test: {:.1?} in all", started.elapsed());
}

//! Failures of the server's own storage are told well: a full disk is 507 with a clear message
//! and damages no stored value; one damaged blob file breaks no other key of its store; and no
//! response ever shows the path of the data directory (the server's log has it).
//!
//! The full disk is real: the emulator runs in a mount namespace of its own
//! (`unshare --user --map-root-user --mount`) over a 2 MiB tmpfs, which vanishes with it. This
//! needs no privilege where user namespaces are allowed (as on the project's CI machines, and
//! for root anywhere); where they are not, the test prints why and passes.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use blobjobs_backends::{FileOptions, FileStore};
use common::binary::Emulator;
use common::raw::{Answer, Ending, Outcome, exchange, request};
use common::{TOKEN, assert_rejected};

/// Sends an authorized request to a running emulator and returns its answer.
async fn call(server: &Emulator, method: &str, path: &str, body: &[u8]) -> Answer {
    let bearer = format!("Bearer {TOKEN}");
    let req = request(method, path, &[("authorization", &bearer)], body);
    match exchange(server.addr, &req, Ending::KeepOpen, Duration::from_secs(60)).await {
        Outcome::Response(answer) => answer,
        other => panic!("{method} {path}: {other:?}"),
    }
}

/// Every file under `dir`, recursively; none if it cannot be read.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    out
}

fn value(byte: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| byte ^ (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_507_and_damages_no_value() {
    let namespaces = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "true"])
        .status();
    if !namespaces.is_ok_and(|s| s.success()) {
        blobjobs_test_support::skip(
            "the full-disk test",
            "user and mount namespaces are not available, so no small disk can be made",
            "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().to_str().unwrap();
    let server = Emulator::start_in(
        &["unshare", "--user", "--map-root-user", "--mount"],
        Some(&format!("mount -t tmpfs -o size=2m tmpfs '{mount}'")),
        &["--dir", mount, "--max-blob-size", "4MiB"],
        &[],
    )
    .await;
    // The data directory as the emulator sees it, inside its namespace.
    let inside = Path::new("/proc")
        .join(server.pid().to_string())
        .join("root")
        .join(mount.trim_start_matches('/'));

    // Two values to keep: one written whole, one streamed (over 64 KiB).
    let small = value(1, 100);
    let large = value(2, 300 * 1024);
    assert_eq!(
        call(&server, "PUT", "/site-1/site:disk/small", &small)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&server, "PUT", "/site-1/site:disk/large", &large)
            .await
            .status,
        200
    );

    // Fill the disk.
    let mut fillers = 0;
    let full = loop {
        assert!(fillers < 20, "2 MiB never filled up");
        let answer = call(
            &server,
            "PUT",
            &format!("/site-1/site:disk/fill{fillers}"),
            &value(3, 256 * 1024),
        )
        .await;
        if answer.status != 200 {
            break answer;
        }
        fillers += 1;
    };
    let text = String::from_utf8_lossy(&full.body).into_owned();
    println!(
        "full disk after {fillers} fillers: {} {text:?}",
        full.status
    );
    assert_eq!(full.status, 507, "{text}");
    assert!(text.contains("storage is full"), "{text}");
    assert!(!text.contains(mount), "the data directory shows: {text}");

    // Overwrites that do not fit fail the same way, and change nothing.
    for (path, size) in [
        ("/site-1/site:disk/small", 1024 * 1024),
        ("/site-1/site:disk/large", 700 * 1024),
    ] {
        let answer = call(&server, "PUT", path, &value(9, size)).await;
        assert_eq!(answer.status, 507, "{path}");
    }
    assert_eq!(
        call(&server, "GET", "/site-1/site:disk/small", b"")
            .await
            .body,
        small
    );
    assert_eq!(
        call(&server, "GET", "/site-1/site:disk/large", b"")
            .await
            .body,
        large
    );
    let listing = call(&server, "GET", "/site-1/site:disk", b"").await;
    assert_eq!(listing.status, 200);
    // Failed writes leave no temporary file behind.
    let left = files(&inside);
    assert!(
        !left.is_empty(),
        "cannot see the data directory at {}",
        inside.display()
    );
    assert!(left.iter().all(|f| !f.starts_with(".tmp")), "{left:?}");

    // Room made, writes work again.
    for i in 0..fillers {
        assert_eq!(
            call(
                &server,
                "DELETE",
                &format!("/site-1/site:disk/fill{i}"),
                b""
            )
            .await
            .status,
            204
        );
    }
    let again = value(4, 500 * 1024);
    assert_eq!(
        call(&server, "PUT", "/site-1/site:disk/large", &again)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&server, "GET", "/site-1/site:disk/large", b"")
            .await
            .body,
        again
    );
    server.kill().await;
}

/// The file of one key is damaged on disk: reads of that key fail with a message that says
/// so (and no path), while every other key reads and lists as before.
#[tokio::test]
async fn a_damaged_blob_file_breaks_only_its_own_key() {
    let server = common::file_server(|c| c).await;
    for key in ["a", "b", "c"] {
        assert_eq!(
            server
                .put(&format!("/site-1/site:damage/{key}"), key)
                .await
                .status,
            200
        );
    }
    let root = server.data_dir().unwrap();
    let store = FileStore::open(root, "site-1/site:damage", FileOptions::default()).unwrap();
    std::fs::write(store.key_path("b").unwrap(), b"not a blob file").unwrap();

    let broken = server.get("/site-1/site:damage/b").await;
    assert_rejected(&broken, 500);
    assert!(broken.text().contains("damaged"), "{}", broken.text());
    let head = server
        .authed("HEAD", "/site-1/site:damage/b", &[], "")
        .await;
    assert_eq!(head.status, 500);
    for reply in [&broken, &head] {
        let nf_error = reply.header("x-nf-error").unwrap_or_default();
        assert!(!reply.text().contains(root.to_str().unwrap()));
        assert!(!nf_error.contains(root.to_str().unwrap()), "{nf_error}");
    }
    assert_eq!(server.get("/site-1/site:damage/a").await.text(), "a");
    let listing = server.get("/site-1/site:damage").await;
    assert_eq!(listing.status, 200, "{}", listing.text());
    let keys: Vec<String> = listing.json()["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["a", "c"]);
    // Writing the key again repairs it.
    assert_eq!(server.put("/site-1/site:damage/b", "b2").await.status, 200);
    assert_eq!(server.get("/site-1/site:damage/b").await.text(), "b2");
    server.stop().await.unwrap();
}

/// Storage that fails (here: a file where a store's directory must be) answers 500 and tells
/// the client why, but never where the data lives.
#[tokio::test]
async fn storage_failures_never_show_the_data_directory() {
    let server = common::file_server(|c| c).await;
    let root = server.data_dir().unwrap().to_path_buf();
    let store = FileStore::open(&root, "site-1/site:blocked", FileOptions::default()).unwrap();
    std::fs::write(store.dir(), b"a file in the way").unwrap();
    let shown = [
        root.to_str().unwrap().to_owned(),
        root.canonicalize().unwrap().to_str().unwrap().to_owned(),
    ];
    let replies = [
        server.put("/site-1/site:blocked/k", "v").await,
        server.get("/site-1/site:blocked/k").await,
        server.get("/site-1/site:blocked").await,
    ];
    for reply in &replies {
        assert!(reply.status.as_u16() >= 500, "{reply:?}");
        let mut everything = reply.text();
        for (name, value) in &reply.headers {
            everything.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        for path in &shown {
            assert!(
                !everything.contains(path.as_str()),
                "the data directory shows: {everything}"
            );
        }
        assert!(reply.text().contains("storage failed"), "{}", reply.text());
    }
    server.stop().await.unwrap();
}

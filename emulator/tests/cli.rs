//! The `blobs-emulator` binary: start-up banner, health, the client commands, the `env`
//! command, flags from environment variables, a clean exit on SIGTERM and SIGINT, the token
//! kept in the data directory, client commands that follow the exported context or the data
//! directory, start-up refusals, one-line errors, and the access log.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

use common::cli::*;

#[tokio::test]
async fn serve_prints_its_url_and_context_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        &["--port", "0", "--token", "tok-1", "--no-fsync"],
        &[("BLOBS_EMULATOR_DIR", dir.path().to_str().unwrap())],
    )
    .await;
    assert!(running.banner[0].starts_with("blobs-emulator listening on http://127.0.0.1:"));
    assert!(
        running.banner[0].contains("fsync off"),
        "{:?}",
        running.banner
    );
    assert!(running.base.starts_with("http://127.0.0.1:"));
    assert_eq!(health(&running.base).await, 200);

    let port = running.base.rsplit(':').next().unwrap().to_owned();
    let (code, out, _) = cli(&["env", "--port", &port, "--token", "tok-1"], None).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), running.export_line);

    let common = ["--url", &running.base, "--token", "tok-1", "--store", "cli"];
    let (code, etag, err) = cli(
        &[
            &["set"][..],
            &common,
            &["greeting", "hello", "--metadata", r#"{"a":1}"#],
        ]
        .concat(),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(etag.trim().starts_with('"'));
    let (code, _, err) = cli(
        &[&["set"][..], &common, &["dir/piped", "--input", "-"]].concat(),
        Some(b"from stdin"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        &[&["get"][..], &common, &["greeting", "--metadata"]].concat(),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello");
    assert!(err.contains(r#"metadata: {"a":1}"#), "{err}");
    assert!(err.contains(etag.trim()), "{err}");
    let (_, out, _) = cli(&[&["get"][..], &common, &["dir/piped"]].concat(), None).await;
    assert_eq!(out, "from stdin");
    let (code, out, _) = cli(&[&["list"][..], &common].concat(), None).await;
    assert_eq!(code, 0);
    assert_eq!(out, "dir/piped\ngreeting\n");
    let (_, out, _) = cli(&[&["list"][..], &common, &["--directories"]].concat(), None).await;
    assert_eq!(out, "dir/\ngreeting\n");
    let (code, _, _) = cli(&[&["delete"][..], &common, &["greeting"]].concat(), None).await;
    assert_eq!(code, 0);
    let (code, _, err) = cli(&[&["get"][..], &common, &["greeting"]].concat(), None).await;
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = cli(
        &[
            "get",
            "--url",
            &running.base,
            "--token",
            "wrong",
            "--store",
            "cli",
            "x",
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");

    signal(&running.child, "TERM").await;
    assert_eq!(exit_code(running.child).await, 0);

    // The data outlives the process: a new server on the same directory still has it.
    let again = start(
        &[
            "--port",
            "0",
            "--token",
            "tok-2",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let (_, out, _) = cli(
        &[
            "get",
            "--url",
            &again.base,
            "--token",
            "tok-2",
            "--store",
            "cli",
            "dir/piped",
        ],
        None,
    )
    .await;
    assert_eq!(out, "from stdin");
    signal(&again.child, "INT").await;
    assert_eq!(exit_code(again.child).await, 0);
}

#[tokio::test]
async fn flags_come_from_the_environment_and_tokens_are_generated() {
    let running = start(
        &[],
        &[
            ("BLOBS_EMULATOR_PORT", "0"),
            ("BLOBS_EMULATOR_IN_MEMORY", "true"),
            ("BLOBS_EMULATOR_SITE", "env-site"),
        ],
    )
    .await;
    assert!(running.banner.iter().any(|l| l.contains("in memory")));
    let token_line = running
        .banner
        .iter()
        .find(|l| l.starts_with("token: "))
        .expect("a generated token is printed");
    let token = token_line["token: ".len()..].split(' ').next().unwrap();
    assert_eq!(token.len(), 32);
    let context = running.export_line.clone();
    assert!(context.len() > 40);
    let (code, out, _) = cli(
        &[
            "env",
            "--port",
            running.base.rsplit(':').next().unwrap(),
            "--token",
            token,
            "--site",
            "env-site",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), context);
    signal(&running.child, "TERM").await;
    assert_eq!(exit_code(running.child).await, 0);
}

#[tokio::test]
async fn conflicting_or_bad_flags_fail_fast() {
    let (code, _, err) = cli(&["--in-memory", "--dir", "x", "--port", "0"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = cli(&["--max-blob-size", "lots", "--port", "0"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("lots"), "{err}");
    let (code, _, _) = cli(&["--token", "", "--in-memory", "--port", "0"], None).await;
    assert_ne!(code, 0);
    let (code, _, _) = cli(
        &["--list-page-size", "0", "--in-memory", "--port", "0"],
        None,
    )
    .await;
    assert_ne!(code, 0);
}

/// `--store-url` picks the storage: `file://` and `memory://` as `--dir` and `--in-memory`;
/// an engine needs the token given (every emulator over it must share one), and one that is
/// down stops the start with one line naming it, never its password. (Serving from running
/// engines is in `cluster.rs`.)
#[tokio::test]
async fn store_urls_choose_the_storage_and_engines_need_a_given_token() {
    let (code, _, err) = cli(
        &["--store-url", "memory://", "--in-memory", "--port", "0"],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = cli(&["--store-url", "http://127.0.0.1:1", "--port", "0"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("--store-url takes"), "{err}");

    let port = common::free_port();
    let url = format!("postgres://postgres:hunter2secret@127.0.0.1:{port}/postgres");
    let (code, _, err) = cli(&["--store-url", &url, "--port", "0"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("BLOBS_EMULATOR_TOKEN"), "{err}");
    let token = [("BLOBS_EMULATOR_TOKEN", "tok")];
    let (code, out, err) = cli_in(None, &["--store-url", &url, "--port", "0"], &token, None).await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot serve from postgres at 127.0.0.1:")
            && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().join("d").display());
    let running = start(&["--store-url", &url, "--port", "0"], &[]).await;
    assert!(
        running.banner[0].contains(&format!("files in {}", dir.path().join("d").display())),
        "{:?}",
        running.banner
    );
    // The token is kept in the directory, as with --dir.
    assert!(dir.path().join("d/token").is_file());
    stop(running).await;
    let running = start(&["--store-url", "memory://", "--port", "0"], &[]).await;
    assert!(
        running.banner[0].contains("(in memory)"),
        "{:?}",
        running.banner
    );
    stop(running).await;
}

// Point: a stable dev token.

#[tokio::test]
async fn a_generated_token_is_kept_in_the_data_directory_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let dir_arg = dir.to_str().unwrap();
    let first = start(&["--port", "0", "--dir", dir_arg, "--no-fsync"], &[]).await;
    let token = first.token();
    assert!(
        first.banner.iter().any(|l| l.starts_with("token: ")),
        "{:?}",
        first.banner
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "token file mode {mode:o}");
    }
    // `env` recovers the running server's context from the directory alone.
    let (code, out, err) = cli(&["env", "--dir", dir_arg], None).await;
    assert_eq!((code, out.trim()), (0, first.export_line.as_str()), "{err}");
    stop(first).await;

    let second = start(&["--port", "0", "--dir", dir_arg, "--no-fsync"], &[]).await;
    assert_eq!(second.token(), token, "a restart keeps the token");
    stop(second).await;

    // A token given through the environment wins for that run and is not written down.
    let chosen = start(
        &["--port", "0", "--dir", dir_arg],
        &[("BLOBS_EMULATOR_TOKEN", "chosen-token")],
    )
    .await;
    assert_eq!(chosen.token(), "chosen-token");
    assert!(!chosen.banner.iter().any(|l| l.starts_with("token: ")));
    // `env` cannot know that token: it says how to give it, in one line.
    let (code, _, err) = cli(&["env", "--dir", dir_arg], None).await;
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("BLOBS_EMULATOR_TOKEN"), "{err}");
    let (code, out, err) = cli_in(
        None,
        &["env", "--dir", dir_arg],
        &[("BLOBS_EMULATOR_TOKEN", "chosen-token")],
        None,
    )
    .await;
    assert_eq!(
        (code, out.trim()),
        (0, chosen.export_line.as_str()),
        "{err}"
    );
    stop(chosen).await;
    let again = start(&["--port", "0", "--dir", dir_arg], &[]).await;
    assert_eq!(again.token(), token);
    stop(again).await;
}

#[tokio::test]
async fn listening_beyond_loopback_without_tls_prints_a_warning() {
    let wide = start(
        &["--host", "0.0.0.0", "--port", "0", "--in-memory"],
        &[("BLOBS_EMULATOR_TOKEN", "t")],
    )
    .await;
    assert_eq!(health(&wide.base).await, 200);
    let err = stop(wide).await;
    assert!(
        err.iter()
            .any(|l| l.contains("warning") && l.contains("0.0.0.0") && l.contains("TLS")),
        "{err:?}"
    );
    let local = start(
        &["--port", "0", "--in-memory"],
        &[("BLOBS_EMULATOR_TOKEN", "t")],
    )
    .await;
    let err = stop(local).await;
    assert!(!err.iter().any(|l| l.contains("warning")), "{err:?}");
}

// Point: a CLI that follows the context.

#[tokio::test]
async fn client_commands_follow_the_exported_context_and_take_the_store_positionally() {
    let running = start(
        &["--port", "0", "--in-memory"],
        &[("BLOBS_EMULATOR_TOKEN", "ctx-token")],
    )
    .await;
    // A folder without a data directory: the context is the only way to the server.
    let elsewhere = tempfile::tempdir().unwrap();
    let context = running.context();
    let env = [("NETLIFY_BLOBS_CONTEXT", context.as_str())];
    let at = Some(elsewhere.path());
    let (code, etag, err) = cli_in(at, &["set", "jobs", "job-1", "pending"], &env, None).await;
    assert_eq!(code, 0, "{err}");
    assert!(etag.trim().starts_with('"'), "{etag}");
    let (code, out, err) = cli_in(at, &["get", "jobs", "job-1"], &env, None).await;
    assert_eq!((code, out.as_str()), (0, "pending"), "{err}");
    let (code, out, err) = cli_in(at, &["list", "jobs"], &env, None).await;
    assert_eq!((code, out.as_str()), (0, "job-1\n"), "{err}");
    // `--store` still works, and so does an input file after a positional store.
    let (code, out, _) = cli_in(at, &["list", "--store", "jobs"], &env, None).await;
    assert_eq!((code, out.as_str()), (0, "job-1\n"));
    let (code, _, err) = cli_in(
        at,
        &["set", "jobs", "job-2", "--input", "-"],
        &env,
        Some(b"piped"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli_in(at, &["get", "--store", "jobs", "job-2"], &env, None).await;
    assert_eq!(out, "piped");
    let (code, _, err) = cli_in(at, &["delete", "jobs", "job-1"], &env, None).await;
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = cli_in(at, &["list", "jobs"], &env, None).await;
    assert_eq!(out, "job-2\n");
    // Without a store, one line says how to name it.
    let (code, _, err) = cli_in(at, &["list"], &env, None).await;
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("store"), "{err}");
    stop(running).await;
}

#[tokio::test]
async fn client_commands_find_the_emulator_through_its_data_directory() {
    let project = tempfile::tempdir().unwrap();
    let at = Some(project.path());
    // The defaults throughout: data in ./.blobs-emulator, a generated token, no flags.
    let running = start_in(at, &["--port", "0", "--no-fsync"], &[]).await;
    let (code, _, err) = cli_in(at, &["set", "jobs", "k", "v"], &[], None).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli_in(at, &["get", "jobs", "k"], &[], None).await;
    assert_eq!((code, out.as_str()), (0, "v"), "{err}");
    let (code, out, err) = cli_in(at, &["env"], &[], None).await;
    assert_eq!(
        (code, out.trim()),
        (0, running.export_line.as_str()),
        "{err}"
    );
    // From elsewhere, --dir names the directory.
    let data = project.path().join(".blobs-emulator");
    let (code, out, err) = cli(&["list", "jobs", "--dir", data.to_str().unwrap()], None).await;
    assert_eq!((code, out.as_str()), (0, "k\n"), "{err}");
    stop(running).await;
    // Once it has stopped, a command says that nothing answers, in one line.
    let (code, _, err) = cli_in(at, &["get", "jobs", "k"], &[], None).await;
    assert_ne!(code, 0);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[tokio::test]
async fn host_names_are_resolved() {
    let running = start(
        &["--host", "localhost", "--port", "0", "--in-memory"],
        &[("BLOBS_EMULATOR_TOKEN", "t")],
    )
    .await;
    assert_eq!(health(&running.base).await, 200);
    stop(running).await;
    let (code, _, err) = cli(
        &[
            "--host",
            "no-such-host.invalid",
            "--port",
            "0",
            "--in-memory",
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("no-such-host.invalid"), "{err}");
}

/// Runs `touch` in `dir` under `program`; whether it could create a file there.
#[cfg(unix)]
async fn can_write(program: &[&str], dir: &Path) -> bool {
    let mut cmd = match program {
        [] => Command::new("touch"),
        [first, rest @ ..] => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg("touch");
            cmd
        }
    };
    cmd.arg(dir.join("probe"))
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap()
        .success()
}

#[cfg(unix)]
#[tokio::test]
async fn a_data_directory_that_cannot_be_written_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("read-only");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root writes through permission bits. Run the emulator then as root without the
    // capabilities that allow it (setpriv, from util-linux), so the directory is as
    // unwritable for it as it is for any other user; check that it really is.
    let mut program: &[&str] = &[];
    if can_write(&[], &dir).await {
        std::fs::remove_file(dir.join("probe")).unwrap();
        program = &[
            "setpriv",
            "--bounding-set=-dac_override,-dac_read_search,-fowner",
            "--",
        ];
    }
    assert!(
        !can_write(program, &dir).await,
        "cannot make a directory that the emulator cannot write"
    );
    let mut cmd = command(program, None, &[]);
    cmd.args(["--port", "0", "--dir", dir.to_str().unwrap()]);
    let (code, out, err) = run(cmd, &[], None).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(!out.contains("listening"), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not writable"), "{err}");
    assert!(err.contains("read-only"), "{err}");
}

#[tokio::test]
async fn an_invalid_log_level_is_refused() {
    for bad in ["verbose", "info,verbose", "blobjobs=loud"] {
        let (code, _, err) = cli(&["--log-level", bad, "--in-memory", "--port", "0"], None).await;
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("log level"), "{err}");
    }
    let running = start(
        &[
            "--log-level",
            "warn,blobjobs_emulator=debug",
            "--in-memory",
            "--port",
            "0",
        ],
        &[("BLOBS_EMULATOR_TOKEN", "t")],
    )
    .await;
    stop(running).await;
}

#[tokio::test]
async fn user_errors_are_one_line_without_a_backtrace() {
    let running = start(
        &["--port", "0", "--in-memory"],
        &[("BLOBS_EMULATOR_TOKEN", "t")],
    )
    .await;
    let context = running.context();
    let env = [
        ("RUST_BACKTRACE", "1"),
        ("RUST_LIB_BACKTRACE", "1"),
        ("NETLIFY_BLOBS_CONTEXT", context.as_str()),
    ];
    let port = running.port();
    for args in [
        &["get", "jobs", "nope"][..],
        &["get", "jobs", "k", "--token", "wrong"],
        &["serve", "--port", &port, "--in-memory"],
    ] {
        let (code, _, err) = cli_in(None, args, &env, None).await;
        assert_eq!(code, 1, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{err}");
        assert!(!err.contains("backtrace"), "{err}");
    }
    stop(running).await;
}

/// The access log lines of one server's stderr.
fn access_lines(err: &[String]) -> Vec<&String> {
    err.iter().filter(|l| l.contains("access")).collect()
}

#[tokio::test]
async fn the_access_log_has_a_line_per_request_and_follows_quiet_and_json() {
    let secret_query = "/.well-known/blobs-emulator/health?signature=topsecret&prefix=a";
    let env = [("BLOBS_EMULATOR_TOKEN", "t")];
    // The default level: on, plain text without colour codes when stderr is not a terminal.
    let running = start(&["--port", "0", "--in-memory"], &env).await;
    let url = ["--url", running.base.as_str()];
    let (code, _, err) = cli_in(
        None,
        &[&["set", "s", "k", "hello"][..], &url].concat(),
        &env,
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        get_status(&format!("{}{secret_query}", running.base)).await,
        200
    );
    let err = stop(running).await;
    let lines = access_lines(&err);
    assert_eq!(lines.len(), 2, "{err:?}");
    let put = lines[0];
    for part in [
        "PUT",
        "/local-site/site:s/k",
        "status=200",
        "bytes_in=5",
        "duration_ms=",
    ] {
        assert!(put.contains(part), "{part} in {put}");
    }
    assert!(
        lines[1].contains("prefix=a") && lines[1].contains("bytes_out=3"),
        "{}",
        lines[1]
    );
    assert!(!err.iter().any(|l| l.contains("topsecret")), "{err:?}");
    assert!(!err.iter().any(|l| l.contains('\u{1b}')), "{err:?}");

    // --quiet: no access log.
    let quiet = start(&["--port", "0", "--in-memory", "--quiet"], &env).await;
    assert_eq!(health(&quiet.base).await, 200);
    let err = stop(quiet).await;
    assert!(access_lines(&err).is_empty(), "{err:?}");

    // --log-format json: every line is a JSON object, the request's fields at the top.
    let json = start(
        &["--port", "0", "--in-memory", "--log-format", "json"],
        &env,
    )
    .await;
    assert_eq!(
        get_status(&format!("{}{secret_query}", json.base)).await,
        200
    );
    let err = stop(json).await;
    let objects: Vec<serde_json::Value> = err
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let request = objects
        .iter()
        .find(|o| o["method"] == "GET")
        .unwrap_or_else(|| panic!("{objects:?}"));
    assert_eq!(request["status"], 200);
    assert_eq!(request["bytes_out"], 3);
    assert!(request["duration_ms"].is_number(), "{request}");
    assert!(!request["path"].as_str().unwrap().contains("topsecret"));
}

/// Whether process `pid` still runs (a zombie waiting for its new parent to reap it does not).
fn running(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(|s| s != "Z")
        })
        .unwrap_or(false)
}

/// A launcher killed with SIGKILL (which it cannot pass on) leaves no emulator behind when
/// it named itself in BLOBS_EMULATOR_PARENT_PID; without the variable the emulator stays.
#[tokio::test]
async fn the_emulator_stops_when_the_launcher_that_named_itself_dies() {
    for names_itself in [true, false] {
        let variable = if names_itself {
            "BLOBS_EMULATOR_PARENT_PID=$$ "
        } else {
            ""
        };
        // The shell stands for the launcher: it starts the emulator, prints its pid, waits.
        let script = format!(
            "{variable}\"$0\" serve --in-memory --port 0 --token t >/dev/null 2>&1 & echo $!; wait"
        );
        let mut launcher = command(&["sh", "-c", &script, BIN], None, &[]);
        launcher.stdout(Stdio::piped());
        let mut launcher = launcher.spawn().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            launcher.stdout.take().unwrap(),
        ));
        let pid = lines.next_line().await.unwrap().unwrap();
        // Wait until the emulator runs, then kill the launcher outright.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !running(&pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        launcher.kill().await.unwrap();
        // It looks four times a second; without the variable, a second shows it stays.
        let patience = std::time::Duration::from_secs(if names_itself { 10 } else { 1 });
        let deadline = std::time::Instant::now() + patience;
        while running(&pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let outlived = running(&pid);
        if outlived {
            let _ = std::process::Command::new("kill").arg(&pid).status();
        }
        assert_eq!(
            outlived,
            !names_itself,
            "with the variable {}: the emulator outlived its killed launcher: {outlived}",
            if names_itself { "set" } else { "unset" }
        );
    }
}

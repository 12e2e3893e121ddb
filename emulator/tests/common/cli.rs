//! The `blobs-emulator` binary driven as a user drives it, for `tests/cli.rs`: a child with a
//! clean environment, its banner and export line, signals, exit codes, and the client
//! commands.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_blobs-emulator");

/// Variables the binary reads, which the environment of the test run must not leak into it.
pub const READ_BY_THE_BINARY: &[&str] = &[
    "RUST_LOG",
    "NO_COLOR",
    "NETLIFY_BLOBS_CONTEXT",
    "BLOBS_EMULATOR_HOST",
    "BLOBS_EMULATOR_PORT",
    "BLOBS_EMULATOR_DIR",
    "BLOBS_EMULATOR_IN_MEMORY",
    "BLOBS_EMULATOR_STORE_URL",
    "BLOBS_EMULATOR_TOKEN",
    "PGPASSWORD",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "BLOBS_EMULATOR_SITE",
    "BLOBS_EMULATOR_URL",
    "BLOBS_EMULATOR_LOG_LEVEL",
    "BLOBS_EMULATOR_LOG_FORMAT",
    "BLOBS_EMULATOR_QUIET",
    "BLOBS_EMULATOR_PARENT_PID",
];

/// The binary (or `program` running it, such as `setpriv`) in `cwd` with a clean environment
/// plus `envs`.
pub fn command(program: &[&str], cwd: Option<&Path>, envs: &[(&str, &str)]) -> Command {
    let mut cmd = match program {
        [] => Command::new(BIN),
        [first, rest @ ..] => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(BIN);
            cmd
        }
    };
    for name in READ_BY_THE_BINARY {
        cmd.env_remove(name);
    }
    if let Some(cwd) = cwd {
        cmd.current_dir(cwd);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.kill_on_drop(true);
    cmd
}

pub struct Running {
    pub child: Child,
    pub base: String,
    pub export_line: String,
    pub banner: Vec<String>,
    /// Every line the server wrote to stderr so far; read continuously, so a chatty log never
    /// fills the pipe and blocks the server.
    pub stderr: Arc<Mutex<Vec<String>>>,
    pub stderr_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The stderr lines once the process has exited (after [`exit_code`]).
    pub async fn stderr_after_exit(self) -> Vec<String> {
        let Running {
            mut child,
            stderr,
            stderr_task,
            ..
        } = self;
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("exit in time")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{:?}", stderr.lock().unwrap());
        tokio::time::timeout(Duration::from_secs(5), stderr_task)
            .await
            .expect("stderr closes")
            .unwrap();
        stderr.lock().unwrap().clone()
    }

    /// The value of the exported `NETLIFY_BLOBS_CONTEXT`.
    pub fn context(&self) -> String {
        self.export_line["export NETLIFY_BLOBS_CONTEXT=".len()..].to_owned()
    }

    pub fn port(&self) -> String {
        self.base.rsplit(':').next().unwrap().to_owned()
    }

    /// The decoded context's token.
    pub fn token(&self) -> String {
        context_json(&self.context())["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn context_json(encoded: &str) -> serde_json::Value {
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    serde_json::from_slice(&json).unwrap()
}

/// Starts the binary and reads its banner up to the export line.
pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Running {
    start_in(None, args, envs).await
}

/// Starts the binary in `cwd` and reads its banner up to the export line.
pub async fn start_in(cwd: Option<&Path>, args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut cmd = command(&[], cwd, envs);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let mut err_lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let collected = stderr.clone();
    let stderr_task = tokio::spawn(async move {
        while let Ok(Some(line)) = err_lines.next_line().await {
            collected.lock().unwrap().push(line);
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let export_line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines.next_line().await.unwrap();
            let Some(line) = line else {
                panic!(
                    "stdout ended before the export line; stderr: {:?}",
                    stderr.lock().unwrap()
                );
            };
            banner.push(line.clone());
            if line.starts_with("export NETLIFY_BLOBS_CONTEXT=") {
                return line;
            }
        }
    })
    .await
    .expect("banner in time");
    // Keep reading stdout so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let base = super::edge_url_of_export_line(&export_line);
    Running {
        child,
        base,
        export_line,
        banner,
        stderr,
        stderr_task,
    }
}

pub async fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

pub async fn exit_code(mut child: Child) -> i32 {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exit in time")
        .unwrap()
        .code()
        .expect("an exit code, not a signal")
}

/// Stops a server with SIGTERM and returns its stderr.
pub async fn stop(running: Running) -> Vec<String> {
    signal(&running.child, "TERM").await;
    running.stderr_after_exit().await
}

pub async fn cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    cli_in(None, args, &[], stdin).await
}

/// Runs the binary to its end in `cwd` with `envs` (and nothing else of the test's
/// environment that it reads); returns the exit code, stdout and stderr.
pub async fn cli_in(
    cwd: Option<&Path>,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> (i32, String, String) {
    run(command(&[], cwd, envs), args, stdin).await
}

pub async fn run(mut cmd: Command, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, bytes)
            .await
            .unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the command ends in time")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub async fn health(base: &str) -> u16 {
    get_status(&format!("{base}/.well-known/blobs-emulator/health")).await
}

pub async fn get_status(uri: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<blobjobs_emulator::body::ResponseBody>();
    let req = http::Request::get(uri)
        .body(blobjobs_emulator::body::empty())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

//! The supervisor of one engine process: a shell that starts the engine, stops and starts it
//! on request, and stops it and removes its files when its stdin closes, however the test
//! process ends.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use super::Unavailable;

/// The supervisor's script. Arguments: the stop signal, the grace period in seconds before
/// SIGKILL, the log file, the number N of paths to remove at the end, those N paths, then the
/// engine's command. It prints the engine's PID after each start and `stopped` after each
/// stop, and reads `stop` and `start` lines; at the end of its input it stops the engine and
/// removes the paths.
const SCRIPT: &str = r#"
sig=$1; grace=$2; log=$3; n=$4; shift 4
cleanup=""
while [ "$n" -gt 0 ]; do cleanup="$cleanup
$1"; shift; n=$((n - 1)); done
pid=""
start() { "$@" </dev/null >>"$log" 2>&1 & pid=$!; echo "$pid"; }
stop() {
  [ -n "$pid" ] || return 0
  kill -s "$sig" "$pid" 2>/dev/null
  ( sleep "$grace"; kill -9 "$pid" 2>/dev/null ) </dev/null >/dev/null 2>&1 &
  killer=$!
  wait "$pid" 2>/dev/null
  kill "$killer" 2>/dev/null
  wait "$killer" 2>/dev/null
  pid=""
}
start "$@"
while IFS= read -r line; do
  case "$line" in
    stop) stop; echo stopped ;;
    start) start "$@" ;;
  esac
done
stop
printf '%s\n' "$cleanup" | while IFS= read -r path; do
  [ -n "$path" ] && rm -rf -- "$path"
done
"#;

/// How the engine is stopped.
pub(crate) struct StopWith {
    /// The signal name for `kill -s` (`KILL`, `INT`).
    pub signal: &'static str,
    /// Seconds before SIGKILL follows.
    pub grace_secs: u32,
}

/// A running supervisor and its engine.
pub(crate) struct Supervisor {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The engine's PID while it runs.
    pid: Option<u32>,
    log: PathBuf,
    what: &'static str,
}

impl Supervisor {
    /// Starts `engine` (with its environment and working directory already set) under a
    /// supervisor that removes `cleanup` at the end.
    pub fn start(
        what: &'static str,
        engine: &Command,
        stop: StopWith,
        log: &Path,
        cleanup: &[PathBuf],
    ) -> Result<Supervisor, Unavailable> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("supervisor")
            .arg(stop.signal)
            .arg(stop.grace_secs.to_string())
            .arg(log)
            .arg(cleanup.len().to_string())
            .args(cleanup)
            .arg(engine.get_program())
            .args(engine.get_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in engine.get_envs() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        if let Some(dir) = engine.get_current_dir() {
            cmd.current_dir(dir);
        }
        // A process group of its own: a Ctrl-C at the terminal reaches the test or xtask, not
        // the supervisor, which then stops the engine and cleans up when its stdin closes.
        // In the terminal's group, the shell would die of the signal before cleaning up.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().map_err(|e| {
            Unavailable::failed(what, format!("cannot start its supervisor (sh): {e}"))
        })?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut sup = Supervisor {
            child,
            stdin,
            stdout,
            pid: None,
            log: log.to_path_buf(),
            what,
        };
        sup.pid = Some(sup.read_pid());
        Ok(sup)
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the {} supervisor ended", self.what);
        line.trim().to_owned()
    }

    fn read_pid(&mut self) -> u32 {
        let line = self.read_line();
        line.parse()
            .unwrap_or_else(|_| panic!("the {} supervisor said {line:?}", self.what))
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Whether the engine process still runs (a zombie counts as ended).
    pub fn engine_alive(&self) -> bool {
        let Some(pid) = self.pid else { return false };
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
                !matches!(state.and_then(|s| s.chars().next()), Some('Z') | Some('X'))
            }
            Err(_) => false,
        }
    }

    /// Stops the engine (with the stop signal, then SIGKILL after the grace period) and
    /// waits until it has ended; its files stay.
    pub fn stop_engine(&mut self) {
        self.send("stop");
        let line = self.read_line();
        assert_eq!(
            line, "stopped",
            "the {} supervisor said {line:?}",
            self.what
        );
        self.pid = None;
    }

    /// Starts the engine again on the same files.
    pub fn start_engine(&mut self) {
        self.send("start");
        self.pid = Some(self.read_pid());
    }

    /// The end of the engine's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Why not, with the log's tail, unless the engine runs.
    pub fn check_alive(&self) -> Result<(), Unavailable> {
        if self.engine_alive() {
            return Ok(());
        }
        Err(Unavailable::failed(
            self.what,
            format!(
                "it exited during start-up; its log ends with:\n{}",
                self.log_tail()
            ),
        ))
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The end of its input tells the supervisor to stop the engine and clean up; waiting
        // for it means the next test finds the files gone.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

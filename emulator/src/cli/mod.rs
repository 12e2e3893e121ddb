//! The parts of the `blobs-emulator` binary that `main.rs` wires together: the client commands
//! and `env` (`client`), the data directory's own files (`data_dir`), logging (`logging`),
//! addresses (`net`), and the small parsers and helpers below.

pub mod client;
pub mod data_dir;
pub mod logging;
pub mod net;

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use blobjobs_backends::http::Token;

/// Ends the process: success, or the error on one line of stderr and exit code 1. A user's
/// mistake is not a bug, so no backtrace is printed, whatever `RUST_BACKTRACE` says: the
/// error's chain of causes is all there is to tell. A reader that went away (`| head`) is not
/// an error worth a message.
pub fn exit(result: Result<()>) -> ExitCode {
    let Err(err) = result else {
        return ExitCode::SUCCESS;
    };
    let broken_pipe = err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    if !broken_pipe {
        eprintln!("error: {}", one_line(&err));
    }
    ExitCode::FAILURE
}

/// The error and its causes joined by `: ` on one line, leaving out a cause whose text the
/// line already holds (many errors repeat their source's message in their own).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Prints a line to stdout, and goes on if nobody reads it any more: a server keeps serving
/// when the pipe its banner went to is closed.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// A token from a flag or variable (clap's parser, so it is redacted from then on).
pub fn parse_token(text: &str) -> Result<Token, String> {
    Ok(Token::new(text))
}

/// 128 random bits in hex: a token nobody guesses.
pub fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses `1024`, `64KiB`, `5GiB`, `10M` and the like.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1048576 or 5GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// The variable a launcher sets to its own process ID (the npm package's `npx` launcher and
/// `startEmulator` do): the emulator then stops, as on SIGTERM, once that process is no
/// longer its parent. A launcher or test runner killed with SIGKILL cannot pass a signal on,
/// and would otherwise leave the emulator serving on its port.
pub const PARENT_PID_ENV: &str = "BLOBS_EMULATOR_PARENT_PID";

/// How often the emulator looks whether its launcher is still its parent.
#[cfg(unix)]
const PARENT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// A future that completes on SIGINT or SIGTERM, or when the launcher named by
/// [`PARENT_PID_ENV`] is gone. The handlers are installed here, before the banner is printed,
/// so that a supervisor that signals as soon as it reads the banner gets a clean stop rather
/// than the default action of the signal.
pub fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let launcher = std::env::var(PARENT_PID_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok());
        Ok(async move {
            let parent_gone = async {
                let Some(pid) = launcher else {
                    return std::future::pending().await;
                };
                while std::os::unix::process::parent_id() == pid {
                    tokio::time::sleep(PARENT_POLL).await;
                }
                tracing::info!("the launcher (process {pid}) is gone");
            };
            tokio::select! {
                _ = int.recv() => tracing::info!("signal received"),
                _ = term.recv() => tracing::info!("signal received"),
                () = parent_gone => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("signal received");
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_without_repeats() {
        let source = std::io::Error::other("connection refused");
        let err = anyhow::Error::new(source)
            .context("get k: connection refused")
            .context("cannot read\nfrom the server");
        assert_eq!(
            one_line(&err),
            "cannot read from the server: get k: connection refused"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("5GiB"), Ok(5 << 30));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}

//! Logging of `serve`: the filter from `--log-level` (checked when the flags are read) or
//! `RUST_LOG`, plain text or JSON lines on stderr, colour only on a terminal.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// How log events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; coloured when stderr is a terminal and NO_COLOR is unset.
    #[default]
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Checks a `--log-level` value: a level (`error`, `warn`, `info`, `debug`, `trace`, `off`),
/// or comma-separated directives `TARGET=LEVEL` with at most one bare level. Stricter than
/// `RUST_LOG`, which takes a bare word for a target at every level, so that a mistyped level
/// is refused instead of silently logging everything.
pub fn parse_level(text: &str) -> Result<String, String> {
    let refuse = |why: &str| {
        Err(format!(
            "{why}: use one of {}, or directives such as warn,blobjobs_emulator=debug",
            LEVELS.join(", ")
        ))
    };
    let is_level = |word: &str| LEVELS.contains(&word.to_ascii_lowercase().as_str());
    for directive in text.split(',') {
        let level = match directive.split_once('=') {
            Some((target, level)) if !target.trim().is_empty() => level,
            Some(_) => return refuse(&format!("{directive:?} has no target before its log level")),
            None => directive,
        };
        if !is_level(level.trim()) {
            return refuse(&format!("{:?} is not a log level", level.trim()));
        }
    }
    match EnvFilter::try_new(text) {
        Ok(_) => Ok(text.to_owned()),
        Err(e) => refuse(&format!("not a log filter ({e})")),
    }
}

/// Installs the global subscriber: `RUST_LOG` when it is set and valid, else `error` with
/// `quiet`, else `level` (already checked by [`parse_level`]).
pub fn init(level: &str, format: LogFormat, quiet: bool) {
    let fallback = if quiet { "error" } else { level };
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value).unwrap_or_else(|e| {
            eprintln!("warning: RUST_LOG={value:?} is ignored ({e}); logging at {fallback}");
            EnvFilter::new(fallback)
        }),
        _ => EnvFilter::new(fallback),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_ansi(false)
            .init(),
    }
}

/// Colour codes only for a person at a terminal: never into a file or a pipe, and never when
/// NO_COLOR is set to anything (<https://no-color.org>).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_are_checked() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "warn,blobjobs_emulator=debug",
            "blobjobs_emulator::access=off",
        ] {
            assert_eq!(parse_level(good).as_deref(), Ok(good));
        }
        for bad in ["", "verbose", "info,verbose", "x=loud", "=info", "info,,"] {
            assert!(parse_level(bad).is_err(), "{bad:?}");
        }
    }
}

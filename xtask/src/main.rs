//! Project automation: `cargo xtask ci | conformance | bench | npm | tidy`.
//!
//! Run `cargo xtask help` for the list. Every task is a thin sequence of cargo (and npm)
//! invocations, so that what CI runs is exactly what a contributor runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory as _, Parser, Subcommand};

mod bench;
mod conformance;
mod npm;
mod tidy;

/// Project automation for blobjobs: what CI runs is exactly what a contributor runs.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    /// The task; without one, this help.
    #[command(subcommand)]
    task: Option<Task>,
}

/// The tasks.
#[derive(Debug, Subcommand)]
enum Task {
    /// Format check, clippy with -D warnings, tidy, the whole test suite, and cargo package
    Ci,
    /// The conformance suite against every backend, emulator in-process; matrix and reports
    /// in target/conformance/
    ///
    /// Runs the conformance suite against memory, file, file with every instance a separate
    /// process, and the HTTP backend through an in-process emulator; prints the matrix and the
    /// memory backend's counterexample; writes text, JSON lines, JUnit and Markdown reports.
    /// Exits 0 exactly when memory fails every cross-instance property and passes every
    /// single-instance one, and every other backend passes everything.
    Conformance(conformance::Args),
    /// Every benchmark (criterion, HTTP load against the official server, Rust vs JS client);
    /// report in target/bench-report/
    ///
    /// Runs the project's benchmarks (all groups by default) and writes a report to
    /// target/bench-report/: report.md (medians, ratios and targets), throughput.svg,
    /// results.json, and the raw logs. Loopback only; every run is bounded in time.
    Bench(bench::Args),
    /// The npm packages (launcher and startEmulator, and this platform's binary) packed
    /// around the release build; tarballs in target/npm/
    Npm(npm::Args),
    /// Repository hygiene checks (also part of ci)
    Tidy,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.task {
        None => {
            Cli::command().print_help()?;
            Ok(())
        }
        Some(Task::Ci) => ci(),
        Some(Task::Conformance(args)) => conformance::run(&root(), args),
        Some(Task::Bench(args)) => bench::run(&root(), args),
        Some(Task::Npm(args)) => npm::run(&root(), args),
        Some(Task::Tidy) => tidy::run(&root()),
    }
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// A fresh bearer token for a server that this process starts (the conformance run's
/// emulator, the benchmark servers): 192 random bits as hex. It is never printed.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()));
    cmd.current_dir(root());
    cmd
}

fn run(step: &str, mut cmd: Command) -> Result<()> {
    eprintln!("==> {step}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {step}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    run("cargo fmt --check", fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run("cargo clippy -D warnings", clippy)?;

    tidy::run(&root())?;

    let mut test = cargo();
    test.args(["test", "--workspace"]);
    run("cargo test --workspace", test)?;

    // Every publishable package must package and build on its own, as crates.io would see
    // it (cargo packages the workspace together, so unpublished siblings resolve locally).
    let mut package = cargo();
    package.args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "blobjobs-test-support",
        "--allow-dirty",
        "--quiet",
    ]);
    run("cargo package", package)?;

    eprintln!("ci passed in {:.0?}", started.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn tasks_parse_and_unknown_ones_fail() {
        let task = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.task);
        assert!(matches!(task(&["xtask"]), Ok(None)));
        assert!(matches!(task(&["xtask", "ci"]), Ok(Some(Task::Ci))));
        assert!(matches!(task(&["xtask", "tidy"]), Ok(Some(Task::Tidy))));
        assert!(matches!(
            task(&["xtask", "bench"]),
            Ok(Some(Task::Bench(_)))
        ));
        assert!(matches!(
            task(&["xtask", "npm", "--out", "x"]),
            Ok(Some(Task::Npm(npm::Args {
                out: Some(_),
                binary: None
            })))
        ));
        assert!(task(&["xtask", "nosuchtask"]).is_err());
        assert!(task(&["xtask", "ci", "--bogus"]).is_err());
        let help = task(&["xtask", "help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = help.to_string();
        for name in ["ci", "conformance", "bench", "npm", "tidy", "help"] {
            assert!(help.contains(&format!("  {name} ")), "{name}: {help}");
        }
        assert!(help.contains("Usage: cargo xtask"), "{help}");
    }

    #[test]
    fn tokens_are_fresh_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 48);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }
}

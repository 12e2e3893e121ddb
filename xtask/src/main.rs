//! Project automation: `cargo xtask ci | conformance | bench | tidy`.
//!
//! Run `cargo xtask help` for the list. Every task is a thin sequence of cargo (and npm)
//! invocations, so that what CI runs is exactly what a contributor runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod bench;
mod conformance;
mod tidy;

const HELP: &str = "\
usage: cargo xtask <task> [args]

tasks:
  ci            format check, clippy with -D warnings, tidy, and the whole test suite
  conformance   the conformance suite against every backend, emulator in-process;
                matrix and reports in target/conformance/ (--help for options)
  bench         every benchmark (criterion, HTTP load against the official server, Rust vs JS
                client); report in target/bench-report/ (--help for groups and options)
  tidy          repository hygiene checks (also part of ci)
  help          this text
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_else(|| "help".to_owned());
    let rest: Vec<String> = args.collect();
    match task.as_str() {
        "ci" => ci(),
        "conformance" => conformance::run(&root(), &rest),
        "bench" => bench::run(&root(), &rest),
        "tidy" => tidy::run(&root()),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => {
            eprint!("{HELP}");
            bail!("unknown task {other:?} (args: {rest:?})")
        }
    }
}

/// The workspace root (the parent of this crate's directory).
fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
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

    eprintln!("ci passed in {:.0?}", started.elapsed());
    Ok(())
}

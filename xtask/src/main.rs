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
    /// The conformance suite against every backend, emulator in-process, and the engines;
    /// matrix and reports in target/conformance/
    ///
    /// Runs the conformance suite against memory, file, file with every instance a separate
    /// process, the HTTP backend through an in-process emulator, S3 on SeaweedFS, PostgreSQL,
    /// and three blobs-emulator processes over each engine (both engines started by this task
    /// and stopped at its end, also on Ctrl-C); prints the matrix and the memory backend's
    /// counterexample; writes text, JSON lines, JUnit and Markdown reports. Exits 0 exactly
    /// when memory fails every cross-instance property and passes every single-instance one,
    /// and every other backend passes everything (an engine this machine lacks is a row that
    /// says how to get it, and a failure when CI is set).
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
    // `cargo run` hands xtask the variables of its own package. Build scripts that watch one
    // of them (ring's watches CARGO_MANIFEST_DIR) would see a change and rebuild, with every
    // crate above them, here and again in the next plain cargo command.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || matches!(
                name.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(name.as_ref());
        }
    }
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

/// Forgets what earlier `cargo package` runs left of this workspace's own packages. Cargo
/// verifies a package against its siblings through a local registry under `target/package`;
/// it extracts each sibling into `$CARGO_HOME/registry/src/<that registry>/NAME-VERSION` only
/// if that folder does not exist yet, and it never rebuilds a registry package of a version
/// it has built before. With the version unchanged, a later run would verify against stale
/// copies. So the extracted copies go, and so do the artifacts built from them (told apart
/// from the workspace's own builds by the sources their dep-info lists). These names are
/// published nowhere else, so nothing else lives under them.
fn forget_packaged_sources(root: &Path) -> Result<()> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(src) = home.map(|h| h.join("registry").join("src"))
        && let Ok(registries) = std::fs::read_dir(&src)
    {
        for registry in registries.flatten() {
            remove_matching(&registry.path(), |name| name.starts_with("blobjobs-"))?;
        }
    }
    forget_registry_builds(&root.join("target").join("debug"))
}

/// Removes from a profile folder of `target/` the artifacts of `blobjobs-*` packages that
/// were built from registry copies rather than from the workspace.
fn forget_registry_builds(built: &Path) -> Result<()> {
    let Ok(deps) = std::fs::read_dir(built.join("deps")) else {
        return Ok(());
    };
    let mut stale = Vec::new();
    for entry in deps.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".d") else {
            continue;
        };
        let from_registry = std::fs::read_to_string(entry.path()).is_ok_and(|info| {
            info.lines()
                .next()
                .is_some_and(|l| l.contains("/registry/src/"))
        });
        if stem.starts_with("blobjobs_")
            && from_registry
            && let Some((_, hash)) = stem.rsplit_once('-')
        {
            stale.push(format!("-{hash}"));
        }
    }
    for folder in ["deps", ".fingerprint", "build"] {
        remove_matching(&built.join(folder), |name| {
            name.contains("blobjobs") && stale.iter().any(|hash| name.contains(hash.as_str()))
        })?;
    }
    Ok(())
}

/// Removes the entries of `folder` whose names `doomed` picks (a missing folder is fine).
fn remove_matching(folder: &Path, doomed: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if !doomed(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.with_context(|| format!("cannot remove {}", path.display()))?;
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

    // Nothing is skipped here: a test that lacks a tool fails, naming how to get it.
    let mut test = cargo();
    test.args(["test", "--workspace"])
        .env(blobjobs_test_support::REQUIRE_ALL_ENV, "1");
    run("cargo test --workspace", test)?;

    // Every publishable package must package and build on its own, as crates.io would see
    // it (cargo packages the workspace together, so unpublished siblings resolve locally).
    forget_packaged_sources(&root())?;
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
    fn only_registry_builds_of_our_packages_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let built = dir.path();
        for sub in ["deps", ".fingerprint"] {
            std::fs::create_dir_all(built.join(sub)).unwrap();
        }
        let write = |rel: &str, text: &str| std::fs::write(built.join(rel), text).unwrap();
        // A sibling built from its packaged copy, one built from the workspace, and a
        // third-party crate from the registry.
        write(
            "deps/blobjobs_x-aaa.d",
            "out: /h/registry/src/r/blobjobs-x-0.1.0/src/lib.rs\n",
        );
        write("deps/libblobjobs_x-aaa.rlib", "");
        std::fs::create_dir(built.join(".fingerprint/blobjobs-x-aaa")).unwrap();
        write("deps/blobjobs_x-bbb.d", "out: x/src/lib.rs\n");
        write("deps/libblobjobs_x-bbb.rlib", "");
        std::fs::create_dir(built.join(".fingerprint/blobjobs-x-bbb")).unwrap();
        write(
            "deps/serde-aaa.d",
            "out: /h/registry/src/r/serde-1.0.0/src/lib.rs\n",
        );

        forget_registry_builds(built).unwrap();

        let left = |sub: &str| {
            let mut names: Vec<String> = std::fs::read_dir(built.join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            left("deps"),
            ["blobjobs_x-bbb.d", "libblobjobs_x-bbb.rlib", "serde-aaa.d"]
        );
        assert_eq!(left(".fingerprint"), ["blobjobs-x-bbb"]);
    }

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

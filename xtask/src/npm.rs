//! `cargo xtask npm`: builds the release `blobs-emulator` and packs the npm packages of
//! `npm/` (the main package and this platform's, with the binary) into `target/npm/`, ready
//! for `npm publish` or `npm install ./…tgz`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow};

/// The options of `cargo xtask npm`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Args {
    /// Where the tarballs go [default: target/npm]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Pack this binary instead of building the release one
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let out = args.out.unwrap_or_else(|| root.join("target/npm"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let binary = match args.binary {
        Some(binary) => binary,
        None => build_release(root)?,
    };
    let packed = blobjobs_test_support::npm::pack(&binary, &out, false).map_err(|e| anyhow!(e))?;
    for tarball in [&packed.main, &packed.platform] {
        let size = std::fs::metadata(tarball)
            .with_context(|| format!("cannot read {}", tarball.display()))?
            .len();
        println!("{} ({})", tarball.display(), human(size));
    }
    println!(
        "try it: npm install {} {} && npx blobs-emulator --help",
        packed.main.display(),
        packed.platform.display()
    );
    Ok(())
}

/// `cargo build --release` of the binary, stripped of symbols (a user's stack trace needs
/// none, and they are most of its size); its path.
fn build_release(root: &Path) -> Result<PathBuf> {
    let mut build = crate::cargo();
    build
        .args(["build", "--release", "--package", "blobjobs-emulator"])
        .args(["--bin", "blobs-emulator"])
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols");
    crate::run("cargo build --release (blobs-emulator)", build)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release").join(binary_name()))
}

fn binary_name() -> &'static str {
    if cfg!(windows) {
        "blobs-emulator.exe"
    } else {
        "blobs-emulator"
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_npm_packages_fit_together_and_carry_the_workspace_version() {
        blobjobs_test_support::npm::check_layout(env!("CARGO_PKG_VERSION")).unwrap();
    }
}

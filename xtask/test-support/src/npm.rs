//! The npm packages of `npm/` packed into tarballs around a `blobs-emulator` binary: the
//! main package (`npm/emulator`, the launcher and `startEmulator`) and this platform's
//! package, staged with the binary in its `bin/`. `cargo xtask npm` packs the release binary;
//! the tarball test packs the binary of the test build. Errors are returned, not panics,
//! since `xtask` calls this too.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// The main package's folder under `npm/`.
pub const MAIN_PACKAGE: &str = "emulator";

/// The tarballs [`pack`] wrote.
#[derive(Debug, Clone)]
pub struct Packed {
    /// The main package (`@blobjobs/emulator`).
    pub main: PathBuf,
    /// This platform's package, with the binary.
    pub platform: PathBuf,
}

/// The folder under `npm/` of the package for the platform this was compiled for, named
/// `emulator-<node's platform>-<node's arch>`, or why there is none.
pub fn platform_package() -> Result<String, String> {
    let os = match std::env::consts::OS {
        "linux" => "linux",
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let folder = format!("emulator-{os}-{arch}");
    if npm_dir().join(&folder).join("package.json").exists() {
        Ok(folder)
    } else {
        Err(format!(
            "there is no npm package for {os}-{arch} (npm/{folder}); add one beside \
             npm/emulator-linux-x64 and a line to npm/emulator/lib/binary.js"
        ))
    }
}

fn npm_dir() -> PathBuf {
    crate::workspace_root().join("npm")
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not json: {e}", path.display()))
}

/// Checks that the packages of `npm/` fit together: every platform package
/// (`npm/emulator-*`) carries `version` (the workspace's) and its folder's name, the main
/// package carries `version` and depends on exactly that version of each of them, and the
/// launcher's table (`npm/emulator/lib/binary.js`) names each one.
pub fn check_layout(version: &str) -> Result<(), String> {
    let main = read_json(&npm_dir().join(MAIN_PACKAGE).join("package.json"))?;
    let launcher = std::fs::read_to_string(npm_dir().join(MAIN_PACKAGE).join("lib/binary.js"))
        .map_err(|e| format!("cannot read the launcher's table: {e}"))?;
    if main["version"].as_str() != Some(version) {
        return Err(format!(
            "npm/emulator has version {}, the workspace {version}: keep them equal",
            main["version"]
        ));
    }
    let mut folders: Vec<String> = std::fs::read_dir(npm_dir())
        .map_err(|e| format!("cannot list npm/: {e}"))?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|name| name.starts_with("emulator-"))
        .collect();
    folders.sort();
    let optional = main["optionalDependencies"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if optional.len() != folders.len() {
        return Err(format!(
            "npm/emulator has {} optional dependencies for {} platform folders",
            optional.len(),
            folders.len()
        ));
    }
    for folder in &folders {
        let package = read_json(&npm_dir().join(folder).join("package.json"))?;
        let name = format!("@blobjobs/{folder}");
        let checks = [
            (package["name"].as_str() == Some(name.as_str()), "its name"),
            (
                package["version"].as_str() == Some(version),
                "the workspace version",
            ),
            (
                optional.get(&name).and_then(|v| v.as_str()) == Some(version),
                "an optional dependency of npm/emulator at that version",
            ),
            (
                launcher.contains(&format!("'{name}'")),
                "a line in lib/binary.js",
            ),
        ];
        for (ok, what) in checks {
            if !ok {
                return Err(format!("npm/{folder} lacks {what} ({name} {version})"));
            }
        }
    }
    Ok(())
}

/// Packs both packages into `out` with `npm pack`, the platform package around a copy of
/// `binary` (stripped of symbols first when `strip` is set and `strip` is installed).
pub fn pack(binary: &Path, out: &Path, strip: bool) -> Result<Packed, String> {
    let platform_folder = platform_package()?;
    check_layout(env!("CARGO_PKG_VERSION"))?;
    let stage = out.join("stage").join(&platform_folder);
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir_all(stage.join("bin")).map_err(|e| format!("cannot stage: {e}"))?;
    for file in ["package.json", "README.md"] {
        std::fs::copy(
            npm_dir().join(&platform_folder).join(file),
            stage.join(file),
        )
        .map_err(|e| format!("cannot stage {file}: {e}"))?;
    }
    let staged = stage.join("bin").join("blobs-emulator");
    std::fs::copy(binary, &staged).map_err(|e| format!("cannot copy {}: {e}", binary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot make the binary executable: {e}"))?;
    }
    if strip {
        // Symbols are for debuggers; without them a test build's binary is a sixth the size.
        let _ = Command::new("strip")
            .arg(&staged)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let main = npm_pack(&npm_dir().join(MAIN_PACKAGE), out)?;
    let platform = npm_pack(&stage, out)?;
    Ok(Packed { main, platform })
}

/// `npm pack` of the package in `dir` into `out`; the tarball's path.
fn npm_pack(dir: &Path, out: &Path) -> Result<PathBuf, String> {
    let output = Command::new("npm")
        .args(["pack", "--json", "--pack-destination"])
        .arg(out)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run npm pack: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "npm pack {} failed ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report: Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("npm pack printed no json: {e}"))?;
    let file = report[0]["filename"]
        .as_str()
        .ok_or("npm pack named no tarball")?;
    Ok(out.join(file))
}

//! Repository hygiene: checks that keep docs and code honest, run by `cargo xtask tidy`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Runs every check and reports all problems at once.
pub fn run(root: &Path) -> Result<()> {
    eprintln!("==> tidy");
    let mut problems = Vec::new();
    let files = rust_files(root)?;
    for file in &files {
        let text = fs::read_to_string(file)?;
        let rel = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        check_module_doc(&rel, &text, &mut problems);
        check_no_machine_paths(&rel, &text, &mut problems);
    }
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let path = root.join(doc);
        match fs::read_to_string(&path) {
            Ok(text) => check_no_machine_paths(doc, &text, &mut problems),
            Err(_) => problems.push(format!("{doc}: missing")),
        }
    }
    check_ci_runs_readme_command(root, &mut problems);
    if problems.is_empty() {
        eprintln!("tidy: {} Rust files clean", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("tidy found {} problem(s)", problems.len())
    }
}

fn rust_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if entry.file_type()?.is_dir() {
                if !matches!(name.as_ref(), "target" | "node_modules" | ".git") {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every Rust file starts with a `//!` line saying what it is for.
fn check_module_doc(rel: &str, text: &str, problems: &mut Vec<String>) {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    if !first.starts_with("//!") {
        problems.push(format!(
            "{rel}: must start with a `//!` line saying what it is for"
        ));
    }
}

/// No absolute paths of a developer's machine.
fn check_no_machine_paths(rel: &str, text: &str, problems: &mut Vec<String>) {
    // Built at run time so that this file does not match itself.
    for dir in ["home", "Users", "root", "work"] {
        let needle = format!("/{dir}/");
        if text.contains(&needle) {
            problems.push(format!("{rel}: contains a machine path ({needle}…)"));
        }
    }
}

/// `.ci/run` runs the test command that the README gives.
fn check_ci_runs_readme_command(root: &Path, problems: &mut Vec<String>) {
    let ci = fs::read_to_string(root.join(".ci/run")).unwrap_or_default();
    let readme = fs::read_to_string(root.join("README.md")).unwrap_or_default();
    let command = "cargo xtask ci";
    if !ci.contains(command) {
        problems.push(format!(".ci/run: does not run `{command}`"));
    }
    if !readme.contains(command) {
        problems.push(format!(
            "README.md: does not give the test command `{command}`"
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_doc_check_flags_files_without_one() {
        let mut p = Vec::new();
        check_module_doc("a.rs", "//! Does a thing.\nfn x() {}", &mut p);
        assert!(p.is_empty());
        check_module_doc("b.rs", "use std::fs;\n", &mut p);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn machine_paths_are_flagged() {
        let mut p = Vec::new();
        check_no_machine_paths("a", &format!("see /{}/me/x", "home"), &mut p);
        check_no_machine_paths("b", "relative/path", &mut p);
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn the_repository_itself_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        run(&root).unwrap();
    }
}

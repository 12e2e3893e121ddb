//! Repository hygiene: checks that keep docs and code honest, run by `cargo xtask tidy`
//! (and by `cargo xtask ci`, and as the test `the_repository_itself_is_tidy`).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Runs every check and reports all problems at once.
pub fn run(root: &Path) -> Result<()> {
    eprintln!("==> tidy");
    let mut problems = Vec::new();
    let mut code_map_paths = 0;
    let entries = repository_paths(root)?;
    let files: Vec<&PathBuf> = entries
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && root.join(p).is_file())
        .collect();
    for rel in &files {
        let file = root.join(rel);
        let text = fs::read_to_string(&file)?;
        let rel = rel.display().to_string();
        check_module_doc(&rel, &text, &mut problems);
        check_file_length(&rel, &text, &mut problems);
        check_no_machine_paths(&rel, &text, &mut problems);
        check_no_path_includes(&rel, &text, &mut problems);
    }
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let path = root.join(doc);
        match fs::read_to_string(&path) {
            Ok(text) => {
                check_no_machine_paths(doc, &text, &mut problems);
                if doc == CODE_MAP {
                    code_map_paths = check_code_map(doc, &text, &entries, &mut problems);
                }
            }
            Err(_) => problems.push(format!("{doc}: missing")),
        }
    }
    check_ci_runs_readme_command(root, &mut problems);
    if problems.is_empty() {
        eprintln!(
            "tidy: {} Rust files clean, the {code_map_paths} paths that {CODE_MAP} names exist",
            files.len()
        );
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        bail!("tidy found {} problem(s)", problems.len())
    }
}

/// Every file and directory of the repository, relative to `root`, sorted; build output,
/// installed packages and git's own files are left out.
fn repository_paths(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                if matches!(name.to_str(), Some("target" | "node_modules" | ".git")) {
                    continue;
                }
                stack.push(path.clone());
            }
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
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

/// The most lines a Rust file may have unless its header says why it must be one piece.
const MAX_LINES: usize = 800;

/// The words that mark the reason in the header of a longer file.
const ONE_PIECE: &str = "one piece";

/// A Rust file has at most [`MAX_LINES`] lines, so that each file does one thing and reads in
/// one sitting; a longer one says in its `//!` header (the `//!` lines it starts with) why it
/// must be [`ONE_PIECE`], in those words, which may break across the header's lines.
fn check_file_length(rel: &str, text: &str, problems: &mut Vec<String>) {
    let lines = text.lines().count();
    if lines <= MAX_LINES {
        return;
    }
    let header = text
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .map_while(|l| l.trim_start().strip_prefix("//!"))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if !header.contains(ONE_PIECE) {
        problems.push(format!(
            "{rel}: {lines} lines, over the {MAX_LINES} a file may have; split it by concern, or \
             say in its `//!` header why it must be {ONE_PIECE}"
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

/// No `#[path]` attribute reaches into a parent folder: code shared between crates is a
/// crate (`xtask/test-support` for tests), not a file included by path, which hides the
/// dependency from cargo and breaks `cargo package`.
fn check_no_path_includes(rel: &str, text: &str, problems: &mut Vec<String>) {
    // Built at run time so that this file does not match itself.
    let attribute = format!("#[{}", "path");
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with(&attribute) && line.contains("..") {
            problems.push(format!(
                "{rel}:{}: includes a file from a parent folder by `#[path]`; share it through a crate",
                n + 1
            ));
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

/// The document whose code map must name only paths that exist.
const CODE_MAP: &str = "ARCHITECTURE.md";

/// A path that the code map names must exist: a renamed, moved or deleted file shows up here,
/// listing each missing path with its line.
///
/// What counts as a path is decided by [`named_paths`]. A path is found when it is, whole
/// component by whole component, the end of the path of some file or directory of the
/// repository. So `backends/src/file.rs` must exist from the root, while the code map's short
/// forms (`blob.rs` under `store-api`, `tests/cli.rs` under a crate) are found wherever they
/// are: the check catches a name that no longer exists anywhere, not a short name that
/// happens to exist in another crate too. Returns the number of paths checked.
fn check_code_map(
    doc: &str,
    text: &str,
    repository: &[PathBuf],
    problems: &mut Vec<String>,
) -> usize {
    let mut checked = 0;
    for named in named_paths(text) {
        let paths = match expand_braces(&named.text) {
            Ok(paths) => paths,
            Err(why) => {
                problems.push(format!("{doc}:{}: `{}`: {why}", named.line, named.text));
                continue;
            }
        };
        for path in paths {
            checked += 1;
            let wanted = Path::new(&path);
            if !repository.iter().any(|p| p.ends_with(wanted)) {
                let from = if path == named.text {
                    String::new()
                } else {
                    format!(" (from `{}`)", named.text)
                };
                problems.push(format!(
                    "{doc}:{}: names `{path}`{from}, which is no file or directory of the \
                     repository",
                    named.line
                ));
            }
        }
    }
    checked
}

/// A path named in a Markdown text, as written, with its line (counted from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    line: usize,
    text: String,
}

/// The repository paths that a Markdown text names. A path is an inline code span (between
/// backticks, outside fenced code blocks) that
/// - contains a `/` or ends in `.rs`, `.md`, `.toml`, `.mjs` or `.json`;
/// - contains no whitespace (so no span broken across lines) and none of
///   `:` `<` `>` `…` `*` `?` `[` `]` `(` `)` `=`, which mark Rust paths (`a::b`), URLs,
///   placeholders (`<store>/.lock`), elisions, globs and code;
/// - does not start with `-` (a command-line flag), `@` (an npm package), `/` (an absolute
///   or URL path) or `target/` (build output, which a fresh checkout does not have).
///
/// Braces list alternatives (`benches/{stores,jobs}.rs`), expanded by [`expand_braces`].
fn named_paths(text: &str) -> Vec<Named> {
    code_spans(text)
        .into_iter()
        .filter(|span| is_path(&span.text))
        .collect()
}

fn is_path(text: &str) -> bool {
    const MARKERS: &[char] = &[':', '<', '>', '…', '*', '?', '[', ']', '(', ')', '='];
    const EXTENSIONS: &[&str] = &[".rs", ".md", ".toml", ".mjs", ".json"];
    !text.is_empty()
        && !text.contains(char::is_whitespace)
        && !text.contains(MARKERS)
        && !["-", "@", "/", "target/"]
            .iter()
            .any(|p| text.starts_with(p))
        && (text.contains('/') || EXTENSIONS.iter().any(|e| text.ends_with(e)))
}

/// The inline code spans of a Markdown text, with the line each starts on. A span opens with
/// a run of backticks and closes at the next run of the same length; fenced code blocks
/// (lines starting with three backticks or tildes) are skipped, and a blank line ends an
/// unclosed span, as in CommonMark.
fn code_spans(text: &str) -> Vec<Named> {
    let mut out = Vec::new();
    let mut fenced = false;
    // The open span: its line, the length of its backtick run, its text so far.
    let mut open: Option<(usize, usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        if open.is_none() && (trimmed.starts_with("```") || trimmed.starts_with("~~~")) {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        if trimmed.is_empty() {
            open = None;
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find('`') {
            let run = rest[at..].bytes().take_while(|b| *b == b'`').count();
            match open.take() {
                Some((start, ticks, mut span)) if ticks == run => {
                    span.push_str(&rest[..at]);
                    out.push(Named {
                        line: start,
                        text: span,
                    });
                }
                Some((start, ticks, mut span)) => {
                    span.push_str(&rest[..at + run]);
                    open = Some((start, ticks, span));
                }
                None => open = Some((number, run, String::new())),
            }
            rest = &rest[at + run..];
        }
        if let Some((_, _, span)) = &mut open {
            span.push_str(rest);
            span.push('\n');
        }
    }
    out
}

/// The paths that `text` stands for: each `{a,b,…}` group is replaced by each of its
/// alternatives in turn. Nested or unbalanced braces are an error.
fn expand_braces(text: &str) -> Result<Vec<String>, String> {
    let Some(open) = text.find('{') else {
        if text.contains('}') {
            return Err("a `}` without its `{`".to_owned());
        }
        return Ok(vec![text.to_owned()]);
    };
    let Some(close) = text[open..].find('}').map(|c| open + c) else {
        return Err("a `{` without its `}`".to_owned());
    };
    let group = &text[open + 1..close];
    if group.contains('{') {
        return Err("nested braces are not supported; write the paths out".to_owned());
    }
    if text[..open].contains('}') {
        return Err("a `}` without its `{`".to_owned());
    }
    let mut out = Vec::new();
    for rest in expand_braces(&text[close + 1..])? {
        for alternative in group.split(',') {
            out.push(format!("{}{alternative}{rest}", &text[..open]));
        }
    }
    Ok(out)
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
    fn long_files_are_split_or_say_in_their_header_why_they_are_one_piece() {
        let body = "fn f() {}\n".repeat(MAX_LINES - 1);
        let mut p = Vec::new();
        let at_limit = format!("//! Does a thing.\n{body}");
        assert_eq!(at_limit.lines().count(), MAX_LINES);
        check_file_length("a.rs", &at_limit, &mut p);
        assert!(p.is_empty(), "{p:?}");

        check_file_length("b.rs", &format!("{at_limit}fn g() {{}}\n"), &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("b.rs: 801 lines, over the 800"),
            "{}",
            p[0]
        );

        // The reason counts in the header, also broken across its lines and capitalized.
        let kept = format!("//! A table of cases that stays One\n//! Piece: see below.\n{body}");
        check_file_length("c.rs", &kept, &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
        // Anywhere else it does not: not in a later comment, not after the header ends.
        for (name, text) in [
            ("d.rs", format!("//! Does a thing.\n// one piece\n{body}")),
            (
                "e.rs",
                format!("//! Does a thing.\n\n//! one piece\n{body}"),
            ),
        ] {
            check_file_length(name, &text, &mut p);
        }
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn machine_paths_are_flagged() {
        let mut p = Vec::new();
        check_no_machine_paths("a", &format!("see /{}/me/x", "home"), &mut p);
        check_no_machine_paths("b", "relative/path", &mut p);
        assert_eq!(p.len(), 1);
    }

    const SAMPLE: &str = "\
# Code map

### `store-api`
- `blob.rs`: `BlobStore`, see `README.md` and `docs/protocol.md`.
- `backends/benches/{stores,jobs}.rs`, `emulator/benches/http_backend.rs`
- not paths: `a::b`, `<store>/.lock`, `-p`, `@netlify/blobs`, `http://x`, `/`,
  `src/cases/*.rs`, `target/criterion/x.json`, `deploy:ID[:name]`, `memory`, `n / 2`,
  `file://./dir`, `Fn() -> x/y`
- a span over two lines: `store-api/
  src/gone.rs` is not a path

```text
`in/a/fence.rs` is not read
```
``double `ticks` in/span.rs`` and `after/the/fence.rs`
";

    #[test]
    fn code_map_paths_are_backticked_file_names_and_relative_paths() {
        let named: Vec<(usize, String)> = named_paths(SAMPLE)
            .into_iter()
            .map(|n| (n.line, n.text))
            .collect();
        let expected = [
            (4, "blob.rs"),
            (4, "README.md"),
            (4, "docs/protocol.md"),
            (5, "backends/benches/{stores,jobs}.rs"),
            (5, "emulator/benches/http_backend.rs"),
            (15, "after/the/fence.rs"),
        ];
        assert_eq!(
            named,
            expected.map(|(l, t)| (l, t.to_owned())).to_vec(),
            "{named:#?}"
        );
        // The double-backtick span is one span, and it has spaces.
        assert!(
            code_spans(SAMPLE)
                .iter()
                .any(|s| s.text == "double `ticks` in/span.rs" && s.line == 15)
        );
    }

    #[test]
    fn braces_expand_and_bad_ones_are_refused() {
        assert_eq!(expand_braces("a/b.rs").unwrap(), ["a/b.rs"]);
        assert_eq!(
            expand_braces("benches/{stores,jobs}.rs").unwrap(),
            ["benches/stores.rs", "benches/jobs.rs"]
        );
        assert_eq!(
            expand_braces("{a,b}/{c,d}.rs").unwrap(),
            ["a/c.rs", "b/c.rs", "a/d.rs", "b/d.rs"]
        );
        for bad in ["a/{b.rs", "a/b}.rs", "a/{b,{c,d}}.rs", "a}/{b,c}.rs"] {
            assert!(expand_braces(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_code_map_paths_are_listed_with_their_lines() {
        let repository: Vec<PathBuf> = [
            "README.md",
            "docs",
            "docs/protocol.md",
            "store-api/src/blob.rs",
            "backends/benches/stores.rs",
            "backends/benches/jobs.rs",
            "emulator/benches/http_backend.rs",
            "after/the/fence.rs",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let mut p = Vec::new();
        assert_eq!(check_code_map("A.md", SAMPLE, &repository, &mut p), 7);
        assert!(p.is_empty(), "{p:#?}");

        // Remove two files and misspell a third: each is listed once, with its line.
        let text = SAMPLE
            .replace("docs/protocol.md", "docs/protocl.md")
            .replace("`blob.rs`", "`src/blob.rs`, `s/blob.rs`");
        let fewer: Vec<PathBuf> = repository
            .iter()
            .filter(|p| !p.ends_with("jobs.rs"))
            .cloned()
            .collect();
        let mut p = Vec::new();
        check_code_map("A.md", &text, &fewer, &mut p);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].starts_with("A.md:4: names `s/blob.rs`"), "{}", p[0]);
        assert!(
            p[1].starts_with("A.md:4: names `docs/protocl.md`,"),
            "{}",
            p[1]
        );
        assert!(
            p[2].starts_with(
                "A.md:5: names `backends/benches/jobs.rs` (from `backends/benches/{stores,jobs}.rs`)"
            ),
            "{}",
            p[2]
        );

        let mut p = Vec::new();
        check_code_map("A.md", "see `a/{b,{c}}.rs`\n", &repository, &mut p);
        assert_eq!(
            p,
            ["A.md:1: `a/{b,{c}}.rs`: nested braces are not supported; write the paths out"]
        );
    }

    #[test]
    fn path_includes_from_parent_folders_are_refused() {
        let mut problems = Vec::new();
        let escape = format!("#[{} = \"../../other/src/x.rs\"]\nmod x;\n", "path");
        check_no_path_includes("a.rs", &escape, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("a.rs:1:"), "{problems:?}");
        let local = format!("#[{} = \"support/x.rs\"]\nmod x;\n", "path");
        check_no_path_includes("b.rs", &local, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
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

//! The command line of `cargo xtask bench`: the groups to run and the options.

use anyhow::{Context, Result, bail};

use super::HELP;

/// A group of benchmarks. The order of the variants is the run order: a virtual disk is slow
/// for a while after heavy use (here, for seconds after the `stores` group), so groups that
/// write to disk are separated by groups that do not (`emulator` and `client` keep their data
/// in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Criterion: blob operations on memory and file, the raw disk loop, the paired run.
    Stores,
    /// Criterion: blob and job operations through `HttpStore` and the emulator.
    Emulator,
    /// Criterion: job operations on memory and file.
    Jobs,
    /// The Rust client against the official JS client.
    Client,
    /// The load run against the emulator and the official Node server.
    Http,
}

impl Group {
    /// Every group, in run order.
    pub const ALL: [Group; 5] = [
        Group::Stores,
        Group::Emulator,
        Group::Jobs,
        Group::Client,
        Group::Http,
    ];

    /// The group's name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Group::Stores => "stores",
            Group::Emulator => "emulator",
            Group::Jobs => "jobs",
            Group::Client => "client",
            Group::Http => "http",
        }
    }

    /// Whether the group runs the project's load generator or client in this process, which
    /// must then be an optimized build.
    pub fn needs_release(self) -> bool {
        matches!(self, Group::Client | Group::Http)
    }
}

/// The parsed command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    /// Groups to run, in run order.
    pub groups: Vec<Group>,
    /// Short runs.
    pub quick: bool,
    /// Length of each load point.
    pub seconds: Option<f64>,
    /// Baseline to save.
    pub save_baseline: Option<String>,
    /// Baseline to compare with.
    pub baseline: Option<String>,
}

impl Args {
    /// Rounds of each load point; the better one counts.
    pub fn rounds(&self) -> usize {
        if self.quick { 1 } else { 2 }
    }
}

/// `None` for `--help`.
pub fn parse_args(args: &[String]) -> Result<Option<Args>> {
    let mut parsed = Args::default();
    let mut chosen = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--quick" => parsed.quick = true,
            "--seconds" => {
                let v = value("--seconds")?;
                let s: f64 = v.parse().with_context(|| format!("bad --seconds {v:?}"))?;
                if !(0.1..=60.0).contains(&s) {
                    bail!("--seconds must be between 0.1 and 60");
                }
                parsed.seconds = Some(s);
            }
            "--save-baseline" => {
                parsed.save_baseline = Some(baseline_name(&value("--save-baseline")?)?)
            }
            "--baseline" => parsed.baseline = Some(baseline_name(&value("--baseline")?)?),
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            other => match Group::ALL.iter().find(|g| g.name() == other) {
                Some(group) => chosen.push(*group),
                None => {
                    eprint!("{HELP}");
                    bail!("unknown group or option {other:?}");
                }
            },
        }
    }
    parsed.groups = Group::ALL
        .into_iter()
        .filter(|g| chosen.is_empty() || chosen.contains(g))
        .collect();
    Ok(Some(parsed))
}

/// A baseline name becomes a file name and a criterion directory: keep it plain.
fn baseline_name(name: &str) -> Result<String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        bail!("a baseline name is letters, digits, '-', '_' and '.' (got {name:?})");
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn groups_default_to_all_and_keep_run_order() {
        let all = parse_args(&[]).unwrap().unwrap();
        assert_eq!(all.groups, Group::ALL.to_vec());
        assert!(!all.quick);
        let some = parse_args(&strings(&["client", "stores", "--quick"]))
            .unwrap()
            .unwrap();
        assert_eq!(some.groups, vec![Group::Stores, Group::Client]);
        let order = parse_args(&strings(&["http", "jobs", "emulator"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            order.groups,
            vec![Group::Emulator, Group::Jobs, Group::Http]
        );
        assert!(some.quick);
    }

    #[test]
    fn options_parse_and_bad_ones_fail() {
        let a = parse_args(&strings(&[
            "--save-baseline",
            "main-1",
            "--baseline",
            "v0.1",
            "--seconds",
            "2.5",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.save_baseline.as_deref(), Some("main-1"));
        assert_eq!(a.baseline.as_deref(), Some("v0.1"));
        assert_eq!(a.seconds, Some(2.5));
        for bad in [
            &["--baseline"][..],
            &["--baseline", "../x"],
            &["--save-baseline", ""],
            &["--seconds", "0"],
            &["nosuchgroup"],
        ] {
            assert!(parse_args(&strings(bad)).is_err(), "{bad:?}");
        }
    }
}

//! The command line of `cargo xtask bench`: the groups to run and the options.

use clap::ValueEnum;

/// A group of benchmarks. The order of the variants is the run order: a virtual disk is slow
/// for a while after heavy use (here, for seconds after the `stores` group), so groups that
/// write to disk are separated by groups that do not (`emulator` and `client` keep their data
/// in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Group {
    /// Criterion: set, get, compare-and-swap, list 1,000 and 10,000 keys on memory and file
    /// (durable, no fsync); the raw disk loop (temp file, fsync, rename, fsync dir); a paired
    /// FileStore::set / raw loop run
    Stores,
    /// Criterion: the same blob and job operations through HttpStore and the emulator
    Emulator,
    /// Criterion: job create, claim, succeed, get (BlobJobStore) on memory and file
    Jobs,
    /// The Rust client (HttpStore) against the official JS client, get and set at 1 and 16
    /// concurrent requests, against blobs-emulator
    Client,
    /// Load run: blobs-emulator (--no-fsync and durable) against the official Node
    /// BlobsServer, GET and PUT of 1 KiB at 1, 16, 64 connections, list 10,000 keys
    Http,
    /// The engines (SeaweedFS's S3, PostgreSQL, started by the run): BlobStore get and set
    /// against the engine's own client doing the same in a paired run, and blobs-emulator
    /// over each engine, GET and PUT of 1 KiB at 16 connections
    Engines,
}

impl Group {
    /// Every group, in run order.
    pub const ALL: [Group; 6] = [
        Group::Stores,
        Group::Emulator,
        Group::Jobs,
        Group::Client,
        Group::Http,
        Group::Engines,
    ];

    /// The group's name on the command line and in the results.
    pub fn name(self) -> &'static str {
        match self {
            Group::Stores => "stores",
            Group::Emulator => "emulator",
            Group::Jobs => "jobs",
            Group::Client => "client",
            Group::Http => "http",
            Group::Engines => "engines",
        }
    }

    /// Whether the group runs the project's load generator or client in this process, which
    /// must then be an optimized build.
    pub fn needs_release(self) -> bool {
        matches!(self, Group::Client | Group::Http | Group::Engines)
    }
}

/// The options of `cargo xtask bench`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct Args {
    /// Groups to run (default: all)
    ///
    /// They run in the order of this list, whatever the order given.
    #[arg(value_enum, value_name = "GROUP")]
    chosen: Vec<Group>,
    /// Short runs for a quick look (rough numbers)
    #[arg(long)]
    pub quick: bool,
    /// Length of each round of a load point, in seconds (default 2, or 1 with --quick)
    ///
    /// A full run times every point twice, alternating servers, and keeps the better round.
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub seconds: Option<f64>,
    /// Save the figures as baseline NAME
    ///
    /// Saved as criterion's baseline NAME, and as target/bench-report/baselines/NAME.json for
    /// all figures; figures that this run did not measure keep their saved values.
    #[arg(long, value_name = "NAME", value_parser = baseline_name)]
    pub save_baseline: Option<String>,
    /// Compare with baseline NAME
    ///
    /// Changes for the worse over 10% are flagged in the report and on stdout.
    #[arg(long, value_name = "NAME", value_parser = baseline_name)]
    pub baseline: Option<String>,
}

impl Args {
    /// The groups to run, in run order.
    pub fn groups(&self) -> Vec<Group> {
        Group::ALL
            .into_iter()
            .filter(|g| self.chosen.is_empty() || self.chosen.contains(g))
            .collect()
    }

    /// Only `groups`, with the other options left at their defaults.
    #[cfg(test)]
    pub fn with_groups(groups: &[Group]) -> Args {
        Args {
            chosen: groups.to_vec(),
            ..Args::default()
        }
    }

    /// Rounds of each load point; the better one counts.
    pub fn rounds(&self) -> usize {
        if self.quick { 1 } else { 2 }
    }

    /// The command line that parses back to these options, for the release re-run.
    pub fn to_command_line(&self) -> Vec<String> {
        let mut out: Vec<String> = self.groups().iter().map(|g| g.name().to_owned()).collect();
        if self.quick {
            out.push("--quick".to_owned());
        }
        if let Some(s) = self.seconds {
            out.extend(["--seconds".to_owned(), s.to_string()]);
        }
        if let Some(name) = &self.save_baseline {
            out.extend(["--save-baseline".to_owned(), name.clone()]);
        }
        if let Some(name) = &self.baseline {
            out.extend(["--baseline".to_owned(), name.clone()]);
        }
        out
    }
}

/// `--seconds`: a number of seconds that keeps a run bounded.
fn seconds(text: &str) -> Result<f64, String> {
    let s: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if !(0.1..=60.0).contains(&s) {
        return Err("must be between 0.1 and 60".to_owned());
    }
    Ok(s)
}

/// A baseline name becomes a file name and a criterion directory: keep it plain.
fn baseline_name(name: &str) -> Result<String, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.starts_with('.')
    {
        return Err(format!(
            "a baseline name is letters, digits, '-', '_' and '.' (got {name:?})"
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// Parses `cargo xtask bench ARGS` as the binary does.
    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        crate::Cli::try_parse_from(["xtask", "bench"].iter().chain(args)).map(|cli| {
            match cli.task {
                Some(crate::Task::Bench(args)) => args,
                other => panic!("not bench: {other:?}"),
            }
        })
    }

    #[test]
    fn groups_default_to_all_and_keep_run_order() {
        let all = parse(&[]).unwrap();
        assert_eq!(all.groups(), Group::ALL.to_vec());
        assert!(!all.quick);
        let some = parse(&["client", "stores", "--quick"]).unwrap();
        assert_eq!(some.groups(), vec![Group::Stores, Group::Client]);
        let order = parse(&["http", "jobs", "emulator"]).unwrap();
        assert_eq!(
            order.groups(),
            vec![Group::Emulator, Group::Jobs, Group::Http]
        );
        assert!(some.quick);
        for g in Group::ALL {
            assert_eq!(parse(&[g.name()]).unwrap().groups(), vec![g]);
        }
    }

    #[test]
    fn options_parse_and_bad_ones_fail() {
        let a = parse(&[
            "--save-baseline",
            "main-1",
            "--baseline",
            "v0.1",
            "--seconds",
            "2.5",
        ])
        .unwrap();
        assert_eq!(a.save_baseline.as_deref(), Some("main-1"));
        assert_eq!(a.baseline.as_deref(), Some("v0.1"));
        assert_eq!(a.seconds, Some(2.5));
        for bad in [
            &["--baseline"][..],
            &["--baseline", "../x"],
            &["--save-baseline", ""],
            &["--seconds", "0"],
            &["--seconds", "soon"],
            &["nosuchgroup"],
            &["--bogus"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_release_rerun_gets_the_same_options() {
        for args in [
            &[][..],
            &["http", "client", "--quick"],
            &[
                "stores",
                "--seconds",
                "0.5",
                "--save-baseline",
                "a",
                "--baseline",
                "b",
            ],
        ] {
            let parsed = parse(args).unwrap();
            let line = parsed.to_command_line();
            let again = parse(&line.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
            assert_eq!(again.groups(), parsed.groups(), "{args:?}");
            assert_eq!(
                (
                    again.quick,
                    again.seconds,
                    again.save_baseline,
                    again.baseline
                ),
                (
                    parsed.quick,
                    parsed.seconds,
                    parsed.save_baseline,
                    parsed.baseline
                ),
                "{args:?}"
            );
        }
    }

    #[test]
    fn help_names_every_group_and_option() {
        let help = parse(&["--help"]).unwrap_err();
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = help.to_string();
        for g in Group::ALL {
            assert!(help.contains(&format!("- {}:", g.name())), "{help}");
        }
        for option in [
            "--quick",
            "--seconds <S>",
            "--save-baseline <NAME>",
            "--baseline <NAME>",
        ] {
            assert!(help.contains(option), "{option}: {help}");
        }
        assert!(help.contains("target/bench-report/"), "{help}");
    }
}

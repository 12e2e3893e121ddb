//! `blobs-emulator`: a local Netlify Blobs server, and commands that talk to a running one.
//!
//! Run it with `cargo run -p blobjobs-emulator --bin blobs-emulator` (same as `... -- serve`); it prints
//! its URL and an `export NETLIFY_BLOBS_CONTEXT=…` line for code using `@netlify/blobs`.
//! `blobs-emulator --help` lists the flags; each one can also come from a `BLOBS_EMULATOR_*`
//! environment variable. Other commands: `env`, `get`, `set`, `list`, `delete` (in `cli/`).

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use blobjobs_backends::Catalog;
use blobjobs_backends::http::Token;
use blobjobs_backends::open::{OpenOptions, StoreSpec};
use blobjobs_emulator::config::{
    self as limits, DEFAULT_MAX_BLOB_SIZE, DEFAULT_PORT, DEFAULT_SITE_ID,
};
use blobjobs_emulator::{BlobsContext, Config};
use clap::{Args, Parser, Subcommand};
use cli::client::{DeleteArgs, EnvArgs, GetArgs, ListArgs, SetArgs};
use cli::data_dir::{DEFAULT_DIR, DataDir, ServerRecord};
use cli::logging::LogFormat;
use cli::{parse_size, parse_token};

#[derive(Parser, Debug)]
#[command(
    name = "blobs-emulator",
    version,
    about = "A local Netlify Blobs server for development and CI",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the protocol (the default command).
    Serve(ServeArgs),
    /// Print the `export NETLIFY_BLOBS_CONTEXT=…` line of a running server (from its data
    /// directory, without flags).
    Env(EnvArgs),
    /// Print the value of a key (to stdout, or to --output).
    Get(GetArgs),
    /// Write a key from an argument, a file or stdin.
    Set(SetArgs),
    /// List the keys of a store.
    List(ListArgs),
    /// Delete a key.
    Delete(DeleteArgs),
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address or host name to listen on; anything but loopback gets a warning (no TLS).
    #[arg(long, env = "BLOBS_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "BLOBS_EMULATOR_PORT", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Data directory of the file storage; it also keeps the generated token.
    #[arg(long, env = "BLOBS_EMULATOR_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart, and without
    /// BLOBS_EMULATOR_TOKEN each run generates a new token.
    #[arg(long, env = "BLOBS_EMULATOR_IN_MEMORY", conflicts_with = "dir")]
    in_memory: bool,
    /// Where the stores live: file://DIR (as --dir), memory:// (as --in-memory),
    /// s3://BUCKET[/PREFIX]?endpoint=URL&region=R or postgres://USER@HOST[:PORT]/DB. Over s3://
    /// and postgres:// any number of emulators serve the same stores (behind a load balancer,
    /// say); they need the token given (BLOBS_EMULATOR_TOKEN), the same for all, and take the
    /// engine's credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or PGPASSWORD
    #[arg(long, env = "BLOBS_EMULATOR_STORE_URL", value_name = "URL",
        conflicts_with_all = ["dir", "in_memory"], hide_env_values = true)]
    store_url: Option<String>,
    /// The bearer token clients must send [default: the one kept in the data directory, which
    /// is generated on first start]; prefer the variable, since other local users can read
    /// flags in the process list
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token,
        hide_env_values = true)]
    token: Option<Token>,
    /// Largest accepted value, in bytes or with a KiB/MiB/GiB suffix.
    #[arg(long, env = "BLOBS_EMULATOR_MAX_BLOB_SIZE", value_parser = parse_size,
        default_value_t = DEFAULT_MAX_BLOB_SIZE)]
    max_blob_size: u64,
    /// Do not fsync writes: several times faster; a killed emulator loses nothing, but a power
    /// loss or OS crash may lose or damage recent writes.
    #[arg(long, env = "BLOBS_EMULATOR_NO_FSYNC")]
    no_fsync: bool,
    /// Entries per page of key and store listings.
    #[arg(long, env = "BLOBS_EMULATOR_LIST_PAGE_SIZE",
        default_value_t = blobjobs_store_api::list::DEFAULT_PAGE_SIZE)]
    list_page_size: usize,
    /// Most connections served at once (never more than half of `ulimit -n`); at the limit,
    /// the connection idle the longest is closed to make room.
    #[arg(long, env = "BLOBS_EMULATOR_MAX_CONNECTIONS",
        default_value_t = limits::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_connections: usize,
    /// Seconds a request's headers may take to arrive; idle connections close after it.
    #[arg(long, env = "BLOBS_EMULATOR_HEADER_TIMEOUT", value_name = "SECONDS",
        default_value_t = limits::DEFAULT_HEADER_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..))]
    header_timeout: u64,
    /// Seconds an upload or a download may make no progress before its connection closes.
    #[arg(long, env = "BLOBS_EMULATOR_IDLE_TIMEOUT", value_name = "SECONDS",
        default_value_t = limits::DEFAULT_IDLE_TIMEOUT.as_secs(),
        value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
    /// Memory the listing caches may hold together, in bytes or with a KiB/MiB/GiB suffix.
    #[arg(long, env = "BLOBS_EMULATOR_LIST_CACHE_BYTES", value_parser = parse_size,
        default_value_t = limits::DEFAULT_LIST_CACHE_BYTES as u64)]
    list_cache_bytes: u64,
    /// Site ID written into the printed NETLIFY_BLOBS_CONTEXT (any site is served).
    #[arg(long, env = "BLOBS_EMULATOR_SITE", default_value = DEFAULT_SITE_ID)]
    site: String,
    /// Log filter: error, warn, info (one access-log line per request), debug, trace, off, or
    /// directives such as warn,blobjobs_emulator::access=info; RUST_LOG wins when set.
    #[arg(long, env = "BLOBS_EMULATOR_LOG_LEVEL", default_value = "info",
        value_parser = cli::logging::parse_level)]
    log_level: String,
    /// Log lines as text, or as one JSON object per line.
    #[arg(long, env = "BLOBS_EMULATOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Print only the export line, and log only errors (no access log).
    #[arg(long, env = "BLOBS_EMULATOR_QUIET")]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::exit(run(cli))
}

fn run(cli: Cli) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Env(args)) => cli::client::env(args),
            Some(Command::Get(args)) => cli::client::get(args).await,
            Some(Command::Set(args)) => cli::client::set(args).await,
            Some(Command::List(args)) => cli::client::list(args).await,
            Some(Command::Delete(args)) => cli::client::delete(args).await,
        }
    })
}

async fn serve(args: ServeArgs) -> Result<()> {
    cli::logging::init(&args.log_level, args.log_format, args.quiet);
    let storage = Storage::of(&args)?;
    let data_dir = match &storage {
        Storage::Dir(dir) => Some(DataDir::new(dir)),
        Storage::Memory | Storage::Engine(_) => None,
    };
    if let Some(dir) = &data_dir {
        dir.prepare()?;
    }
    if let (Storage::Engine(_), None) = (&storage, &args.token) {
        bail!(
            "serving from an engine needs the token given: set BLOBS_EMULATOR_TOKEN (or \
             --token), the same for every emulator serving these stores"
        );
    }
    let (token, origin, note) = cli::data_dir::serve_token(args.token.clone(), data_dir.as_ref())?;
    let catalog = storage.open(&args).await?;
    let storage = catalog.describe();
    let config = Config::new(catalog, token.clone())
        .max_blob_size(args.max_blob_size)
        .list_page_size(args.list_page_size)
        .max_connections(args.max_connections)
        .header_timeout(std::time::Duration::from_secs(args.header_timeout))
        .idle_timeout(std::time::Duration::from_secs(args.idle_timeout))
        .list_cache_bytes(usize::try_from(args.list_cache_bytes).unwrap_or(usize::MAX));
    // Building the handler first rejects a bad configuration before anything is printed.
    let app = blobjobs_emulator::App::new(config)?;
    let listener = cli::net::bind(&args.host, args.port).await?;
    let local = listener.local_addr()?;
    if let Some(warning) = cli::net::exposure_warning(local) {
        eprintln!("{warning}");
    }
    let shutdown = cli::shutdown_signal()?;
    let base = cli::net::base_url(local);
    let ctx = BlobsContext::edge(&base, &args.site, token.clone());
    // Lets `env` and the client commands find this server from its directory alone.
    let _record = match &data_dir {
        Some(dir) => Some(dir.write_record(&ServerRecord {
            url: base.clone(),
            site: args.site.clone(),
            token: origin,
            pid: std::process::id(),
        })?),
        None => None,
    };
    if !args.quiet {
        cli::say(&format!("blobs-emulator listening on {base} ({storage})"));
        if let Some(note) = note {
            cli::say(&format!("token: {} ({note})", token.reveal()));
        }
        cli::say(&format!("site: {} (any site ID is served)", args.site));
        let link = blobjobs_emulator::ui::signed_in_link(&base, token.reveal());
        cli::say(&format!("browser view: {link}"));
    }
    cli::say(&ctx.export_line());
    blobjobs_emulator::serve_app(listener, app.with_local_addr(local), shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Where `serve` keeps the stores.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Storage {
    /// Files in a data directory, which also keeps the token and the server record.
    Dir(PathBuf),
    /// This process's memory.
    Memory,
    /// An engine (`s3://`, `postgres://`): shared by every emulator that reaches it.
    Engine(String),
}

impl Storage {
    /// The storage the flags choose: `--store-url`, else `--in-memory`, else `--dir`.
    fn of(args: &ServeArgs) -> Result<Storage> {
        if args.in_memory {
            return Ok(Storage::Memory);
        }
        let Some(url) = &args.store_url else {
            return Ok(Storage::Dir(args.dir.clone()));
        };
        Ok(match StoreSpec::parse(url)? {
            StoreSpec::Memory => Storage::Memory,
            StoreSpec::File(dir) => Storage::Dir(dir),
            StoreSpec::S3 { .. } | StoreSpec::Postgres(_) => Storage::Engine(url.clone()),
            StoreSpec::Netlify(_) | StoreSpec::Http { .. } => {
                bail!("--store-url takes file://DIR, memory://, s3://BUCKET or postgres://HOST/DB")
            }
        })
    }

    /// Opens the catalog; an engine must answer one read first, so that one that is down or
    /// refuses the credentials stops the start with a message naming it (never a secret).
    async fn open(&self, args: &ServeArgs) -> Result<Catalog> {
        match self {
            Storage::Memory => Ok(Catalog::memory()),
            Storage::Dir(dir) => {
                let fsync = !args.no_fsync;
                Ok(Catalog::file(
                    dir.clone(),
                    blobjobs_backends::FileOptions { fsync },
                )?)
            }
            Storage::Engine(url) => {
                let catalog = Catalog::open(url, &OpenOptions::default())?;
                catalog
                    .check()
                    .await
                    .with_context(|| format!("cannot serve from {}", catalog.describe()))?;
                Ok(catalog)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}

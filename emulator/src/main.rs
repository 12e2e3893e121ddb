//! `blobs-emulator`: a local Netlify Blobs server, and commands that talk to a running one.
//!
//! Run it with `cargo run -p blobjobs-emulator --bin blobs-emulator` (same as `... -- serve`); it prints
//! its URL and an `export NETLIFY_BLOBS_CONTEXT=…` line for code using `@netlify/blobs`.
//! `blobs-emulator --help` lists the flags; each one can also come from a `BLOBS_EMULATOR_*`
//! environment variable. Other commands: `env`, `get`, `set`, `list`, `delete`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use blobjobs_backends::Catalog;
use blobjobs_backends::http::{ClientOptions, Consistency, HttpStore, StoreKind, Token};
use blobjobs_emulator::config::{
    self as limits, DEFAULT_MAX_BLOB_SIZE, DEFAULT_PORT, DEFAULT_SITE_ID,
};
use blobjobs_emulator::{BlobsContext, Config};
use blobjobs_store_api::{
    BlobStore as _, BlobStoreExt as _, ByteStream, ListOptions, Metadata, SetOptions, SetOutcome,
};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

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
    /// Print the `export NETLIFY_BLOBS_CONTEXT=…` line for a server.
    Env(EnvArgs),
    /// Print the value of a key (to stdout, or to --output).
    Get(GetArgs),
    /// Write a key from an argument, a file or stdin.
    Set(SetArgs),
    /// List the keys of a store.
    List(ListArgs),
    /// Delete a key.
    Delete(KeyArgs),
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BLOBS_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, env = "BLOBS_EMULATOR_PORT", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Data directory of the file storage.
    #[arg(long, env = "BLOBS_EMULATOR_DIR", default_value = ".blobs-emulator")]
    dir: PathBuf,
    /// Keep everything in memory; nothing survives a restart.
    #[arg(long, env = "BLOBS_EMULATOR_IN_MEMORY", conflicts_with = "dir")]
    in_memory: bool,
    /// The bearer token clients must send; a random one is generated and printed if absent.
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token)]
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
    /// Log filter (error, warn, info, debug, trace); RUST_LOG wins when set.
    #[arg(long, env = "BLOBS_EMULATOR_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Print only the export line, and log only errors.
    #[arg(long, env = "BLOBS_EMULATOR_QUIET")]
    quiet: bool,
}

#[derive(Args, Debug)]
struct EnvArgs {
    /// Host of the server.
    #[arg(long, env = "BLOBS_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port of the server.
    #[arg(long, env = "BLOBS_EMULATOR_PORT", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// The server's token.
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token)]
    token: Token,
    /// Site ID.
    #[arg(long, env = "BLOBS_EMULATOR_SITE", default_value = DEFAULT_SITE_ID)]
    site: String,
    /// Print an API-mode context (apiURL) instead of an edge-mode one.
    #[arg(long)]
    api: bool,
}

#[derive(Args, Debug)]
struct ClientArgs {
    /// Base URL of the server.
    #[arg(
        long,
        env = "BLOBS_EMULATOR_URL",
        default_value = "http://127.0.0.1:4733"
    )]
    url: String,
    /// The server's token.
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token)]
    token: Token,
    /// Site ID.
    #[arg(long, env = "BLOBS_EMULATOR_SITE", default_value = DEFAULT_SITE_ID)]
    site: String,
    /// Store name, as given to getStore (sent as `site:<name>`), or with --deploy the name of
    /// a named deploy store.
    #[arg(long)]
    store: Option<String>,
    /// Use the deploy store of this deploy ID (`deploy:<id>[:<store>]`).
    #[arg(long)]
    deploy: Option<String>,
}

impl ClientArgs {
    /// The store these flags name, opened the way code using `@netlify/blobs` would open it
    /// with the context `env` prints: edge mode, strongly consistent, and for deploy stores
    /// with `netlify dev`'s primary region (a `/region:dev/` segment the emulator ignores).
    fn store(&self) -> Result<HttpStore> {
        let kind = match (&self.deploy, &self.store) {
            (Some(id), name) => StoreKind::Deploy {
                deploy_id: Some(id.clone()),
                name: name.clone(),
            },
            (None, Some(name)) => StoreKind::Site(name.clone()),
            (None, None) => bail!("give --store NAME, --deploy ID, or both"),
        };
        let context = BlobsContext::edge(&self.url, &self.site, self.token.clone());
        let options = ClientOptions {
            consistency: Consistency::Strong,
            ..ClientOptions::default()
        };
        Ok(HttpStore::open(&options, Some(&context), &kind)?)
    }
}

#[derive(Args, Debug)]
struct KeyArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The key.
    key: String,
}

#[derive(Args, Debug)]
struct GetArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The key.
    key: String,
    /// Write the value to this file instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print the ETag and metadata to stderr.
    #[arg(long)]
    metadata: bool,
}

#[derive(Args, Debug)]
struct SetArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The key.
    key: String,
    /// The value; omit it to read --input.
    value: Option<String>,
    /// Read the value from this file (`-` for stdin).
    #[arg(long, short, conflicts_with = "value")]
    input: Option<PathBuf>,
    /// Metadata as a JSON object.
    #[arg(long)]
    metadata: Option<String>,
}

#[derive(Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only keys starting with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Group keys at the next `/` after the prefix.
    #[arg(long)]
    directories: bool,
    /// Print the listing as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            None => serve(cli.serve).await,
            Some(Command::Serve(args)) => serve(args).await,
            Some(Command::Env(args)) => {
                let base = base_url(SocketAddr::new(args.host, args.port));
                let ctx = match args.api {
                    true => BlobsContext::api(&base, &args.site, args.token),
                    false => BlobsContext::edge(&base, &args.site, args.token),
                };
                println!("{}", ctx.export_line());
                Ok(())
            }
            Some(Command::Get(args)) => get(args).await,
            Some(Command::Set(args)) => set(args).await,
            Some(Command::List(args)) => list(args).await,
            Some(Command::Delete(args)) => {
                args.client.store()?.delete(&args.key).await?;
                Ok(())
            }
        }
    })
}

async fn serve(args: ServeArgs) -> Result<()> {
    init_logging(&args);
    let generated = args.token.is_none();
    let token = match args.token.clone() {
        Some(token) if token.is_empty() => bail!("--token must not be empty"),
        Some(token) => token,
        None => Token::new(random_token()?),
    };
    let (catalog, storage) = open_catalog(&args)?;
    let config = Config::new(catalog, token.clone())
        .max_blob_size(args.max_blob_size)
        .list_page_size(args.list_page_size)
        .max_connections(args.max_connections)
        .header_timeout(std::time::Duration::from_secs(args.header_timeout))
        .idle_timeout(std::time::Duration::from_secs(args.idle_timeout))
        .list_cache_bytes(usize::try_from(args.list_cache_bytes).unwrap_or(usize::MAX));
    // Building the handler first rejects a bad configuration before anything is printed.
    let app = blobjobs_emulator::App::new(config)?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.host, args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let local = listener.local_addr()?;
    let base = base_url(local);
    let ctx = BlobsContext::edge(&base, &args.site, token.clone());
    if args.quiet {
        println!("{}", ctx.export_line());
    } else {
        println!("blobs-emulator listening on {base} ({storage})");
        if generated {
            println!(
                "token: {} (generated; pass --token to choose one)",
                token.reveal()
            );
        }
        println!("site: {} (any site ID is served)", args.site);
        println!("{}", ctx.export_line());
    }
    blobjobs_emulator::serve_app(listener, app.with_local_addr(local), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn open_catalog(args: &ServeArgs) -> Result<(Catalog, String)> {
    if args.in_memory {
        return Ok((Catalog::memory(), "in memory".to_owned()));
    }
    let fsync = !args.no_fsync;
    let catalog = Catalog::file(args.dir.clone(), blobjobs_backends::FileOptions { fsync })
        .with_context(|| format!("cannot open the data directory {}", args.dir.display()))?;
    let described = format!(
        "files in {}, fsync {}",
        args.dir.display(),
        if fsync { "on" } else { "off" }
    );
    Ok((catalog, described))
}

fn init_logging(args: &ServeArgs) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.is_empty() => filter,
        _ if args.quiet => "error".to_owned(),
        _ => args.log_level.clone(),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("signal received");
}

/// The URL clients should use: a wildcard address becomes loopback.
fn base_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// A token from a flag or variable (clap's parser, so it is redacted from then on).
fn parse_token(text: &str) -> Result<Token, String> {
    Ok(Token::new(text))
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Parses `1024`, `64KiB`, `5GiB`, `10M` and the like.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 1048576 or 5GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("unknown size unit {other:?}")),
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

async fn get(args: GetArgs) -> Result<()> {
    let store = args.client.store()?;
    let Some((info, mut body)) = store.get_stream(&args.key).await? else {
        bail!("key {:?} not found in {}", args.key, store.config().store);
    };
    if args.metadata {
        eprintln!("etag: {}", info.etag.as_str());
        eprintln!("metadata: {}", info.metadata.to_json());
    }
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin> = match &args.output {
        Some(path) => Box::new(
            tokio::fs::File::create(path)
                .await
                .with_context(|| format!("cannot create {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdout()),
    };
    while let Some(chunk) = body.next().await {
        out.write_all(&chunk?).await?;
    }
    out.flush().await?;
    Ok(())
}

async fn set(args: SetArgs) -> Result<()> {
    let store = args.client.store()?;
    let metadata = args
        .metadata
        .as_deref()
        .map(Metadata::from_json)
        .transpose()?
        .unwrap_or_default();
    let body: ByteStream = match (&args.value, &args.input) {
        (Some(value), _) => blobjobs_store_api::once_stream(Bytes::from(value.clone())),
        (None, Some(path)) if path.as_os_str() == "-" => reader_stream(tokio::io::stdin()),
        (None, Some(path)) => reader_stream(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        (None, None) => bail!("give a VALUE or --input FILE"),
    };
    let options = SetOptions::new().metadata(metadata);
    match store.set_stream(&args.key, body, None, options).await? {
        SetOutcome::Written { etag } => println!("{etag}"),
        // An unconditional write has no condition to fail; a server that says so is wrong.
        SetOutcome::ConditionFailed => bail!("the server refused the write's condition"),
    }
    Ok(())
}

/// A reader as a stream of chunks of at most 64 KiB.
fn reader_stream(reader: impl tokio::io::AsyncRead + Send + Unpin + 'static) -> ByteStream {
    use tokio::io::AsyncReadExt as _;
    Box::pin(futures_util::stream::unfold(
        Some(reader),
        |state| async move {
            let mut reader = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(reader)))
                }
                Err(e) => Some((
                    Err(blobjobs_store_api::Error::io("reading the input", e)),
                    None,
                )),
            }
        },
    ))
}

async fn list(args: ListArgs) -> Result<()> {
    let store = args.client.store()?;
    let options = ListOptions::new()
        .prefix(args.prefix.clone())
        .directories(args.directories);
    let (blobs, directories) = store.list_all_with_directories(options).await?;
    if args.json {
        let blobs: Vec<serde_json::Value> = blobs
            .iter()
            .map(|b| {
                serde_json::json!({
                    "key": b.key,
                    "etag": b.etag.as_str(),
                    "size": b.size,
                    "last_modified": b.last_modified.to_rfc3339(),
                })
            })
            .collect();
        let json = serde_json::json!({"blobs": blobs, "directories": directories});
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    for dir in &directories {
        println!("{dir}/");
    }
    for blob in &blobs {
        println!("{}", blob.key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("5GiB"), Ok(5 << 30));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("5 parsecs").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn wildcard_hosts_become_loopback() {
        assert_eq!(
            base_url("0.0.0.0:4733".parse().unwrap()),
            "http://127.0.0.1:4733"
        );
        assert_eq!(base_url("[::]:1".parse().unwrap()), "http://[::1]:1");
        assert_eq!(base_url("10.0.0.2:9".parse().unwrap()), "http://10.0.0.2:9");
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}

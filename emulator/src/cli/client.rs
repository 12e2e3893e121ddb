//! The commands that talk to a running emulator (`get`, `set`, `list`, `delete`) and `env`,
//! and how they find it when no flag says where: `NETLIFY_BLOBS_CONTEXT`, then the record and
//! token in the data directory of the emulator started here, then the defaults.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use blobjobs_backends::http::{
    ClientOptions, Consistency, HttpStore, RetryPolicy, StoreKind, Token,
};
use blobjobs_emulator::BlobsContext;
use blobjobs_emulator::config::{DEFAULT_PORT, DEFAULT_SITE_ID};
use blobjobs_store_api::{
    BlobStore as _, BlobStoreExt as _, ByteStream, ListOptions, Metadata, SetOptions, SetOutcome,
};
use bytes::Bytes;
use clap::Args;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt as _;

use super::data_dir::{DEFAULT_DIR, DataDir, TOKEN_FILE, TokenOrigin};
use super::net::url_of;
use super::parse_token;

/// Where the client commands connect. Each setting comes from the first of: its flag (or
/// `BLOBS_EMULATOR_*` variable), `NETLIFY_BLOBS_CONTEXT`, the data directory of the emulator
/// started there (its `server.json` and kept token), the default.
#[derive(Args, Debug)]
pub struct Connection {
    /// Base URL of the server [default: from NETLIFY_BLOBS_CONTEXT or the data directory,
    /// else http://127.0.0.1:4733]
    #[arg(long, env = "BLOBS_EMULATOR_URL")]
    url: Option<String>,
    /// The server's token [default: from NETLIFY_BLOBS_CONTEXT or the data directory]; prefer
    /// the variable, since other local users can read flags in the process list
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token,
        hide_env_values = true)]
    token: Option<Token>,
    /// Site ID [default: from NETLIFY_BLOBS_CONTEXT or the data directory, else local-site]
    #[arg(long, env = "BLOBS_EMULATOR_SITE")]
    site: Option<String>,
    /// Data directory of the emulator to talk to, when neither flags nor
    /// NETLIFY_BLOBS_CONTEXT say where it is
    #[arg(long, env = "BLOBS_EMULATOR_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
}

impl Connection {
    /// The context of the server these settings name, with a note of where its URL came from
    /// for error messages.
    fn context(&self) -> Result<(BlobsContext, String)> {
        let env = BlobsContext::from_env().filter(|c| !c.is_empty());
        let env = env.as_ref();
        let dir = DataDir::new(&self.dir);
        // A damaged record matters only when nothing else says where the server is.
        let record = match (&self.url, env) {
            (None, None) => dir.record()?,
            _ => dir.record().ok().flatten(),
        };
        let server_file = || dir.path().join(super::data_dir::SERVER_FILE);

        let edge = env.and_then(|c| c.uncached_edge_url.clone().or(c.edge_url.clone()));
        let api = env.and_then(|c| c.api_url.clone());
        let (url, api_mode, from) = match (&self.url, edge, api, &record) {
            (Some(url), ..) => (url.clone(), false, "--url".to_owned()),
            (None, Some(url), ..) => (url, false, "NETLIFY_BLOBS_CONTEXT".to_owned()),
            (None, None, Some(url), _) => (url, true, "NETLIFY_BLOBS_CONTEXT".to_owned()),
            (None, None, None, Some(record)) => (
                record.url.clone(),
                false,
                server_file().display().to_string(),
            ),
            (None, None, None, None) => (url_of("127.0.0.1", DEFAULT_PORT), false, {
                "the default".to_owned()
            }),
        };
        let site = self
            .site
            .clone()
            .or_else(|| env.and_then(|c| c.site_id.clone()))
            .or_else(|| record.as_ref().map(|r| r.site.clone()))
            .unwrap_or_else(|| DEFAULT_SITE_ID.to_owned());
        let token = match (
            &self.token,
            env.and_then(|c| c.token.clone()),
            record.as_ref().map(|r| r.token),
        ) {
            (Some(token), ..) => token.clone(),
            (None, Some(token), _) => token,
            (None, None, Some(TokenOrigin::Given)) => bail!(
                "the emulator recorded in {} was started with a token of its own: set \
                 BLOBS_EMULATOR_TOKEN to it, or export the NETLIFY_BLOBS_CONTEXT line it printed",
                server_file().display()
            ),
            (None, None, _) => dir.token()?.with_context(|| {
                format!(
                    "no token for {url}: export the NETLIFY_BLOBS_CONTEXT line the emulator \
                     printed, run this where it keeps its data (no {} here), or set \
                     BLOBS_EMULATOR_TOKEN",
                    dir.path().join(TOKEN_FILE).display()
                )
            })?,
        };
        let ctx = match api_mode {
            true => BlobsContext::api(&url, &site, token),
            false => BlobsContext::edge(&url, &site, token),
        };
        Ok((ctx, format!("{url} (from {from})")))
    }
}

/// A connection and the store to use.
#[derive(Args, Debug)]
pub struct StoreArgs {
    #[command(flatten)]
    connection: Connection,
    /// Store name, as given to getStore (sent as `site:<name>`), or with --deploy the name of
    /// a named deploy store; instead of the first argument
    #[arg(long)]
    store: Option<String>,
    /// Use the deploy store of this deploy ID (`deploy:<id>[:<store>]`)
    #[arg(long)]
    deploy: Option<String>,
}

/// An opened store and where it is, for messages.
struct Target {
    store: HttpStore,
    server: String,
}

impl StoreArgs {
    /// Splits the positional arguments into the store (the first one, unless --store or
    /// --deploy names it, as in `netlify blobs:get STORE KEY`) and the rest, and opens the
    /// store the way code using `@netlify/blobs` would with the same context: edge mode (or
    /// API mode for an API context), strongly consistent.
    fn open(&self, mut args: Vec<String>, usage: &str) -> Result<(Target, Vec<String>)> {
        let named = match (&self.deploy, &self.store) {
            (None, None) if args.is_empty() => {
                bail!("name the store: {usage}, or give --store NAME or --deploy ID")
            }
            (None, None) => Some(args.remove(0)),
            (_, store) => store.clone(),
        };
        let kind = match (&self.deploy, named) {
            (Some(id), name) => StoreKind::Deploy {
                deploy_id: Some(id.clone()),
                name,
            },
            (None, Some(name)) => StoreKind::Site(name),
            (None, None) => bail!("name the store: {usage}"),
        };
        let (context, server) = self.connection.context()?;
        let options = ClientOptions {
            consistency: Consistency::Strong,
            // A local server either answers at once or is not running: give up in well under
            // a second instead of the library's 30 s budget.
            retry: RetryPolicy::default().max_attempts(3),
            ..ClientOptions::default()
        };
        let store = HttpStore::open(&options, Some(&context), &kind)?;
        Ok((Target { store, server }, args))
    }
}

/// `get`: one key's value.
#[derive(Args, Debug)]
#[command(override_usage = "blobs-emulator get [OPTIONS] STORE KEY\n       \
    blobs-emulator get [OPTIONS] --store NAME KEY")]
pub struct GetArgs {
    #[command(flatten)]
    target: StoreArgs,
    /// STORE KEY, or only KEY when --store or --deploy names the store
    #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
    args: Vec<String>,
    /// Write the value to this file instead of stdout
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Print the ETag and metadata to stderr
    #[arg(long)]
    metadata: bool,
}

/// `set`: writes one key.
#[derive(Args, Debug)]
#[command(
    override_usage = "blobs-emulator set [OPTIONS] STORE KEY [VALUE]\n       \
    blobs-emulator set [OPTIONS] --store NAME KEY [VALUE]"
)]
pub struct SetArgs {
    #[command(flatten)]
    target: StoreArgs,
    /// STORE KEY VALUE, without STORE when --store or --deploy names the store, and without
    /// VALUE when --input gives it
    #[arg(value_name = "ARGS", num_args = 1..=3, required = true)]
    args: Vec<String>,
    /// Read the value from this file (`-` for stdin)
    #[arg(long, short)]
    input: Option<PathBuf>,
    /// Metadata as a JSON object
    #[arg(long)]
    metadata: Option<String>,
}

/// `list`: the keys of a store.
#[derive(Args, Debug)]
#[command(override_usage = "blobs-emulator list [OPTIONS] STORE\n       \
    blobs-emulator list [OPTIONS] --store NAME")]
pub struct ListArgs {
    #[command(flatten)]
    target: StoreArgs,
    /// The store (unless --store or --deploy names it)
    #[arg(id = "store_name", value_name = "STORE")]
    name: Option<String>,
    /// Only keys starting with this prefix
    #[arg(long, default_value = "")]
    prefix: String,
    /// Group keys at the next `/` after the prefix
    #[arg(long)]
    directories: bool,
    /// Print the listing as JSON
    #[arg(long)]
    json: bool,
}

/// `delete`: removes one key (no error if it is absent).
#[derive(Args, Debug)]
#[command(override_usage = "blobs-emulator delete [OPTIONS] STORE KEY\n       \
    blobs-emulator delete [OPTIONS] --store NAME KEY")]
pub struct DeleteArgs {
    #[command(flatten)]
    target: StoreArgs,
    /// STORE KEY, or only KEY when --store or --deploy names the store
    #[arg(value_name = "ARGS", num_args = 1..=2, required = true)]
    args: Vec<String>,
}

/// `env`: the export line of a running server.
#[derive(Args, Debug)]
pub struct EnvArgs {
    /// Host of the server [default: from the data directory, else 127.0.0.1]
    #[arg(long, env = "BLOBS_EMULATOR_HOST")]
    host: Option<String>,
    /// Port of the server [default: from the data directory, else 4733]
    #[arg(long, env = "BLOBS_EMULATOR_PORT")]
    port: Option<u16>,
    /// The server's token [default: the one kept in the data directory]
    #[arg(long, env = "BLOBS_EMULATOR_TOKEN", value_parser = parse_token,
        hide_env_values = true)]
    token: Option<Token>,
    /// Site ID [default: from the data directory, else local-site]
    #[arg(long, env = "BLOBS_EMULATOR_SITE")]
    site: Option<String>,
    /// Data directory of the server
    #[arg(long, env = "BLOBS_EMULATOR_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    /// Print an API-mode context (apiURL) instead of an edge-mode one
    #[arg(long)]
    api: bool,
}

/// Takes exactly the arguments `names` (the last ones optional from `optional` on) out of
/// `args`, or says what is missing or extra.
fn take<const N: usize>(
    args: Vec<String>,
    names: [&str; N],
    required: usize,
    usage: &str,
) -> Result<[Option<String>; N]> {
    if args.len() < required {
        bail!("give the {}: {usage}", names[args.len()]);
    }
    if args.len() > N {
        bail!("unexpected argument {:?}: {usage}", args[N]);
    }
    let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
    for (slot, arg) in out.iter_mut().zip(args) {
        *slot = Some(arg);
    }
    Ok(out)
}

/// Prints the value of a key.
pub async fn get(args: GetArgs) -> Result<()> {
    let usage = "get STORE KEY";
    let (target, rest) = args.target.open(args.args, usage)?;
    let [key] = take(rest, ["key"], 1, usage)?;
    let key = key.unwrap_or_default();
    let found = target
        .store
        .get_stream(&key)
        .await
        .with_context(|| format!("cannot read from {}", target.server))?;
    let Some((info, mut body)) = found else {
        bail!("key {key:?} not found in {}", target.store.config().store);
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

/// Writes a key from an argument, a file or stdin; prints the new ETag.
pub async fn set(args: SetArgs) -> Result<()> {
    let usage = "set STORE KEY VALUE, or set STORE KEY --input FILE";
    let (target, rest) = args.target.open(args.args, usage)?;
    let [key, value] = take(rest, ["key", "value"], 1, usage)?;
    let key = key.unwrap_or_default();
    let metadata = args
        .metadata
        .as_deref()
        .map(Metadata::from_json)
        .transpose()?
        .unwrap_or_default();
    let body: ByteStream = match (value, &args.input) {
        (Some(_), Some(_)) => bail!("give the value or --input, not both"),
        (Some(value), None) => blobjobs_store_api::once_stream(Bytes::from(value)),
        (None, Some(path)) if path.as_os_str() == "-" => reader_stream(tokio::io::stdin()),
        (None, Some(path)) => reader_stream(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        (None, None) => bail!("give a VALUE or --input FILE: {usage}"),
    };
    let options = SetOptions::new().metadata(metadata);
    let outcome = target
        .store
        .set_stream(&key, body, None, options)
        .await
        .with_context(|| format!("cannot write to {}", target.server))?;
    match outcome {
        SetOutcome::Written { etag } => writeln!(std::io::stdout(), "{etag}")?,
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

/// Lists the keys of a store.
pub async fn list(args: ListArgs) -> Result<()> {
    let usage = "list STORE";
    let (target, rest) = args.target.open(args.name.into_iter().collect(), usage)?;
    take(rest, [], 0, usage)?;
    let options = ListOptions::new()
        .prefix(args.prefix.clone())
        .directories(args.directories);
    let (blobs, directories) = target
        .store
        .list_all_with_directories(options)
        .await
        .with_context(|| format!("cannot list {}", target.server))?;
    let mut out = std::io::stdout().lock();
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
        writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
        return Ok(());
    }
    for dir in &directories {
        writeln!(out, "{dir}/")?;
    }
    for blob in &blobs {
        writeln!(out, "{}", blob.key)?;
    }
    out.flush()?;
    Ok(())
}

/// Deletes a key.
pub async fn delete(args: DeleteArgs) -> Result<()> {
    let usage = "delete STORE KEY";
    let (target, rest) = args.target.open(args.args, usage)?;
    let [key] = take(rest, ["key"], 1, usage)?;
    target
        .store
        .delete(&key.unwrap_or_default())
        .await
        .with_context(|| format!("cannot delete from {}", target.server))?;
    Ok(())
}

/// Prints the export line of the server that the flags, or else the data directory's record
/// and kept token, describe.
pub fn env(args: EnvArgs) -> Result<()> {
    let dir = DataDir::new(&args.dir);
    let record = dir.record()?;
    // Port 0 (a `BLOBS_EMULATOR_PORT=0` meant for `serve`) names no server.
    let port = args.port.filter(|&p| p != 0);
    let url = match (&args.host, port, &record) {
        (None, None, Some(record)) => record.url.clone(),
        (host, port, _) => url_of(
            host.as_deref().unwrap_or("127.0.0.1"),
            port.unwrap_or(DEFAULT_PORT),
        ),
    };
    let site = args
        .site
        .clone()
        .or_else(|| record.as_ref().map(|r| r.site.clone()))
        .unwrap_or_else(|| DEFAULT_SITE_ID.to_owned());
    let token = match (args.token, record.as_ref().map(|r| r.token)) {
        (Some(token), _) => token,
        (None, Some(TokenOrigin::Given)) => bail!(
            "the emulator on {} was started with a token of its own: give it with \
             BLOBS_EMULATOR_TOKEN",
            dir.path().display()
        ),
        (None, _) => dir.token()?.with_context(|| {
            format!(
                "no token kept in {}: give the server's token with BLOBS_EMULATOR_TOKEN, or \
                 --dir for the directory the emulator serves",
                dir.path().display()
            )
        })?,
    };
    let ctx = match args.api {
        true => BlobsContext::api(&url, &site, token),
        false => BlobsContext::edge(&url, &site, token),
    };
    writeln!(std::io::stdout(), "{}", ctx.export_line())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_taken_in_order() {
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let [key, value] = take(args(&["k", "v"]), ["key", "value"], 1, "u").unwrap();
        assert_eq!((key.as_deref(), value.as_deref()), (Some("k"), Some("v")));
        let [key, value] = take(args(&["k"]), ["key", "value"], 1, "u").unwrap();
        assert_eq!((key.as_deref(), value), (Some("k"), None));
        assert!(take(args(&[]), ["key"], 1, "get STORE KEY").is_err());
        assert!(take(args(&["k", "extra"]), ["key"], 1, "u").is_err());
    }
}

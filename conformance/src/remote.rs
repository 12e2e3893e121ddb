//! Instances in other OS processes: [`RemoteInstance`] spawns a program and drives it over
//! stdin/stdout with the JSON lines of [`crate::wire`]; [`serve_instance_stdio`] is the other
//! end, for a tiny binary that opens one backend and serves it.
//!
//! Running each instance as its own process proves what a factory inside one process cannot:
//! that nothing the backend shares in memory (a static, a lock table) is holding it together,
//! and that a process killed in the middle of a write (a [`KillSwitch`]) leaves no torn value
//! and takes no acknowledged write with it.

use std::ffi::OsString;
use std::fmt;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, Condition, Error, ErrorKind, ListOptions, ListPage, Result,
    SetOptions, SetOutcome, Timestamp,
};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Mutex;

use crate::factory::InstanceFactory;
use crate::wire::{self, Op, Outcome, Request, Response, WireCondition};

struct Pipes {
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// A `BlobStore` served by a child process that speaks the JSON lines of [`crate::wire`].
/// Requests go one at a time; the child is killed when the instance is dropped.
pub struct RemoteInstance {
    program: String,
    pipes: Mutex<Pipes>,
    next_id: AtomicU64,
    /// Shared with the instance's [`KillSwitch`]es, which may kill it while a request is in
    /// flight (the request holds `pipes`, never this).
    child: Arc<Mutex<Child>>,
}

/// Kills one instance's process as a crash would: SIGKILL, with no chance to finish a write
/// or clean up, then waits until the process is gone.
#[derive(Clone)]
pub struct KillSwitch {
    kill: Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>,
}

impl fmt::Debug for KillSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KillSwitch(..)")
    }
}

impl KillSwitch {
    /// A switch that runs `kill`, for factories of other kinds of processes. `kill` must
    /// return only once the process can no longer write.
    pub fn new(kill: impl Fn() -> BoxFuture<'static, Result<()>> + Send + Sync + 'static) -> Self {
        KillSwitch {
            kill: Arc::new(kill),
        }
    }

    /// Kills the process and waits for it to exit. Killing a process that has already
    /// exited is fine.
    pub async fn kill(&self) -> Result<()> {
        (self.kill)().await
    }
}

impl fmt::Debug for RemoteInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RemoteInstance({})", self.program)
    }
}

fn gone(program: &str, what: impl fmt::Display) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!("instance process {program}: {what}"),
    )
}

impl RemoteInstance {
    /// Spawns `command` with piped stdin and stdout (stderr is inherited).
    pub fn spawn(mut command: Command) -> Result<Self> {
        let program = format!("{:?}", command.as_std().get_program());
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("cannot start instance process {program}"), e))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| gone(&program, "no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| gone(&program, "no stdout"))?;
        Ok(RemoteInstance {
            program,
            pipes: Mutex::new(Pipes {
                stdin,
                stdout: BufReader::new(stdout),
            }),
            next_id: AtomicU64::new(0),
            child: Arc::new(Mutex::new(child)),
        })
    }

    /// The switch that kills this instance's process (SIGKILL) and waits until it exited.
    pub fn kill_switch(&self) -> KillSwitch {
        let child = self.child.clone();
        let program = self.program.clone();
        KillSwitch::new(move || {
            let child = child.clone();
            let program = program.clone();
            Box::pin(async move {
                let mut child = child.lock().await;
                if child.try_wait().map_err(|e| gone(&program, e))?.is_some() {
                    return Ok(());
                }
                // `start_kill` sends SIGKILL on Unix: the process gets no chance to finish.
                child.start_kill().map_err(|e| gone(&program, e))?;
                child.wait().await.map_err(|e| gone(&program, e))?;
                Ok(())
            })
        })
    }

    /// Sends one operation and waits for its outcome.
    pub async fn call(&self, op: Op) -> Result<Outcome> {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut line = serde_json::to_string(&Request { id, op })
            .map_err(|e| Error::new(ErrorKind::Protocol, format!("cannot encode request: {e}")))?;
        line.push('\n');
        let mut pipes = self.pipes.lock().await;
        pipes
            .stdin
            .write_all(line.as_bytes())
            .await
            .map_err(|e| gone(&self.program, e))?;
        pipes
            .stdin
            .flush()
            .await
            .map_err(|e| gone(&self.program, e))?;
        let mut reply = String::new();
        let n = pipes
            .stdout
            .read_line(&mut reply)
            .await
            .map_err(|e| gone(&self.program, e))?;
        if n == 0 {
            return Err(gone(&self.program, "closed its output"));
        }
        let response: Response = serde_json::from_str(&reply).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("instance process sent an invalid response: {e}"),
            )
        })?;
        if response.id != id {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!(
                    "instance process answered request {} to request {id}",
                    response.id
                ),
            ));
        }
        match response.outcome {
            Outcome::Error { kind, message } => Err(wire::outcome_error(&kind, &message)),
            other => Ok(other),
        }
    }
}

fn unexpected(o: Outcome) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("instance process gave an unexpected outcome: {o:?}"),
    )
}

#[async_trait]
impl BlobStore for RemoteInstance {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        match self
            .call(Op::Get {
                key: key.to_owned(),
            })
            .await?
        {
            Outcome::Blob {
                value,
                etag,
                metadata,
                size,
                last_modified,
            } => Ok(Some(Blob {
                value: wire::decode_value(&value)?,
                info: BlobInfo {
                    etag,
                    metadata,
                    size,
                    last_modified: Timestamp::from_millis(last_modified),
                },
            })),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        match self
            .call(Op::GetMetadata {
                key: key.to_owned(),
            })
            .await?
        {
            Outcome::Info {
                etag,
                metadata,
                size,
                last_modified,
            } => Ok(Some(BlobInfo {
                etag,
                metadata,
                size,
                last_modified: Timestamp::from_millis(last_modified),
            })),
            Outcome::NotFound => Ok(None),
            o => Err(unexpected(o)),
        }
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        let condition = match options.condition {
            Condition::Always => WireCondition::Always,
            Condition::IfNew => WireCondition::IfNew,
            Condition::IfMatch(etag) => WireCondition::IfMatch { etag },
        };
        let op = Op::Set {
            key: key.to_owned(),
            value: wire::encode_value(&value),
            metadata: options.metadata,
            condition,
        };
        match self.call(op).await? {
            Outcome::Written { etag } => Ok(SetOutcome::Written { etag }),
            Outcome::ConditionFailed => Ok(SetOutcome::ConditionFailed),
            o => Err(unexpected(o)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self
            .call(Op::Delete {
                key: key.to_owned(),
            })
            .await?
        {
            Outcome::Done => Ok(()),
            o => Err(unexpected(o)),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let op = Op::List {
            prefix: options.prefix,
            directories: options.directories,
            cursor: options.cursor,
            page_size: options.page_size,
        };
        match self.call(op).await? {
            Outcome::Page {
                blobs,
                directories,
                next_cursor,
            } => Ok(ListPage {
                blobs: blobs.into_iter().map(wire::entry_from_wire).collect(),
                directories,
                next_cursor,
            }),
            o => Err(unexpected(o)),
        }
    }
}

/// A factory whose every instance is a new process running `program` with `args`.
#[derive(Debug, Clone)]
pub struct ProcessFactory {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl ProcessFactory {
    /// Instances run `program`.
    pub fn new(program: impl Into<OsString>) -> Self {
        ProcessFactory {
            program: program.into(),
            args: Vec::new(),
            envs: Vec::new(),
        }
    }

    /// Adds an argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Sets an environment variable of the instance processes.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }
}

impl ProcessFactory {
    fn spawn(&self) -> Result<RemoteInstance> {
        let mut command = Command::new(&self.program);
        command.args(&self.args);
        for (k, v) in &self.envs {
            command.env(k, v);
        }
        RemoteInstance::spawn(command)
    }
}

#[async_trait]
impl InstanceFactory for ProcessFactory {
    async fn instance(&self) -> Result<Arc<dyn BlobStore>> {
        Ok(Arc::new(self.spawn()?))
    }

    fn spawns_processes(&self) -> bool {
        true
    }

    async fn killable_instance(&self) -> Result<(Arc<dyn BlobStore>, KillSwitch)> {
        let instance = self.spawn()?;
        let switch = instance.kill_switch();
        Ok((Arc::new(instance), switch))
    }
}

/// Serves `store` on stdin/stdout, one JSON request per line in, one response per line out,
/// until stdin closes. Call it from the `main` of a tiny instance binary.
pub async fn serve_instance_stdio(store: Arc<dyn BlobStore>) -> std::io::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let response = match serde_json::from_str::<Request>(&line) {
            Ok(req) => Response {
                id: req.id,
                outcome: wire::apply(store.as_ref(), req.op).await,
            },
            Err(e) => Response {
                id: u64::MAX,
                outcome: Outcome::Error {
                    kind: ErrorKind::InvalidInput.as_str().to_owned(),
                    message: format!("not a request: {e}"),
                },
            },
        };
        let mut text = serde_json::to_string(&response).map_err(std::io::Error::other)?;
        text.push('\n');
        stdout.write_all(text.as_bytes()).await?;
        stdout.flush().await?;
    }
    Ok(())
}

//! The accept loop: hyper 1 HTTP/1.1 connections with keep-alive, feeding [`App`], with a
//! graceful shutdown that lets requests in flight finish.
//!
//! Every resource a client can hold has a bound:
//!
//! - *Connections.* At most [`Config::max_connections`] at once, and never more than half the
//!   files the process may open (`ulimit -n`), so the storage keeps descriptors to work with.
//!   At the limit, a new connection makes room by closing the connection idle the longest (one
//!   waiting for a request, which loses nothing); if none is idle, it waits in the listen queue
//!   until one finishes. Idle connections are the only kind a client can open for free, so a
//!   crowd of them never locks out a real request.
//! - *Time.* A request's headers must arrive within [`Config::header_timeout`] of when the
//!   connection starts waiting for them (so idle keep-alive connections close after it too). A
//!   request body that makes no progress for [`Config::idle_timeout`] gets 408, and a client
//!   that reads none of its response for as long loses the connection.
//! - *Refusals.* A response to a request whose body was left unread (refused before reading
//!   it, or cut short) says `connection: close`. After it is sent, the server closes its
//!   sending side and reads and drops what the client still sends, for at most
//!   [`LINGER_TIME`] and [`LINGER_BYTES`], before it closes the socket: closing a socket with
//!   unread data makes the kernel answer with a reset, which can destroy the response before
//!   the client reads it.
//!
//! [`Config::max_connections`]: crate::Config::max_connections
//! [`Config::header_timeout`]: crate::Config::header_timeout
//! [`Config::idle_timeout`]: crate::Config::idle_timeout

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, header};
use hyper::body::{Body, Frame, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};

use crate::app::App;
use crate::body::ResponseBody;
use crate::config::Config;

/// How long a connection closed after a refused body keeps reading what the client still
/// sends.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// How much a connection closed after a refused body reads and drops at most.
pub const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// The longest request head (request line and headers) accepted; longer ones get 431.
/// Metadata, the largest header of the protocol, is limited to about 2 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How often a new connection that found no free slot tries again to make room.
const SLOT_RETRY: Duration = Duration::from_millis(20);

/// Serves the Netlify Blobs protocol on `listener` until `shutdown` completes, then stops
/// accepting, waits for the requests in flight and returns.
///
/// Fails at once if the configuration is unusable (an empty token, a bad page size).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = App::new(config)?.with_local_addr(listener.local_addr()?);
    serve_app(listener, app, shutdown).await
}

/// Like [`serve`], for a handler that is already built.
pub async fn serve_app(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::new(connection_limit(
        app.inner.max_connections,
    )));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    'accept: loop {
        while tasks.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors: an idle connection gives one back. Anything else is
                // transient too: wait, go on.
                use rustix::io::Errno;
                let errno = Errno::from_io_error(&err);
                let out_of_files = matches!(errno, Some(Errno::MFILE | Errno::NFILE));
                if !(out_of_files && connections.close_one_idle()) {
                    tracing::warn!(error = %err, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let permit = loop {
            if let Ok(permit) = Arc::clone(&connections.slots).try_acquire_owned() {
                break permit;
            }
            connections.close_one_idle();
            tokio::select! {
                Ok(permit) = Arc::clone(&connections.slots).acquire_owned() => break permit,
                () = tokio::time::sleep(SLOT_RETRY) => {}
                () = &mut shutdown => break 'accept,
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = connections.register();
        tasks.spawn(serve_connection(
            stream,
            peer,
            app.clone(),
            conn,
            Arc::clone(&connections),
            permit,
            stopping.clone(),
        ));
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// The most connections to serve at once: `configured`, but at most half the files this
/// process may open, so that the storage keeps descriptors to work with.
fn connection_limit(configured: usize) -> usize {
    let files = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let Some(files) = files else {
        return configured;
    };
    let by_files = usize::try_from(files / 2).unwrap_or(usize::MAX).max(1);
    if by_files < configured {
        tracing::info!(
            "serving at most {by_files} connections at once: the process may open {files} files \
             (ulimit -n), and half of them are kept for the storage"
        );
    }
    configured.min(by_files)
}

/// The connections being served, and the slots that bound them.
struct Connections {
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
}

/// What the accept loop knows of one connection.
struct Conn {
    id: u64,
    state: Mutex<ConnState>,
    /// Told when the connection is to close as soon as it is idle.
    close: Notify,
    /// Set when a response went out with a request body left unread.
    linger: AtomicBool,
}

struct ConnState {
    /// Requests whose response is not yet sent to its end.
    in_flight: usize,
    /// Since when the connection waits for a request, if it does.
    idle_since: Option<Instant>,
    /// Already asked to close.
    closing: bool,
}

impl Connections {
    fn new(limit: usize) -> Self {
        Connections {
            slots: Arc::new(Semaphore::new(limit)),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    fn register(&self) -> Arc<Conn> {
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            state: Mutex::new(ConnState {
                in_flight: 0,
                idle_since: Some(Instant::now()),
                closing: false,
            }),
            close: Notify::new(),
            linger: AtomicBool::new(false),
        });
        if let Ok(mut live) = self.live.lock() {
            live.insert(conn.id, Arc::clone(&conn));
        }
        conn
    }

    fn remove(&self, id: u64) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(&id);
        }
    }

    /// Asks the connection idle the longest to close; `false` if none is idle.
    fn close_one_idle(&self) -> bool {
        let Ok(live) = self.live.lock() else {
            return false;
        };
        let oldest = live
            .values()
            .filter_map(|conn| {
                let state = conn.state.lock().ok()?;
                let since = state.idle_since.filter(|_| !state.closing)?;
                Some((since, conn))
            })
            .min_by_key(|(since, _)| *since);
        let Some((_, conn)) = oldest else {
            return false;
        };
        if let Ok(mut state) = conn.state.lock() {
            state.closing = true;
        }
        conn.close.notify_one();
        true
    }
}

impl Conn {
    /// Marks a request as started; the returned guard marks it done when dropped.
    fn begin(self: &Arc<Self>) -> RequestGuard {
        if let Ok(mut state) = self.state.lock() {
            state.in_flight += 1;
            state.idle_since = None;
        }
        RequestGuard(Arc::clone(self))
    }
}

/// A request in flight on a connection, until its response is sent to its end.
struct RequestGuard(Arc<Conn>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if let Ok(mut state) = self.0.state.lock() {
            state.in_flight = state.in_flight.saturating_sub(1);
            if state.in_flight == 0 {
                state.idle_since = Some(Instant::now());
            }
        }
    }
}

/// Removes a connection from the registry when its task ends, however it ends.
struct Registered(Arc<Connections>, u64);

impl Drop for Registered {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

type ServiceFuture =
    Pin<Box<dyn Future<Output = Result<Response<GuardedBody>, Infallible>> + Send>>;

/// Serves one connection to its end, then closes it (gently, if a request body was left
/// unread). Holds its slot until then.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    conn: Arc<Conn>,
    connections: Arc<Connections>,
    _slot: OwnedSemaphorePermit,
    mut stopping: watch::Receiver<bool>,
) {
    let _registered = Registered(connections, conn.id);
    let header_timeout = app.inner.header_timeout;
    let io = TokioIo::new(Stalling::new(stream, app.inner.idle_timeout));
    let service = {
        let conn = Arc::clone(&conn);
        service_fn(move |req| {
            let app = app.clone();
            let conn = Arc::clone(&conn);
            Box::pin(async move {
                let guard = conn.begin();
                let response = crate::access_log::handle(&app, req).await;
                let closes = response
                    .headers()
                    .get(header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                if closes {
                    conn.linger.store(true, Ordering::Relaxed);
                }
                Ok(response.map(|body| GuardedBody {
                    body,
                    _guard: guard,
                }))
            }) as ServiceFuture
        })
    };
    let mut connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        // A client may send its request and shut its sending side while it waits for the
        // answer; it still gets one.
        .half_close(true)
        .header_read_timeout(header_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    let mut closing = false;
    let result = loop {
        let close = tokio::select! {
            result = poll_fn(|cx| connection.poll_without_shutdown(cx)) => Err(result),
            () = conn.close.notified(), if !closing => Ok(()),
            _ = stopping.changed(), if !closing => Ok(()),
        };
        match close {
            Err(result) => break result,
            Ok(()) => {
                // Closes at once if idle, else after the response in progress.
                Pin::new(&mut connection).graceful_shutdown();
                closing = true;
            }
        }
    };
    // hyper answered a malformed request itself (400, 431 and the like) and may not have read
    // all of it.
    let refused = match &result {
        Ok(()) => false,
        Err(err) => {
            tracing::debug!(%peer, error = %err, "connection ended with an error");
            err.is_parse() || err.is_parse_too_large()
        }
    };
    let stream = connection.into_parts().io.into_inner().stream;
    if refused || conn.linger.load(Ordering::Relaxed) {
        linger(stream).await;
    }
}

/// Closes a connection whose client may still be sending: sends FIN, then reads and drops what
/// arrives until the client closes too, for at most [`LINGER_TIME`] and [`LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 16 * 1024];
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => dropped += n,
            _ => break,
        }
    }
}

/// A response body that keeps its request counted as in flight until it is sent (or dropped).
struct GuardedBody {
    body: ResponseBody,
    _guard: RequestGuard,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = blobjobs_store_api::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose writes fail once the client has taken none of the response for `idle`, so
/// that a client that stops reading cannot hold its connection forever.
struct Stalling {
    stream: TcpStream,
    idle: Duration,
    /// Armed when a write first has to wait, cleared when one goes through.
    stall: Option<Pin<Box<Sleep>>>,
}

impl Stalling {
    fn new(stream: TcpStream, idle: Duration) -> Self {
        Stalling {
            stream,
            idle,
            stall: None,
        }
    }

    fn waited<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if written.is_ready() {
            self.stall = None;
            return written;
        }
        let idle = self.idle;
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        if stall.as_mut().poll(cx).is_ready() {
            let why = format!("the client read nothing for {} s", idle.as_secs());
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, why)));
        }
        Poll::Pending
    }
}

impl AsyncRead for Stalling {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalling {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.waited(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.waited(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(&mut this.stream).poll_flush(cx);
        this.waited(cx, flushed)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

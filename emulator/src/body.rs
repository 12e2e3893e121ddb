//! Bodies in both directions as streams, so that values of any size pass through in chunks,
//! and [`Watched`], which tells the handler how a request body ended.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use blobjobs_store_api::{ByteStream, Error, ErrorKind};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body type of every response the emulator sends.
pub type ResponseBody = UnsyncBoxBody<Bytes, Error>;

/// A response body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty response body.
pub fn empty() -> ResponseBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A response body that forwards a stored value chunk by chunk.
pub fn streaming(stream: ByteStream) -> ResponseBody {
    StreamBody::new(stream.map(|chunk| chunk.map(Frame::data))).boxed_unsync()
}

/// A request body as a stream of value chunks; trailers are ignored. A body that cannot be
/// read to its end (malformed, cut short, stalled) is the client's fault:
/// [`ErrorKind::InvalidInput`].
pub fn request_stream<B>(body: B) -> ByteStream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: fmt::Display,
{
    Box::pin(body.into_data_stream().map(|chunk| {
        chunk.map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("cannot read the request body: {e}"),
            )
        })
    }))
}

/// How a request body ended, as far as the handler read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BodyEnd {
    /// Not read to its end (perhaps not read at all).
    #[default]
    Open,
    /// Read to its end.
    Finished,
    /// Malformed (bad chunk framing) or cut short (the connection ended early).
    Failed(String),
    /// No part of it arrived for the idle timeout.
    Stalled(Duration),
}

/// The shared record of how a [`Watched`] body ended.
pub type BodyWatch = Arc<Mutex<BodyEnd>>;

/// The error a [`Watched`] body yields: the client's, never the server's.
#[derive(Debug)]
pub struct BodyError(String);

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodyError {}

/// A request body that records in a [`BodyWatch`] whether it was read to its end, failed, or
/// stalled, and fails once no part of it arrives for `idle`, so that a client that stops
/// sending mid-body cannot hold a request open forever.
pub struct Watched<B> {
    inner: Pin<Box<B>>,
    watch: BodyWatch,
    idle: Duration,
    stall: Option<Pin<Box<Sleep>>>,
}

impl<B> Watched<B> {
    /// Wraps `body`, recording into `watch`.
    pub fn new(body: B, watch: BodyWatch, idle: Duration) -> Self {
        Watched {
            inner: Box::pin(body),
            watch,
            idle,
            stall: None,
        }
    }

    fn record(&self, end: BodyEnd) {
        if let Ok(mut slot) = self.watch.lock() {
            *slot = end;
        }
    }
}

impl<B> Body for Watched<B>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(None) => {
                this.record(BodyEnd::Finished);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(stall) = &mut this.stall {
                    stall.as_mut().reset(Instant::now() + this.idle);
                }
                if this.inner.is_end_stream() {
                    this.record(BodyEnd::Finished);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let why = e.to_string();
                this.record(BodyEnd::Failed(why.clone()));
                Poll::Ready(Some(Err(BodyError(why))))
            }
            Poll::Pending => {
                let idle = this.idle;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if stall.as_mut().poll(cx).is_ready() {
                    this.record(BodyEnd::Stalled(idle));
                    let why = format!("no part of the body arrived for {} s", idle.as_secs());
                    return Poll::Ready(Some(Err(BodyError(why))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

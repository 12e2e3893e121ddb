//! Bodies in both directions as streams, so that values of any size pass through in chunks.

use blobjobs_store_api::{ByteStream, Error, ErrorKind};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty, Full, StreamBody};
use hyper::body::{Body, Frame};

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

/// A request body as a stream of value chunks; trailers are ignored.
pub fn request_stream<B>(body: B) -> ByteStream
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    Box::pin(body.into_data_stream().map(|chunk| {
        chunk.map_err(|e| Error::new(ErrorKind::Io, format!("reading the request body: {e}")))
    }))
}

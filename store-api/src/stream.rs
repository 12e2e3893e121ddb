//! Helpers for streamed values: reading the start of a body to decide how to store it.
//!
//! Backends that stream large values still want small ones whole (one write, one request
//! with the usual retries). [`read_head`] reads a body until it ends or passes a threshold,
//! checking the caller's size limit on the way, so each backend only decides what to do
//! with a [`Head`].

use bytes::Bytes;

use crate::blob::ByteStream;
use crate::error::{Error, Result};

/// The start of a streamed value, as read by [`read_head`].
pub enum Head {
    /// The body ended within the threshold: the whole value.
    Complete(Bytes),
    /// The body goes on past the threshold.
    Partial {
        /// The chunks read so far, in order (more than the threshold in all).
        chunks: Vec<Bytes>,
        /// Their total size in bytes.
        size: u64,
        /// The rest of the body.
        rest: ByteStream,
    },
}

/// Reads `body` until it ends or more than `threshold` bytes have been read. Fails with
/// [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) as soon as the bytes read pass
/// `max_size`, and with the body's own error if reading it fails.
pub async fn read_head(
    mut body: ByteStream,
    threshold: usize,
    max_size: Option<u64>,
) -> Result<Head> {
    let mut chunks = Vec::new();
    let mut size: u64 = 0;
    while size <= threshold as u64 {
        let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await else {
            return Ok(Head::Complete(concat(chunks, size)));
        };
        let chunk = chunk?;
        size += chunk.len() as u64;
        check_size(size, max_size)?;
        chunks.push(chunk);
    }
    Ok(Head::Partial {
        chunks,
        size,
        rest: body,
    })
}

/// Reads the whole of `body` into one value, failing with
/// [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) as soon as it passes `max_size`.
pub async fn read_all(mut body: ByteStream, max_size: Option<u64>) -> Result<Bytes> {
    let mut chunks = Vec::new();
    let mut size: u64 = 0;
    while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        check_size(size, max_size)?;
        chunks.push(chunk);
    }
    Ok(concat(chunks, size))
}

/// Fails with [`Error::too_large`] when `size` bytes pass `max_size`.
pub fn check_size(size: u64, max_size: Option<u64>) -> Result<()> {
    match max_size {
        Some(max) if size > max => Err(Error::too_large(max)),
        _ => Ok(()),
    }
}

/// The chunks as one value, copied only if there is more than one.
fn concat(mut chunks: Vec<Bytes>, size: u64) -> Bytes {
    if chunks.len() <= 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut value = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    for chunk in &chunks {
        value.extend_from_slice(chunk);
    }
    Bytes::from(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ErrorKind;

    fn body(chunks: &[&'static [u8]]) -> ByteStream {
        struct Chunks(Vec<Bytes>);
        impl futures_core::Stream for Chunks {
            type Item = Result<Bytes>;
            fn poll_next(
                mut self: std::pin::Pin<&mut Self>,
                _: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Option<Self::Item>> {
                let next = (!self.0.is_empty()).then(|| Ok(self.0.remove(0)));
                std::task::Poll::Ready(next)
            }
        }
        Box::pin(Chunks(
            chunks.iter().map(|c| Bytes::from_static(c)).collect(),
        ))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_body_that_ends_within_the_threshold_is_complete() {
        let head = block_on(read_head(body(&[b"ab", b"cd"]), 4, None)).unwrap();
        assert!(matches!(head, Head::Complete(v) if v.as_ref() == b"abcd"));
        let head = block_on(read_head(body(&[]), 4, None)).unwrap();
        assert!(matches!(head, Head::Complete(v) if v.is_empty()));
    }

    #[test]
    fn a_body_past_the_threshold_is_partial_with_the_rest_unread() {
        let head = block_on(read_head(body(&[b"abc", b"de", b"f"]), 4, None)).unwrap();
        let Head::Partial { chunks, size, rest } = head else {
            panic!("expected a partial head");
        };
        assert_eq!(chunks, [&b"abc"[..], &b"de"[..]]);
        assert_eq!(size, 5);
        let rest = block_on(read_head(rest, 100, None)).unwrap();
        assert!(matches!(rest, Head::Complete(v) if v.as_ref() == b"f"));
    }

    #[test]
    fn the_size_limit_is_checked_while_reading() {
        let err = block_on(read_head(body(&[b"abc", b"de"]), 100, Some(4)))
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(block_on(read_head(body(&[b"abcd"]), 100, Some(4))).is_ok());
        let err = block_on(read_all(body(&[b"abc", b"de"]), Some(4))).err();
        assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::TooLarge));
        let all = block_on(read_all(body(&[b"abc", b"de"]), Some(5))).unwrap();
        assert_eq!(all.as_ref(), b"abcde");
    }
}

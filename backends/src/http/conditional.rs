//! Conditional writes whose outcome is unknown: instead of resending them blindly (which
//! would fail their own condition or overwrite a newer version), the store reads the key
//! back and decides whether the write applied, did not apply, or lost to another writer.
//!
//! This is the client's subtlest invariant; `docs/protocol.md` ("Client behaviour")
//! describes it, and the decision itself is the pure function [`judge`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use blobjobs_store_api::{
    Blob, BlobInfo, ByteStream, Condition, Error, ErrorKind, Etag, Result, SetOptions, SetOutcome,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;

use super::HttpStore;
use super::call::{BoxError, CallBody, CallError, ReqBody};

/// What reading the key back says about a conditional write whose outcome was unknown.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadBack {
    /// The key holds exactly what was sent: the write applied, with this ETag.
    Applied(Etag),
    /// The key still satisfies the condition: the write did not apply and may be resent.
    NotApplied,
    /// Another writer got there first: the condition no longer holds.
    Superseded,
}

/// Decides what `current`, read back after an unanswered conditional write of `value` with
/// `options`, says about that write.
///
/// The content comparison cannot tell this write from an identical one by another writer in
/// the same window; both then count as applied, which is harmless for identical content.
pub(super) fn judge(options: &SetOptions, value: &Bytes, current: Option<Blob>) -> ReadBack {
    match (&options.condition, current) {
        (Condition::IfMatch(_), None) => ReadBack::Superseded,
        (_, None) => ReadBack::NotApplied,
        (Condition::IfMatch(expected), Some(blob)) if blob.info.etag == *expected => {
            ReadBack::NotApplied
        }
        (_, Some(blob)) => {
            if blob.value == *value && blob.info.metadata == options.metadata {
                ReadBack::Applied(blob.info.etag)
            } else {
                ReadBack::Superseded
            }
        }
    }
}

/// Whether the head of `current` shows that a streamed conditional write did not apply.
/// The stream is gone, so content cannot be compared: only "the key is still as the
/// condition requires" can be told apart from "unknown".
pub(super) fn streamed_not_applied(condition: &Condition, current: Option<BlobInfo>) -> bool {
    match current {
        None => *condition == Condition::IfNew,
        Some(info) => *condition == Condition::IfMatch(info.etag),
    }
}

impl HttpStore {
    /// Writes `value` whole: resent on failures that cannot have applied it, and read back
    /// after a failure of a conditional write that may have.
    pub(super) async fn set_value(
        &self,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let call = self.write_call(key, &options, CallBody::Full(value.clone()))?;
        let mut budget = self.budget();
        loop {
            let err = match self.send_until_answered(&call, &mut budget).await {
                Ok(reply) => return HttpStore::write_outcome(&call, &options, &reply),
                Err(CallError::Final(e)) => return Err(e),
                Err(CallError::Ambiguous(e)) => e,
            };
            let mut check = budget.child();
            let current = match self.get_within(key, &mut check).await {
                Ok(current) => current,
                Err(read_err) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "outcome of the conditional write of {key} is unknown: {}; \
                             reading it back failed: {}",
                            err.message(),
                            read_err.message()
                        ),
                    )
                    .with_source(err));
                }
            };
            match judge(&options, &value, current) {
                ReadBack::Applied(etag) => return Ok(SetOutcome::Written { etag }),
                ReadBack::Superseded => return Ok(SetOutcome::ConditionFailed),
                ReadBack::NotApplied => {
                    // The write did not happen: resending it is safe.
                    let err = Error::new(ErrorKind::Unavailable, err.message().to_owned());
                    if let Err(CallError::Final(e) | CallError::Ambiguous(e)) =
                        HttpStore::back_off(&call.what, err, None, &mut budget).await
                    {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Sends a streamed write once: the body can be sent only once, so no failure is
    /// retried, and a conditional one is checked as far as a head read allows.
    pub(super) async fn set_streamed(
        &self,
        key: &str,
        head: Vec<Bytes>,
        rest: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let too_large = Arc::new(AtomicBool::new(false));
        let flag = too_large.clone();
        let mut sent: u64 = 0;
        let chunks = futures_util::stream::iter(head.into_iter().map(Ok))
            .chain(rest)
            .map(
                move |chunk| -> std::result::Result<Frame<Bytes>, BoxError> {
                    let chunk = chunk.map_err(|e| Box::new(e) as BoxError)?;
                    sent += chunk.len() as u64;
                    if let Some(max) = max_size
                        && sent > max
                    {
                        flag.store(true, Ordering::SeqCst);
                        return Err("value is larger than the maximum".into());
                    }
                    Ok(Frame::data(chunk))
                },
            );
        let body: ReqBody = StreamBody::new(chunks).boxed_unsync();
        let call = self.write_call(key, &options, CallBody::OneShot(Mutex::new(Some(body))))?;
        let mut budget = self.budget();
        let result = self.send_until_answered(&call, &mut budget).await;
        if too_large.load(Ordering::SeqCst) {
            return Err(Error::too_large(max_size.unwrap_or(0)));
        }
        match result {
            Ok(reply) => HttpStore::write_outcome(&call, &options, &reply),
            Err(CallError::Final(e)) => Err(e),
            Err(CallError::Ambiguous(e)) => {
                let mut check = budget.child();
                let not_applied = match self.head_within(key, &mut check).await {
                    Ok(current) => streamed_not_applied(&options.condition, current),
                    Err(_) => false,
                };
                let (kind, what) = if not_applied {
                    (ErrorKind::Unavailable, "did not apply")
                } else {
                    (ErrorKind::Timeout, "has an unknown outcome")
                };
                Err(Error::new(
                    kind,
                    format!(
                        "streamed conditional write of {key} {what}: {}",
                        e.message()
                    ),
                )
                .with_source(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::{Metadata, Timestamp};

    fn blob(value: &'static str, etag: &str, metadata: Metadata) -> Option<Blob> {
        Some(Blob {
            value: Bytes::from_static(value.as_bytes()),
            info: BlobInfo {
                etag: Etag::new(etag),
                metadata,
                size: value.len() as u64,
                last_modified: Timestamp::from_millis(0),
            },
        })
    }

    fn info(etag: &str) -> Option<BlobInfo> {
        blob("", etag, Metadata::new()).map(|b| b.info)
    }

    #[test]
    fn an_if_new_write_is_judged_by_presence_and_content() {
        let sent = Bytes::from_static(b"mine");
        let options = SetOptions::new().if_new();
        assert_eq!(judge(&options, &sent, None), ReadBack::NotApplied);
        assert_eq!(
            judge(&options, &sent, blob("mine", "\"e1\"", Metadata::new())),
            ReadBack::Applied(Etag::new("\"e1\""))
        );
        assert_eq!(
            judge(&options, &sent, blob("theirs", "\"e1\"", Metadata::new())),
            ReadBack::Superseded
        );
    }

    #[test]
    fn an_if_match_write_is_judged_by_etag_then_content() {
        let sent = Bytes::from_static(b"next");
        let meta = Metadata::from_pairs([("a", 1)]);
        let options = SetOptions::new()
            .if_match(Etag::new("\"old\""))
            .metadata(meta.clone());
        // Deleted meanwhile: the condition can no longer hold.
        assert_eq!(judge(&options, &sent, None), ReadBack::Superseded);
        // Still at the expected version: not applied (ETags change on every write).
        assert_eq!(
            judge(&options, &sent, blob("next", "\"old\"", meta.clone())),
            ReadBack::NotApplied
        );
        assert_eq!(
            judge(&options, &sent, blob("next", "\"new\"", meta)),
            ReadBack::Applied(Etag::new("\"new\""))
        );
        // Same bytes, other metadata: someone else's write.
        assert_eq!(
            judge(&options, &sent, blob("next", "\"new\"", Metadata::new())),
            ReadBack::Superseded
        );
    }

    #[test]
    fn a_streamed_write_is_known_not_applied_only_while_the_condition_holds() {
        assert!(streamed_not_applied(&Condition::IfNew, None));
        assert!(!streamed_not_applied(&Condition::IfNew, info("\"e\"")));
        let if_match = Condition::IfMatch(Etag::new("\"e\""));
        assert!(streamed_not_applied(&if_match, info("\"e\"")));
        assert!(!streamed_not_applied(&if_match, info("\"f\"")));
        assert!(!streamed_not_applied(&if_match, None));
    }
}

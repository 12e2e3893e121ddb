//! One logical request and its retries: building it, sending it once within a timeout,
//! turning failures into errors, waiting between attempts, and deciding which failures may
//! be retried and which leave a conditional write's outcome unknown.

use std::sync::Mutex;
use std::time::Duration;

use ::http::{HeaderMap, Method, Request, StatusCode, Uri};
use blobjobs_protocol::headers;
use blobjobs_store_api::{Error, ErrorKind, Result};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;

use super::retry::Budget;
use super::signed::StepOne;
use super::{HttpStore, status, tls};

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub(super) type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// The most bytes of an error response that are read for the error message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// What one attempt of a request ran into.
#[derive(Debug)]
pub(super) enum AttemptError {
    /// The connection could not be made; nothing was sent.
    Connect(BoxError),
    /// The connection failed after the request may have been sent.
    Transport(BoxError),
    /// The TLS handshake failed in a way no retry can fix (an untrusted certificate, for
    /// example); nothing was sent.
    Rejected(BoxError),
    /// No complete answer within the request timeout.
    Timeout,
}

/// A complete answer, or the head of a streamed one.
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: ReplyBody,
}

/// The body of a [`Reply`].
pub(super) enum ReplyBody {
    /// Read whole.
    Full(Bytes),
    /// Left on the connection for the caller to stream (a 200 of a streamed read).
    Stream(Incoming),
}

impl Reply {
    /// The body read whole; empty for a streamed one.
    pub(super) fn bytes(&self) -> &[u8] {
        match &self.body {
            ReplyBody::Full(b) => b,
            ReplyBody::Stream(_) => &[],
        }
    }
}

/// How a call failed.
pub(super) enum CallError {
    /// Definitely failed (or gave up); the error is final.
    Final(Error),
    /// A conditional write may or may not have applied.
    Ambiguous(Error),
}

/// Where a request goes.
pub(super) enum Route {
    /// One step, with the bearer token.
    Direct(String),
    /// Two steps: a signed URL from this API URL, then the data request without the token.
    Signed {
        /// The API URL of step 1.
        api_url: String,
        /// Extra headers of step 1 (metadata of a write).
        step1_headers: HeaderMap,
    },
}

/// The body of a request.
pub(super) enum CallBody {
    Empty,
    Full(Bytes),
    /// A body that can be sent only once.
    OneShot(Mutex<Option<ReqBody>>),
}

impl CallBody {
    /// The body for the next attempt, or `None` if a one-shot body was already sent.
    fn take(&self) -> Option<ReqBody> {
        match self {
            CallBody::Empty => Some(full_body(Bytes::new())),
            CallBody::Full(b) => Some(full_body(b.clone())),
            CallBody::OneShot(m) => m.lock().ok().and_then(|mut slot| slot.take()),
        }
    }

    fn is_one_shot(&self) -> bool {
        matches!(self, CallBody::OneShot(_))
    }
}

pub(super) fn full_body(bytes: Bytes) -> ReqBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One logical request, possibly sent several times.
pub(super) struct Call {
    /// `METHOD store/key`, for messages and logs; never a URL (a signed URL's query is a
    /// credential).
    pub(super) what: String,
    pub(super) method: Method,
    pub(super) route: Route,
    /// Headers of the data request, apart from `authorization`.
    pub(super) headers: HeaderMap,
    pub(super) body: CallBody,
    /// A conditional write: ambiguous failures are reported instead of resent.
    pub(super) conditional: bool,
    /// Hand a 200's body over as a stream instead of reading it.
    pub(super) stream_response: bool,
}

impl Call {
    /// A request without a body or extra headers, whose failures are never ambiguous.
    pub(super) fn simple(what: String, method: Method, route: Route) -> Call {
        Call {
            what,
            method,
            route,
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            conditional: false,
            stream_response: false,
        }
    }
}

/// Whether a status is worth another attempt: 429 and every 5xx.
pub(super) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `X-RateLimit-Reset` (Unix seconds) of a 429.
pub(super) fn rate_limit_reset(reply: &Reply) -> Option<u64> {
    if reply.status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    headers::rate_limit_reset(&reply.headers)
}

/// An error and its sources on one line (hyper's messages are terse at the top level).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl HttpStore {
    /// A request to `url`, with the bearer token when `bearer` (never to a signed URL).
    pub(super) fn build(
        &self,
        method: &Method,
        url: &str,
        bearer: bool,
        headers: &HeaderMap,
        body: ReqBody,
    ) -> Result<Request<ReqBody>> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::new(ErrorKind::Protocol, "request url is not valid"))?;
        let mut req = Request::builder().method(method.clone()).uri(uri);
        if let Some(h) = req.headers_mut() {
            for (name, value) in headers {
                h.append(name.clone(), value.clone());
            }
            if bearer {
                h.insert(
                    ::http::header::AUTHORIZATION,
                    self.inner.authorization.clone(),
                );
            }
        }
        req.body(body)
            .map_err(|_| Error::new(ErrorKind::Protocol, "could not build the request"))
    }

    /// Sends one request and waits, within `timeout`, for its answer: the head and, unless
    /// `stream` is set and the status is 200, the whole body.
    pub(super) async fn send_once(
        &self,
        req: Request<ReqBody>,
        timeout: Duration,
        stream: bool,
    ) -> std::result::Result<Reply, AttemptError> {
        let client = &self.inner.client;
        let attempt = async {
            let resp = client.request(req).await.map_err(|e| {
                if tls::rejection(&e).is_some() {
                    AttemptError::Rejected(Box::new(e))
                } else if e.is_connect() {
                    AttemptError::Connect(Box::new(e))
                } else {
                    AttemptError::Transport(Box::new(e))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = if stream && parts.status == StatusCode::OK {
                ReplyBody::Stream(body)
            } else if parts.status.is_success() || parts.status.is_redirection() {
                ReplyBody::Full(
                    body.collect()
                        .await
                        .map_err(|e| AttemptError::Transport(Box::new(e)))?
                        .to_bytes(),
                )
            } else {
                // Error bodies only feed messages; read a bounded amount.
                let collected = Limited::new(body, ERROR_BODY_LIMIT).collect().await;
                ReplyBody::Full(collected.map(|c| c.to_bytes()).unwrap_or_default())
            };
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout),
        }
    }

    pub(super) fn attempt_error(what: &str, err: &AttemptError) -> Error {
        match err {
            AttemptError::Connect(e) => Error::new(
                ErrorKind::Unavailable,
                format!("{what}: cannot connect: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Transport(e) => Error::new(
                ErrorKind::Unavailable,
                format!("{what}: connection failed: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Rejected(e) => Error::new(
                ErrorKind::Protocol,
                format!("{what}: tls handshake failed: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Timeout => {
                Error::new(ErrorKind::Timeout, format!("{what}: no answer in time"))
            }
        }
    }

    /// The error of an answer the operation does not accept.
    pub(super) fn reply_error(what: &str, reply: &Reply) -> Error {
        status::status_error(
            what,
            reply.status,
            reply.bytes(),
            headers::nf_error(&reply.headers),
        )
    }

    /// Waits before the next attempt (remembering `err` as the last failure), or returns
    /// the final error.
    pub(super) async fn back_off(
        what: &str,
        err: Error,
        rate_limit_reset: Option<u64>,
        budget: &mut Budget,
    ) -> std::result::Result<(), CallError> {
        match budget.next_delay(rate_limit_reset) {
            Some(delay) => {
                tracing::debug!(
                    request = what,
                    attempt = budget.attempts(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying after: {err}"
                );
                budget.record(err);
                tokio::time::sleep(delay).await;
                Ok(())
            }
            None => Err(CallError::Final(budget.give_up(err))),
        }
    }

    /// Sends `call` until it gets an answer the operation must interpret, within `budget`.
    ///
    /// Retries 429, 5xx, connection failures, timeouts and (for signed URLs) 403. For a
    /// conditional write, a failure after which the write may have applied is returned as
    /// [`CallError::Ambiguous`] instead of being resent.
    pub(super) async fn send_until_answered(
        &self,
        call: &Call,
        budget: &mut Budget,
    ) -> std::result::Result<Reply, CallError> {
        let mut signed: Option<String> = None;
        loop {
            // One attempt is one data request, with the signed-URL request before it in API
            // mode; both get the attempt's timeout.
            if !budget.begin_attempt() {
                return Err(CallError::Final(budget.exhausted(&call.what)));
            }
            let (url, bearer) = match &call.route {
                Route::Direct(url) => (url.clone(), true),
                Route::Signed {
                    api_url,
                    step1_headers,
                } => match &signed {
                    Some(url) => (url.clone(), false),
                    None => {
                        let timeout = budget.timeout();
                        match self.signed_url(call, api_url, step1_headers, timeout).await {
                            StepOne::Url(url) => {
                                signed = Some(url.clone());
                                (url, false)
                            }
                            StepOne::Final(reply) => return Ok(reply),
                            StepOne::Fatal(e) => return Err(CallError::Final(e)),
                            StepOne::Retry(err, reset) => {
                                HttpStore::back_off(&call.what, err, reset, budget).await?;
                                continue;
                            }
                        }
                    }
                },
            };
            let timeout = budget.timeout();
            if timeout.is_zero() {
                return Err(CallError::Final(budget.exhausted(&call.what)));
            }
            let Some(body) = call.body.take() else {
                return Err(CallError::Final(Error::new(
                    ErrorKind::Unavailable,
                    format!("{}: a streamed body cannot be sent twice", call.what),
                )));
            };
            let req = self
                .build(&call.method, &url, bearer, &call.headers, body)
                .map_err(CallError::Final)?;
            let (err, reset, ambiguous) =
                match self.send_once(req, timeout, call.stream_response).await {
                    Ok(reply) => {
                        let status = reply.status;
                        if status == StatusCode::FORBIDDEN && !bearer {
                            // The signed URL expired or was refused: fetch a new one.
                            signed = None;
                            (HttpStore::reply_error(&call.what, &reply), None, false)
                        } else if is_retryable_status(status) {
                            let ambiguous = matches!(status.as_u16(), 500 | 502 | 504);
                            let reset = rate_limit_reset(&reply);
                            (HttpStore::reply_error(&call.what, &reply), reset, ambiguous)
                        } else {
                            return Ok(reply);
                        }
                    }
                    Err(e @ AttemptError::Rejected(_)) => {
                        // A certificate that is not trusted now will not be on a retry.
                        return Err(CallError::Final(HttpStore::attempt_error(&call.what, &e)));
                    }
                    Err(e) => {
                        let ambiguous = !matches!(e, AttemptError::Connect(_));
                        (HttpStore::attempt_error(&call.what, &e), None, ambiguous)
                    }
                };
            if call.conditional && ambiguous {
                return Err(CallError::Ambiguous(err));
            }
            if call.body.is_one_shot() {
                return Err(CallError::Final(err));
            }
            HttpStore::back_off(&call.what, err, reset, budget).await?;
        }
    }

    /// Sends a call whose failures are never ambiguous (reads, deletes, unconditional
    /// writes) until it is answered.
    pub(super) async fn send_idempotent(&self, call: &Call, budget: &mut Budget) -> Result<Reply> {
        match self.send_until_answered(call, budget).await {
            Ok(reply) => Ok(reply),
            Err(CallError::Final(e) | CallError::Ambiguous(e)) => Err(e),
        }
    }
}

//! API mode's first step: asking the API for a signed URL that the data request then goes
//! to without the token, and checking that what came back is a URL this client may use.

use std::time::Duration;

use ::http::header::{self, HeaderValue};
use ::http::{HeaderMap, StatusCode, Uri};
use blobjobs_protocol::bodies::SignedUrl;
use blobjobs_protocol::headers::SIGNED_URL_ACCEPT;
use blobjobs_store_api::{Error, ErrorKind, Result};
use bytes::Bytes;

use super::call::{AttemptError, Call, Reply, full_body, is_retryable_status, rate_limit_reset};
use super::{HttpStore, tls};

/// What step 1 of API mode came to.
pub(super) enum StepOne {
    /// The signed URL for step 2.
    Url(String),
    /// An answer the operation must interpret (such as 401 or 404).
    Final(Reply),
    /// A failure worth another attempt, with a 429's `X-RateLimit-Reset`.
    Retry(Error, Option<u64>),
    /// A failure no retry can fix.
    Fatal(Error),
}

impl HttpStore {
    /// Step 1 of API mode, once: a signed URL for the data request, or the API's final
    /// answer if it refuses (for example 401, or 404 for a missing site).
    pub(super) async fn signed_url(
        &self,
        call: &Call,
        api_url: &str,
        step1_headers: &HeaderMap,
        timeout: Duration,
    ) -> StepOne {
        let mut headers = step1_headers.clone();
        headers.insert(header::ACCEPT, HeaderValue::from_static(SIGNED_URL_ACCEPT));
        let req = match self.build(
            &call.method,
            api_url,
            true,
            &headers,
            full_body(Bytes::new()),
        ) {
            Ok(req) => req,
            Err(e) => return StepOne::Fatal(e),
        };
        // Step 1 writes nothing, so every failure of it may be retried.
        match self.send_once(req, timeout, false).await {
            Ok(reply) if reply.status == StatusCode::OK => {
                match SignedUrl::parse(reply.bytes()).and_then(|u| self.complete_signed_url(u.url))
                {
                    Ok(url) => StepOne::Url(url),
                    Err(e) => StepOne::Fatal(e),
                }
            }
            Ok(reply) if is_retryable_status(reply.status) => StepOne::Retry(
                HttpStore::reply_error(&call.what, &reply),
                rate_limit_reset(&reply),
            ),
            Ok(reply) => StepOne::Final(reply),
            Err(e @ AttemptError::Rejected(_)) => {
                StepOne::Fatal(HttpStore::attempt_error(&call.what, &e))
            }
            Err(e) => StepOne::Retry(HttpStore::attempt_error(&call.what, &e), None),
        }
    }

    /// A signed URL as an absolute `http://` (or, with TLS, `https://`) URL.
    fn complete_signed_url(&self, url: String) -> Result<String> {
        let url = if url.starts_with('/') {
            format!(
                "{}{url}",
                self.inner.api_origin.as_deref().unwrap_or_default()
            )
        } else {
            url
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::new(ErrorKind::Protocol, "the signed url is not a valid url"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if tls::HTTPS => {}
            Some("https") => return Err(Error::invalid(tls::NO_TLS)),
            _ => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "the signed url is not an http:// or https:// url",
                ));
            }
        }
        if uri.authority().is_none() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the signed url has no host",
            ));
        }
        Ok(url)
    }
}

//! The browser view: a page that shows what the emulator stores (sites, stores, keys with their
//! metadata, value previews, job records) and can delete keys.
//!
//! It lives under the reserved prefix, at [`UI_PATH`], so that no site's path can shadow it.
//! The page is plain HTML, CSS and JavaScript embedded in the binary (`assets/`), with no
//! build step and nothing fetched from elsewhere; its content security policy allows scripts,
//! styles and requests from this server only. The page itself is public and holds no data:
//! everything it shows comes from the JSON API in [`api`], which requires the bearer token like
//! every other route. The page keeps the token in the tab's session storage; the signed-in link
//! the binary prints carries it in the URL fragment, which browsers never send to the server,
//! so it cannot reach the access log.

mod api;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::app::{App, Outcome};
use crate::body::full;
use crate::error::Rejection;

/// Where the page is served: the reserved prefix, then `ui/`.
pub const UI_PATH: &str = "/.well-known/blobs-emulator/ui/";

/// The page's HTML shell.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// The page's script: routing, API calls, and every element built with `textContent`.
const APP_JS: &str = include_str!("assets/app.js");
/// The page's styles.
const APP_CSS: &str = include_str!("assets/app.css");

/// What the browser may load for the page: its own script, style and API, nothing inline and
/// nothing from elsewhere. Even a value that slipped past escaping could not run a script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Whether `path` belongs to the browser view (the page, its assets and its API).
pub(crate) fn serves(path: &str) -> bool {
    path.strip_prefix(UI_PATH.trim_end_matches('/'))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The link that opens the page already signed in: the token travels in the fragment, which
/// stays in the browser. Every byte outside the unreserved set is percent-encoded, so any
/// token survives the trip.
pub fn signed_in_link(base_url: &str, token: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC);
    format!(
        "{}{UI_PATH}#token={encoded}",
        base_url.trim_end_matches('/')
    )
}

impl App {
    /// Answers a request for the browser view (see [`serves`]).
    pub(crate) async fn ui(&self, req: Request<()>) -> Outcome {
        let path = req.uri().path();
        let rest = path
            .strip_prefix(UI_PATH.trim_end_matches('/'))
            .unwrap_or_default();
        if let Some(name) = rest.strip_prefix("/api/") {
            return self.ui_api(name, &req).await;
        }
        let asset = match rest {
            "" => None,
            "/" | "/index.html" => Some((INDEX_HTML, "text/html; charset=utf-8")),
            "/app.js" => Some((APP_JS, "text/javascript; charset=utf-8")),
            "/app.css" => Some((APP_CSS, "text/css; charset=utf-8")),
            _ => return Err(Rejection::NoRoute),
        };
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Err(Rejection::MethodNotAllowed { allow: "GET, HEAD" });
        }
        // Relative asset URLs need the trailing slash.
        let Some((body, content_type)) = asset else {
            return Ok(redirect(UI_PATH));
        };
        let mut response = Response::new(full(Bytes::from_static(body.as_bytes())));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // The assets change with the binary; revalidating costs nothing on loopback.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        protect(headers);
        Ok(response)
    }

    /// The JSON API of the page, behind the bearer token.
    async fn ui_api(&self, name: &str, req: &Request<()>) -> Outcome {
        match req.headers().get(header::AUTHORIZATION) {
            None => return Err(Rejection::MissingCredentials),
            Some(value) if !self.inner.auth.check_bearer(value.as_bytes()) => {
                return Err(Rejection::WrongCredentials);
            }
            Some(_) => {}
        }
        let mut response = api::handle(self, name, req.method(), req.uri().query()).await?;
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        protect(headers);
        Ok(response)
    }
}

/// Headers that keep the page and its data out of other pages' reach: the policy above, no
/// content sniffing, no framing, no referrer.
fn protect(headers: &mut http::HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A permanent redirect to `location`, a path of this server.
fn redirect(location: &'static str) -> http::Response<crate::body::ResponseBody> {
    let mut response = crate::response::status_only(StatusCode::PERMANENT_REDIRECT);
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(location));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ui_path_and_below_are_served() {
        assert!(serves("/.well-known/blobs-emulator/ui"));
        assert!(serves("/.well-known/blobs-emulator/ui/"));
        assert!(serves("/.well-known/blobs-emulator/ui/api/sites"));
        assert!(!serves("/.well-known/blobs-emulator/uix"));
        assert!(!serves("/.well-known/blobs-emulator/health"));
        assert!(!serves("/ui/"));
    }

    #[test]
    fn the_link_carries_the_token_in_the_fragment_encoded() {
        assert_eq!(
            signed_in_link("http://127.0.0.1:4733", "a b#c/ü"),
            "http://127.0.0.1:4733/.well-known/blobs-emulator/ui/#token=a%20b%23c%2F%C3%BC"
        );
        assert_eq!(
            signed_in_link("http://127.0.0.1:1/", "abc123"),
            "http://127.0.0.1:1/.well-known/blobs-emulator/ui/#token=abc123"
        );
    }

    #[test]
    fn the_script_builds_no_html_from_strings() {
        // Every key, value and name reaches the page as text; markup parsed from a string
        // would be the one way a stored `<script>` could become an element.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!APP_JS.contains(sink), "app.js uses {sink}");
        }
        assert!(
            !INDEX_HTML.contains("<script>"),
            "inline script in index.html"
        );
        assert!(!INDEX_HTML.contains("http://") && !INDEX_HTML.contains("https://"));
        assert!(!APP_CSS.contains("http://") && !APP_CSS.contains("https://"));
    }
}

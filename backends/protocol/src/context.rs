//! `NETLIFY_BLOBS_CONTEXT`: the base64 JSON object that tells a client where the blobs are and
//! how to authenticate, and the [`Token`] type that keeps the secret out of logs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::{DEFAULT_DEPLOY_ID, DEFAULT_PRIMARY_REGION};

/// The environment variable the official client reads its context from.
pub const CONTEXT_ENV: &str = "NETLIFY_BLOBS_CONTEXT";

/// A bearer token. It has no `Display`, its `Debug` prints `<redacted>`, and the client
/// sends it only in the `authorization` header, so it cannot end up in a URL, a log line or
/// an error message by accident. [`Token::reveal`] is the one way to the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token.
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    /// The secret itself, for the `authorization` header, the context variable or a
    /// constant-time comparison.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether the token is the empty string (which no server accepts).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Token::new(secret)
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Token(secret)
    }
}

impl From<&String> for Token {
    fn from(secret: &String) -> Self {
        Token::new(secret.as_str())
    }
}

/// The decoded `NETLIFY_BLOBS_CONTEXT`: standard base64 of a JSON object set by Netlify (or
/// `netlify dev`, or the emulator's `env` command) for functions and builds.
///
/// Every field is optional, as in the official client. Its `Debug` output shows the token
/// as `<redacted>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobsContext {
    /// `siteID`: the first path segment of every request.
    #[serde(
        rename = "siteID",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub site_id: Option<String>,
    /// `token`: the bearer token.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "reveal_token",
        deserialize_with = "non_empty_token"
    )]
    pub token: Option<Token>,
    /// `edgeURL`: the base URL of edge mode.
    #[serde(
        rename = "edgeURL",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub edge_url: Option<String>,
    /// `uncachedEdgeURL`: the base URL of strongly consistent edge requests.
    #[serde(
        rename = "uncachedEdgeURL",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub uncached_edge_url: Option<String>,
    /// `apiURL`: the base URL of API mode, used only when there is no edge URL.
    #[serde(
        rename = "apiURL",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub api_url: Option<String>,
    /// `deployID`: the deploy whose store a deploy store opens.
    #[serde(
        rename = "deployID",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub deploy_id: Option<String>,
    /// `primaryRegion`: the region of deploy stores in edge mode.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty_string"
    )]
    pub primary_region: Option<String>,
}

impl BlobsContext {
    /// An edge-mode context for a server at `base_url` (such as `http://127.0.0.1:4733`), with
    /// the deploy ID and primary region that `netlify dev` sets, so `getDeployStore()` works
    /// without options.
    pub fn edge(base_url: &str, site_id: &str, token: impl Into<Token>) -> Self {
        BlobsContext {
            site_id: Some(site_id.to_owned()),
            token: Some(token.into()),
            edge_url: Some(base_url.to_owned()),
            uncached_edge_url: Some(base_url.to_owned()),
            api_url: None,
            deploy_id: Some(DEFAULT_DEPLOY_ID.to_owned()),
            primary_region: Some(DEFAULT_PRIMARY_REGION.to_owned()),
        }
    }

    /// An API-mode context for a server at `base_url`: no edge URL, so the official client
    /// takes the signed-URL route.
    pub fn api(base_url: &str, site_id: &str, token: impl Into<Token>) -> Self {
        BlobsContext {
            site_id: Some(site_id.to_owned()),
            token: Some(token.into()),
            edge_url: None,
            uncached_edge_url: None,
            api_url: Some(base_url.to_owned()),
            deploy_id: Some(DEFAULT_DEPLOY_ID.to_owned()),
            primary_region: None,
        }
    }

    /// Decodes the variable's value. Like the official client, an empty value, bad base64
    /// or JSON that is not an object gives an empty context rather than an error; fields
    /// that are not non-empty strings are ignored.
    pub fn decode(value: &str) -> BlobsContext {
        let Ok(bytes) = STANDARD.decode(value.trim()) else {
            return BlobsContext::default();
        };
        // Checking for an object first keeps serde from accepting a JSON array as the
        // struct's fields in order.
        match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(object @ serde_json::Value::Object(_)) => {
                serde_json::from_value(object).unwrap_or_default()
            }
            _ => BlobsContext::default(),
        }
    }

    /// Encodes the context the way `setEnvironmentContext` does: standard base64 of the JSON
    /// object, without the fields that are not set.
    pub fn encode(&self) -> String {
        // Serializing strings and options cannot fail; an empty object is the safe fallback.
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec()))
    }

    /// A line to paste into a shell: `export NETLIFY_BLOBS_CONTEXT=…`.
    pub fn export_line(&self) -> String {
        format!("export {CONTEXT_ENV}={}", self.encode())
    }

    /// Reads [`CONTEXT_ENV`] through `lookup` (normally `std::env::var`). `None` if the
    /// variable is not set.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<String>) -> Option<BlobsContext> {
        lookup(CONTEXT_ENV).map(|v| BlobsContext::decode(&v))
    }

    /// Reads [`CONTEXT_ENV`] from the process environment.
    pub fn from_env() -> Option<BlobsContext> {
        BlobsContext::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == BlobsContext::default()
    }
}

/// Reads any JSON value and keeps it only if it is a non-empty string, as the official
/// client does with every context field.
fn non_empty_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        _ => None,
    })
}

fn non_empty_token<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Token>, D::Error> {
    non_empty_string(d).map(|s| s.map(Token))
}

/// Writes the secret itself: the context variable is how the token reaches the client.
fn reveal_token<S: Serializer>(token: &Option<Token>, s: S) -> Result<S::Ok, S::Error> {
    match token {
        Some(token) => s.serialize_str(token.reveal()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ctx() -> BlobsContext {
        BlobsContext {
            site_id: Some("ctx-site".into()),
            token: Some(Token::new("ctx-token")),
            edge_url: Some("http://ctx-edge".into()),
            uncached_edge_url: Some("http://ctx-uncached".into()),
            api_url: None,
            deploy_id: Some("ctxdeploy".into()),
            primary_region: Some("dev".into()),
        }
    }

    fn json_of(encoded: &str) -> serde_json::Value {
        serde_json::from_slice(&STANDARD.decode(encoded).unwrap()).unwrap()
    }

    #[test]
    fn context_round_trips_and_bad_values_are_empty() {
        let c = ctx();
        assert_eq!(BlobsContext::decode(&c.encode()), c);
        // Empty, not base64, `null`, `[1]`, `["a"]`.
        for bad in ["", "!!!", "bnVsbA==", "WzFd", "WyJhIl0="] {
            assert_eq!(
                BlobsContext::decode(bad),
                BlobsContext::default(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn fields_that_are_not_non_empty_strings_are_ignored() {
        let json =
            r#"{"siteID":"s","token":"","edgeURL":7,"apiURL":null,"deployID":["x"],"other":1}"#;
        let decoded = BlobsContext::decode(&STANDARD.encode(json));
        assert_eq!(
            decoded,
            BlobsContext {
                site_id: Some("s".into()),
                ..BlobsContext::default()
            }
        );
    }

    #[test]
    fn encodes_the_field_names_the_client_reads() {
        let edge = BlobsContext::edge("http://127.0.0.1:4733", "local-site", "t");
        let json = json_of(&edge.encode());
        assert_eq!(json["siteID"], "local-site");
        assert_eq!(json["token"], "t");
        assert_eq!(json["edgeURL"], "http://127.0.0.1:4733");
        assert_eq!(json["uncachedEdgeURL"], "http://127.0.0.1:4733");
        assert_eq!(json["deployID"], "0");
        assert_eq!(json["primaryRegion"], "dev");
        assert!(json.get("apiURL").is_none());
        let api = json_of(&BlobsContext::api("http://h:1", "s", "t").encode());
        assert_eq!(api["apiURL"], "http://h:1");
        assert!(api.get("edgeURL").is_none() && api.get("primaryRegion").is_none());
        assert!(
            edge.export_line()
                .starts_with("export NETLIFY_BLOBS_CONTEXT=")
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let text = format!("{:?}", ctx());
        assert!(!text.contains("ctx-token"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn lookups_read_the_variable() {
        let encoded = ctx().encode();
        let found =
            BlobsContext::from_lookup(&|name| (name == CONTEXT_ENV).then(|| encoded.clone()));
        assert_eq!(found, Some(ctx()));
        assert_eq!(BlobsContext::from_lookup(&|_| None), None);
        assert!(BlobsContext::default().is_empty() && !ctx().is_empty());
    }
}

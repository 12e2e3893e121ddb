//! The `NETLIFY_BLOBS_CONTEXT` value that points the official client at an emulator.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// The fields of the context the official client reads (see `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobsContext {
    /// The site ID: the first path segment of every request.
    #[serde(rename = "siteID")]
    pub site_id: String,
    /// The bearer token.
    pub token: String,
    /// Base URL of edge mode.
    #[serde(rename = "edgeURL", skip_serializing_if = "Option::is_none")]
    pub edge_url: Option<String>,
    /// Base URL of strongly consistent edge requests.
    #[serde(rename = "uncachedEdgeURL", skip_serializing_if = "Option::is_none")]
    pub uncached_edge_url: Option<String>,
    /// Base URL of API mode (used only when there is no edge URL).
    #[serde(rename = "apiURL", skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The deploy that `getDeployStore()` uses.
    #[serde(rename = "deployID", skip_serializing_if = "Option::is_none")]
    pub deploy_id: Option<String>,
    /// The region of deploy stores in edge mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
}

impl BlobsContext {
    /// An edge-mode context for a server at `base_url` (such as `http://127.0.0.1:4733`),
    /// with the deploy ID and region `netlify dev` uses, so `getDeployStore()` works too.
    pub fn edge(base_url: &str, site_id: &str, token: &str) -> Self {
        BlobsContext {
            site_id: site_id.to_owned(),
            token: token.to_owned(),
            edge_url: Some(base_url.to_owned()),
            uncached_edge_url: Some(base_url.to_owned()),
            api_url: None,
            deploy_id: Some(crate::config::DEFAULT_DEPLOY_ID.to_owned()),
            primary_region: Some(crate::config::DEFAULT_PRIMARY_REGION.to_owned()),
        }
    }

    /// An API-mode context for a server at `base_url`.
    pub fn api(base_url: &str, site_id: &str, token: &str) -> Self {
        BlobsContext {
            site_id: site_id.to_owned(),
            token: token.to_owned(),
            edge_url: None,
            uncached_edge_url: None,
            api_url: Some(base_url.to_owned()),
            deploy_id: Some(crate::config::DEFAULT_DEPLOY_ID.to_owned()),
            primary_region: None,
        }
    }

    /// The variable's value: standard base64 of the JSON object.
    pub fn encode(&self) -> String {
        // Serializing strings and options cannot fail.
        STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// A line to paste into a shell.
    pub fn export_line(&self) -> String {
        format!("export NETLIFY_BLOBS_CONTEXT={}", self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_field_names_the_client_reads() {
        let ctx = BlobsContext::edge("http://127.0.0.1:4733", "local-site", "t");
        let json: serde_json::Value =
            serde_json::from_slice(&STANDARD.decode(ctx.encode()).unwrap()).unwrap();
        assert_eq!(json["siteID"], "local-site");
        assert_eq!(json["token"], "t");
        assert_eq!(json["edgeURL"], "http://127.0.0.1:4733");
        assert_eq!(json["uncachedEdgeURL"], "http://127.0.0.1:4733");
        assert_eq!(json["deployID"], "0");
        assert_eq!(json["primaryRegion"], "dev");
        assert!(json.get("apiURL").is_none());
        let api = BlobsContext::api("http://h:1", "s", "t");
        assert!(api.encode().len() > 10);
        assert!(
            ctx.export_line()
                .starts_with("export NETLIFY_BLOBS_CONTEXT=")
        );
    }
}

//! Turning a request path into a route: edge or API form, site, raw store name and key, with
//! every name checked and percent-decoded exactly once by the protocol crate's rules.

use blobjobs_protocol::names::{check_raw_store_name, check_site_id};
use blobjobs_protocol::path::{API_PREFIX, decode_segment, strip_region};
use blobjobs_store_api::{Result, validate_key};

/// The reserved prefix of the emulator's own routes. Site IDs cannot start with `.`, so no
/// site path can reach it.
pub const RESERVED_PREFIX: &str = "/.well-known/blobs-emulator/";

/// The health route: `GET` answers `200 ok` without credentials once the server is ready.
pub const HEALTH_PATH: &str = "/.well-known/blobs-emulator/health";

/// Which of the two URL shapes a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `/[region:R/]<site>/<store>[/<key>]`, reached through `edgeURL` (and signed URLs).
    Edge,
    /// `/api/v1/blobs/<site>[/<store>[/<key>]]`, reached through `apiURL`.
    Api,
}

/// What a request addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// A whole site: `GET` lists its stores.
    Site {
        /// The site ID.
        site: String,
    },
    /// One store: `GET` lists it, `DELETE` empties it.
    Store {
        /// The site ID.
        site: String,
        /// The raw store name (`site:x`, `deploy:D`, `deploy:D:x` or a legacy name).
        store: String,
    },
    /// One key of a store.
    Key {
        /// The site ID.
        site: String,
        /// The raw store name.
        store: String,
        /// The key, percent-decoded once.
        key: String,
        /// The path of this key in edge form, exactly as received (still percent-encoded):
        /// what a signed URL for it points at.
        edge_path: String,
    },
}

impl Resource {
    /// The site this resource belongs to.
    pub fn site(&self) -> &str {
        match self {
            Resource::Site { site } | Resource::Store { site, .. } | Resource::Key { site, .. } => {
                site
            }
        }
    }
}

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Edge or API form.
    pub mode: Mode,
    /// What is addressed.
    pub resource: Resource,
}

/// Parses the path of a blob request (anything but the reserved routes).
pub fn parse_path(path: &str) -> Result<Option<Route>> {
    let (mode, rest) = match path.strip_prefix(API_PREFIX) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => (Mode::Api, rest),
        _ => (Mode::Edge, strip_region(path)),
    };
    let Some(rest) = rest.strip_prefix('/') else {
        return Ok(None);
    };
    if rest.is_empty() {
        return Ok(None);
    }
    let (raw_site, after_site) = match rest.split_once('/') {
        Some((site, after)) => (site, Some(after)),
        None => (rest, None),
    };
    let site = decode_segment(raw_site)?;
    check_site_id(&site)?;
    let Some(after_site) = after_site else {
        return Ok(Some(Route {
            mode,
            resource: Resource::Site { site },
        }));
    };
    let (raw_store, raw_key) = match after_site.split_once('/') {
        Some((store, key)) => (store, Some(key)),
        None => (after_site, None),
    };
    let store = decode_segment(raw_store)?;
    check_raw_store_name(&store)?;
    let Some(raw_key) = raw_key else {
        return Ok(Some(Route {
            mode,
            resource: Resource::Store { site, store },
        }));
    };
    let key = decode_segment(raw_key)?;
    validate_key(&key)?;
    let edge_path = format!("/{raw_site}/{raw_store}/{raw_key}");
    Ok(Some(Route {
        mode,
        resource: Resource::Key {
            site,
            store,
            key,
            edge_path,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::ErrorKind;

    fn key_of(path: &str) -> String {
        match parse_path(path).unwrap().unwrap().resource {
            Resource::Key { key, .. } => key,
            other => panic!("not a key: {other:?}"),
        }
    }

    #[test]
    fn edge_and_api_shapes() {
        let t = parse_path("/site-1/site:shop/cart/42").unwrap().unwrap();
        assert_eq!(t.mode, Mode::Edge);
        assert_eq!(
            t.resource,
            Resource::Key {
                site: "site-1".into(),
                store: "site:shop".into(),
                key: "cart/42".into(),
                edge_path: "/site-1/site:shop/cart/42".into(),
            }
        );
        let t = parse_path("/region:us-east-2/site-1/deploy:abc/k")
            .unwrap()
            .unwrap();
        assert_eq!(t.mode, Mode::Edge);
        assert_eq!(t.resource.site(), "site-1");
        let t = parse_path("/api/v1/blobs/site-1/site:shop/a%20b")
            .unwrap()
            .unwrap();
        assert_eq!(t.mode, Mode::Api);
        assert!(
            matches!(t.resource, Resource::Key { ref key, ref edge_path, .. }
            if key == "a b" && edge_path == "/site-1/site:shop/a%20b")
        );
        let t = parse_path("/api/v1/blobs/site-1").unwrap().unwrap();
        assert_eq!(
            t.resource,
            Resource::Site {
                site: "site-1".into()
            }
        );
        let t = parse_path("/site-1/deploy:abc:named").unwrap().unwrap();
        assert!(matches!(t.resource, Resource::Store { .. }));
        assert!(parse_path("/").unwrap().is_none());
        assert!(parse_path("/api/v1/blobs").unwrap().is_none());
        assert!(parse_path("/region:x").unwrap().is_none());
    }

    #[test]
    fn keys_are_decoded_once_and_keep_slashes() {
        assert_eq!(key_of("/s/site:x/a%2520b"), "a%20b");
        assert_eq!(key_of("/s/site:x/%C3%BC/dir/"), "ü/dir/");
        assert_eq!(key_of("/s/site:x/100%"), "100%");
        assert_eq!(key_of("/s/site:x/a+b"), "a+b");
        let bad = |p: &str| parse_path(p).unwrap_err().kind();
        assert_eq!(bad("/s/site:x/%FF"), ErrorKind::InvalidInput);
        assert_eq!(bad("/s/site:x/"), ErrorKind::InvalidInput);
        assert_eq!(bad("/s/site:x/%2Fa"), ErrorKind::InvalidInput);
        assert_eq!(
            bad(&format!("/s/site:x/{}", "k".repeat(601))),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn names_are_checked() {
        // The rules themselves are the protocol crate's (`names`); here, that paths use them.
        assert!(parse_path("/site-1/site:a%2Fb").is_err());
        assert!(parse_path("/api/site:a/k").is_err());
        assert!(parse_path("/.well-known/site:a/k").is_err());
        assert!(parse_path("/site-1/deploy:bad-id/k").is_err());
        assert!(parse_path("/site-1/deploy:abc_1:x/k").is_ok());
    }
}

//! Turning a request target into a route: edge or API form, site, raw store name, key and
//! query parameters, with every name checked and percent-decoded exactly once.

use blobjobs_store_api::{Error, Result, validate_key, validate_store_name};

/// The path prefix of API mode.
pub const API_PREFIX: &str = "/api/v1/blobs";

/// The reserved prefix of the emulator's own routes. Site IDs cannot start with `.`, so no
/// site path can reach it.
pub const RESERVED_PREFIX: &str = "/.well-known/blobs-emulator/";

/// The health route: `GET` answers `200 ok` without credentials once the server is ready.
pub const HEALTH_PATH: &str = "/.well-known/blobs-emulator/health";

/// The longest site ID accepted, in bytes.
pub const MAX_SITE_ID_BYTES: usize = 128;

/// The longest deploy ID accepted, in ASCII characters (the official client's limit).
pub const MAX_DEPLOY_ID_CHARS: usize = 24;

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

/// A parsed request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Edge or API form.
    pub mode: Mode,
    /// What is addressed.
    pub resource: Resource,
}

/// The query parameters the protocol uses; unknown ones are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `prefix` of a key or store listing.
    pub prefix: String,
    /// `directories=true` of a key listing.
    pub directories: bool,
    /// `cursor` of a listing page after the first.
    pub cursor: Option<String>,
    /// `expires` of a signed URL (Unix seconds, as sent).
    pub expires: Option<String>,
    /// `signature` of a signed URL (hex, as sent).
    pub signature: Option<String>,
}

/// Parses the path of a blob request (anything but the reserved routes).
pub fn parse_path(path: &str) -> Result<Option<Target>> {
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
        return Ok(Some(Target {
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
        return Ok(Some(Target {
            mode,
            resource: Resource::Store { site, store },
        }));
    };
    let key = decode_segment(raw_key)?;
    validate_key(&key)?;
    let edge_path = format!("/{raw_site}/{raw_store}/{raw_key}");
    Ok(Some(Target {
        mode,
        resource: Resource::Key {
            site,
            store,
            key,
            edge_path,
        },
    }))
}

/// Drops a leading `/region:R` segment of an edge path; the emulator has one region.
fn strip_region(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/region:") else {
        return path;
    };
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "",
    }
}

/// Parses a query string. Values are form-decoded (`+` is a space, as `URLSearchParams`
/// writes it) and must be UTF-8.
pub fn parse_query(query: Option<&str>) -> Result<Query> {
    let mut out = Query::default();
    let Some(query) = query else {
        return Ok(out);
    };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = || decode(value, true);
        match name {
            "prefix" => out.prefix = value()?,
            "directories" => {
                out.directories = match value()?.as_str() {
                    "true" => true,
                    "false" | "" => false,
                    _ => return Err(Error::invalid("directories must be true or false")),
                }
            }
            "cursor" => out.cursor = Some(value()?),
            "expires" => out.expires = Some(value()?),
            "signature" => out.signature = Some(value()?),
            // `region` (API mode) and anything else are accepted and ignored.
            _ => {}
        }
    }
    Ok(out)
}

/// Checks a site ID: 1 to [`MAX_SITE_ID_BYTES`] ASCII letters, digits, `-`, `_` or `.`, not
/// starting with `.` (reserved for the emulator's own routes) and not `api` (the first
/// segment of API paths).
pub fn check_site_id(site: &str) -> Result<()> {
    if site.is_empty() || site.len() > MAX_SITE_ID_BYTES {
        return Err(Error::invalid(format!(
            "site id must be 1 to {MAX_SITE_ID_BYTES} bytes"
        )));
    }
    if !site
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(Error::invalid(
            "site id may hold only ascii letters, digits, '-', '_' and '.'",
        ));
    }
    if site.starts_with('.') {
        return Err(Error::invalid("site id must not start with '.'"));
    }
    if site == "api" {
        return Err(Error::invalid("site id 'api' is reserved for api paths"));
    }
    Ok(())
}

/// Checks a raw store name as the official client builds it: `site:<name>`,
/// `deploy:<id>`, `deploy:<id>:<name>`, or a legacy name sent verbatim.
pub fn check_raw_store_name(raw: &str) -> Result<()> {
    if let Some(name) = raw.strip_prefix("site:") {
        return validate_store_name(name);
    }
    if let Some(rest) = raw.strip_prefix("deploy:") {
        let (id, name) = match rest.split_once(':') {
            Some((id, name)) => (id, Some(name)),
            None => (rest, None),
        };
        check_deploy_id(id)?;
        return match name {
            Some(name) => validate_store_name(name),
            None => Ok(()),
        };
    }
    validate_store_name(raw)
}

/// Checks a deploy ID: 1 to 24 ASCII letters, digits or underscores (`^\w{1,24}$`).
pub fn check_deploy_id(id: &str) -> Result<()> {
    if id.is_empty()
        || id.len() > MAX_DEPLOY_ID_CHARS
        || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(Error::invalid(
            "deploy id must be 1 to 24 ascii letters, digits or underscores",
        ));
    }
    Ok(())
}

/// Percent-decodes one path part (no `+` rule in paths).
fn decode_segment(raw: &str) -> Result<String> {
    decode(raw, false)
}

/// Percent-decodes `raw` once. A `%` not followed by two hex digits stays literal, as in the
/// WHATWG URL standard, because the official client sends keys such as `100%` unencoded.
/// The decoded bytes must be UTF-8.
pub fn decode(raw: &str, plus_is_space: bool) -> Result<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|c| hex_value(*c)),
                bytes.get(i + 2).and_then(|c| hex_value(*c)),
            )
        {
            out.push(hi << 4 | lo);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && b == b'+' { b' ' } else { b });
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Error::invalid("percent-decoded text is not valid utf-8"))
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-encodes a query parameter value (everything but unreserved characters).
pub fn encode_query_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
        for good in [
            "site:a",
            "site:a:b",
            "deploy:abc_1",
            "deploy:abc:x",
            "legacy",
            "a:b",
        ] {
            assert!(check_raw_store_name(good).is_ok(), "{good}");
        }
        let long = format!("site:{}", "s".repeat(65));
        let long_id = format!("deploy:{}", "d".repeat(25));
        for bad in [
            "",
            "site:",
            "deploy:",
            "deploy:bad-id",
            &long,
            &long_id,
            "deploy:a:",
        ] {
            assert!(check_raw_store_name(bad).is_err(), "{bad}");
        }
        for bad in ["", ".well-known", "api", "a b", "a:b", &"s".repeat(129)] {
            assert!(check_site_id(bad).is_err(), "{bad}");
        }
        assert!(parse_path("/site-1/site:a%2Fb").is_err());
        assert!(parse_path("/api/site:a/k").is_err());
    }

    #[test]
    fn queries() {
        let q = parse_query(Some(
            "prefix=cart%2F&directories=true&cursor=abc&region=auto",
        ))
        .unwrap();
        assert_eq!(q.prefix, "cart/");
        assert!(q.directories);
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(parse_query(Some("prefix=a+b")).unwrap().prefix, "a b");
        assert!(parse_query(Some("directories=yes")).is_err());
        assert!(parse_query(Some("prefix=%FF")).is_err());
        assert_eq!(parse_query(None).unwrap(), Query::default());
        assert_eq!(encode_query_value("site:a b/ü"), "site%3Aa%20b%2F%C3%BC");
    }
}

//! Names on the wire and their checks: site IDs, raw store names (site, deploy and legacy
//! stores), deploy IDs, regions and the defaults a local setup uses.

use std::fmt;

use blobjobs_store_api::{Error, Result, validate_store_name};

/// The site ID a local setup uses when none is chosen: the emulator's `--site` default and
/// the default of an `http://` store spec.
pub const DEFAULT_SITE_ID: &str = "local-site";

/// The deploy ID of a local context, as `netlify dev` sets it.
pub const DEFAULT_DEPLOY_ID: &str = "0";

/// The primary region of a local context, as `netlify dev` sets it. Edge requests for deploy
/// stores then start with `/region:dev/`.
pub const DEFAULT_PRIMARY_REGION: &str = "dev";

/// The regions the official client accepts for the `region` option.
pub const REGIONS: [&str; 5] = [
    "us-east-1",
    "us-east-2",
    "eu-central-1",
    "ap-southeast-1",
    "ap-southeast-2",
];

/// The prefix of legacy store names given to `getStore`; the store is sent without it and
/// without `site:`.
pub const LEGACY_PREFIX: &str = "netlify-internal/legacy-namespace/";

/// The longest site ID a server accepts, in bytes.
pub const MAX_SITE_ID_BYTES: usize = 128;

/// The longest deploy ID, in ASCII characters (the official client's limit).
pub const MAX_DEPLOY_ID_CHARS: usize = 24;

/// The prefix of site store names on the wire.
const SITE_PREFIX: &str = "site:";

/// The prefix of deploy store names on the wire.
const DEPLOY_PREFIX: &str = "deploy:";

/// A store name as it travels in the path: what kind of store it is and its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawStore {
    /// `site:<name>`: a site-wide store that outlives deploys.
    Site(String),
    /// `deploy:<id>` or `deploy:<id>:<name>`: the store of one deploy.
    Deploy {
        /// The deploy.
        deploy_id: String,
        /// The store's name within the deploy, if any.
        name: Option<String>,
    },
    /// A legacy store, whose name is sent as it is.
    Legacy(String),
}

impl RawStore {
    /// Splits and checks a raw store name as the official client builds it: `site:<name>`,
    /// `deploy:<id>`, `deploy:<id>:<name>`, or anything else as a legacy name. Names must
    /// pass [`validate_store_name`], deploy IDs [`check_deploy_id`].
    pub fn parse(raw: &str) -> Result<RawStore> {
        let store = if let Some(name) = raw.strip_prefix(SITE_PREFIX) {
            RawStore::Site(name.to_owned())
        } else if let Some(rest) = raw.strip_prefix(DEPLOY_PREFIX) {
            let (id, name) = match rest.split_once(':') {
                Some((id, name)) => (id, Some(name.to_owned())),
                None => (rest, None),
            };
            RawStore::Deploy {
                deploy_id: id.to_owned(),
                name,
            }
        } else {
            RawStore::Legacy(raw.to_owned())
        };
        store.check()?;
        Ok(store)
    }

    /// Checks the parts: store names with [`validate_store_name`], the deploy ID with
    /// [`check_deploy_id`].
    pub fn check(&self) -> Result<()> {
        match self {
            RawStore::Site(name) | RawStore::Legacy(name) => validate_store_name(name),
            RawStore::Deploy { deploy_id, name } => {
                check_deploy_id(deploy_id)?;
                match name {
                    Some(name) => validate_store_name(name),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for RawStore {
    /// The name as it is sent: `site:x`, `deploy:D`, `deploy:D:x` or the legacy name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawStore::Site(name) => write!(f, "{SITE_PREFIX}{name}"),
            RawStore::Deploy {
                deploy_id,
                name: None,
            } => write!(f, "{DEPLOY_PREFIX}{deploy_id}"),
            RawStore::Deploy {
                deploy_id,
                name: Some(name),
            } => write!(f, "{DEPLOY_PREFIX}{deploy_id}:{name}"),
            RawStore::Legacy(name) => f.write_str(name),
        }
    }
}

/// Checks a raw store name (see [`RawStore::parse`]).
pub fn check_raw_store_name(raw: &str) -> Result<()> {
    RawStore::parse(raw).map(|_| ())
}

/// Checks a deploy ID like the official client: 1 to [`MAX_DEPLOY_ID_CHARS`] ASCII letters,
/// digits or `_` (`^\w{1,24}$`).
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

/// Checks a site ID as a server takes it: 1 to [`MAX_SITE_ID_BYTES`] ASCII letters, digits,
/// `-`, `_` or `.`, not starting with `.` (which keeps the emulator's reserved
/// `/.well-known/…` routes unreachable) and not `api` (the first segment of API paths).
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn raw_store_names_parse_and_print_back() {
        for (raw, parsed) in [
            ("site:a", RawStore::Site("a".into())),
            ("site:a:b", RawStore::Site("a:b".into())),
            (
                "deploy:abc_1",
                RawStore::Deploy {
                    deploy_id: "abc_1".into(),
                    name: None,
                },
            ),
            (
                "deploy:abc:x",
                RawStore::Deploy {
                    deploy_id: "abc".into(),
                    name: Some("x".into()),
                },
            ),
            ("legacy", RawStore::Legacy("legacy".into())),
            ("a:b", RawStore::Legacy("a:b".into())),
        ] {
            assert_eq!(RawStore::parse(raw).unwrap(), parsed, "{raw}");
            assert_eq!(parsed.to_string(), raw);
        }
    }

    #[test]
    fn bad_names_are_rejected() {
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
        assert!(check_site_id("site-1.b_c").is_ok());
        assert!(check_deploy_id(&"d".repeat(24)).is_ok());
    }
}

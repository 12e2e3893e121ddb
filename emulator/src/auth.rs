//! Credentials: the bearer token, and signed URLs bound to one method, one path and an expiry.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Why a request was not authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `authorization` header and no signature: 401.
    Missing,
    /// A wrong token, or a signature that is wrong, expired or for another method or path: 403.
    Wrong,
}

/// Checks tokens and signs and verifies URLs.
#[derive(Clone)]
pub struct Auth {
    /// The token every request must present as `authorization: Bearer <token>`.
    token: String,
    /// The HMAC of signed URLs, already keyed. The key mixes the token with random bytes drawn
    /// at start-up, so signatures cannot be predicted from the token and die with the process.
    mac: HmacSha256,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Credentials for `token`, with a fresh signing secret.
    pub fn new(token: &str) -> std::io::Result<Self> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut hasher = Sha256::new();
        hasher.update(b"blobs-emulator signed url key\0");
        hasher.update(token.as_bytes());
        hasher.update(random);
        let mac = HmacSha256::new_from_slice(&hasher.finalize())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Auth {
            token: token.to_owned(),
            mac,
        })
    }

    /// Checks an `authorization` header value: `Bearer <token>`, scheme case-insensitive.
    pub fn check_bearer(&self, header: &[u8]) -> bool {
        let Some((scheme, token)) = header.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && constant_time_eq(token, self.token.as_bytes())
    }

    /// The signature of `method` on `path` until `expires` (Unix seconds), in lowercase hex.
    pub fn sign(&self, method: &str, path: &str, expires: u64) -> String {
        let mut mac = self.mac();
        mac.update(format!("{method}\n{path}\n{expires}").as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `signature` authorizes `method` on `path` now.
    pub fn verify(&self, method: &str, path: &str, expires: &str, signature: &str) -> bool {
        let Ok(expires) = expires.parse::<u64>() else {
            return false;
        };
        if expires < unix_now() {
            return false;
        }
        let Some(signature) = unhex(signature) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(format!("{method}\n{path}\n{expires}").as_bytes());
        mac.verify_slice(&signature).is_ok()
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let auth = Auth::new("tok").unwrap();
        assert!(auth.check_bearer(b"Bearer tok"));
        assert!(auth.check_bearer(b"bearer tok"));
        assert!(!auth.check_bearer(b"Bearer tok2"));
        assert!(!auth.check_bearer(b"tok"));
        assert!(!auth.check_bearer(b"Basic tok"));
        assert!(!auth.check_bearer(b""));
    }

    #[test]
    fn signatures_are_bound_to_method_path_and_time() {
        let auth = Auth::new("tok").unwrap();
        let exp = unix_now() + 60;
        let sig = auth.sign("GET", "/s/site:a/k", exp);
        let e = exp.to_string();
        assert!(auth.verify("GET", "/s/site:a/k", &e, &sig));
        assert!(!auth.verify("PUT", "/s/site:a/k", &e, &sig));
        assert!(!auth.verify("GET", "/s/site:a/k2", &e, &sig));
        assert!(!auth.verify("GET", "/s/site:a/k", &(exp + 1).to_string(), &sig));
        assert!(!auth.verify("GET", "/s/site:a/k", &e, "zz"));
        let old = unix_now() - 1;
        let sig = auth.sign("GET", "/p", old);
        assert!(!auth.verify("GET", "/p", &old.to_string(), &sig));
        // Another process with the same token has another secret.
        let other = Auth::new("tok").unwrap();
        assert!(!other.verify(
            "GET",
            "/s/site:a/k",
            &e,
            &auth.sign("GET", "/s/site:a/k", exp)
        ));
    }
}

//! Credentials: the bearer token, and signed URLs bound to one method, one path and an expiry.

use std::sync::Arc;

use blobjobs_protocol::Token;
use blobjobs_store_api::Clock;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

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
    /// The SHA-256 of the token every request must present as `authorization: Bearer
    /// <token>`. Comparing digests of a fixed length in constant time tells a timing
    /// observer neither where a guess went wrong nor how long the token is.
    token_digest: [u8; 32],
    /// The HMAC of signed URLs, already keyed with a key derived from the token alone, so
    /// that every emulator serving one shared store with the same token verifies the URLs any
    /// of them signed (a cluster behind a load balancer). Without the token nobody can sign;
    /// a URL names its method, path and expiry, and dies at that expiry.
    mac: HmacSha256,
    /// The wall clock of expiry times, injected so tests can move it.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth { .. }")
    }
}

impl Auth {
    /// Credentials for `token`, telling time by `clock`. The signing key is derived from the
    /// token (a separate hash, so a signature says nothing usable about the bearer token), so
    /// processes with the same token accept each other's signed URLs.
    pub fn new(token: &Token, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        hasher.update(b"blobs-emulator signed url key v2\0");
        hasher.update(token.reveal().as_bytes());
        let mac = HmacSha256::new_from_slice(&hasher.finalize())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(Auth {
            token_digest: Sha256::digest(token.reveal().as_bytes()).into(),
            mac,
            clock,
        })
    }

    /// Checks an `authorization` header value: `Bearer <token>`, scheme case-insensitive,
    /// the token compared in constant time, whatever its length.
    pub fn check_bearer(&self, header: &[u8]) -> bool {
        let Some((scheme, token)) = header.split_at_checked(7) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(token).into();
        scheme.eq_ignore_ascii_case(b"bearer ") && bool::from(digest.ct_eq(&self.token_digest))
    }

    /// Seconds since the Unix epoch, by this server's clock: what `expires` is counted in.
    pub fn now(&self) -> u64 {
        self.clock.now().as_millis() / 1000
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
        if expires < self.now() {
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
    use blobjobs_store_api::{ManualClock, SystemClock, Timestamp};

    fn auth(token: &str) -> Auth {
        Auth::new(&Token::new(token), Arc::new(SystemClock)).unwrap()
    }

    #[test]
    fn tokens_of_the_wrong_length_or_content_are_refused() {
        let secret = "0123456789abcdef0123456789abcdef";
        let auth = auth(secret);
        assert!(auth.check_bearer(format!("Bearer {secret}").as_bytes()));
        let mut wrong = vec![
            // Wrong length: shorter, longer, empty, the token twice.
            secret[..31].to_owned(),
            format!("{secret}0"),
            String::new(),
            secret.repeat(2),
        ];
        // Right length, wrong content: each position changed in turn.
        for i in 0..secret.len() {
            let mut bytes = secret.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'x' { b'y' } else { b'x' };
            wrong.push(String::from_utf8(bytes).unwrap());
        }
        for token in wrong {
            assert!(
                !auth.check_bearer(format!("Bearer {token}").as_bytes()),
                "{token:?}"
            );
        }
    }

    #[test]
    fn bearer_tokens() {
        let auth = auth("tok");
        assert!(auth.check_bearer(b"Bearer tok"));
        assert!(auth.check_bearer(b"bearer tok"));
        assert!(!auth.check_bearer(b"Bearer tok2"));
        assert!(!auth.check_bearer(b"Bearer to"));
        assert!(!auth.check_bearer(b"tok"));
        assert!(!auth.check_bearer(b"Basic tok"));
        assert!(!auth.check_bearer(b""));
    }

    #[test]
    fn signatures_are_bound_to_method_path_and_time() {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_250));
        let auth = Auth::new(&Token::new("tok"), Arc::new(clock.clone())).unwrap();
        assert_eq!(auth.now(), 1_700_000_000);
        let exp = auth.now() + 60;
        let sig = auth.sign("GET", "/s/site:a/k", exp);
        let e = exp.to_string();
        assert!(auth.verify("GET", "/s/site:a/k", &e, &sig));
        assert!(!auth.verify("PUT", "/s/site:a/k", &e, &sig));
        assert!(!auth.verify("GET", "/s/site:a/k2", &e, &sig));
        assert!(!auth.verify("GET", "/s/site:a/k", &(exp + 1).to_string(), &sig));
        assert!(!auth.verify("GET", "/s/site:a/k", &e, "zz"));
        // Valid through the second it expires in, refused from the next one on.
        clock.advance(std::time::Duration::from_secs(60));
        assert!(auth.verify("GET", "/s/site:a/k", &e, &sig));
        clock.advance(std::time::Duration::from_secs(1));
        assert!(!auth.verify("GET", "/s/site:a/k", &e, &sig));
    }

    /// Emulators sharing one store behind a load balancer: a URL signed by one is valid on
    /// every other with the same token, until it expires, and on none with another token.
    #[test]
    fn signatures_verify_on_every_process_with_the_same_token() {
        let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_000));
        let one = Auth::new(&Token::new("shared-token"), Arc::new(clock.clone())).unwrap();
        let other = Auth::new(&Token::new("shared-token"), Arc::new(clock.clone())).unwrap();
        let stranger = Auth::new(&Token::new("another-token"), Arc::new(clock.clone())).unwrap();
        let exp = one.now() + 60;
        let sig = one.sign("PUT", "/s/site:a/k", exp);
        assert_eq!(other.sign("PUT", "/s/site:a/k", exp), sig);
        assert!(other.verify("PUT", "/s/site:a/k", &exp.to_string(), &sig));
        assert!(!other.verify("GET", "/s/site:a/k", &exp.to_string(), &sig));
        assert!(!stranger.verify("PUT", "/s/site:a/k", &exp.to_string(), &sig));
        clock.advance(std::time::Duration::from_secs(61));
        assert!(!other.verify("PUT", "/s/site:a/k", &exp.to_string(), &sig));
    }
}

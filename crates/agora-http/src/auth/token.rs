//! Bearer tokens: HS256 JSON Web Tokens naming a principal, signed with the cluster's key
//! (`--jwt-secret-key`, Mesos' flag for the key of its executors' tokens). The master signs
//! them for people and scripts that log in (and for its own built-in frameworks); any server
//! holding the key verifies them without asking anyone. Only HS256 is taken: a token must not
//! choose how it is checked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Why a token is not good.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("not a token agora signed")]
    Malformed,
    #[error("the token's signature does not match")]
    Signature,
    #[error("the token has expired")]
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The principal.
    pub sub: String,
    /// Seconds since the epoch when it was signed.
    pub iat: u64,
    /// Seconds since the epoch when it stops being good.
    pub exp: u64,
}

/// The key that signs and verifies tokens.
#[derive(Clone)]
pub struct TokenKey {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

impl TokenKey {
    pub fn new(secret: &[u8]) -> TokenKey {
        TokenKey {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
        }
    }

    /// A token for `principal`, good from `now` for `lifetime` seconds.
    pub fn sign(&self, principal: &str, now: u64, lifetime: u64) -> String {
        let claims = Claims {
            sub: principal.to_owned(),
            iat: now,
            exp: now.saturating_add(lifetime),
        };
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(HEADER),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = ring::hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// The claims of a good token at `now`.
    pub fn verify(&self, token: &str, now: u64) -> Result<Claims, TokenError> {
        let token = token.trim();
        let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (header, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if payload.contains('.') {
            return Err(TokenError::Malformed);
        }
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(TokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        ring::hmac::verify(&self.key, signed.as_bytes(), &signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or(TokenError::Malformed)?;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_token_names_its_principal_until_it_expires() {
        let key = TokenKey::new(b"cluster key");
        let token = key.sign("ops", 1000, 60);
        let claims = key.verify(&token, 1059).unwrap();
        assert_eq!(claims.sub, "ops");
        assert_eq!(key.verify(&token, 1060), Err(TokenError::Expired));
        assert_eq!(
            TokenKey::new(b"other key").verify(&token, 1000),
            Err(TokenError::Signature)
        );
    }

    #[test]
    fn a_changed_or_unsigned_token_is_refused() {
        let key = TokenKey::new(b"cluster key");
        let token = key.sign("ops", 1000, 60);
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD.encode(r#"{"sub":"root","iat":1000,"exp":9999}"#);
        let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert_eq!(key.verify(&forged, 1000), Err(TokenError::Signature));
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let unsigned = format!("{none}.{}.", parts[1]);
        assert_eq!(key.verify(&unsigned, 1000), Err(TokenError::Malformed));
    }

    proptest! {
        #[test]
        fn no_text_is_taken_for_a_token(text in "\\PC{0,200}") {
            let key = TokenKey::new(b"k");
            prop_assert!(key.verify(&text, 0).is_err());
        }
    }
}

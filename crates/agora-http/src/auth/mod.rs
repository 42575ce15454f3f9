//! Who is calling. A request names its caller with HTTP Basic (a principal and its secret
//! from `--credentials`: what pymesos sends for its principal and secret, what the `marathon`
//! and `chronos` clients send for a user and password), a bearer token (`Authorization:
//! Bearer <token>`, or DC/OS's `token=<token>`), or — on the web UI's own pages only — the
//! UI's session cookie, which holds such a token. The gate identifies every request
//! ([`Authenticator::identify`]) and requires a caller where Mesos' flags say
//! ([`realm::Required`]); handlers read the caller from the request ([`Caller`]).

pub mod acl;
pub mod credentials;
pub mod layer;
pub mod login;
pub mod realm;
pub mod token;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;

pub use credentials::{Credential, Credentials, CredentialsError};
pub use realm::{Realm, Required};
pub use token::{Claims, TokenError, TokenKey};

/// The UI's session cookie: a token, `HttpOnly` and `SameSite=Strict`.
pub const SESSION_COOKIE: &str = "agora_session";

/// How long a token the master signs for a person or a script is good (a day).
pub const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The caller of a request, as handlers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The authenticated principal, if the request named one.
    pub principal: Option<String>,
    /// What to send on to reach another API as the same caller (the UI reads the cluster as
    /// whoever signed in).
    pub forward: Option<HeaderValue>,
}

/// How long a caller with a wrong secret or token waits for its 401.
const FAILURE_PAUSE: std::time::Duration = std::time::Duration::from_millis(250);

/// The pause before refusing a wrong secret or token: guessing is slow, wherever it is tried.
pub async fn after_failure() {
    tokio::time::sleep(FAILURE_PAUSE).await;
}

impl Caller {
    /// Whether the caller proved itself with its secret (HTTP Basic), not with a token.
    pub fn by_secret(&self) -> bool {
        self.forward
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.get(..6))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic "))
    }
}

/// Why a request's credentials are not taken.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the principal or its secret is wrong")]
    Credentials,
    #[error("the bearer token is not good: {0}")]
    Token(TokenError),
    #[error("the Authorization header cannot be read")]
    Unreadable,
}

/// What a server knows to tell callers apart.
#[derive(Clone, Debug, Default)]
pub struct Authenticator {
    pub credentials: Credentials,
    /// Verifies (and, on a master, signs) bearer tokens; none: tokens are not taken.
    pub key: Option<TokenKey>,
    /// Which realms require a caller.
    pub required: Required,
}

impl Authenticator {
    /// The principal a request names (none when it names none), or why its credentials are not
    /// taken. The session cookie counts only where `cookie` is true (the UI's pages).
    pub fn identify(
        &self,
        headers: &HeaderMap,
        cookie: bool,
        now: u64,
    ) -> Result<Option<Caller>, AuthError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let text = value.to_str().map_err(|_| AuthError::Unreadable)?.trim();
            let (scheme, rest) = text.split_once(' ').unwrap_or((text, ""));
            let principal = if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest.trim())
                    .map_err(|_| AuthError::Unreadable)?;
                let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Unreadable)?;
                let (principal, secret) = decoded.split_once(':').ok_or(AuthError::Unreadable)?;
                if !self.credentials.verify(principal, secret) {
                    return Err(AuthError::Credentials);
                }
                principal.to_owned()
            } else if scheme.eq_ignore_ascii_case("bearer") {
                self.verify_token(rest, now)?
            } else if let Some(token) = text.strip_prefix("token=") {
                self.verify_token(token, now)?
            } else {
                return Err(AuthError::Unreadable);
            };
            return Ok(Some(Caller {
                principal: Some(principal),
                forward: Some(value.clone()),
            }));
        }
        if cookie && let Some(token) = session_cookie(headers) {
            let principal = self.verify_token(token, now)?;
            let forward = HeaderValue::from_str(&format!("Bearer {token}")).ok();
            return Ok(Some(Caller {
                principal: Some(principal),
                forward,
            }));
        }
        Ok(None)
    }

    fn verify_token(&self, token: &str, now: u64) -> Result<String, AuthError> {
        let key = self
            .key
            .as_ref()
            .ok_or(AuthError::Token(TokenError::Signature))?;
        key.verify(token, now)
            .map(|claims| claims.sub)
            .map_err(AuthError::Token)
    }

    /// A token for `principal` (on a server that can sign them).
    pub fn sign(&self, principal: &str, lifetime: u64) -> Option<String> {
        self.key
            .as_ref()
            .map(|key| key.sign(principal, now_secs(), lifetime))
    }
}

/// The UI's session token from a request's cookies.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value)
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Compares secrets in time that depends neither on where they differ nor on their lengths:
/// their digests are compared, every byte.
pub fn same_secret(given: &str, secret: &str) -> bool {
    let digest = |text: &str| ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let (given, secret) = (digest(given), digest(secret));
    given
        .as_ref()
        .iter()
        .zip(secret.as_ref())
        .fold(0u8, |difference, (a, b)| difference | (a ^ b))
        == 0
}

/// A new secret for an agent or an executor to prove itself with: 32 random bytes (rand's
/// cryptographically secure generator), URL-safe base64.
pub fn new_secret() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn authenticator() -> Authenticator {
        Authenticator {
            credentials: Credentials::from_entries([Credential {
                principal: "ops".into(),
                secret: "s3cret".into(),
            }]),
            key: Some(TokenKey::new(b"k")),
            required: Required::default(),
        }
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn principal(result: Result<Option<Caller>, AuthError>) -> Result<Option<String>, AuthError> {
        result.map(|caller| caller.and_then(|c| c.principal))
    }

    #[test]
    fn basic_bearer_and_dcos_tokens_name_a_principal() {
        let auth = authenticator();
        let basic = base64::engine::general_purpose::STANDARD.encode("ops:s3cret");
        let now = now_secs();
        let identify = |headers: &HeaderMap| principal(auth.identify(headers, false, now));
        assert_eq!(
            identify(&with("authorization", &format!("Basic {basic}"))),
            Ok(Some("ops".into()))
        );
        let wrong = base64::engine::general_purpose::STANDARD.encode("ops:guess");
        assert_eq!(
            identify(&with("authorization", &format!("Basic {wrong}"))),
            Err(AuthError::Credentials)
        );
        let token = auth.sign("ops", 60).unwrap();
        assert_eq!(
            identify(&with("authorization", &format!("Bearer {token}"))),
            Ok(Some("ops".into()))
        );
        assert_eq!(
            identify(&with("authorization", &format!("token={token}"))),
            Ok(Some("ops".into()))
        );
        assert!(identify(&with("authorization", "Bearer forged")).is_err());
        assert_eq!(identify(&HeaderMap::new()), Ok(None));
    }

    #[test]
    fn the_session_cookie_counts_on_the_uis_pages_only() {
        let auth = authenticator();
        let token = auth.sign("ops", 60).unwrap();
        let headers = with("cookie", &format!("theme=dark; {SESSION_COOKIE}={token}"));
        let now = now_secs();
        assert_eq!(
            principal(auth.identify(&headers, true, now)),
            Ok(Some("ops".into()))
        );
        assert_eq!(principal(auth.identify(&headers, false, now)), Ok(None));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("ab", "abc"));
        assert!(!same_secret("abcd", "abc"));
        assert!(!same_secret("", "a"));
    }
}

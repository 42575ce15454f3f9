//! How a client reaches agora's APIs: who it is, when the cluster asks (HTTP Basic with a
//! principal and its secret, or a bearer token). Every client of this crate is built from an
//! [`Access`], and every request it sends carries it.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

/// How a client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// A principal and its secret (`--credentials` on the server).
    Basic { principal: String, secret: String },
    /// A token the master signed (`POST /acs/api/v1/auth/login`, `agora login`).
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret or the token: this may end up in a log.
        match self {
            Auth::Basic { principal, .. } => write!(f, "Basic({principal})"),
            Auth::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

impl Auth {
    /// The `Authorization` header, marked sensitive (kept out of reqwest's debug output).
    pub fn header(&self) -> Option<HeaderValue> {
        use base64::Engine;
        let text = match self {
            Auth::Basic { principal, secret } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{principal}:{secret}"))
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        };
        let mut value = HeaderValue::from_str(&text).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// What a client needs to reach the cluster's APIs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub auth: Option<Auth>,
}

impl Access {
    pub fn new(auth: Option<Auth>) -> Access {
        Access { auth }
    }

    /// The headers every request carries.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.auth.as_ref().and_then(Auth::header) {
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }

    /// A reqwest client builder carrying this access.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().default_headers(self.headers())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_headers_and_no_secret_in_debug() {
        let basic = Auth::Basic {
            principal: "ops".into(),
            secret: "s3cret".into(),
        };
        assert_eq!(
            basic.header().unwrap().to_str().unwrap(),
            "Basic b3BzOnMzY3JldA=="
        );
        assert!(!format!("{basic:?}").contains("s3cret"));
        let bearer = Auth::Bearer("t0ken".into());
        assert_eq!(bearer.header().unwrap().to_str().unwrap(), "Bearer t0ken");
        assert!(!format!("{bearer:?}").contains("t0ken"));
    }
}

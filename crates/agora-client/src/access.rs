//! How a client reaches agora's APIs: who it is, when the cluster asks (HTTP Basic with a
//! principal and its secret, or a bearer token). Every client of this crate is built from an
//! [`Access`], and every request it sends carries it.

use std::sync::Arc;

use agora_tls::tokio_rustls::rustls::ClientConfig;
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

/// What a client trusts (and presents) over TLS: `--tls-ca` (and an agent's certificate).
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

impl Tls {
    pub fn new(config: ClientConfig) -> Tls {
        Tls {
            config: Arc::new(config),
        }
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls(..)")
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        Arc::ptr_eq(&self.config, &other.config)
    }
}

impl Eq for Tls {}

/// What a client needs to reach the cluster's APIs: who it is, and what it trusts over TLS.
/// With `tls`, an address without a scheme is reached over https.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    pub auth: Option<Auth>,
    pub tls: Option<Tls>,
}

impl Access {
    pub fn new(auth: Option<Auth>) -> Access {
        Access { auth, tls: None }
    }

    /// The same identity, trusting (and presenting) what `tls` says.
    pub fn with_tls(self, tls: Option<Tls>) -> Access {
        Access { tls, ..self }
    }

    /// Whether this access reaches servers over TLS (by default, for addresses without a
    /// scheme).
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `host:port`, `http(s)://host:port` or `//host:port/path` → the URL to send requests
    /// under: a scheme given is kept; without one, https when this access has TLS settings.
    pub fn base_url(&self, address: &str) -> String {
        crate::base_url(address, self.tls.is_some())
    }

    /// The headers every request carries.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self.auth.as_ref().and_then(Auth::header) {
            headers.insert(AUTHORIZATION, value);
        }
        headers
    }

    /// A reqwest client builder carrying this access: its identity, and its TLS settings
    /// (else the machine's roots, for an https address given without `--tls-ca`).
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .default_headers(self.headers())
            .pool_idle_timeout(IDLE_CONNECTION);
        let config = match &self.tls {
            Some(tls) => Some((*tls.config).clone()),
            None => system_tls(),
        };
        match config {
            Some(config) => builder.tls_backend_preconfigured(config),
            None => builder,
        }
    }
}

/// How long a kept-alive connection is reused after its last answer. agora's servers close
/// a connection that sends no request for `--header-read-timeout` (10 s by default: hyper's
/// deadline for headers runs while a connection idles), and a request written on a
/// connection in the instant it is closed fails. Well under the default, so the client drops
/// it first; a server given a shorter deadline makes the race possible again.
const IDLE_CONNECTION: std::time::Duration = std::time::Duration::from_secs(5);

/// A TLS configuration trusting the machine's roots (read when a server is first verified),
/// made once.
fn system_tls() -> Option<ClientConfig> {
    static CONFIG: std::sync::OnceLock<Option<ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| match agora_tls::lazy_system_client() {
            Ok(config) => Some(config),
            Err(error) => {
                tracing::warn!(%error, "no TLS configuration: https addresses cannot be reached");
                None
            }
        })
        .clone()
}

/// A reqwest client builder for URLs users give (callbacks, downloads): no identity, the
/// machine's roots.
pub fn plain_client_builder() -> reqwest::ClientBuilder {
    Access::default().client_builder()
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

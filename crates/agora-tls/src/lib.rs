//! TLS for agora: what a listener serves (`--tls-cert`, `--tls-key`, and the CA whose
//! certificates it accepts from clients when they present one) and what a client trusts
//! (`--tls-ca`, else the machine's roots) and presents (an agent's certificate, for masters
//! that require one). rustls with ring, which the rest of the workspace builds already.

mod pem;
mod verify;

use std::path::Path;
use std::sync::{Arc, OnceLock};

pub use tokio_rustls;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Why TLS cannot be set up from the files given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Empty { path: String, what: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] tokio_rustls::rustls::Error),
}

/// The cryptography every configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(tokio_rustls::rustls::crypto::ring::default_provider()))
        .clone()
}

/// Makes ring the process's default, for any configuration built without naming one (a
/// library's default client). Idempotent.
pub fn install_default_provider() {
    let _ = CryptoProvider::install_default((*provider()).clone());
}

/// A listener's configuration: its certificate chain and key, and when `client_ca` is given,
/// the CA whose certificates clients may present (a client without one is still served; the
/// request says whether it had one, see [`PeerCertified`]).
pub fn server(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = pem::certificates(cert)?;
    let key = pem::private_key(key)?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = Arc::new(roots_from(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Invalid {
                    path: ca.display().to_string(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client's configuration that trusts `ca` alone (a cluster's own CA) and presents
/// `identity` (certificate chain, key) when a server asks. The machine's roots are
/// [`lazy_system_client`]'s.
pub fn client(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots_from(ca)?);
    finish(builder, identity)
}

/// A client's configuration from its trust, presenting `identity` when a server asks.
fn finish(
    builder: tokio_rustls::rustls::ConfigBuilder<
        ClientConfig,
        tokio_rustls::rustls::client::WantsClientCert,
    >,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let mut config = match identity {
        Some((cert, key)) => {
            builder.with_client_auth_cert(pem::certificates(cert)?, pem::private_key(key)?)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A client's configuration that checks servers with `accept`.
fn verifying(
    accept: verify::Accept,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let verifier = Arc::new(verify::Verifier::new(accept, provider()));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    finish(builder, identity)
}

/// A client's configuration trusting the machine's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR`
/// honoured), which are loaded only when a server is first verified: a process that never dials https (an executor talking to its
/// agent over plain HTTP) never reads the certificate store.
pub fn lazy_system_client() -> Result<ClientConfig, TlsError> {
    verifying(verify::Accept::SystemRoots(OnceLock::new()), None)
}

/// A client's configuration that takes any server certificate (the handshake's signatures
/// are still checked): health checks, which dial a task's address while its certificate
/// names its service, as Mesos' and Marathon's never verified either.
pub fn unverified_client() -> Result<ClientConfig, TlsError> {
    verifying(verify::Accept::Any, None)
}

/// The machine's trusted roots, loaded once.
pub(crate) fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for certificate in found.certs {
            // One unreadable certificate in the store does not make the others useless.
            let _ = roots.add(certificate);
        }
        if roots.is_empty() {
            tracing::warn!(errors = ?found.errors, "no trusted root certificates found on this machine");
        }
        roots
    })
}

fn roots_from(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in pem::certificates(path)? {
        roots.add(certificate).map_err(|e| TlsError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Put on each request a TLS listener serves: whether its connection presented a client
/// certificate that the listener's client CA signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCertified(pub bool);

/// A client's configuration that trusts exactly the certificate in the PEM file at `cert` (a
/// process reaching its own listener over loopback, an executor its agent: the name it dials
/// need not be one the certificate names), presenting `identity` when asked.
pub fn pinned(cert: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, TlsError> {
    let leaf = pem::certificates(cert)?.remove(0);
    pinned_to(leaf, identity)
}

/// Like [`pinned`], the certificate given as PEM text.
pub fn pinned_pem(cert_pem: &str) -> Result<ClientConfig, TlsError> {
    let leaf = pem::certificates_in(cert_pem.as_bytes(), "the certificate text")?.remove(0);
    pinned_to(leaf, None)
}

fn pinned_to(
    leaf: tokio_rustls::rustls::pki_types::CertificateDer<'static>,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    verifying(verify::Accept::Pinned(leaf), identity)
}

/// The PEM text of the file at `path`, checked to hold a certificate (its first is what
/// [`pinned_pem`] trusts): for handing to executors.
pub fn certificate_pem(path: &Path) -> Result<String, TlsError> {
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    pem::certificates_in(text.as_bytes(), &path.display().to_string())?;
    Ok(text)
}

//! The ways agora checks a server other than against a CA: exactly one certificate (a process
//! reaching its own listener, an executor its agent), the machine's roots loaded on first use,
//! or any certificate (health checks, as Mesos' `curl -k`). The handshake's signatures are
//! always checked: it must be a real handshake with the certificate presented.

use std::sync::{Arc, OnceLock};

use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{
    CryptoProvider, verify_tls12_signature, verify_tls13_signature,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, Error, SignatureScheme};

/// Which certificates a server may present.
#[derive(Debug)]
pub(crate) enum Accept {
    /// Exactly this one.
    Pinned(CertificateDer<'static>),
    /// One the machine's roots vouch for (read when first needed).
    SystemRoots(OnceLock<Result<Arc<WebPkiServerVerifier>, String>>),
    /// Any.
    Any,
}

#[derive(Debug)]
pub(crate) struct Verifier {
    accept: Accept,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    pub(crate) fn new(accept: Accept, provider: Arc<CryptoProvider>) -> Verifier {
        Verifier { accept, provider }
    }

    fn system_roots(
        &self,
        verifier: &OnceLock<Result<Arc<WebPkiServerVerifier>, String>>,
    ) -> Result<Arc<WebPkiServerVerifier>, Error> {
        verifier
            .get_or_init(|| {
                let roots = Arc::new(crate::system_roots().clone());
                WebPkiServerVerifier::builder_with_provider(roots, self.provider.clone())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| Error::General(format!("no trusted roots: {e}")))
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        match &self.accept {
            Accept::Pinned(certificate) if end_entity.as_ref() == certificate.as_ref() => {
                Ok(ServerCertVerified::assertion())
            }
            Accept::Pinned(_) => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Accept::SystemRoots(verifier) => self.system_roots(verifier)?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Accept::Any => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

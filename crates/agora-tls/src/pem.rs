//! PEM files: certificate chains and private keys.

use std::path::Path;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::TlsError;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates in the PEM file at `path` (a chain: the leaf first).
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certificates_in(&read(path)?, &path.display().to_string())
}

pub(crate) fn certificates_in(
    bytes: &[u8],
    name: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: name.to_owned(),
            message: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Empty {
            path: name.to_owned(),
            what: "certificate",
        });
    }
    Ok(certificates)
}

/// The private key in the PEM file at `path` (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let name = path.display().to_string();
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|error| match error {
        tokio_rustls::rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            path: name,
            what: "private key",
        },
        other => TlsError::Invalid {
            path: name,
            message: other.to_string(),
        },
    })
}

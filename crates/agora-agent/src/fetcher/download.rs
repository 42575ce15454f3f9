//! HTTP and HTTPS downloads into a file, over hyper's client connection: redirects followed
//! (as `curl -L`, which Mesos' fetcher uses), certificates verified against the machine's
//! roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured), a stalled transfer given up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::error::DownloadError;

const MAX_REDIRECTS: usize = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A transfer with no bytes for this long has stalled.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The machine's trusted roots, as a TLS connector that verifies servers against them (read
/// when the first https URI is fetched).
pub(crate) fn verifying_connector() -> Result<TlsConnector, Arc<agora_tls::TlsError>> {
    let config = agora_tls::lazy_system_client().map_err(Arc::new)?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// GETs `url` into `file`, following redirects (never from https to http: what was asked
/// for over TLS is not taken in the clear); at most `max_bytes` are taken. Returns the bytes
/// written.
pub(crate) async fn download(
    tls: &TlsConnector,
    url: &str,
    file: &Path,
    max_bytes: u64,
) -> Result<u64, DownloadError> {
    let mut current: Uri = url.parse().map_err(DownloadError::NotUrl)?;
    for _ in 0..=MAX_REDIRECTS {
        match get(tls, &current, file, max_bytes).await? {
            Fetched::Done(bytes) => return Ok(bytes),
            Fetched::Redirect(location) => {
                let next = follow(&current, &location)?;
                if current.scheme_str() == Some("https") && next.scheme_str() != Some("https") {
                    return Err(DownloadError::InsecureRedirect(next));
                }
                current = next;
            }
        }
    }
    Err(DownloadError::TooManyRedirects(MAX_REDIRECTS))
}

enum Fetched {
    Done(u64),
    Redirect(String),
}

async fn get(
    tls: &TlsConnector,
    uri: &Uri,
    file: &Path,
    max_bytes: u64,
) -> Result<Fetched, DownloadError> {
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        other => return Err(DownloadError::UnsupportedScheme(other.map(str::to_owned))),
    };
    let host = uri.host().ok_or(DownloadError::NoHost)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let stream = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host, port)),
    )
    .await
    .map_err(|_| DownloadError::ConnectTimeout(format!("{host}:{port}")))?
    .map_err(|source| DownloadError::Connect {
        address: format!("{host}:{port}"),
        source,
    })?;
    if https {
        let name = ServerName::try_from(host.to_owned()).map_err(DownloadError::HostName)?;
        let stream = tokio::time::timeout(IDLE_TIMEOUT, tls.connect(name, stream))
            .await
            .map_err(|_| DownloadError::TlsTimeout(format!("{host}:{port}")))?
            .map_err(|source| DownloadError::Tls {
                address: format!("{host}:{port}"),
                source,
            })?;
        request(TokioIo::new(stream), uri, file, max_bytes).await
    } else {
        request(TokioIo::new(stream), uri, file, max_bytes).await
    }
}

async fn request<S>(io: S, uri: &Uri, file: &Path, max_bytes: u64) -> Result<Fetched, DownloadError>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        tokio::time::timeout(IDLE_TIMEOUT, hyper::client::conn::http1::handshake(io))
            .await
            .map_err(|_| DownloadError::HandshakeTimeout)??;
    let connection = tokio::spawn(connection);
    let result = async {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "agora-fetcher")
            .body(Empty::<Bytes>::new())?;
        let response = tokio::time::timeout(IDLE_TIMEOUT, sender.send_request(request))
            .await
            .map_err(|_| DownloadError::NoAnswer(IDLE_TIMEOUT.as_secs()))??;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or(DownloadError::NoLocation(status))?;
            return Ok(Fetched::Redirect(location.to_owned()));
        }
        if !status.is_success() {
            return Err(DownloadError::Status(status));
        }
        let too_large = || DownloadError::TooLarge(max_bytes);
        let declared = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > max_bytes) {
            return Err(too_large());
        }
        let mut body = response.into_body();
        let mut out =
            tokio::fs::File::from_std(super::create_nofollow(file).map_err(|source| {
                DownloadError::Create {
                    path: file.to_owned(),
                    source,
                }
            })?);
        let mut written = 0u64;
        loop {
            let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
                .await
                .map_err(|_| DownloadError::NoData(IDLE_TIMEOUT.as_secs()))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(DownloadError::BrokeOff)?;
            if let Ok(data) = frame.into_data() {
                if written + data.len() as u64 > max_bytes {
                    return Err(too_large());
                }
                out.write_all(&data)
                    .await
                    .map_err(|source| DownloadError::Write {
                        path: file.to_owned(),
                        source,
                    })?;
                written += data.len() as u64;
            }
        }
        out.flush().await.map_err(|source| DownloadError::Write {
            path: file.to_owned(),
            source,
        })?;
        Ok(Fetched::Done(written))
    }
    .await;
    connection.abort();
    result
}

/// The next URL of a redirect: absolute, or relative to the current one.
fn follow(current: &Uri, location: &str) -> Result<Uri, DownloadError> {
    let bad = |source| DownloadError::BadRedirect {
        location: location.to_owned(),
        source,
    };
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.parse().map_err(bad);
    }
    let scheme = current.scheme_str().unwrap_or("http");
    let authority = current.authority().map(|a| a.as_str()).unwrap_or_default();
    let path = if location.starts_with('/') {
        location.to_owned()
    } else {
        let base = current.path();
        let directory = &base[..base.rfind('/').map_or(0, |i| i + 1)];
        format!("{directory}{location}")
    };
    format!("{scheme}://{authority}{path}").parse().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_against_the_current_url() {
        let current: Uri = "http://h:8080/a/b/file?x=1".parse().unwrap_or_default();
        let next = |l: &str| {
            follow(&current, l)
                .map(|u| u.to_string())
                .unwrap_or_default()
        };
        assert_eq!(next("https://o/x"), "https://o/x");
        assert_eq!(next("/y/z"), "http://h:8080/y/z");
        assert_eq!(next("other.tgz"), "http://h:8080/a/b/other.tgz");
    }
}

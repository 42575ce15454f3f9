//! One HTTP(S) GET for a health or readiness check, over hyper's client connection. HTTPS
//! accepts any certificate: a task's certificate names its service, not the address the check
//! dials, and Mesos' checks (`curl -k`) and Marathon's never verified it either.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// What a probe got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResponse {
    pub status: u16,
    pub content_type: Option<String>,
    /// The body, up to the limit asked for (lossily decoded as UTF-8).
    pub body: String,
}

#[derive(Clone)]
pub struct HttpProber {
    tls: TlsConnector,
}

impl HttpProber {
    pub fn new() -> Result<HttpProber, String> {
        let config = agora_tls::unverified_client().map_err(|e| e.to_string())?;
        Ok(HttpProber {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// GETs `path` and returns the response's status code.
    pub async fn status(
        &self,
        https: bool,
        ip: IpAddr,
        port: u16,
        path: &str,
    ) -> Result<u16, String> {
        self.get(https, ip, port, path, 0).await.map(|r| r.status)
    }

    /// GETs `path`; the body is read up to `body_limit` bytes (0: not read).
    pub async fn get(
        &self,
        https: bool,
        ip: IpAddr,
        port: u16,
        path: &str,
        body_limit: usize,
    ) -> Result<ProbeResponse, String> {
        let stream = tokio::net::TcpStream::connect((ip, port))
            .await
            .map_err(|e| e.to_string())?;
        let authority = match ip {
            IpAddr::V4(v4) => format!("{v4}:{port}"),
            IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        };
        if https {
            let stream = self
                .tls
                .connect(ServerName::IpAddress(ip.into()), stream)
                .await
                .map_err(|e| format!("TLS handshake failed: {e}"))?;
            request(TokioIo::new(stream), &authority, path, body_limit).await
        } else {
            request(TokioIo::new(stream), &authority, path, body_limit).await
        }
    }
}

async fn request<S>(
    io: S,
    authority: &str,
    path: &str,
    body_limit: usize,
) -> Result<ProbeResponse, String>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "agora-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = if body_limit == 0 {
            String::new()
        } else {
            let collected = Limited::new(response.into_body(), body_limit)
                .collect()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?;
            String::from_utf8_lossy(&collected.to_bytes()).into_owned()
        };
        Ok(ProbeResponse {
            status,
            content_type,
            body,
        })
    }
    .await;
    connection.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_status_type_and_a_limited_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let response = "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nready";
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let prober = HttpProber::new().unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let response = prober.get(false, ip, port, "/", 1024).await.unwrap();
        assert_eq!(
            response,
            ProbeResponse {
                status: 200,
                content_type: Some("text/plain".into()),
                body: "ready".into()
            }
        );
        assert_eq!(prober.status(false, ip, port, "/").await, Ok(200));
        assert!(
            prober.get(false, ip, port, "/", 2).await.is_err(),
            "over the limit"
        );
        assert!(prober.status(true, ip, port, "/").await.is_err(), "not TLS");
    }
}

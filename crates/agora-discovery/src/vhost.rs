//! HTTP virtual hosts on one shared port: each request goes to a backend of the app whose
//! `HAPROXY_{n}_VHOST` label names its `Host`, over kept-alive connections, with
//! `X-Forwarded-For` added. Backends are chosen per request by least outstanding requests; a
//! request without a body that meets a refusing backend is retried on the next one, and an
//! idempotent one whose backend closes without answering (a task stopping as it arrived) is
//! sent once more, to another.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::Proxy;
use crate::routes::normalize_host;

type RequestBody = Either<Incoming, Empty<Bytes>>;
type ResponseBody = Either<Incoming, Full<Bytes>>;

/// Hop-by-hop headers: they describe one connection and are not passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

pub struct VhostServer {
    proxy: Arc<Proxy>,
    client: Client<HttpConnector, RequestBody>,
}

impl VhostServer {
    pub fn new(proxy: Arc<Proxy>) -> Arc<VhostServer> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Arc::new(VhostServer { proxy, client })
    }

    /// Serves connections from `listener` until `shutdown`.
    pub async fn serve(self: Arc<VhostServer>, listener: TcpListener, shutdown: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed on the HTTP port");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let server = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.route(request, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn route(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(normalize_host)
            .or_else(|| request.uri().host().map(normalize_host))
            .unwrap_or_default();
        let Some(pool) = self.proxy.vhost_pool(&host) else {
            return plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("no app serves the host '{host}'\n"),
            );
        };
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        forwarded_for(&mut parts.headers, peer);
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        // Without a body the request can be sent again to another backend.
        let mut body = if body.is_end_stream() {
            None
        } else {
            Some(body)
        };
        let idempotent = is_idempotent(&parts.method);
        let mut resent = false;
        let mut tried = Vec::new();
        while let Some(backend) = pool.pick(&tried, Instant::now()) {
            tried.push(backend.addr);
            let mut outgoing = Request::builder()
                .method(parts.method.clone())
                .version(hyper::Version::HTTP_11)
                .uri(format!("http://{}{path}", backend.addr));
            if let Some(headers) = outgoing.headers_mut() {
                headers.clone_from(&parts.headers);
            }
            let outgoing_body = match body.take() {
                Some(incoming) => Either::Left(incoming),
                None => Either::Right(Empty::new()),
            };
            let had_body = matches!(outgoing_body, Either::Left(_));
            let Ok(outgoing) = outgoing.body(outgoing_body) else {
                return plain(
                    StatusCode::BAD_REQUEST,
                    "a request that cannot be passed on\n",
                );
            };
            let held = backend.hold();
            match self.client.request(outgoing).await {
                Ok(response) => {
                    drop(held);
                    let (mut parts, body) = response.into_parts();
                    strip_hop_by_hop(&mut parts.headers);
                    return Response::from_parts(parts, Either::Left(body));
                }
                Err(error) if error.is_connect() && !had_body => {
                    backend.refused(Instant::now());
                    self.proxy.counted_retry();
                    tracing::debug!(backend = %backend.addr, %error, "backend refused; trying another");
                }
                // Any other error came before an answer: the backend took the request and
                // failed or closed. Sending it again is safe only when doing it twice is.
                Err(error) if idempotent && !had_body && !resent => {
                    resent = true;
                    self.proxy.counted_retry();
                    tracing::debug!(backend = %backend.addr, %error, "backend closed without answering; sent to another");
                }
                Err(error) => {
                    tracing::debug!(backend = %backend.addr, %error, "backend failed");
                    return plain(StatusCode::BAD_GATEWAY, "the backend failed to answer\n");
                }
            }
        }
        self.proxy.counted_failure();
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no backend of '{host}' is reachable\n"),
        )
    }
}

/// RFC 9110's idempotent methods: the same request twice has the effect of once.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<ResponseBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(text.into()))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the Connection header names are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

fn forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let client = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {client}"),
        None => client,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that reads each request and then either answers `ok` or closes without a
    /// word, as a task does that stops while a request reaches it.
    async fn backend(answers: bool) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    if answers {
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await;
                    }
                });
            }
        });
        port
    }

    async fn ask(port: u16, method: &str) -> String {
        let mut client = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let request = format!("{method} / HTTP/1.1\r\nHost: svc.test\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        let _ = client.read_to_string(&mut answer).await;
        answer
    }

    #[tokio::test]
    async fn an_idempotent_request_a_backend_drops_is_sent_to_another() {
        let (silent, answering) = (backend(false).await, backend(true).await);
        let doc = serde_json::json!({"apps": [{"id": "/app", "portDefinitions": [{"port": 10080}],
            "labels": {"HAPROXY_0_VHOST": "svc.test"},
            "tasks": [
                {"id": "a", "host": "127.0.0.1", "ports": [silent], "state": "TASK_RUNNING"},
                {"id": "b", "host": "127.0.0.1", "ports": [answering], "state": "TASK_RUNNING"}]}]});
        let (proxy, shutdown) = crate::proxy::tests::proxy_for(doc).await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(VhostServer::new(proxy.clone()).serve(listener, shutdown.clone()));

        for _ in 0..4 {
            let answer = ask(port, "GET").await;
            assert!(
                answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
                "{answer}"
            );
        }
        assert!(proxy.counters.retries.load(Ordering::Relaxed) >= 1);
        // Not a POST: the backend may have acted on it before it closed.
        let answers: Vec<String> =
            futures_util::future::join_all((0..4).map(|_| ask(port, "POST"))).await;
        assert!(
            answers.iter().any(|a| a.starts_with("HTTP/1.1 502")),
            "{answers:?}"
        );
        shutdown.cancel();
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close, x-secret"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut headers = HeaderMap::new();
        let peer: SocketAddr = "10.0.0.9:5000".parse().expect("address");
        forwarded_for(&mut headers, peer);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9");
        forwarded_for(&mut headers, peer);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.9, 10.0.0.9");
    }
}

//! HTTP virtual hosts on one shared port: each request goes to a backend of the app whose
//! `HAPROXY_{n}_VHOST` label names its `Host`, over kept-alive connections, with
//! `X-Forwarded-For` added. Backends are chosen per request by least outstanding requests; a
//! request without a body that meets a refusing backend is retried on the next one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
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

//! Serving a router on a listener with the limits a server facing a network needs: a
//! connection limit (past it a new connection is closed at once), a deadline for a request's
//! headers (a client that trickles them — slowloris — is cut off), and graceful shutdown.
//! The deadline for a body is the gate's (`gate.rs`), which knows each API's limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_tls::PeerCertified;
use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower_service::Service;

/// How much of the server one client, or all of them, may hold.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections open at once; one past it is closed as it is accepted.
    pub max_connections: usize,
    /// Time a client has to send a request's headers.
    pub header_read_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 16_384,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts what the limits turned away, for metrics.
#[derive(Debug, Default)]
pub struct Refused {
    /// Connections closed because the limit was reached.
    pub connections: AtomicU64,
}

/// TLS on a listener.
#[derive(Clone)]
pub struct ListenerTls {
    pub config: Arc<agora_tls::tokio_rustls::rustls::ServerConfig>,
    /// Plain HTTP is served too, on the same port (Mesos'
    /// `LIBPROCESS_SSL_SUPPORT_DOWNGRADE`): for clients that speak no TLS, such as pymesos.
    pub accept_plain: bool,
}

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Serves `router` on `listener` until `shutdown` — over TLS when `tls` is given, each
/// request then saying whether its client presented a certificate the listener's client CA
/// signed ([`agora_tls::PeerCertified`]); connections in progress then finish their request
/// and close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refused: Arc<Refused>,
    tls: Option<ListenerTls>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let accept_plain = tls.as_ref().is_some_and(|tls| tls.accept_plain);
    let acceptor = tls.map(|tls| agora_tls::tokio_rustls::TlsAcceptor::from(tls.config));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted.map(|(stream, _)| stream),
        };
        let Some((stream, permit)) = admit(accepted, &permits, &limits, &refused).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let header_timeout = limits.header_read_timeout;
        let shutdown = shutdown.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let plain = match &acceptor {
                None => true,
                // A client that speaks TLS starts with a handshake record; any other first
                // byte is plain HTTP, served only where downgrade is allowed.
                Some(_) if accept_plain => {
                    let mut first = [0u8; 1];
                    let peeked =
                        tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
                    match peeked {
                        Ok(Ok(1)) => first[0] != TLS_HANDSHAKE,
                        _ => return,
                    }
                }
                Some(_) => false,
            };
            let acceptor = match acceptor {
                Some(acceptor) if !plain => acceptor,
                _ => {
                    let service = TowerToHyperService::new(router);
                    serve_connection(stream, service, header_timeout, shutdown).await;
                    return;
                }
            };
            // The handshake is held to the headers' deadline: a client that stalls in it is
            // as slow as one that trickles its headers.
            let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream)).await;
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => {
                    tracing::debug!(%error, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
            // A certificate is only there if the client CA's verifier accepted it.
            let certified = PeerCertified(stream.get_ref().1.peer_certificates().is_some());
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(certified);
                let mut router = router.clone();
                async move { Service::call(&mut router, request).await }
            });
            serve_connection(stream, service, header_timeout, shutdown).await;
        });
    }
}

/// Serves `router` on a Unix socket until `shutdown`, with the same limits: for processes on
/// this machine (executors reaching their agent), which need neither TLS nor a TCP port.
pub async fn serve_local(
    listener: UnixListener,
    router: Router,
    limits: Limits,
    refused: Arc<Refused>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted.map(|(stream, _)| stream),
        };
        let Some((stream, permit)) = admit(accepted, &permits, &limits, &refused).await else {
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let (header_timeout, shutdown) = (limits.header_read_timeout, shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            serve_connection(stream, service, header_timeout, shutdown).await;
        });
    }
}

/// A connection just accepted, with its place under the connection limit; `None` when it
/// failed or is one too many (closed at once).
async fn admit<S>(
    accepted: std::io::Result<S>,
    permits: &Arc<Semaphore>,
    limits: &Limits,
    refused: &Refused,
) -> Option<(S, OwnedSemaphorePermit)> {
    let stream = match accepted {
        Ok(stream) => stream,
        Err(error) => {
            // Out of descriptors, or the peer gave up while queued: keep serving.
            tracing::warn!(%error, "accept failed");
            tokio::time::sleep(Duration::from_millis(50)).await;
            return None;
        }
    };
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        refused.connections.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            limit = limits.max_connections,
            "connection refused: too many open"
        );
        return None;
    };
    Some((stream, permit))
}

/// Serves one connection's requests until it closes, or until `shutdown` (the request in
/// progress then finishes).
async fn serve_connection<S, T>(
    stream: T,
    service: S,
    header_timeout: Duration,
    shutdown: CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

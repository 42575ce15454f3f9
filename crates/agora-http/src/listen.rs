//! Serving a router on a listener with the limits a server facing a network needs: a
//! connection limit (past it a new connection is closed at once), a deadline for a request's
//! headers (a client that trickles them — slowloris — is cut off), and graceful shutdown.
//! The deadline for a body is the gate's (`gate.rs`), which knows each API's limits.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use agora_tls::PeerCertified;
use axum::Router;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;
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
    let header_timeout = limits.header_read_timeout;
    let serving = shutdown.clone();
    accept_each(
        listener,
        limits,
        refused,
        shutdown,
        move |stream: TcpStream| {
            let _ = stream.set_nodelay(true);
            let connection = Connection {
                router: router.clone(),
                header_timeout,
                shutdown: serving.clone(),
            };
            connection.serve_tcp(stream, acceptor.clone(), accept_plain)
        },
    )
    .await
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
    let header_timeout = limits.header_read_timeout;
    let serving = shutdown.clone();
    accept_each(
        listener,
        limits,
        refused,
        shutdown,
        move |stream: UnixStream| {
            let service = TowerToHyperService::new(router.clone());
            serve_connection(stream, service, header_timeout, serving.clone())
        },
    )
    .await
}

/// A listener of either kind.
trait Listener {
    type Stream;
    fn accept_one(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;
    async fn accept_one(&self) -> std::io::Result<TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for UnixListener {
    type Stream = UnixStream;
    async fn accept_one(&self) -> std::io::Result<UnixStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Accepts connections until `shutdown`, each served by what `serve_one` makes of it on a
/// task of its own while it holds a place under the connection limit; one past the limit is
/// closed as it is accepted.
async fn accept_each<L, F, Fut>(
    listener: L,
    limits: Limits,
    refused: Arc<Refused>,
    shutdown: CancellationToken,
    mut serve_one: F,
) -> std::io::Result<()>
where
    L: Listener,
    F: FnMut(L::Stream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept_one() => accepted,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(error) => {
                // Out of descriptors, or the peer gave up while queued: keep serving.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.connections.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                limit = limits.max_connections,
                "connection refused: too many open"
            );
            continue;
        };
        let serving = serve_one(stream);
        tokio::spawn(async move {
            let _permit = permit;
            serving.await;
        });
    }
}

/// What serving one TCP connection needs.
struct Connection {
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
}

impl Connection {
    /// Plain HTTP, or TLS when the listener has it — both, told apart by the first byte,
    /// where downgrade is allowed.
    async fn serve_tcp(
        self,
        stream: TcpStream,
        acceptor: Option<agora_tls::tokio_rustls::TlsAcceptor>,
        accept_plain: bool,
    ) {
        let Connection {
            router,
            header_timeout,
            shutdown,
        } = self;
        let plain = match &acceptor {
            None => true,
            // A client that speaks TLS starts with a handshake record; any other first byte
            // is plain HTTP, served only where downgrade is allowed.
            Some(_) if accept_plain => {
                let mut first = [0u8; 1];
                let peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)).await;
                match peeked {
                    Ok(Ok(1)) => first[0] != TLS_HANDSHAKE,
                    _ => return,
                }
            }
            Some(_) => false,
        };
        match acceptor {
            Some(acceptor) if !plain => {
                // Boxed: a TLS connection's state is some kilobytes more than a plain one's,
                // and every connection's task would be that large otherwise (10,000 agents'
                // subscriptions are as many connections).
                Box::pin(serve_tls(
                    stream,
                    acceptor,
                    router,
                    header_timeout,
                    shutdown,
                ))
                .await;
            }
            _ => {
                let service = TowerToHyperService::new(router);
                serve_connection(stream, service, header_timeout, shutdown).await;
            }
        }
    }
}

/// Serves a connection that opened with a TLS handshake.
async fn serve_tls(
    stream: TcpStream,
    acceptor: agora_tls::tokio_rustls::TlsAcceptor,
    router: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
) {
    // The handshake is held to the headers' deadline: a client that stalls in it is as
    // slow as one that trickles its headers.
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

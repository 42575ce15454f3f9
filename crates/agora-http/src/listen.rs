//! Serving a router on a listener with the limits a server facing a network needs: a
//! connection limit (past it a new connection is closed at once), a deadline for a request's
//! headers (a client that trickles them — slowloris — is cut off), and graceful shutdown.
//! The deadline for a body is the gate's (`gate.rs`), which knows each API's limits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

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

/// Serves `router` on `listener` until `shutdown`; connections in progress then finish their
/// request and close.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refused: Arc<Refused>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
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
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let header_timeout = limits.header_read_timeout;
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
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
        });
    }
}

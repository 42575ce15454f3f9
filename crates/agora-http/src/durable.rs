//! A change is answered once it is durable: after a request that may change state (any method
//! but GET and HEAD), its answer waits until what the handler queued is committed — the
//! services' and jobs' registrars — or becomes the refusal of a store that failed.

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Runs the handler, then for a change awaits `committed()` (taken after the handler, so that
/// it covers what the handler queued); a failure is answered with `failed`'s response.
pub async fn answer_once_committed<C, F, E>(
    request: Request,
    next: Next,
    committed: C,
    failed: impl FnOnce(E) -> Response,
) -> Response
where
    C: FnOnce() -> F,
    F: std::future::Future<Output = Result<(), E>>,
{
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    if !changes {
        return response;
    }
    match committed().await {
        Ok(()) => response,
        Err(error) => failed(error),
    }
}

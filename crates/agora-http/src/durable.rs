//! An answer shows only what is durable: after any request, its answer waits until everything
//! queued up to the handler's end is committed — the services' and jobs' registrars — or
//! becomes the refusal of a store that failed. A change is thus answered once it survives a
//! crash, and a read never shows what a crash could take back (a job's success counted from an
//! update whose commit was still in flight, say).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

/// Runs the handler, then awaits `committed()` (taken after the handler, so that it covers what
/// the handler queued or saw); a failure is answered with `failed`'s response. With nothing in
/// flight the wait is a check of a watch.
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
    let response = next.run(request).await;
    match committed().await {
        Ok(()) => response,
        Err(error) => failed(error),
    }
}

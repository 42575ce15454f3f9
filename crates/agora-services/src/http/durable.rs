//! A change is answered once it is durable: after a request that may change state, the answer
//! waits until the registrar has committed everything queued so far (Marathon answers a
//! deployment once it is in ZooKeeper).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::answer::MarathonError;
use crate::Shared;

pub(super) async fn committed(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let response = next.run(request).await;
    if !changes {
        return response;
    }
    match shared.config.registrar.barrier().committed().await {
        Ok(()) => response,
        Err(failed) => {
            MarathonError::new(StatusCode::SERVICE_UNAVAILABLE, failed.to_string()).into_response()
        }
    }
}

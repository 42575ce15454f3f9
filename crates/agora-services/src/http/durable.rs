//! An answer shows only what is durable (Marathon answers a deployment once it is in
//! ZooKeeper): every answer waits for the registrar's commit of what was queued up to it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::answer::MarathonError;
use crate::Shared;

pub(super) async fn committed(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let registrar = shared.config.registrar.clone();
    agora_http::answer_once_committed(
        request,
        next,
        || registrar.barrier().committed(),
        |failed| {
            MarathonError::new(StatusCode::SERVICE_UNAVAILABLE, failed.to_string()).into_response()
        },
    )
    .await
}

//! The agent's HTTP surface: the Mesos executor API, sandbox files, and `/slave(1)/state`.

mod executor_api;
mod files;
mod in_container;
pub(crate) mod state;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::core::Agent;

pub(crate) type Shared = Arc<Agent>;

/// The executor API's routes.
fn executor_routes() -> Router<Shared> {
    Router::new()
        .route("/api/v1/executor", post(executor_api::handle))
        .route("/slave(1)/api/v1/executor", post(executor_api::handle))
}

/// The executor API alone: what the agent's Unix socket for executors serves.
pub(crate) fn executor_router(agent: Shared) -> Router {
    executor_routes().with_state(agent)
}

pub(crate) fn router(agent: Shared) -> Router {
    let mut router = executor_routes()
        .route("/slave(1)/state", get(state::state))
        .route("/slave(1)/state.json", get(state::state))
        .route("/slave(1)/health", get(health))
        .route("/slave(1)/monitor/statistics", get(state::statistics))
        .route("/slave(1)/containers", get(state::containers_endpoint))
        .route("/containers", get(state::containers_endpoint))
        .route("/slave(1)/tasks/{task_id}/top", get(in_container::top))
        .route("/slave(1)/tasks/{task_id}/exec", post(in_container::exec))
        .route(
            "/slave(1)/tasks/{task_id}/attach",
            get(in_container::attach),
        )
        .route("/files/read", get(files::read))
        .route("/files/read.json", get(files::read))
        .route("/files/browse", get(files::browse))
        .route("/files/browse.json", get(files::browse))
        .route("/files/download", get(files::download))
        .route("/files/download.json", get(files::download))
        .route("/files/debug", get(files::debug));
    if agent.config.standalone {
        router = router
            .route("/state", get(state::state))
            .route("/state.json", get(state::state))
            .route("/health", get(health))
            .route("/version", get(version))
            .route("/monitor/statistics", get(state::statistics))
            .route("/metrics/snapshot", get(state::metrics_snapshot))
            .route("/metrics", get(state::metrics_text));
    }
    router.with_state(agent)
}

/// What a handler answers: a response, or an error as Mesos words one (plain text).
pub(crate) type Answer = Result<Response, MesosError>;

pub(crate) use agora_http::MesosError;

pub(crate) fn json_response(value: &serde_json::Value) -> Response {
    let body = agora_api::scheduler::ascii_json(value);
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

async fn health() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

async fn version() -> Response {
    json_response(
        &serde_json::json!({"version": "1.11.0", "agora_version": env!("CARGO_PKG_VERSION")}),
    )
}

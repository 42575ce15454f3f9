//! The master's HTTP surface: the Mesos scheduler API, the operator API, the v0 state
//! endpoints, metrics, and agora's internal agent endpoints. Each module maps its errors to its
//! wire shape; nothing here panics on input.

mod agents;
mod operator;
mod scheduler;
mod state;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::{Shared, views};

/// The routes; `require_agent_certificate`: agents must present a TLS client certificate.
pub(crate) fn router(shared: Shared, require_agent_certificate: bool) -> Router {
    Router::new()
        .route("/api/v1/scheduler", post(scheduler::handle))
        .route("/master/api/v1/scheduler", post(scheduler::handle))
        .route("/api/v1", post(operator::handle))
        .route("/api/v1/", post(operator::handle))
        .route("/api/v1/operator", post(operator::handle))
        .route("/master/api/v1", post(operator::handle))
        .merge(state::routes())
        .merge(agents::routes(require_agent_certificate))
        .with_state(shared)
}

/// What a handler answers: a response, or an error as Mesos words one (plain text).
pub(crate) type Answer = Result<Response, MesosError>;

pub(crate) use agora_http::MesosError;

/// 202 with an explicit empty body: Python's http.client would otherwise wait for one.
/// Waits until every change made so far is durable: a change is answered only once committed.
/// A failed registry is 503: the master stops acting (its binary exits for its supervisor).
pub(crate) async fn committed(shared: &Shared) -> Result<(), MesosError> {
    let barrier = crate::core::lock(shared).registry.barrier();
    barrier.committed().await.map_err(|failed| {
        MesosError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The master's registry failed: {failed}"),
        )
    })
}

pub(crate) fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

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

pub(crate) use agora_http::mesos_content_type as check_content_type;

/// State documents rendered at once; more wait. Rendering is work for the CPU, and a reader
/// who does not read holds one until it is given up on.
pub(crate) static RENDERING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(16);

/// A state document as `render` writes it from a capture of the master, taken under its lock
/// and rendered after, in a blocking thread; the body is streamed as it is written.
pub(crate) fn streamed(
    shared: &Shared,
    scope: views::Scope,
    principal: Option<String>,
    render: impl FnOnce(&views::Capture, views::Viewer, &mut views::Out) -> views::Written
    + Send
    + 'static,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let runtime = tokio::runtime::Handle::current();
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || {
        let Ok(_permit) = runtime.block_on(RENDERING.acquire()) else {
            return;
        };
        let capture = {
            let mut master = crate::core::lock(&shared);
            let started = std::time::Instant::now();
            let capture = views::Capture::take(&master, scope);
            master.metrics.view_capture.record(started.elapsed());
            capture
        };
        let viewer = views::Viewer::new(&capture.acls, principal.as_deref());
        let mut out = views::Out::streaming(sender, runtime);
        if render(&capture, viewer, &mut out).is_ok() {
            let _ = out.finish();
        }
    });
    let chunks = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), receiver))
    });
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// Whether the `Accept` header allows JSON (a missing header accepts anything).
pub(crate) fn accepts(headers: &HeaderMap, wanted: &str) -> bool {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return true;
    };
    let accept = accept.to_str().unwrap_or("");
    accept
        .split(',')
        .map(|part| part.split(';').next().unwrap_or("").trim())
        .any(|media| {
            media == wanted || media == "*/*" || media == "application/*" || media.is_empty()
        })
}

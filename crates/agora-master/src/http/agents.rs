//! agora's internal master↔agent endpoints: the agent's subscription stream and its reports.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::de::DeserializeOwned;

use agora_api::agent_protocol::{
    AGENT_TOKEN_HEADER, ExecutorExited, ExecutorMessage, Ping, RegisterAgent, ReportedTask,
    StatusUpdate, StatusUpdates,
};
use agora_types::AgentId;

use super::{Answer, MesosError};
use crate::Shared;
use crate::core::lock;
use crate::stream::ClosingStream;

pub(crate) fn routes(require_certificate: bool) -> Router<Shared> {
    let routes = Router::new()
        .route("/internal/agent/subscribe", post(subscribe))
        .route("/internal/agent/ping", post(ping))
        .route("/internal/agent/status", post(status))
        .route("/internal/agent/statuses", post(statuses))
        .route("/internal/agent/message", post(message))
        .route("/internal/agent/executor-exited", post(executor_exited));
    if require_certificate {
        routes.layer(axum::middleware::from_fn(certified))
    } else {
        routes
    }
}

/// Mutual TLS: only a connection whose certificate the listener's client CA signed speaks
/// for an agent.
async fn certified(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let certified = request.extensions().get::<agora_http::PeerCertified>();
    if certified.is_some_and(|c| c.0) {
        return next.run(request).await;
    }
    tracing::warn!("agent request without a client certificate refused");
    MesosError::forbidden(
        "this master takes agents only with a TLS client certificate signed by its --tls-ca \
         (--tls-require-agent-cert)",
    )
    .into_response()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, MesosError> {
    serde_json::from_slice(body).map_err(|e| MesosError::bad_request(format!("invalid body: {e}")))
}

fn ok() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

/// The secret an agent proves itself with.
fn token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AGENT_TOKEN_HEADER)
        .and_then(|value| value.to_str().ok())
}

/// Whether a report comes from the agent it names; counted when it does not.
/// A report of an agent, parsed and held to the agent it names: only the holder of that
/// agent's secret speaks for it.
fn report<T: DeserializeOwned>(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    agent_of: impl Fn(&T) -> &str,
) -> Result<T, MesosError> {
    let report: T = parse(body)?;
    let agent_id = agent_of(&report);
    let mut master = lock(shared);
    if !master.agent_authentic(&AgentId::new(agent_id), token(headers)) {
        master.metrics.invalid_agent_reports += 1;
        tracing::warn!(
            agent = agent_id,
            "agent report without that agent's secret refused"
        );
        return Err(not_that_agent());
    }
    Ok(report)
}

fn not_that_agent() -> MesosError {
    MesosError::forbidden("this report does not come from the agent it names")
}

async fn subscribe(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let request: RegisterAgent<ReportedTask> = parse(&body)?;
    let overflows = lock(&shared).stream_overflows.clone();
    let (sender, receiver) = crate::stream::agent_stream(overflows);
    let outcome = lock(&shared).register_agent(request, token(&headers), sender.clone());
    drop(sender);
    match outcome {
        Ok((agent_id, generation)) => {
            // Made first: an agent gone while the commit is awaited is disconnected.
            let closer = shared.clone();
            let stream = ClosingStream::new(receiver, move || {
                lock(&closer).agent_disconnected(&agent_id, generation);
            });
            // The agent hears it is registered (commands queue behind) once its admission is
            // durable.
            super::committed(&shared).await?;
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/recordio"),
            );
            Ok(response)
        }
        Err(message) => {
            // A refused agent still gets the stream (it may carry a SHUTDOWN command).
            tracing::warn!(%message, "agent registration refused");
            Ok(Response::new(Body::from_stream(ClosingStream::new(
                receiver,
                || {},
            ))))
        }
    }
}

async fn ping(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let ping: Ping = parse(&body)?;
    let agent_id = AgentId::new(ping.agent_id);
    let mut master = lock(&shared);
    if master.agents.contains_key(&agent_id) && !master.agent_authentic(&agent_id, token(&headers))
    {
        master.metrics.invalid_agent_reports += 1;
        return Err(not_that_agent());
    }
    if master.agent_ping(&agent_id) {
        Ok(ok())
    } else {
        Err(MesosError::not_found(
            "agent is not connected; subscribe again",
        ))
    }
}

async fn status(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let update = report(&shared, &headers, &body, |u: &StatusUpdate| &u.agent_id)?;
    lock(&shared).agent_status_update(update);
    Ok(ok())
}

async fn statuses(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let batch = report(&shared, &headers, &body, |b: &StatusUpdates| &b.agent_id)?;
    let mut master = lock(&shared);
    for update in batch.updates {
        master.agent_status_update(StatusUpdate {
            agent_id: batch.agent_id.clone(),
            framework_id: update.framework_id,
            status: update.status,
        });
    }
    Ok(ok())
}

async fn message(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let message = report(&shared, &headers, &body, |m: &ExecutorMessage| &m.agent_id)?;
    lock(&shared).executor_message(message);
    Ok(ok())
}

async fn executor_exited(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    let exited = report(&shared, &headers, &body, |e: &ExecutorExited| &e.agent_id)?;
    lock(&shared).executor_exited(exited);
    Ok(ok())
}

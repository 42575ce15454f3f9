//! `POST /api/v1/executor`: the Mesos v1 executor API.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use agora_api::executor::Call;

use super::{Answer, MesosError, Shared};

/// Events queued for one executor at most.
const EXECUTOR_QUEUE: usize = agora_http::events::DEFAULT_QUEUE_BYTES;

pub(crate) async fn handle(State(agent): State<Shared>, headers: HeaderMap, body: Bytes) -> Answer {
    agora_http::mesos_content_type(&headers)?;
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(error) => {
            return Err(MesosError::bad_request(format!(
                "Failed to validate executor::Call: {error}"
            )));
        }
    };
    // Whether the call may speak for its executor is decided where the call acts on it, under
    // the agent's lock: nothing can change in between.
    let token = crate::executor_auth::bearer(&headers);
    match call.kind.as_str() {
        "SUBSCRIBE" => {
            // Bounded: an executor that stops reading is told why and cut off (it may
            // subscribe again), rather than growing the agent's memory.
            let farewell = agora_api::executor::Event::Error {
                error: agora_api::executor::ErrorEvent {
                    message: format!(
                        "this executor fell more than {} MB of events behind; subscribe again",
                        EXECUTOR_QUEUE >> 20
                    ),
                },
            };
            let (sender, receiver) = agora_http::events::bounded(
                EXECUTOR_QUEUE,
                agora_api::recordio::encode(&farewell.to_json()),
                agent.stream_overflows.clone(),
            );
            if let Err(refused) = agent.executor_subscribe(&call, token, sender) {
                return Err(refusal(refused));
            }
            let mut response = Response::new(Body::from_stream(receiver));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        "UPDATE" => match agent.executor_update(&call, token) {
            Ok(unsynced) => {
                // Accepted at once (the update is queued in order); ACKNOWLEDGED follows when
                // its checkpoint is on disk, and only that lets the executor forget it. The
                // executor's next update need not wait for a disk.
                tokio::spawn(async move {
                    let synced = tokio::task::spawn_blocking(move || {
                        for path in unsynced {
                            if let Err(error) = crate::checkpoint::sync(&path) {
                                tracing::error!(%error, path = %path.display(), "cannot sync a status update");
                            }
                        }
                    })
                    .await;
                    if synced.is_ok() {
                        agent.acknowledge_to_executor(&call);
                    }
                });
                Ok(accepted())
            }
            Err(refused) => Err(refusal(refused)),
        },
        "MESSAGE" => {
            agent.executor_admits(&call, token).map_err(refusal)?;
            if let Some(message) = call.message {
                crate::master_link::forward_executor_message(
                    &agent,
                    &call.framework_id.value,
                    &call.executor_id.value,
                    message.data,
                );
            }
            Ok(accepted())
        }
        _ => Ok(accepted()),
    }
}

/// A call refused: its status and why (a 401 says which scheme it wants).
fn refusal((status, message): (u16, &'static str)) -> MesosError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let refused = MesosError::new(status, message);
    if status == StatusCode::UNAUTHORIZED {
        refused.with_challenge("Bearer realm=\"mesos-agent-executor\"")
    } else {
        refused
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

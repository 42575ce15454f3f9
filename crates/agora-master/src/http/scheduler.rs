//! `POST /api/v1/scheduler`: the Mesos v1 scheduler API, with its exact status codes.

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use agora_api::scheduler::{Call, KNOWN_CALLS};
use agora_http::auth::Caller;
use agora_types::{AgentId, ExecutorId, FrameworkId, TaskId};

use super::{Answer, MesosError, accepted, accepts, check_content_type};
use crate::Shared;
use crate::core::lock;
use crate::stream::ClosingStream;

pub(crate) async fn handle(
    State(shared): State<Shared>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let principal = caller.and_then(|Extension(caller)| caller.principal);
    check_content_type(&headers)?;
    if let Some(kind) = peek_type(&body) {
        if kind == "UNKNOWN" {
            return Err(MesosError::new(
                StatusCode::NOT_IMPLEMENTED,
                "Received an unknown call type",
            ));
        }
        if !KNOWN_CALLS.contains(&kind.as_str()) {
            return Err(MesosError::bad_request(format!(
                "Failed to convert JSON into Call protobuf: unknown call type '{kind}'"
            )));
        }
    }
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(error) => {
            return Err(MesosError::bad_request(format!(
                "Failed to validate scheduler::Call: {error}"
            )));
        }
    };
    if call.kind == "SUBSCRIBE" {
        return subscribe(shared, &headers, call, principal).await;
    }
    let teardown = call.kind == "TEARDOWN";
    let answer = framework_call(&shared, &headers, call, principal)?;
    if teardown {
        // Gone for good once durable: a failover must not bring the framework back.
        super::committed(&shared).await?;
    }
    Ok(answer)
}

/// A call of a subscribed framework, under the master's lock.
fn framework_call(
    shared: &Shared,
    headers: &HeaderMap,
    call: Call,
    principal: Option<String>,
) -> Answer {
    let Some(framework_id) = call
        .framework_id
        .as_ref()
        .map(|id| FrameworkId::new(&id.value))
    else {
        return Err(MesosError::bad_request(
            "Expecting 'framework_id' to be present",
        ));
    };
    let mut master = lock(shared);
    let Some(framework) = master.frameworks.get(&framework_id) else {
        return Err(MesosError::bad_request("Framework cannot be found"));
    };
    // An authenticated caller speaks only for a framework of its own principal.
    if let (Some(authenticated), Some(registered)) = (&principal, &framework.info.principal)
        && authenticated != registered
    {
        return Err(MesosError::forbidden(format!(
            "Authenticated principal '{authenticated}' does not match principal \
                 '{registered}' set in `FrameworkInfo`"
        )));
    }
    let Some(stream) = &framework.stream else {
        return Err(MesosError::forbidden("Framework is not subscribed"));
    };
    let Some(stream_id) = headers.get("mesos-stream-id").and_then(|v| v.to_str().ok()) else {
        return Err(MesosError::bad_request(
            "All non-subscribe calls should include the 'Mesos-Stream-Id' header",
        ));
    };
    if stream_id != stream.id {
        return Err(MesosError::bad_request(format!(
            "The stream ID '{stream_id}' included in this request didn't match the stream ID currently associated with framework ID {framework_id}"
        )));
    }
    match call.kind.as_str() {
        "TEARDOWN" => master.remove_framework(&framework_id),
        "ACCEPT" => {
            if let Some(accept) = call.accept {
                master.accept(&framework_id, accept);
            }
        }
        "DECLINE" => {
            if let Some(decline) = call.decline {
                master.decline(&framework_id, decline);
            }
        }
        "REVIVE" => master.revive(
            &framework_id,
            &call.revive.map(|r| r.roles).unwrap_or_default(),
        ),
        "SUPPRESS" => master.suppress(
            &framework_id,
            &call.suppress.map(|r| r.roles).unwrap_or_default(),
        ),
        "KILL" => {
            if let Some(kill) = call.kill {
                master.kill_task(
                    &framework_id,
                    &TaskId::new(kill.task_id.value),
                    kill.kill_policy,
                );
            }
        }
        "SHUTDOWN" => {
            if let Some(shutdown) = call.shutdown {
                master.shutdown_executor(
                    &framework_id,
                    &AgentId::new(shutdown.agent_id.value),
                    &ExecutorId::new(shutdown.executor_id.value),
                );
            }
        }
        "ACKNOWLEDGE" => {
            if let Some(ack) = call.acknowledge {
                master.acknowledge(&framework_id, ack);
            }
        }
        "RECONCILE" => master.reconcile(
            &framework_id,
            call.reconcile.map(|r| r.tasks).unwrap_or_default(),
        ),
        "MESSAGE" => {
            if let Some(message) = call.message {
                master.framework_message(&framework_id, message);
            }
        }
        "UPDATE_FRAMEWORK" => {
            return Ok((
                StatusCode::OK,
                [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
            )
                .into_response());
        }
        // REQUEST is ignored by the built-in allocator, as in Mesos; inverse offers and
        // operation feedback have nothing to act on (no maintenance windows, no operation ids).
        _ => {}
    }
    Ok(accepted())
}

fn peek_type(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("type")?.as_str().map(str::to_owned)
}

async fn subscribe(
    shared: Shared,
    headers: &HeaderMap,
    call: Call,
    principal: Option<String>,
) -> Answer {
    if !accepts(headers, "application/json") {
        return Err(MesosError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow application/json",
        ));
    }
    if headers.contains_key("mesos-stream-id") {
        return Err(MesosError::bad_request(
            "Subscribe calls should not include the 'Mesos-Stream-Id' header",
        ));
    }
    let Some(mut subscribe) = call.subscribe else {
        return Err(MesosError::bad_request(
            "Expecting 'subscribe' to be present",
        ));
    };
    // An authenticated framework is its principal: one it names must be the same (Mesos'
    // rule), and one that names none is given it.
    let refused = match (&principal, &subscribe.framework_info.principal) {
        (Some(authenticated), Some(named)) if authenticated != named => Some(format!(
            "Framework principal '{named}' does not match authenticated principal \
             '{authenticated}'"
        )),
        (Some(authenticated), None) => {
            subscribe.framework_info.principal = Some(authenticated.clone());
            None
        }
        _ => None,
    };
    if let Some(message) = refused {
        return Err(MesosError::forbidden(message));
    }
    let (limit, overflows) = {
        let master = lock(&shared);
        (
            master.config.subscriber_queue_bytes,
            master.stream_overflows.clone(),
        )
    };
    let (sender, receiver) = crate::stream::scheduler_stream(limit, overflows);
    let outcome = lock(&shared).subscribe(
        subscribe.framework_info,
        subscribe.suppressed_roles,
        sender.clone(),
    );
    match outcome {
        Ok((framework_id, stream_id)) => {
            drop(sender);
            // Made first: a caller gone while the commit is awaited disconnects the framework.
            let closer = shared.clone();
            let closing_stream_id = stream_id.clone();
            let stream = ClosingStream::new(receiver, move || {
                lock(&closer).framework_disconnected(&framework_id, &closing_stream_id);
            });
            // SUBSCRIBED goes out once the framework's registration is durable.
            super::committed(&shared).await?;
            let mut response = Response::new(Body::from_stream(stream));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(value) = HeaderValue::from_str(&stream_id) {
                headers.insert("Mesos-Stream-Id", value);
            }
            Ok(response)
        }
        Err(refused) => {
            let event = agora_api::scheduler::Event::error(refused.0);
            let _ = sender.send(agora_api::recordio::encode(&event.to_json()));
            drop(sender);
            let stream = ClosingStream::new(receiver, || {});
            let mut response = Response::new(Body::from_stream(stream));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
    }
}

//! `POST /api/v1`: the Mesos v1 operator API (state queries, weights, quota, maintenance and
//! the SUBSCRIBE event stream that discovery and the UI follow).

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use agora_http::auth::Caller;
use agora_http::auth::acl::Action;
use agora_types::{AgentId, FrameworkId, Resource, Resources};

use super::{accepted, accepts, check_content_type, json_response, text};
use crate::core::lock;
use crate::stream::ClosingStream;
use crate::{Shared, metrics, views};

pub(crate) async fn handle(
    State(shared): State<Shared>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let principal = caller.and_then(|Extension(caller)| caller.principal);
    let principal = principal.as_deref();
    if let Err(response) = check_content_type(&headers) {
        return response;
    }
    let call: Value = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(error) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse body into JSON: {error}"),
            );
        }
    };
    let Some(kind) = call.get("type").and_then(Value::as_str).map(str::to_owned) else {
        return text(StatusCode::BAD_REQUEST, "Expecting 'type' to be present");
    };
    let payload = call
        .get(kind.to_lowercase())
        .cloned()
        .unwrap_or(Value::Null);
    let reply = |value: Value| json_response(&json!({"type": kind, kind.to_lowercase(): value}));
    // What the ACLs say of a change to `object` (a role, a framework's principal, an agent).
    let permits = |action: Action, object: &str| {
        let acls = lock(&shared).config.acls.clone();
        acls.permits(action, principal, Some(object))
    };
    let forbidden = |action: Action, object: &str| {
        text(
            StatusCode::FORBIDDEN,
            format!(
                "{} may not {} {object} ('{}' in the ACLs)",
                principal.unwrap_or("an unauthenticated caller"),
                kind.to_lowercase().replace('_', " "),
                action.key()
            ),
        )
    };
    match kind.as_str() {
        "SUBSCRIBE" => {
            let sees_all = {
                let master = lock(&shared);
                views::Viewer::new(&master.config.acls, principal).sees_all()
            };
            if !sees_all {
                return text(
                    StatusCode::FORBIDDEN,
                    "The operator event stream shows every framework and task: it needs \
                     'view_frameworks', 'view_tasks' and 'view_executors' for any user",
                );
            }
            subscribe(shared, &headers)
        }
        "GET_HEALTH" => reply(json!({"healthy": true})),
        "GET_VERSION" => reply(json!({"version_info": views::version_json()})),
        "GET_STATE" => {
            let master = lock(&shared);
            let acls = master.config.acls.clone();
            reply(views::get_state(
                &master,
                views::Viewer::new(&acls, principal),
            ))
        }
        "GET_AGENTS" => reply(views::get_agents(&lock(&shared))),
        "GET_FRAMEWORKS" => {
            let master = lock(&shared);
            let acls = master.config.acls.clone();
            reply(views::get_frameworks(
                &master,
                views::Viewer::new(&acls, principal),
            ))
        }
        "GET_TASKS" => {
            let master = lock(&shared);
            let acls = master.config.acls.clone();
            reply(views::get_tasks(
                &master,
                views::Viewer::new(&acls, principal),
            ))
        }
        "GET_EXECUTORS" => {
            let master = lock(&shared);
            let acls = master.config.acls.clone();
            reply(views::get_executors(
                &master,
                views::Viewer::new(&acls, principal),
            ))
        }
        "GET_MASTER" => {
            let master = lock(&shared);
            reply(json!({
                "master_info": master.info,
                "start_time": master.start_time,
                "elected_time": master.start_time,
            }))
        }
        "GET_METRICS" => {
            let metrics: Vec<Value> = metrics::snapshot(&lock(&shared))
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            reply(json!({"metrics": metrics}))
        }
        "GET_FLAGS" => {
            let flags = views::flags(&lock(&shared));
            let flags: Vec<Value> = flags
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(name, value)| json!({"name": name, "value": value}))
                        .collect()
                })
                .unwrap_or_default();
            reply(json!({"flags": flags}))
        }
        "GET_ROLES" => reply(json!({"roles": lock(&shared).roles_json()})),
        "GET_WEIGHTS" => {
            let master = lock(&shared);
            let weights: Vec<Value> = master
                .weights
                .iter()
                .map(|(role, weight)| json!({"role": role, "weight": weight}))
                .collect();
            reply(json!({"weight_infos": weights}))
        }
        "UPDATE_WEIGHTS" => match parse_weights(&payload) {
            Ok(weights) => {
                if let Some((role, _)) = weights
                    .iter()
                    .find(|(role, _)| !permits(Action::UpdateWeights, role))
                {
                    return forbidden(Action::UpdateWeights, role);
                }
                let mut master = lock(&shared);
                for (role, weight) in weights {
                    master.set_weight(&role, weight);
                }
                accepted()
            }
            Err(message) => text(StatusCode::BAD_REQUEST, message),
        },
        "GET_QUOTA" => {
            let master = lock(&shared);
            let configs: Vec<Value> = master
                .quotas
                .values()
                .map(|quota| {
                    json!({
                        "role": quota.role,
                        "guarantees": quantities(&quota.guarantees),
                        "limits": quota.limits.as_ref().map(quantities).unwrap_or_else(|| json!({})),
                    })
                })
                .collect();
            reply(json!({"status": {"configs": configs}}))
        }
        "UPDATE_QUOTA" => match parse_quotas(&payload) {
            Ok(quotas) => {
                if let Some((role, _, _)) = quotas
                    .iter()
                    .find(|(role, _, _)| !permits(Action::UpdateQuotas, role))
                {
                    return forbidden(Action::UpdateQuotas, role);
                }
                let mut master = lock(&shared);
                for (role, guarantees, limits) in quotas {
                    master.set_quota(&role, guarantees, limits);
                }
                ok_empty()
            }
            Err(message) => text(StatusCode::BAD_REQUEST, message),
        },
        "TEARDOWN" => match id_field(&payload, "framework_id") {
            Some(id) => {
                let framework_id = FrameworkId::new(id);
                let owner = match lock(&shared).frameworks.get(&framework_id) {
                    Some(framework) => framework.info.principal.clone().unwrap_or_default(),
                    None => {
                        return text(
                            StatusCode::BAD_REQUEST,
                            format!("Framework {framework_id} is not registered"),
                        );
                    }
                };
                if !permits(Action::TeardownFrameworks, &owner) {
                    return forbidden(Action::TeardownFrameworks, framework_id.as_str());
                }
                let mut master = lock(&shared);
                master.remove_framework(&framework_id);
                ok_empty()
            }
            None => text(
                StatusCode::BAD_REQUEST,
                "Expecting 'teardown.framework_id' to be present",
            ),
        },
        "MARK_AGENT_GONE" | "DEACTIVATE_AGENT" | "REACTIVATE_AGENT" | "DRAIN_AGENT" => {
            let Some(agent_id) = id_field(&payload, "agent_id") else {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Expecting '{}.agent_id' to be present", kind.to_lowercase()),
                );
            };
            let action = if kind == "MARK_AGENT_GONE" {
                Action::MarkAgentsGone
            } else {
                Action::DrainAgents
            };
            if !permits(action, &agent_id) {
                return forbidden(action, &agent_id);
            }
            let agent_id = AgentId::new(agent_id);
            let mut master = lock(&shared);
            let outcome = match kind.as_str() {
                "MARK_AGENT_GONE" => master.mark_agent_gone(&agent_id),
                "DEACTIVATE_AGENT" => master.set_agent_deactivated(&agent_id, true),
                "REACTIVATE_AGENT" => master.set_agent_deactivated(&agent_id, false),
                _ => {
                    let grace = payload.get("max_grace_period").and_then(|grace| {
                        grace
                            .get("nanoseconds")
                            .and_then(Value::as_i64)
                            .or_else(|| {
                                grace
                                    .get("seconds")
                                    .and_then(Value::as_i64)
                                    .map(|secs| secs * 1_000_000_000)
                            })
                    });
                    let outcome = master.drain_agent(&agent_id, grace);
                    if outcome.is_ok()
                        && payload.get("mark_gone").and_then(Value::as_bool) == Some(true)
                    {
                        master.mark_gone_after_drain(&agent_id);
                    }
                    outcome
                }
            };
            match outcome {
                Ok(()) => ok_empty(),
                Err(message) => text(StatusCode::BAD_REQUEST, message),
            }
        }
        "UNKNOWN" => text(StatusCode::NOT_IMPLEMENTED, "Received an unknown call type"),
        other => text(
            StatusCode::NOT_IMPLEMENTED,
            format!("Operator call {other} is not supported by agora yet"),
        ),
    }
}

fn ok_empty() -> Response {
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

fn id_field(payload: &Value, key: &str) -> Option<String> {
    payload.get(key)?.get("value")?.as_str().map(str::to_owned)
}

fn subscribe(shared: Shared, headers: &HeaderMap) -> Response {
    let recordio =
        accepts(headers, "application/recordio") && headers.get(header::ACCEPT).is_some();
    if !recordio && !accepts(headers, "application/json") {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow application/json or application/recordio",
        );
    }
    let (limit, overflows) = {
        let master = lock(&shared);
        (
            master.config.subscriber_queue_bytes,
            master.stream_overflows.clone(),
        )
    };
    let (sender, receiver) = crate::stream::operator_stream(limit, overflows);
    {
        let mut master = lock(&shared);
        let subscribed = json!({
            "type": "SUBSCRIBED",
            "subscribed": {
                // The subscriber was checked to see everything.
                "get_state": views::get_state(&master, views::Viewer::everything()),
                "heartbeat_interval_seconds": master.config.heartbeat_interval.as_secs_f64(),
            }
        });
        let _ = sender.send(agora_api::recordio::encode(
            &agora_api::scheduler::ascii_json(&subscribed),
        ));
        master.operator_streams.push(sender);
    }
    let mut response = Response::new(Body::from_stream(ClosingStream::new(receiver, || {})));
    let headers = response.headers_mut();
    if recordio {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/recordio"),
        );
        headers.insert(
            "Message-Content-Type",
            HeaderValue::from_static("application/json"),
        );
    } else {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

fn parse_weights(payload: &Value) -> Result<Vec<(String, f64)>, String> {
    let infos = payload
        .get("weight_infos")
        .and_then(Value::as_array)
        .ok_or("Expecting 'update_weights.weight_infos' to be present")?;
    let mut weights = Vec::new();
    for info in infos {
        let role = info
            .get("role")
            .and_then(Value::as_str)
            .ok_or("Every weight_info needs a 'role'")?;
        crate::core::validate_role(role)?;
        let weight = info
            .get("weight")
            .and_then(Value::as_f64)
            .ok_or("Every weight_info needs a numeric 'weight'")?;
        if !(weight > 0.0 && weight.is_finite()) {
            return Err(format!(
                "Weight of role '{role}' must be a positive number, got {weight}"
            ));
        }
        weights.push((role.to_owned(), weight));
    }
    Ok(weights)
}

/// `{"cpus": {"value": 1}, "mem": {"value": 256}}` → scalar resources.
fn parse_quantities(value: Option<&Value>, what: &str) -> Result<Resources, String> {
    let mut resources = Resources::new();
    let Some(map) = value.and_then(Value::as_object) else {
        return Ok(resources);
    };
    for (name, quantity) in map {
        let amount = quantity
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("{what} '{name}' needs a numeric 'value'"))?;
        if !(amount >= 0.0 && amount.is_finite()) {
            return Err(format!("{what} '{name}' must be a non-negative number"));
        }
        resources.push(Resource::scalar(name.clone(), amount));
    }
    Ok(resources)
}

fn quantities(resources: &Resources) -> Value {
    let map: serde_json::Map<String, Value> = resources
        .scalar_names()
        .into_iter()
        .map(|name| {
            (
                name.to_owned(),
                json!({"value": resources.scalar(name).to_f64()}),
            )
        })
        .collect();
    Value::Object(map)
}

type QuotaUpdate = (String, Resources, Option<Resources>);

fn parse_quotas(payload: &Value) -> Result<Vec<QuotaUpdate>, String> {
    let configs = payload
        .get("quota_configs")
        .and_then(Value::as_array)
        .ok_or("Expecting 'update_quota.quota_configs' to be present")?;
    let mut quotas = Vec::new();
    for config in configs {
        let role = config
            .get("role")
            .and_then(Value::as_str)
            .ok_or("Every quota config needs a 'role'")?;
        crate::core::validate_role(role)?;
        if role == "*" {
            return Err("Quota cannot be set for the default role '*'".into());
        }
        let guarantees = parse_quantities(config.get("guarantees"), "guarantee")?;
        let limits = match config.get("limits") {
            Some(limits) if limits.as_object().is_some_and(|m| !m.is_empty()) => {
                Some(parse_quantities(Some(limits), "limit")?)
            }
            _ => None,
        };
        if let Some(limits) = &limits {
            for name in guarantees.scalar_names() {
                if limits.scalar_names().contains(name)
                    && guarantees.scalar(name) > limits.scalar(name)
                {
                    return Err(format!(
                        "Role '{role}': guarantee of '{name}' exceeds its limit"
                    ));
                }
            }
        }
        quotas.push((role.to_owned(), guarantees, limits));
    }
    Ok(quotas)
}

//! `POST /api/v1`: the Mesos v1 operator API (state queries, weights, quota, maintenance and
//! the SUBSCRIBE event stream that discovery and the UI follow).

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Value, json};

use agora_api::operator::{Call, QuotaConfig, WeightInfo};
use agora_http::auth::Caller;
use agora_http::auth::acl::Action;
use agora_types::{AgentId, FrameworkId, Resource, Resources};

use super::{Answer, MesosError, accepted, accepts, check_content_type, json_response};
use crate::core::{UnknownAgent, lock, validate_role};
use crate::stream::ClosingStream;
use crate::views::Scope;
use crate::{Shared, metrics, views};

/// Who calls, and what the reply is called: what every call's handler needs.
struct Context<'a> {
    shared: &'a Shared,
    principal: Option<&'a str>,
    kind: &'a str,
}

impl Context<'_> {
    /// `{"type": KIND, "kind": value}`.
    fn reply(&self, value: Value) -> Answer {
        Ok(json_response(
            &json!({"type": self.kind, self.kind.to_lowercase(): value}),
        ))
    }

    /// What the ACLs say of a change to `object` (a role, a framework's principal, an agent).
    fn permits(&self, action: Action, object: &str) -> bool {
        let acls = lock(self.shared).config.acls.clone();
        acls.permits(action, self.principal, Some(object))
    }

    fn forbidden(&self, action: Action, object: &str) -> MesosError {
        MesosError::forbidden(format!(
            "{} may not {} {object} ('{}' in the ACLs)",
            self.principal.unwrap_or("an unauthenticated caller"),
            self.kind.to_lowercase().replace('_', " "),
            action.key()
        ))
    }

    /// `{"type": KIND, "kind": …}` with the caller's view of the master, streamed.
    fn view(
        &self,
        scope: views::Scope,
        render: impl FnOnce(&views::Capture, views::Viewer, &mut views::Out) -> views::Written
        + Send
        + 'static,
    ) -> Answer {
        let kind = self.kind.to_owned();
        Ok(super::streamed(
            self.shared,
            scope,
            self.principal.map(str::to_owned),
            move |capture, viewer, out| {
                out.raw("{")?;
                out.key("type", true)?;
                out.value(&kind)?;
                out.key(&kind.to_lowercase(), false)?;
                render(capture, viewer, out)?;
                out.raw("}")
            },
        ))
    }
}

pub(crate) async fn handle(
    State(shared): State<Shared>,
    caller: Option<Extension<Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let principal = caller.and_then(|Extension(caller)| caller.principal);
    check_content_type(&headers)?;
    let call = match Call::parse(&body) {
        Ok(call) => call,
        Err(error) => return Err(MesosError::bad_request(error.to_string())),
    };
    let context = Context {
        shared: &shared,
        principal: principal.as_deref(),
        kind: call.kind(),
    };
    let answer = match &call {
        Call::Subscribe => subscribe_call(&context, &headers),
        Call::GetHealth => context.reply(json!({"healthy": true})),
        Call::GetVersion => context.reply(json!({"version_info": views::version_json()})),
        Call::GetState => context.view(Scope::ALL, views::get_state),
        Call::GetAgents => context.view(Scope::ALL, |capture, _, out| {
            views::get_agents(capture, out)
        }),
        Call::GetFrameworks => context.view(Scope::TASKS, views::get_frameworks),
        Call::GetTasks => context.view(Scope::TASKS, views::get_tasks),
        Call::GetExecutors => context.view(Scope::FRAMEWORKS, views::get_executors),
        Call::GetMaster => get_master(&context),
        Call::GetMetrics => get_metrics(&context),
        Call::GetFlags => get_flags(&context),
        Call::GetRoles => context.reply(json!({"roles": lock(&shared).roles_json()})),
        Call::GetWeights => get_weights(&context),
        Call::UpdateWeights(weights) => update_weights(&context, weights),
        Call::GetQuota => get_quota(&context),
        Call::UpdateQuota(quotas) => update_quota(&context, quotas),
        Call::Teardown { framework_id } => teardown(&context, framework_id),
        Call::MarkAgentGone { agent_id } => {
            change_agent(&context, agent_id, Action::MarkAgentsGone, |master, id| {
                master.mark_agent_gone(id)
            })
        }
        Call::DeactivateAgent { agent_id } => {
            change_agent(&context, agent_id, Action::DrainAgents, |master, id| {
                master.set_agent_deactivated(id, true)
            })
        }
        Call::ReactivateAgent { agent_id } => {
            change_agent(&context, agent_id, Action::DrainAgents, |master, id| {
                master.set_agent_deactivated(id, false)
            })
        }
        Call::DrainAgent {
            agent_id,
            max_grace_period_ns,
            mark_gone,
        } => change_agent(&context, agent_id, Action::DrainAgents, |master, id| {
            master.drain_agent(id, *max_grace_period_ns)?;
            if *mark_gone {
                master.mark_gone_after_drain(id);
            }
            Ok(())
        }),
        Call::Unknown => Err(MesosError::new(
            StatusCode::NOT_IMPLEMENTED,
            "Received an unknown call type",
        )),
        Call::Unsupported(other) => Err(MesosError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Operator call {other} is not supported by agora yet"),
        )),
    }?;
    // A change is answered once it is durable (weights, quota, agents marked gone, ...).
    super::committed(&shared).await?;
    Ok(answer)
}

/// SUBSCRIBE: the event stream shows everything, so only a caller who sees everything gets it.
fn subscribe_call(context: &Context, headers: &HeaderMap) -> Answer {
    let sees_all = {
        let master = lock(context.shared);
        views::Viewer::new(&master.config.acls, context.principal).sees_all()
    };
    if !sees_all {
        return Err(MesosError::forbidden(
            "The operator event stream shows every framework and task: it needs \
             'view_frameworks', 'view_tasks' and 'view_executors' for any user",
        ));
    }
    subscribe(context.shared.clone(), headers)
}

fn get_master(context: &Context) -> Answer {
    let master = lock(context.shared);
    context.reply(json!({
        "master_info": master.info,
        "start_time": master.start_time,
        "elected_time": master.start_time,
    }))
}

fn get_metrics(context: &Context) -> Answer {
    let metrics: Vec<Value> = metrics::snapshot(&lock(context.shared))
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    context.reply(json!({"metrics": metrics}))
}

fn get_flags(context: &Context) -> Answer {
    let flags = views::flags(&lock(context.shared));
    let flags: Vec<Value> = flags
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect()
        })
        .unwrap_or_default();
    context.reply(json!({"flags": flags}))
}

fn get_weights(context: &Context) -> Answer {
    let master = lock(context.shared);
    let weights: Vec<Value> = master
        .weights
        .iter()
        .map(|(role, weight)| json!({"role": role, "weight": weight}))
        .collect();
    context.reply(json!({"weight_infos": weights}))
}

/// Every role a change names is a valid one that the caller may change as `action`.
fn check_roles<'a>(
    context: &Context,
    roles: impl Iterator<Item = &'a str> + Clone,
    action: Action,
) -> Result<(), MesosError> {
    if let Some(invalid) = roles.clone().find_map(|role| validate_role(role).err()) {
        return Err(MesosError::bad_request(invalid.to_string()));
    }
    // One copy of the ACLs for every role, not one each.
    let acls = lock(context.shared).config.acls.clone();
    match roles
        .into_iter()
        .find(|role| !acls.permits(action, context.principal, Some(role)))
    {
        Some(refused) => Err(context.forbidden(action, refused)),
        None => Ok(()),
    }
}

fn update_weights(context: &Context, weights: &[WeightInfo]) -> Answer {
    let roles = weights.iter().map(|w| w.role.as_str());
    check_roles(context, roles, Action::UpdateWeights)?;
    let mut master = lock(context.shared);
    for WeightInfo { role, weight } in weights {
        master.set_weight(role, *weight);
    }
    Ok(accepted())
}

fn get_quota(context: &Context) -> Answer {
    let master = lock(context.shared);
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
    context.reply(json!({"status": {"configs": configs}}))
}

fn update_quota(context: &Context, quotas: &[QuotaConfig]) -> Answer {
    let roles = quotas.iter().map(|q| q.role.as_str());
    check_roles(context, roles, Action::UpdateQuotas)?;
    let mut master = lock(context.shared);
    for quota in quotas {
        let limits = quota.limits.as_ref().map(resources);
        master.set_quota(&quota.role, resources(&quota.guarantees), limits);
    }
    Ok(ok_empty())
}

/// TEARDOWN: allowed to whom the ACLs let tear down the framework's principal.
fn teardown(context: &Context, framework_id: &str) -> Answer {
    let framework_id = FrameworkId::new(framework_id);
    let owner = match lock(context.shared).frameworks.get(&framework_id) {
        Some(framework) => framework.info.principal.clone().unwrap_or_default(),
        None => {
            return Err(MesosError::bad_request(format!(
                "Framework {framework_id} is not registered"
            )));
        }
    };
    if !context.permits(Action::TeardownFrameworks, &owner) {
        return Err(context.forbidden(Action::TeardownFrameworks, framework_id.as_str()));
    }
    lock(context.shared).remove_framework(&framework_id);
    Ok(ok_empty())
}

/// A maintenance call on one agent, when the ACLs allow `action` on it.
fn change_agent(
    context: &Context,
    agent_id: &str,
    action: Action,
    change: impl FnOnce(&mut crate::core::Master, &AgentId) -> Result<(), UnknownAgent>,
) -> Answer {
    if !context.permits(action, agent_id) {
        return Err(context.forbidden(action, agent_id));
    }
    let agent_id = AgentId::new(agent_id);
    match change(&mut lock(context.shared), &agent_id) {
        Ok(()) => Ok(ok_empty()),
        Err(unknown) => Err(MesosError::bad_request(unknown.to_string())),
    }
}

fn ok_empty() -> Response {
    let mut response = Response::new(Body::empty());
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}

/// The operator stream's first event: the whole state.
fn subscribed_event(
    capture: &views::Capture,
    heartbeat: std::time::Duration,
    out: &mut views::Out,
) -> views::Written {
    out.raw("{\"type\":\"SUBSCRIBED\",\"subscribed\":{")?;
    out.key("get_state", true)?;
    views::get_state(capture, views::Viewer::everything(), out)?;
    out.key("heartbeat_interval_seconds", false)?;
    out.value(&heartbeat.as_secs_f64())?;
    out.raw("}}")
}

fn subscribe(shared: Shared, headers: &HeaderMap) -> Answer {
    let recordio =
        accepts(headers, "application/recordio") && headers.get(header::ACCEPT).is_some();
    if !recordio && !accepts(headers, "application/json") {
        return Err(MesosError::new(
            StatusCode::NOT_ACCEPTABLE,
            "Expecting 'Accept' to allow application/json or application/recordio",
        ));
    }
    let (limit, overflows) = {
        let master = lock(&shared);
        (
            master.config.subscriber_queue_bytes,
            master.stream_overflows.clone(),
        )
    };
    let (sender, receiver) = crate::stream::operator_stream(limit, overflows);
    // The state is captured and the stream joins the subscribers in one hold of the lock, so
    // the events queued after SUBSCRIBED follow from the state it shows. It is rendered after
    // the lock (at 100,000 tasks, 112 MB and more than a second) and sent first, outside the
    // queue, whose bound is for events a subscriber falls behind on.
    let (capture, heartbeat) = {
        let mut master = lock(&shared);
        let capture = views::Capture::take(&master, views::Scope::ALL);
        master.operator_streams.push(sender);
        (capture, master.config.heartbeat_interval)
    };
    let runtime = tokio::runtime::Handle::current();
    let subscribed = tokio::task::spawn_blocking(move || {
        // One of the renders at once, as every state document (this one is whole in memory).
        let _permit = runtime.block_on(super::RENDERING.acquire());
        // The subscriber was checked to see everything.
        let mut out = views::Out::memory();
        let _ = subscribed_event(&capture, heartbeat, &mut out);
        agora_api::recordio::encode(&out.into_bytes())
    });
    let events = futures_util::stream::once(async move {
        match subscribed.await {
            Ok(frame) => futures_util::stream::iter([Ok(frame)])
                .chain(ClosingStream::new(receiver, || {}))
                .left_stream(),
            // No SUBSCRIBED (its render failed), no events: the stream ends and the client
            // subscribes again.
            Err(_) => futures_util::stream::empty().right_stream(),
        }
    })
    .flatten();
    let mut response = Response::new(Body::from_stream(events));
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
    Ok(response)
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

/// Amounts by name as scalar resources.
fn resources(amounts: &std::collections::BTreeMap<String, f64>) -> Resources {
    let mut resources = Resources::new();
    for (name, amount) in amounts {
        resources.push(Resource::scalar(name.clone(), *amount));
    }
    resources
}

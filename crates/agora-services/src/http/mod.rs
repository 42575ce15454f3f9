//! The Marathon `/v2` HTTP API: apps, tasks, deployments, the queue and events here; groups in
//! `groups.rs`.

mod answer;
mod authorize;
mod durable;
mod groups;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use serde_json::{Value, json};

use agora_api::docker_policy::Field;
use agora_api::marathon::app::{AppDefinition, merge_partial};
use agora_api::marathon::errors::Violations;
use agora_api::marathon::path;
use agora_http::Query;
use agora_plan::service_ports;

use crate::core::Services;
use crate::deploy::ChangeError;
use crate::{Shared, views};

pub(crate) use answer::MarathonError;
use answer::{Answer, Callback, Changing, answer, deployment_result, parse_body, reply};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v2/apps", get(list_apps).post(create_app).put(update_apps))
        .route("/v2/apps/{*rest}", any(app_resource))
        .route("/v2/groups", any(groups::root))
        .route("/v2/groups/{*rest}", any(groups::resource))
        .route("/v2/tasks", get(list_tasks))
        .route("/v2/tasks/delete", post(delete_tasks))
        .route("/v2/deployments", get(list_deployments))
        .route("/v2/deployments/{id}", delete(cancel_deployment))
        .route("/v2/events", get(events))
        .route(
            "/v2/eventSubscriptions",
            get(list_subscriptions).post(subscribe).delete(unsubscribe),
        )
        .route("/v2/queue", get(queue))
        .route("/v2/queue/{*rest}", delete(reset_delay))
        .route("/v2/info", get(info))
        .route("/v2/leader", get(leader))
        .route("/ping", get(ping))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            durable::committed,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            authorize::authorize,
        ))
        .with_state(shared)
}

/// Parses, normalises and validates a definition, and assigns its service ports.
fn prepare(shared: &Shared, body: &Value, parent: &str) -> Result<AppDefinition, MarathonError> {
    let admission = shared.lock().admission.clone();
    let mut definition =
        parse_definition(body, parent, &admission).map_err(MarathonError::invalid)?;
    assign_ports(&shared.lock(), &mut definition, &BTreeMap::new())
        .map_err(|message| MarathonError::invalid_at("/portDefinitions", message))?;
    Ok(definition)
}

/// Parses, normalises and validates a definition — held to what apps may ask of their hosts
/// (`admission`: Docker's reach, secrets); service ports are not assigned yet.
fn parse_definition(
    body: &Value,
    parent: &str,
    admission: &crate::core::Admission,
) -> Result<AppDefinition, Violations> {
    let mut definition = AppDefinition::parse(body)?;
    definition.normalize(parent)?;
    let mut violations = definition.validate();
    if violations.is_empty() {
        for used in definition.secret_env() {
            let dir = admission.secrets.as_deref();
            if let Err(reason) = agora_secrets::check_use(dir, &definition.id, &used.source) {
                let at = match dir {
                    None => format!("/env/{}", used.variable),
                    Some(_) => format!("/secrets/{}/source", used.secret),
                };
                violations.add(at, reason);
            }
        }
    }
    if let Some(container) = &definition.container {
        let mesos = agora_api::marathon::container::to_mesos(container, &[]);
        for refusal in admission.docker.refusals(&mesos) {
            let at = match refusal.field {
                Field::Privileged => "/container/docker/privileged".to_owned(),
                Field::Parameter(index) => format!("/container/docker/parameters({index})"),
                Field::Volume(index) => format!("/container/volumes({index})/hostPath"),
            };
            violations.add(at, refusal.reason);
        }
    }
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(definition)
}

/// Assigns an app's service ports, keeping its previous ones where it can and avoiding those
/// of every other app and `also_taken` (apps of the same request).
fn assign_ports(
    services: &Services,
    definition: &mut AppDefinition,
    also_taken: &BTreeMap<u64, String>,
) -> Result<(), String> {
    let requested = definition.service_ports();
    let previous = services
        .apps
        .get(&definition.id)
        .map(|app| app.service_ports())
        .unwrap_or_default();
    let mut taken = services.service_ports_taken(&definition.id);
    taken.extend(also_taken.iter().map(|(port, app)| (*port, app.clone())));
    let assigned =
        service_ports::assign(&requested, &previous, &taken, service_ports::DEFAULT_RANGE)
            .map_err(|e| e.to_string())?;
    definition.set_service_ports(&assigned);
    Ok(())
}

async fn list_apps(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let embed = views::Embed::from_query(&params);
    let id_filter = params
        .iter()
        .find(|(k, _)| k == "id")
        .map(|(_, v)| v.clone());
    let cmd_filter = params
        .iter()
        .find(|(k, _)| k == "cmd")
        .map(|(_, v)| v.clone());
    let services = shared.lock();
    let apps: Vec<Value> = services
        .apps
        .values()
        .filter(|app| {
            id_filter
                .as_ref()
                .is_none_or(|f| app.definition.id.contains(f.as_str()))
        })
        .filter(|app| {
            cmd_filter.as_ref().is_none_or(|f| {
                app.definition
                    .cmd
                    .as_deref()
                    .unwrap_or("")
                    .contains(f.as_str())
            })
        })
        .map(|app| views::app(&services, app, embed))
        .collect();
    reply(StatusCode::OK, &json!({"apps": apps}))
}

async fn create_app(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Changing>,
    body: Bytes,
) -> Answer {
    let body = parse_body(&body)?;
    let definition = prepare(&shared, &body, "/")?;
    let id = definition.id.clone();
    let mut services = shared.lock();
    if services.apps.contains_key(&id) {
        return Err(MarathonError::new(
            StatusCode::CONFLICT,
            format!("An app with id [{id}] already exists."),
        ));
    }
    match services.put_app(definition, params.force) {
        Ok(_) => {
            let value = services
                .apps
                .get(&id)
                .map(|app| views::app(&services, app, views::Embed::default()))
                .unwrap_or_default();
            drop(services);
            shared.wake.notify_one();
            let mut response = reply(StatusCode::CREATED, &value);
            if let Ok(location) = HeaderValue::from_str(&id) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Err(e) => Err(MarathonError::change(e, &id)),
    }
}

/// Everything under `/v2/apps/<id>`: the app itself, `/restart`, `/tasks[/<task>]`,
/// `/versions[/<version>]`.
async fn app_resource(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Query<Changing>,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    let rest = format!("/{}", rest.trim_matches('/'));
    let (id, suffix) = split_suffix(&rest);
    match (method.as_str(), suffix.as_slice()) {
        ("GET", []) => {
            let services = shared.lock();
            // Marathon always embeds one app's tasks and last failure ("for compatibility").
            let embed = views::Embed {
                tasks: true,
                last_task_failure: true,
                ..views::Embed::from_query(&pairs)
            };
            match services.apps.get(&id) {
                Some(app) => Ok(reply(
                    StatusCode::OK,
                    &json!({"app": views::app(&services, app, embed)}),
                )),
                None => Err(MarathonError::app_not_found(&id)),
            }
        }
        ("PUT" | "PATCH", []) => update_app(&shared, &id, &params, &body, method == Method::PATCH),
        ("DELETE", []) => {
            let result = shared.lock().delete_app(&id, params.force);
            shared.wake.notify_one();
            answer(result, &id)
        }
        ("POST", ["restart"]) => {
            let result = shared.lock().restart_app(&id, params.force);
            shared.wake.notify_one();
            answer(result, &id)
        }
        ("GET", ["tasks"]) => {
            let services = shared.lock();
            if !services.apps.contains_key(&id) {
                return Err(MarathonError::app_not_found(&id));
            }
            let tasks: Vec<Value> = services
                .instances
                .values()
                .filter(|i| i.app_id == id)
                .map(|i| views::task(&services, i))
                .collect();
            Ok(reply(StatusCode::OK, &json!({"tasks": tasks})))
        }
        ("DELETE", ["tasks"]) => {
            let services = shared.lock();
            if !services.apps.contains_key(&id) {
                return Err(MarathonError::app_not_found(&id));
            }
            let host = params.host.as_ref();
            let ids: Vec<String> = services
                .instances
                .values()
                .filter(|i| i.app_id == id && host.is_none_or(|h| &i.host == h))
                .map(|i| i.task_id.clone())
                .collect();
            drop(services);
            Ok(kill(&shared, &ids, params.scale))
        }
        ("DELETE", ["tasks", task_id]) => {
            if shared
                .lock()
                .instances
                .get(*task_id)
                .is_none_or(|i| i.app_id != id)
            {
                return Err(MarathonError::not_found(format!(
                    "Task '{task_id}' does not exist"
                )));
            }
            Ok(kill(&shared, &[(*task_id).to_owned()], params.scale))
        }
        ("GET", ["versions"]) => {
            let services = shared.lock();
            match services.apps.get(&id) {
                Some(app) => {
                    let mut versions: Vec<String> = app
                        .versions
                        .iter()
                        .filter_map(|v| v.version.clone())
                        .collect();
                    versions.push(app.version().to_owned());
                    versions.reverse();
                    Ok(reply(StatusCode::OK, &json!({"versions": versions})))
                }
                None => Err(MarathonError::app_not_found(&id)),
            }
        }
        ("GET", ["versions", version]) => {
            let services = shared.lock();
            let Some(app) = services.apps.get(&id) else {
                return Err(MarathonError::app_not_found(&id));
            };
            let found = std::iter::once(&app.definition)
                .chain(app.versions.iter())
                .find(|d| d.version.as_deref() == Some(*version));
            match found {
                Some(definition) => Ok(reply(
                    StatusCode::OK,
                    &serde_json::to_value(definition).unwrap_or_default(),
                )),
                None => Err(MarathonError::not_found(format!(
                    "App '{id}' does not exist in version {version}"
                ))),
            }
        }
        _ => Err(MarathonError::not_found(format!(
            "No resource at /v2/apps{rest} for {method}"
        ))),
    }
}

/// Splits `/prod/web/tasks/x` into (`/prod/web`, ["tasks", "x"]) for the known sub-resources.
fn split_suffix(rest: &str) -> (String, Vec<&str>) {
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    for (index, segment) in segments.iter().enumerate() {
        if index > 0 && matches!(*segment, "tasks" | "restart" | "versions") {
            return (
                format!("/{}", segments[..index].join("/")),
                segments[index..].to_vec(),
            );
        }
    }
    (rest.to_owned(), Vec::new())
}

fn update_app(
    shared: &Shared,
    id: &str,
    params: &Changing,
    body: &[u8],
    always_partial: bool,
) -> Answer {
    let patch = parse_body(body)?;
    let force = params.force;
    // `{"version": V}`: roll back to that version as a new one.
    if let Some(version) = patch.get("version").and_then(Value::as_str)
        && patch.as_object().is_some_and(|o| o.len() == 1)
    {
        let definition = {
            let services = shared.lock();
            let Some(app) = services.apps.get(id) else {
                return Err(MarathonError::app_not_found(id));
            };
            app.versions
                .iter()
                .find(|d| d.version.as_deref() == Some(version))
                .cloned()
        };
        let Some(mut definition) = definition else {
            return Err(MarathonError::not_found(format!(
                "App '{id}' does not exist in version {version}"
            )));
        };
        definition.version = None;
        let result = shared.lock().put_app(definition, force);
        shared.wake.notify_one();
        return answer(result, id);
    }
    let partial = always_partial || params.partial_update;
    let existing = shared.lock().definition_json(id);
    let body = merged_body(existing.as_ref(), &patch, id, partial);
    let definition = prepare(shared, &body, path::parent(id))?;
    let created = existing.is_none();
    let result = shared.lock().put_app(definition, force);
    shared.wake.notify_one();
    match result {
        Ok((deployment, version)) => {
            let mut response = deployment_result(&deployment, &version);
            if created {
                *response.status_mut() = StatusCode::CREATED;
            }
            Ok(response)
        }
        Err(e) => Err(MarathonError::change(e, id)),
    }
}

/// The body an update stands for: merged into the current definition when partial, with the
/// id from the path and no `version` (which would mean a rollback).
fn merged_body(existing: Option<&Value>, patch: &Value, id: &str, partial: bool) -> Value {
    let mut body = match (existing, partial) {
        (Some(current), true) => merge_partial(current, patch),
        _ => patch.clone(),
    };
    if let Some(map) = body.as_object_mut() {
        map.insert("id".into(), json!(id));
        map.remove("version");
    }
    body
}

/// `PUT /v2/apps`: creates or updates several apps (an array of definitions) in one
/// deployment; every problem is reported with the item's index (`/1/cpus`).
async fn update_apps(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Changing>,
    body: Bytes,
) -> Answer {
    let body = parse_body(&body)?;
    let mut violations = Violations::default();
    let Some(items) = body.as_array() else {
        return Err(MarathonError::invalid_at(
            "/",
            "must be an array of app definitions",
        ));
    };
    let partial = params.partial_update;
    let mut changes = Vec::new();
    {
        let services = shared.lock();
        let mut ports: BTreeMap<u64, String> = BTreeMap::new();
        for (index, item) in items.iter().enumerate() {
            let raw = item.get("id").and_then(Value::as_str).unwrap_or_default();
            let id = match path::resolve(raw, "/") {
                Ok(id) => id,
                Err(message) => {
                    violations.add(format!("/{index}/id"), message);
                    continue;
                }
            };
            let existing = services.definition_json(&id);
            let merged = merged_body(existing.as_ref(), item, &id, partial);
            let mut definition =
                match parse_definition(&merged, path::parent(&id), &services.admission) {
                    Ok(definition) => definition,
                    Err(found) => {
                        for violation in found.into_vec() {
                            for message in violation.errors {
                                violations.add(format!("/{index}{}", violation.path), message);
                            }
                        }
                        continue;
                    }
                };
            if let Err(message) = assign_ports(&services, &mut definition, &ports) {
                violations.add(format!("/{index}/portDefinitions"), message);
                continue;
            }
            for port in definition.service_ports() {
                ports.insert(port, definition.id.clone());
            }
            changes.push(crate::deploy::Change::Put(Box::new(definition)));
        }
    }
    if !violations.is_empty() {
        return Err(MarathonError::invalid(violations));
    }
    let result = shared.lock().apply(changes, params.force);
    shared.wake.notify_one();
    answer(result, "/")
}

fn kill(shared: &Shared, task_ids: &[String], scale: bool) -> Response {
    let (killed, deployment) = shared.lock().kill_tasks(task_ids, scale);
    // Without scale the planner replaces them; the kills go out as plain kills.
    if !scale {
        let mut services = shared.lock();
        for instance in &killed {
            if let Some(live) = services.instances.get_mut(&instance.task_id) {
                live.kill_requested = true;
            }
        }
        let tasks: Vec<Value> = killed.iter().map(|i| views::task(&services, i)).collect();
        services
            .pending_kills
            .extend(killed.iter().map(|i| i.task_id.clone()));
        drop(services);
        shared.wake.notify_one();
        return reply(StatusCode::OK, &json!({"tasks": tasks}));
    }
    shared
        .lock()
        .pending_kills
        .extend(killed.iter().map(|i| i.task_id.clone()));
    shared.wake.notify_one();
    match deployment {
        Some((deployment, version)) => deployment_result(&deployment, &version),
        None => reply(StatusCode::OK, &json!({"tasks": []})),
    }
}

async fn list_tasks(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let services = shared.lock();
    let wants_text = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("text/plain") && !accept.contains("application/json")
        });
    if wants_text {
        return (
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
            views::tasks_text(&services),
        )
            .into_response();
    }
    let states: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "status" || k == "status[]")
        .map(|(_, v)| format!("TASK_{}", v.to_ascii_uppercase()))
        .collect();
    let tasks: Vec<Value> = services
        .instances
        .values()
        .filter(|i| states.is_empty() || states.contains(&i.state.as_str().to_owned()))
        .map(|i| views::task(&services, i))
        .collect();
    reply(StatusCode::OK, &json!({"tasks": tasks}))
}

async fn delete_tasks(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Changing>,
    body: Bytes,
) -> Answer {
    let body = parse_body(&body)?;
    let Some(ids) = body.get("ids").and_then(Value::as_array) else {
        return Err(MarathonError::invalid_at("/ids", "is required"));
    };
    let ids: Vec<String> = ids
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    Ok(kill(&shared, &ids, params.scale))
}

async fn list_deployments(State(shared): State<Arc<Shared>>) -> Response {
    let services = shared.lock();
    let deployments: Vec<Value> = services
        .deployments
        .values()
        .map(|d| views::deployment(&services, d))
        .collect();
    reply(StatusCode::OK, &json!(deployments))
}

async fn cancel_deployment(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(params): Query<Changing>,
) -> Answer {
    let result = shared.lock().cancel_deployment(&id, params.force);
    shared.wake.notify_one();
    match result {
        Ok(None) => Ok((
            StatusCode::ACCEPTED,
            [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
        )
            .into_response()),
        Ok(Some((deployment, version))) => Ok(deployment_result(&deployment, &version)),
        Err(ChangeError::NotFound) => Err(MarathonError::not_found(format!(
            "DeploymentPlan {id} does not exist"
        ))),
        Err(e) => Err(MarathonError::change(e, &id)),
    }
}

/// `GET /v2/events`: Server-Sent Events of Marathon's event bus, optionally filtered by
/// repeated `event_type=` parameters, with keep-alives (marathon-lb drops a silent stream).
async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Answer {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("text/event-stream") || accept.contains("*/*")) {
        return Err(MarathonError::new(
            StatusCode::NOT_ACCEPTABLE,
            "GET /v2/events needs 'Accept: text/event-stream'",
        ));
    }
    let wanted: Vec<String> = params
        .into_iter()
        .filter(|(k, _)| k == "event_type")
        .map(|(_, v)| v)
        .collect();
    let receiver = shared.lock().events.subscribe();
    let stream = futures_util::stream::unfold(
        (receiver, wanted),
        |(mut receiver, wanted)| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if wanted.is_empty() || wanted.iter().any(|w| w == event.kind) => {
                        let data = String::from_utf8(agora_api::scheduler::ascii_json(&event.data))
                            .unwrap_or_default();
                        let sse = axum::response::sse::Event::default()
                            .event(event.kind)
                            .data(data);
                        return Some((Ok::<_, std::convert::Infallible>(sse), (receiver, wanted)));
                    }
                    Ok(_) => continue,
                    // Too far behind to be told everything: said, then ended, so the
                    // subscriber reconnects from a fresh look at the state (as discovery and
                    // marathon-lb do) rather than go on with holes it cannot see.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        let data = json!({
                            "eventType": "event_stream_overflow",
                            "message": format!("this subscriber fell {missed} events behind; subscribe again"),
                        });
                        let sse = axum::response::sse::Event::default()
                            .event("event_stream_overflow")
                            .data(data.to_string());
                        receiver = shared_closed();
                        return Some((Ok(sse), (receiver, wanted)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(
            axum::response::sse::KeepAlive::new().interval(std::time::Duration::from_secs(15)),
        )
        .into_response())
}

/// A receiver whose sender is gone: the next receive ends the stream.
fn shared_closed() -> tokio::sync::broadcast::Receiver<crate::core::BusEvent> {
    tokio::sync::broadcast::channel(1).1
}

async fn list_subscriptions(State(shared): State<Arc<Shared>>) -> Response {
    let urls = shared.lock().subscriptions.clone();
    reply(StatusCode::OK, &json!({"callbackUrls": urls}))
}

/// The `callbackUrl` parameter, checked: an absolute http(s) URL.
fn callback_url(params: &Callback) -> Result<String, MarathonError> {
    let invalid = |message: &str| MarathonError::invalid_at("/callbackUrl", message);
    let url = params
        .callback_url
        .as_ref()
        .ok_or_else(|| invalid("the callbackUrl parameter is required"))?;
    match reqwest::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => {
            Ok(url.clone())
        }
        _ => Err(invalid("must be an absolute http or https URL")),
    }
}

async fn subscribe(State(shared): State<Arc<Shared>>, Query(params): Query<Callback>) -> Answer {
    let url = callback_url(&params)?;
    let event = json!({"callbackUrl": url, "clientIp": "", "eventType": "subscribe_event"});
    let mut services = shared.lock();
    services.subscribe(&url);
    services.emit(
        "subscribe_event",
        json!({"callbackUrl": url, "clientIp": ""}),
    );
    Ok(reply(StatusCode::OK, &event))
}

async fn unsubscribe(State(shared): State<Arc<Shared>>, Query(params): Query<Callback>) -> Answer {
    let url = callback_url(&params)?;
    let mut services = shared.lock();
    if !services.unsubscribe(&url) {
        return Err(MarathonError::not_found(format!(
            "Callback URL {url} is not subscribed"
        )));
    }
    services.emit(
        "unsubscribe_event",
        json!({"callbackUrl": url, "clientIp": ""}),
    );
    Ok(reply(
        StatusCode::OK,
        &json!({"callbackUrl": url, "clientIp": "", "eventType": "unsubscribe_event"}),
    ))
}

async fn queue(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let unused_offers = params
        .iter()
        .any(|(k, v)| k == "embed" && v == "lastUnusedOffers");
    let services = shared.lock();
    reply(
        StatusCode::OK,
        &views::queue(&services, crate::core::now_millis(), unused_offers),
    )
}

/// `DELETE /v2/queue/{app id}/delay`: launch again without waiting out the backoff.
async fn reset_delay(State(shared): State<Arc<Shared>>, Path(rest): Path<String>) -> Answer {
    let Some(app) = rest.trim_matches('/').strip_suffix("/delay") else {
        return Err(MarathonError::not_found(format!(
            "No resource at /v2/queue/{rest}"
        )));
    };
    let app_id = format!("/{app}");
    if !shared.lock().reset_delay(&app_id) {
        return Err(MarathonError::app_not_found(&app_id));
    }
    shared.wake.notify_one();
    Ok((
        StatusCode::NO_CONTENT,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response())
}

async fn info(State(shared): State<Arc<Shared>>) -> Response {
    let framework_id = shared.lock().framework_id.clone();
    reply(
        StatusCode::OK,
        &json!({
            "name": "marathon",
            "version": "1.4.0",
            "buildref": "agora",
            "elected": true,
            "leader": shared.config.advertised,
            "frameworkId": framework_id,
            "marathon_config": {"master": shared.config.master, "framework_name": "marathon", "failover_timeout": 604800, "local_port_min": 10000, "local_port_max": 20000},
            "zookeeper_config": {},
            "http_config": {},
        }),
    )
}

async fn leader(State(shared): State<Arc<Shared>>) -> Response {
    reply(StatusCode::OK, &json!({"leader": shared.config.advertised}))
}

async fn ping() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        "pong",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn splits_sub_resources() {
        assert_eq!(
            super::split_suffix("/prod/web"),
            ("/prod/web".to_owned(), vec![])
        );
        assert_eq!(
            super::split_suffix("/prod/web/tasks/t1"),
            ("/prod/web".to_owned(), vec!["tasks", "t1"])
        );
        assert_eq!(
            super::split_suffix("/web/versions"),
            ("/web".to_owned(), vec!["versions"])
        );
        assert_eq!(super::split_suffix("/tasks"), ("/tasks".to_owned(), vec![]));
    }
}

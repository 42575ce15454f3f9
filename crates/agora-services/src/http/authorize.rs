//! Who may see and change which apps: the ACLs' `view_apps` and `manage_apps`, by app or group
//! id (a path covers everything under it). One layer in front of the `/v2` handlers decides
//! every request: a change names the apps it touches (in its path, its body, or through the
//! tasks or deployment it names) and each must be the caller's to manage (403 otherwise); a
//! read of one app or group must be the caller's to see (404, as for an app that does not
//! exist, so nothing is learnt of others'); a list is cut to what the caller may see. The
//! event stream and the callback subscriptions show every app, so they need the whole tree
//! (`/`). Without rules for either action the layer stands aside.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use agora_http::auth::acl::Action;
use agora_http::auth::layer;

use super::{MarathonError, split_suffix};
use crate::Shared;

pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let acls = shared.config.acls.clone();
    if !acls.restricts(Action::ViewApps) && !acls.restricts(Action::ManageApps) {
        return next.run(request).await;
    }
    let principal = layer::principal(&request);
    let may = |action: Action, id: &str| acls.permits(action, principal.as_deref(), Some(id));
    let method = request.method().clone();
    let Some(path) = layer::decoded_path(&request) else {
        return MarathonError::new(StatusCode::BAD_REQUEST, "the path is not UTF-8")
            .into_response();
    };
    let changes = !matches!(method, Method::GET | Method::HEAD);
    let Some((parts, bytes)) = layer::buffered(request).await else {
        return MarathonError::new(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )
        .into_response();
    };
    let touched = touched(&shared, &method, &path, &bytes);
    let action = if changes {
        Action::ManageApps
    } else {
        Action::ViewApps
    };
    if let Some(denied) = touched.iter().find(|id| !may(action, id)) {
        let refusal = if changes {
            MarathonError::new(
                StatusCode::FORBIDDEN,
                format!("Not authorized to change '{denied}' ('manage_apps' in the ACLs)"),
            )
        } else {
            MarathonError::app_not_found(denied)
        };
        return refusal.into_response();
    }
    let response = next.run(layer::rebuilt(parts, bytes)).await;
    if changes || !is_list(&path) {
        return response;
    }
    filter_list(response, &path, &|id: &str| may(Action::ViewApps, id)).await
}

/// The app and group ids a request touches (for a list: none, it is cut afterwards).
fn touched(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Vec<String> {
    let json = || serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    // An id as the handlers resolve it (`..` and all); one that does not resolve is refused
    // by them anyway.
    let absolute = |id: &str| {
        agora_api::marathon::path::resolve(id, "/")
            .unwrap_or_else(|_| format!("/{}", id.trim_matches('/')))
    };
    if path == "/v2/events" || path == "/v2/eventSubscriptions" {
        return vec!["/".to_owned()];
    }
    if let Some(rest) = path.strip_prefix("/v2/apps/") {
        return vec![split_suffix(&absolute(rest)).0];
    }
    if let Some(rest) = path.strip_prefix("/v2/groups/") {
        let id = absolute(rest.trim_end_matches("/versions"));
        let mut ids = vec![id.clone()];
        if *method != Method::GET {
            ids.extend(group_apps(&json(), &id));
        }
        return ids;
    }
    if let Some(rest) = path.strip_prefix("/v2/queue/") {
        return vec![absolute(rest.trim_end_matches("/delay"))];
    }
    match (method.as_str(), path) {
        ("POST", "/v2/apps") => json()
            .get("id")
            .and_then(Value::as_str)
            .map(|id| vec![absolute(id)])
            .unwrap_or_default(),
        ("PUT" | "PATCH", "/v2/apps") => json()
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|app| app.get("id").and_then(Value::as_str))
            .map(absolute)
            .collect(),
        ("POST" | "PUT" | "PATCH" | "DELETE", "/v2/groups") => {
            let body = json();
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .map_or_else(|| "/".to_owned(), absolute);
            let mut ids = vec![id.clone()];
            ids.extend(group_apps(&body, &id));
            ids
        }
        ("POST", "/v2/tasks/delete") => {
            let services = shared.lock();
            json()
                .get("ids")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|task| services.instances.get(task).map(|i| i.app_id.clone()))
                .collect()
        }
        ("DELETE", _) if path.starts_with("/v2/deployments/") => {
            let id = path.trim_start_matches("/v2/deployments/");
            let services = shared.lock();
            services
                .deployments
                .get(id)
                .map(|deployment| deployment.affected_apps())
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

/// The ids of the apps and groups a group definition names, under `base`.
fn group_apps(group: &Value, base: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let resolve =
        |id: &str| agora_api::marathon::path::resolve(id, base).unwrap_or_else(|_| id.to_owned());
    for app in group
        .get("apps")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = app.get("id").and_then(Value::as_str) {
            ids.push(resolve(id));
        }
    }
    for child in group
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = child.get("id").and_then(Value::as_str) {
            let id = resolve(id);
            ids.extend(group_apps(child, &id));
            ids.push(id);
        }
    }
    ids
}

fn is_list(path: &str) -> bool {
    matches!(
        path,
        "/v2/apps" | "/v2/tasks" | "/v2/deployments" | "/v2/queue" | "/v2/groups"
    )
}

/// A list answer cut to what `sees` allows.
async fn filter_list(
    response: Response,
    path: &str,
    sees: &(dyn Fn(&str) -> bool + Sync),
) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !response.status().is_success() {
        return response;
    }
    if !is_json {
        // The task list as text (the HAProxy bridge's) names every app: only for who sees all.
        return if sees("/") {
            response
        } else {
            MarathonError::new(
                StatusCode::FORBIDDEN,
                "The task list as text shows every app: it needs 'view_apps' on '/'",
            )
            .into_response()
        };
    }
    layer::edit_json(response, |value| match path {
        "/v2/apps" => keep(&mut value["apps"], |app| {
            sees(app["id"].as_str().unwrap_or(""))
        }),
        "/v2/tasks" => keep(&mut value["tasks"], |task| {
            sees(task["appId"].as_str().unwrap_or(""))
        }),
        "/v2/queue" => keep(&mut value["queue"], |item| {
            sees(item["app"]["id"].as_str().unwrap_or(""))
        }),
        "/v2/deployments" => keep(value, |deployment| {
            deployment["affectedApps"]
                .as_array()
                .is_some_and(|apps| apps.iter().filter_map(Value::as_str).all(sees))
        }),
        "/v2/groups" => prune_group(value, sees),
        _ => {}
    })
    .await
}

fn keep(list: &mut Value, visible: impl Fn(&Value) -> bool) {
    if let Some(items) = list.as_array_mut() {
        items.retain(|item| visible(item));
    }
}

/// A group tree with only the apps the caller sees, and the groups that hold any.
fn prune_group(group: &mut Value, sees: &(dyn Fn(&str) -> bool + Sync)) {
    keep(&mut group["apps"], |app| {
        sees(app["id"].as_str().unwrap_or(""))
    });
    if let Some(children) = group["groups"].as_array_mut() {
        for child in children.iter_mut() {
            prune_group(child, sees);
        }
        children.retain(|child| {
            sees(child["id"].as_str().unwrap_or(""))
                || child["apps"].as_array().is_some_and(|a| !a.is_empty())
                || child["groups"].as_array().is_some_and(|g| !g.is_empty())
        });
    }
}

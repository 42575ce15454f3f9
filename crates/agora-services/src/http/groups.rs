//! `/v2/groups`: Marathon's group API. A group body (`id`, `apps`, `groups`, `dependencies`)
//! becomes one deployment: apps it lists are created or replaced, and — where it lists `apps`
//! or `groups` — those it no longer lists are removed. `{"scaleBy": f}` scales every app below
//! the group; `{"version": v}` (or `PUT .../versions/v`) rolls the group back to a version.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use agora_api::marathon::errors::Violations;
use agora_api::marathon::path;
use agora_http::Query;

use super::answer::{Answer, Changing, deployment_result, parse_body, reply};
use super::{MarathonError, assign_ports, parse_definition};
use crate::Shared;
use crate::core::{Services, now_millis};
use crate::deploy::{Change, same_definition};
use crate::groups::{GroupRecord, group_ids, is_under};
use crate::views;

pub(super) async fn root(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Query(params): Query<Changing>,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    handle(&shared, method, "/".into(), &[], &params, &pairs, &body)
}

pub(super) async fn resource(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(rest): Path<String>,
    Query(params): Query<Changing>,
    Query(pairs): Query<Vec<(String, String)>>,
    body: Bytes,
) -> Answer {
    let segments: Vec<&str> = rest.trim_matches('/').split('/').collect();
    let split = segments
        .iter()
        .position(|s| *s == "versions")
        .unwrap_or(segments.len());
    let id = format!("/{}", segments[..split].join("/"));
    handle(
        &shared,
        method,
        id,
        &segments[split..],
        &params,
        &pairs,
        &body,
    )
}

fn handle(
    shared: &Shared,
    method: Method,
    id: String,
    suffix: &[&str],
    params: &Changing,
    pairs: &[(String, String)],
    body: &[u8],
) -> Answer {
    let force = params.force;
    match (method.as_str(), suffix) {
        ("GET", []) => {
            let services = shared.lock();
            if !exists(&services, &id) {
                return Err(not_found(&id));
            }
            let embed = views::Embed::from_query(pairs);
            let now = agora_api::marathon::time::format_millis(now_millis());
            let group = services.group_json(&id, &now, |app| views::app(&services, app, embed));
            Ok(reply(StatusCode::OK, &group))
        }
        ("GET", ["versions"]) => {
            let services = shared.lock();
            if !exists(&services, &id) {
                return Err(not_found(&id));
            }
            let versions: Vec<&String> = services
                .group_versions
                .get(&id)
                .into_iter()
                .flatten()
                .rev()
                .map(|(version, _)| version)
                .collect();
            Ok(reply(StatusCode::OK, &json!(versions)))
        }
        ("GET", ["versions", version]) => match snapshot(shared, &id, version) {
            Some(group) => Ok(reply(StatusCode::OK, &group)),
            None => Err(not_found_in_version(&id, version)),
        },
        ("POST", []) => {
            let body = parse_body(body)?;
            let raw_id = body.get("id").and_then(Value::as_str).unwrap_or_default();
            let group_id = path::resolve(raw_id, &id)
                .map_err(|message| MarathonError::invalid_at("/id", message))?;
            if exists(&shared.lock(), &group_id) {
                return Err(MarathonError::new(
                    StatusCode::CONFLICT,
                    format!("Group {group_id} is already created. Use PUT to change this group."),
                ));
            }
            let mut response = update(shared, &group_id, &body, force)?;
            if response.status() == StatusCode::OK {
                *response.status_mut() = StatusCode::CREATED;
            }
            Ok(response)
        }
        ("PUT", []) => {
            let body = parse_body(body)?;
            if params.dry_run {
                return dry_run(shared, &id, &body);
            }
            update(shared, &id, &body, force)
        }
        ("PUT", ["versions", version]) => rollback(shared, &id, version, force),
        ("DELETE", []) => {
            let changes = {
                let services = shared.lock();
                if !exists(&services, &id) {
                    return Err(not_found(&id));
                }
                removal(&services, &id)
            };
            let result = shared.lock().apply(changes, force);
            finish(shared, &id, result, false)
        }
        _ => Err(MarathonError::not_found(format!(
            "No resource at /v2/groups{id} for {method}"
        ))),
    }
}

fn exists(services: &Services, id: &str) -> bool {
    group_ids(
        services.apps.keys().map(String::as_str),
        services.groups.keys().map(String::as_str),
    )
    .contains(id)
}

fn not_found(id: &str) -> MarathonError {
    MarathonError::not_found(format!("Group '{id}' does not exist"))
}

fn not_found_in_version(id: &str, version: &str) -> MarathonError {
    MarathonError::not_found(format!("Group '{id}' does not exist in version {version}"))
}

fn snapshot(shared: &Shared, id: &str, version: &str) -> Option<Value> {
    shared
        .lock()
        .group_versions
        .get(id)?
        .iter()
        .find(|(v, _)| v == version)
        .map(|(_, group)| group.clone())
}

fn rollback(shared: &Shared, id: &str, version: &str, force: bool) -> Answer {
    match snapshot(shared, id, version) {
        Some(group) => update(shared, id, &group, force),
        None => Err(not_found_in_version(id, version)),
    }
}

/// `PUT` (or `POST`) of a group body at `id`.
fn update(shared: &Shared, id: &str, body: &Value, force: bool) -> Answer {
    if let Some(version) = body.get("version").and_then(Value::as_str)
        && body
            .as_object()
            .is_some_and(|o| o.len() == 1 || o.len() == 2 && o.contains_key("id"))
    {
        return rollback(shared, id, version, force);
    }
    let changes = changes_of(shared, id, body)?;
    let result = shared.lock().apply(changes, force);
    finish(shared, id, result, true)
}

/// `PUT ...?dryRun=true`: the steps the change would deploy, changing nothing.
fn dry_run(shared: &Shared, id: &str, body: &Value) -> Answer {
    let changes = changes_of(shared, id, body)?;
    match shared.lock().preview(&changes) {
        Ok(steps) => {
            let steps: Vec<Value> = steps
                .iter()
                .map(|step| json!({"actions": crate::deploy::actions_json(step)}))
                .collect();
            Ok(reply(StatusCode::OK, &json!({"steps": steps})))
        }
        Err(e) => Err(MarathonError::change(e, id)),
    }
}

/// The changes a group body asks for, or why it is invalid.
fn changes_of(shared: &Shared, id: &str, body: &Value) -> Result<Vec<Change>, MarathonError> {
    if !body.is_object() {
        return Err(MarathonError::invalid_at(
            "/",
            "a group must be a JSON object",
        ));
    }
    let changes = {
        let services = shared.lock();
        if let Some(factor) = body.get("scaleBy") {
            let Some(factor) = factor.as_f64().filter(|f| f.is_finite() && *f >= 0.0) else {
                return Err(MarathonError::invalid_at(
                    "/scaleBy",
                    "must be a non-negative number",
                ));
            };
            scaling(&services, id, factor)
        } else {
            let mut builder = Builder {
                services: &services,
                changes: Vec::new(),
                violations: Violations::default(),
                ports: BTreeMap::new(),
            };
            builder.group(body, id, "");
            if !builder.violations.is_empty() {
                return Err(MarathonError::invalid(builder.violations));
            }
            builder.changes
        }
    };
    Ok(changes)
}

fn finish(
    shared: &Shared,
    id: &str,
    result: Result<(String, String), crate::deploy::ChangeError>,
    record: bool,
) -> Answer {
    match result {
        Ok((deployment, version)) => {
            {
                let mut services = shared.lock();
                if record {
                    services.record_group_version(id, &version);
                }
                services.emit(
                    "group_change_success",
                    json!({"groupId": id, "version": version}),
                );
            }
            shared.wake.notify_one();
            Ok(deployment_result(&deployment, &version))
        }
        Err(e) => Err(MarathonError::change(e, id)),
    }
}

/// Every app below `id` scaled by `factor` (rounded up, as Marathon does).
fn scaling(services: &Services, id: &str, factor: f64) -> Vec<Change> {
    services
        .apps
        .values()
        .filter(|app| is_under(&app.definition.id, id))
        .map(|app| {
            let mut definition = app.definition.clone();
            definition.instances = (definition.instances as f64 * factor).ceil() as i64;
            Change::Put(Box::new(definition))
        })
        .collect()
}

/// Removing group `id`: its apps are stopped and its records (and those below) forgotten.
fn removal(services: &Services, id: &str) -> Vec<Change> {
    let apps = services
        .apps
        .keys()
        .filter(|app| is_under(app, id))
        .map(|app| Change::Delete(app.clone()));
    let groups = services
        .groups
        .keys()
        .filter(|group| is_under(group, id))
        .map(|group| Change::RemoveGroup(group.clone()));
    apps.chain(groups).collect()
}

/// Turns a group body into changes, collecting every problem with its path in the body.
struct Builder<'a> {
    services: &'a Services,
    changes: Vec<Change>,
    violations: Violations,
    /// Service ports given to apps of this request so far.
    ports: BTreeMap<u64, String>,
}

impl Builder<'_> {
    fn group(&mut self, body: &Value, id: &str, at: &str) {
        let Some(object) = body.as_object() else {
            self.violations.add(
                if at.is_empty() { "/" } else { at },
                "a group must be a JSON object",
            );
            return;
        };
        let parent = path::parent(id);
        let dependencies = match object.get("dependencies") {
            Some(Value::Array(list)) => {
                let mut resolved = Vec::new();
                for (index, dependency) in list.iter().enumerate() {
                    match dependency.as_str().map(|d| path::resolve(d, parent)) {
                        Some(Ok(dependency)) => resolved.push(dependency),
                        Some(Err(message)) => self
                            .violations
                            .add(format!("{at}/dependencies({index})"), message),
                        None => self
                            .violations
                            .add(format!("{at}/dependencies({index})"), "must be a string"),
                    }
                }
                resolved
            }
            Some(_) => {
                self.violations
                    .add(format!("{at}/dependencies"), "must be an array");
                Vec::new()
            }
            None => self
                .services
                .groups
                .get(id)
                .map(|g| g.dependencies.clone())
                .unwrap_or_default(),
        };
        if id != "/" {
            self.changes.push(Change::Group(GroupRecord {
                id: id.to_owned(),
                dependencies,
                version: String::new(),
            }));
        }
        if let Some(apps) = object.get("apps") {
            let Some(apps) = apps.as_array() else {
                self.violations
                    .add(format!("{at}/apps"), "must be an array");
                return;
            };
            let mut listed = BTreeSet::new();
            for (index, app) in apps.iter().enumerate() {
                let app_at = format!("{at}/apps({index})");
                if let Some(app_id) = self.app(app, id, &app_at)
                    && !listed.insert(app_id.clone())
                {
                    self.violations
                        .add(format!("{app_at}/id"), "is listed twice");
                }
            }
            for app_id in self.services.apps.keys() {
                if path::parent(app_id) == id && !listed.contains(app_id) {
                    self.changes.push(Change::Delete(app_id.clone()));
                }
            }
        }
        if let Some(groups) = object.get("groups") {
            let Some(groups) = groups.as_array() else {
                self.violations
                    .add(format!("{at}/groups"), "must be an array");
                return;
            };
            let mut listed = BTreeSet::new();
            for (index, group) in groups.iter().enumerate() {
                let group_at = format!("{at}/groups({index})");
                let raw = group.get("id").and_then(Value::as_str).unwrap_or_default();
                match path::resolve(raw, id) {
                    Ok(group_id) if path::parent(&group_id) == id => {
                        listed.insert(group_id.clone());
                        self.group(group, &group_id, &group_at);
                    }
                    Ok(group_id) => self.violations.add(
                        format!("{group_at}/id"),
                        format!("group '{group_id}' is not a child of '{id}'"),
                    ),
                    Err(message) => self.violations.add(format!("{group_at}/id"), message),
                }
            }
            let existing = group_ids(
                self.services.apps.keys().map(String::as_str),
                self.services.groups.keys().map(String::as_str),
            );
            for group in existing {
                if group != "/" && path::parent(&group) == id && !listed.contains(&group) {
                    self.changes.extend(removal(self.services, &group));
                }
            }
        }
    }

    /// One app of a group body; returns its id when it is valid.
    fn app(&mut self, body: &Value, group: &str, at: &str) -> Option<String> {
        let mut definition = match parse_definition(body, group, &self.services.admission) {
            Ok(definition) => definition,
            Err(violations) => {
                for violation in violations.into_vec() {
                    for message in violation.errors {
                        self.violations
                            .add(format!("{at}{}", violation.path), message);
                    }
                }
                return None;
            }
        };
        if path::parent(&definition.id) != group {
            self.violations.add(
                format!("{at}/id"),
                format!("app '{}' is not a child of '{group}'", definition.id),
            );
            return None;
        }
        if let Err(message) = assign_ports(self.services, &mut definition, &self.ports) {
            self.violations
                .add(format!("{at}/portDefinitions"), message);
            return None;
        }
        for port in definition.service_ports() {
            self.ports.insert(port, definition.id.clone());
        }
        let id = definition.id.clone();
        // An app listed as it is stays untouched: only changes deploy.
        let unchanged = self
            .services
            .apps
            .get(&id)
            .is_some_and(|app| same_definition(&app.definition, &definition));
        if !unchanged {
            self.changes.push(Change::Put(Box::new(definition)));
        }
        Some(id)
    }
}

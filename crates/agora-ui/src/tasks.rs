//! Tasks: every framework's tasks from the master; a task's state, host, ports, health and
//! status history, its sandbox's files (read through its agent) and a live tail of its
//! stdout and stderr.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use agora_client::AgentClient;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cluster;
use crate::format::{
    is_terminal, items, resources, segment, state as state_name, state_class, text,
};
use crate::layout::{self, Flash, fields, table};
use crate::{Shared, lock};

/// How much of a file the tail shows first, and the most one read returns.
const TAIL_BYTES: u64 = 16 * 1024;

/// `?all=1`: tasks that have ended too; `?offset=`: where the page starts.
#[derive(Deserialize)]
pub struct Listing {
    #[serde(default)]
    all: Option<String>,
    #[serde(default)]
    offset: usize,
}

pub async fn list(
    api: crate::Api,
    Query(listing): Query<Listing>,
    Query(flash): Query<Flash>,
) -> Result<Markup, Response> {
    let all = listing.all.is_some();
    let filter = if all { "" } else { "&ended=false" };
    let tasks_and_hosts = async {
        let page = cluster::tasks(&api, "tasks", filter, listing.offset).await?;
        let agent_ids: Vec<&str> = page
            .rows
            .iter()
            .filter_map(|t| t["slave_id"].as_str())
            .collect();
        let agents = cluster::agents_named(&api, "tasks", &agent_ids).await?;
        Ok::<_, Response>((page, agents))
    };
    let (tasks_and_hosts, frameworks) =
        tokio::join!(tasks_and_hosts, cluster::frameworks(&api, "tasks"));
    let ((page, agents), frameworks) = (tasks_and_hosts?, frameworks?);
    let names = cluster::names(&frameworks);
    let base = if all { "/ui/tasks?all=1" } else { "/ui/tasks" };
    Ok(layout::page(
        "tasks",
        "Tasks",
        &flash,
        html! {
            h1 { "Tasks" }
            p {
                @if all { a href="/ui/tasks" { "Only tasks that have not ended" } }
                @else { a href="/ui/tasks?all=1" { "Also tasks that have ended" } }
            }
            @if page.rows.is_empty() {
                p.muted { "No tasks." }
            } @else {
                (table(&["Task", "State", "Host", "Framework", "Resources"], html! {
                    @for task in &page.rows {
                        @let id = task["id"].as_str().unwrap_or_default();
                        @let state = task["state"].as_str().unwrap_or_default();
                        @let agent = task["slave_id"].as_str().unwrap_or_default();
                        @let framework = task["framework_id"].as_str().unwrap_or_default();
                        tr data-task=(id) {
                            td { a href={"/ui/tasks/" (segment(id))} { (id) } }
                            td { span class=(state_class(state)) { (state_name(state)) } }
                            td { (agents.get(agent).and_then(|a| a["hostname"].as_str()).unwrap_or(agent)) }
                            td { (names.get(framework).copied().unwrap_or(framework)) }
                            td { (resources(&task["resources"])) }
                        }
                    }
                }))
                (cluster::pager(base, listing.offset, &page))
            }
        },
    ))
}

/// A task as the master knows it, with its framework and its agent.
struct Located {
    task: Value,
    framework: Value,
    agent: Option<Value>,
}

/// The task of this id: one that has not ended before one that has (an id may run again).
async fn find_task(api: &crate::Api, section: &str, id: &str) -> Result<Option<Value>, Response> {
    let filter = format!("&task_id={}", segment(id));
    let found = cluster::tasks(api, section, &filter, 0).await?;
    let live = found
        .rows
        .iter()
        .position(|t| !is_terminal(t["state"].as_str().unwrap_or_default()));
    let mut rows = found.rows;
    Ok(match live {
        Some(index) => Some(rows.swap_remove(index)),
        None => rows.into_iter().next(),
    })
}

async fn locate(api: &crate::Api, id: &str) -> Result<Located, Response> {
    let Some(task) = find_task(api, "tasks", id).await? else {
        return Err(layout::failure(
            "tasks",
            StatusCode::NOT_FOUND,
            &format!("The master does not know task {id}."),
        ));
    };
    let (agent, frameworks) = tokio::join!(
        cluster::agent(api, "tasks", task["slave_id"].as_str().unwrap_or_default()),
        cluster::frameworks(api, "tasks")
    );
    let framework_id = task["framework_id"].as_str().unwrap_or_default();
    let framework = frameworks?
        .into_iter()
        .find(|f| f["id"] == framework_id)
        .unwrap_or_else(|| json!({"id": framework_id}));
    let agent = agent?;
    Ok(Located {
        task,
        framework,
        agent,
    })
}

fn agent_client(api: &crate::Api, located: &Located) -> Option<AgentClient> {
    located.agent.as_ref()?["pid"]
        .as_str()
        .map(|pid| api.agent(pid))
}

/// A path inside a sandbox, refused when it could leave it.
fn inside(relative: &str) -> Option<&str> {
    let relative = relative.trim_start_matches('/');
    let leaves = relative.split('/').any(|part| part == "..");
    (!leaves).then_some(relative)
}

pub async fn show(
    api: crate::Api,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Response, Response> {
    let located = locate(&api, &id).await?;
    let task = &located.task;
    let state = task["state"].as_str().unwrap_or_default();
    let last_status = items(task, "statuses").last().cloned().unwrap_or_default();
    let health = match last_status["healthy"].as_bool() {
        Some(true) => html! { span.good { "healthy" } },
        Some(false) => html! { span.bad { "unhealthy" } },
        None => html! { "—" },
    };
    let host = located
        .agent
        .as_ref()
        .map(|a| text(&a["hostname"]))
        .unwrap_or_else(|| text(&task["slave_id"]));
    let base = format!("/ui/tasks/{}", segment(&id));
    Ok(layout::page(
        "tasks",
        &format!("Task {id}"),
        &flash,
        html! {
            h1.id { "Task " (id) }
            (fields(&[
                ("State", html! { span #task-state class=(state_class(state)) { (state_name(state)) } }),
                ("Framework", html! { a href={"/ui/frameworks/" (segment(located.framework["id"].as_str().unwrap_or_default()))} { (text(&located.framework["name"])) } }),
                ("Host", html! { a href={"/ui/agents/" (segment(task["slave_id"].as_str().unwrap_or_default()))} { (host) } }),
                ("Ports", html! { (text(&task["resources"]["ports"])) }),
                ("Health", health),
                ("Resources", html! { (resources(&task["resources"])) }),
                ("Last message", html! { (text(&last_status["message"])) }),
            ]))
            h2 { "Output" }
            div.tabs {
                @for file in ["stdout", "stderr"] {
                    div.tail-box {
                        h3 { (file) }
                        pre.tail #{"tail-" (file)} data-tail={(base) "/read?file=" (file)} data-ended=(is_terminal(state)) {}
                    }
                }
            }
            h2 { "Sandbox" }
            p { a href={(base) "/browse"} { "Browse the sandbox's files" } }
            h2 { "Status updates" }
            (table(&["State", "Time", "Message"], html! {
                @for status in items(task, "statuses") {
                    @let s = status["state"].as_str().unwrap_or_default();
                    tr {
                        td { span class=(state_class(s)) { (state_name(s)) } }
                        td { (status["timestamp"].as_f64().map(since_epoch).unwrap_or_default()) }
                        td { (text(&status["message"])) }
                    }
                }
            }))
        },
    )
    .into_response())
}

fn since_epoch(seconds: f64) -> String {
    jiff::Timestamp::from_millisecond((seconds * 1000.0) as i64)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize)]
pub struct BrowseQuery {
    #[serde(default)]
    path: String,
    /// A file to show (a tail of it) instead of a directory.
    #[serde(default)]
    file: Option<String>,
}

pub async fn browse(
    api: crate::Api,
    Path(id): Path<String>,
    Query(query): Query<BrowseQuery>,
) -> Result<Response, Response> {
    let located = locate(&api, &id).await?;
    let Some(agent) = agent_client(&api, &located) else {
        return Err(layout::failure(
            "tasks",
            StatusCode::BAD_GATEWAY,
            "The task's agent is not connected.",
        ));
    };
    let sandbox = match agent.sandbox_of(&id).await {
        Ok(Some(sandbox)) => sandbox,
        Ok(None) => {
            return Err(layout::failure(
                "tasks",
                StatusCode::NOT_FOUND,
                "The agent no longer keeps this task's sandbox.",
            ));
        }
        Err(error) => return Err(layout::client_failure("tasks", &error)),
    };
    let base = format!("/ui/tasks/{}", segment(&id));
    if let Some(file) = query.file.as_deref() {
        let Some(file) = inside(file) else {
            return Err(layout::failure(
                "tasks",
                StatusCode::BAD_REQUEST,
                "That path leaves the sandbox.",
            ));
        };
        return Ok(layout::page(
            "tasks",
            file,
            &Flash::default(),
            html! {
                h1.id { a href={(base)} { (id) } " / " (file) }
                pre.tail.tall data-tail={(base) "/read?file=" (segment(file))} data-ended=(is_terminal(located.task["state"].as_str().unwrap_or_default())) {}
            },
        )
        .into_response());
    }
    let Some(relative) = inside(&query.path) else {
        return Err(layout::failure(
            "tasks",
            StatusCode::BAD_REQUEST,
            "That path leaves the sandbox.",
        ));
    };
    let directory = if relative.is_empty() {
        sandbox.clone()
    } else {
        format!("{sandbox}/{relative}")
    };
    let entries = match agent.browse(&directory).await {
        Ok(entries) => entries,
        Err(error) => return Err(layout::client_failure("tasks", &error)),
    };
    let mut entries: Vec<&Value> = entries.as_array().into_iter().flatten().collect();
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    let parent = relative.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    Ok(layout::page(
        "tasks",
        &format!("Sandbox of {id}"),
        &Flash::default(),
        html! {
            h1.id { "Sandbox of " a href=(base) { (id) } }
            p.muted { "/" (relative) }
            (table(&["Name", "Size", "Mode", "Modified"], html! {
                @if !relative.is_empty() {
                    tr { td { a href={(base) "/browse?path=" (segment(parent))} { ".." } } td {} td {} td {} }
                }
                @for entry in &entries {
                    @let path = entry["path"].as_str().unwrap_or_default();
                    @let name = path.rsplit('/').next().unwrap_or(path);
                    @let child = if relative.is_empty() { name.to_owned() } else { format!("{relative}/{name}") };
                    @let is_dir = entry["mode"].as_str().is_some_and(|m| m.starts_with('d'));
                    tr.entry {
                        td {
                            @if is_dir { a href={(base) "/browse?path=" (segment(&child))} { (name) "/" } }
                            @else { a href={(base) "/browse?file=" (segment(&child))} { (name) } }
                        }
                        td { (text(&entry["size"])) }
                        td { code { (text(&entry["mode"])) } }
                        td { (entry["mtime"].as_f64().map(since_epoch).unwrap_or_default()) }
                    }
                }
            }))
        },
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct ReadQuery {
    file: String,
    offset: Option<u64>,
}

/// Where a tailed task's files are: its agent and sandbox, found once per task and kept a
/// while (both stay as long as the task's sandbox does).
#[derive(Default)]
pub struct TailTargets {
    found: HashMap<String, (String, String, Instant)>,
}

impl TailTargets {
    const KEEP: Duration = Duration::from_secs(30);

    fn get(&self, task: &str) -> Option<(String, String)> {
        self.found
            .get(task)
            .filter(|(_, _, at)| at.elapsed() < Self::KEEP)
            .map(|(agent, sandbox, _)| (agent.clone(), sandbox.clone()))
    }

    fn forget(&mut self, task: &str) {
        self.found.remove(task);
    }

    fn insert(&mut self, task: &str, agent: String, sandbox: String) {
        self.found.retain(|_, (_, _, at)| at.elapsed() < Self::KEEP);
        self.found
            .insert(task.to_owned(), (agent, sandbox, Instant::now()));
    }
}

/// The agent (pid) and sandbox of a task, from the cache or found through the master.
async fn tail_target(
    ui: &Shared,
    api: &crate::Api,
    id: &str,
) -> Result<(String, String), (StatusCode, String)> {
    if let Some(found) = lock(&ui.tails).get(id) {
        return Ok(found);
    }
    let located = locate(api, id)
        .await
        .map_err(|_| (StatusCode::NOT_FOUND, format!("no task {id}")))?;
    let Some(pid) = located.agent.as_ref().and_then(|a| a["pid"].as_str()) else {
        return Err((
            StatusCode::BAD_GATEWAY,
            "the task's agent is not connected".into(),
        ));
    };
    let sandbox = match api.agent(pid).sandbox_of(id).await {
        Ok(Some(sandbox)) => sandbox,
        Ok(None) => return Err((StatusCode::NOT_FOUND, "the sandbox is gone".into())),
        Err(error) => return Err((StatusCode::BAD_GATEWAY, error.to_string())),
    };
    lock(&ui.tails).insert(id, pid.to_owned(), sandbox.clone());
    Ok((pid.to_owned(), sandbox))
}

/// Whether the task has ended, as the master says; a master that cannot be asked says
/// nothing. A task now on another agent (its id ran again) is not the one tailed: the
/// cached place is forgotten and the next poll finds the new one.
async fn task_ended(ui: &Shared, api: &crate::Api, id: &str, cached_pid: &str) -> bool {
    let task = match find_task(api, "tasks", id).await {
        Ok(Some(task)) => task,
        // Known to none: it has ended (and gone from the master's memory).
        Ok(None) => return true,
        Err(_) => return false,
    };
    let agent = cluster::agent(api, "tasks", task["slave_id"].as_str().unwrap_or_default()).await;
    let agent_pid = agent
        .ok()
        .flatten()
        .and_then(|a| a["pid"].as_str().map(str::to_owned));
    if agent_pid.is_some_and(|pid| pid != cached_pid) {
        lock(&ui.tails).forget(id);
    }
    is_terminal(task["state"].as_str().unwrap_or_default())
}

/// A piece of a sandbox file for the tail: `{offset, data, next, full, ended}`; without an
/// offset, the file's last 16 KB. A poll is one read on the task's agent; only a poll that
/// finds nothing new asks the master whether the task has ended.
pub async fn read(
    State(ui): State<Shared>,
    api: crate::Api,
    Path(id): Path<String>,
    Query(query): Query<ReadQuery>,
) -> Response {
    let failure = |status: StatusCode, message: String| {
        (status, Json(json!({"message": message}))).into_response()
    };
    let Some(file) = inside(&query.file) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "that path leaves the sandbox".into(),
        );
    };
    let (pid, sandbox) = match tail_target(&ui, &api, &id).await {
        Ok(target) => target,
        Err((status, message)) => return failure(status, message),
    };
    let agent = api.agent(&pid);
    let path = format!("{sandbox}/{file}");
    let offset = match query.offset {
        Some(offset) => offset,
        None => match agent.read_file(&path, None, None).await {
            Ok(size) => size.offset.saturating_sub(TAIL_BYTES),
            Err(error) => return failure(StatusCode::NOT_FOUND, error.to_string()),
        },
    };
    let chunk = match agent.read_file(&path, Some(offset), Some(TAIL_BYTES)).await {
        Ok(chunk) => chunk,
        Err(error) => {
            // Perhaps no longer where it was (the agent restarted, the id ran again).
            lock(&ui.tails).forget(&id);
            return failure(StatusCode::NOT_FOUND, error.to_string());
        }
    };
    let ended = chunk.length == 0 && task_ended(&ui, &api, &id, &pid).await;
    Json(json!({
        "offset": offset,
        "data": chunk.data,
        "next": offset + chunk.length,
        "full": chunk.length >= TAIL_BYTES - 4,
        "ended": ended,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_stay_inside_the_sandbox() {
        assert_eq!(super::inside("stdout"), Some("stdout"));
        assert_eq!(super::inside("/tmp/x"), Some("tmp/x"));
        assert_eq!(super::inside("../../etc/passwd"), None);
        assert_eq!(super::inside("a/../../b"), None);
    }
}

//! Agents: their resources (used of total), attributes, state and tasks.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::cluster::{self, Paging};
use crate::format::{number, resources, segment, state as state_name, state_class, text};
use crate::layout::{self, Flash, fields, gauge, table};

/// The agent's state as people say it.
fn agent_state(agent: &Value) -> String {
    if let Some(drain) = agent["drain_info"]["state"].as_str() {
        return drain.to_lowercase();
    }
    if agent["deactivated"] == true {
        "deactivated".into()
    } else if agent["active"] == true {
        "active".into()
    } else {
        "inactive".into()
    }
}

fn used_of(agent: &Value, name: &str) -> String {
    format!(
        "{} / {}",
        number(agent["used_resources"][name].as_f64().unwrap_or(0.0)),
        number(agent["resources"][name].as_f64().unwrap_or(0.0))
    )
}

pub async fn list(
    api: crate::Api,
    Query(paging): Query<Paging>,
    Query(flash): Query<Flash>,
) -> Result<Markup, Response> {
    let (page, metrics) = tokio::join!(
        cluster::agents(&api, "agents", paging.offset),
        api.master.metrics_snapshot()
    );
    let (page, metrics) = (page?, metrics.ok());
    let unreachable = metrics
        .as_ref()
        .and_then(|m| m["master/slaves_unreachable"].as_f64())
        .unwrap_or(0.0);
    Ok(layout::page(
        "agents",
        "Agents",
        &flash,
        html! {
            h1 { "Agents" }
            @if page.rows.is_empty() {
                p.muted { "No agent is registered." }
            } @else {
                (table(&["Agent", "Host", "State", "CPUs", "Memory (MB)", "Disk (MB)"], html! {
                    @for agent in &page.rows {
                        @let id = agent["id"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/agents/" (segment(id))} { (id) } }
                            td { (text(&agent["hostname"])) }
                            td { span class=(if agent_state(agent) == "active" { "good" } else { "pending" }) { (agent_state(agent)) } }
                            td { (used_of(agent, "cpus")) }
                            td { (used_of(agent, "mem")) }
                            td { (used_of(agent, "disk")) }
                        }
                    }
                }))
                (cluster::pager("/ui/agents", paging.offset, &page))
            }
            @if unreachable > 0.0 {
                p.bad { (number(unreachable)) " unreachable agent(s) are not listed until they return." }
            }
        },
    ))
}

pub async fn show(
    api: crate::Api,
    Path(id): Path<String>,
    Query(paging): Query<Paging>,
    Query(flash): Query<Flash>,
) -> Result<Markup, Response> {
    let filter = format!("&slave_id={}&ended=false", segment(&id));
    let (agent, tasks, frameworks) = tokio::join!(
        cluster::agent(&api, "agents", &id),
        cluster::tasks(&api, "agents", &filter, paging.offset),
        cluster::frameworks(&api, "agents")
    );
    let Some(agent) = agent? else {
        return Err(layout::failure(
            "agents",
            StatusCode::NOT_FOUND,
            &format!("No agent {id} is registered."),
        ));
    };
    let (tasks, frameworks) = (tasks?, frameworks?);
    let names = cluster::names(&frameworks);
    let agent = &agent;
    let number_of = |name: &str, key: &str| agent[key][name].as_f64().unwrap_or(0.0);
    let attributes: Vec<String> = agent["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}: {}", text(v)))
        .collect();
    Ok(layout::page(
        "agents",
        &format!("Agent {}", text(&agent["hostname"])),
        &flash,
        html! {
            h1 { "Agent " (text(&agent["hostname"])) }
            (fields(&[
                ("ID", html! { (id) }),
                ("Address", html! { (text(&agent["pid"])) }),
                ("State", html! { (agent_state(agent)) }),
                ("Version", html! { (text(&agent["version"])) }),
                ("Resources", html! { (resources(&agent["resources"])) }),
                ("Attributes", html! { @if attributes.is_empty() { "—" } @else { (attributes.join(" · ")) } }),
            ]))
            div.card {
                (gauge("CPU", number_of("cpus", "used_resources"), number_of("cpus", "resources"), "cpus"))
                (gauge("Memory", number_of("mem", "used_resources"), number_of("mem", "resources"), "MB"))
                (gauge("Disk", number_of("disk", "used_resources"), number_of("disk", "resources"), "MB"))
            }
            h2 { "Tasks" }
            @if tasks.rows.is_empty() {
                p.muted { "No tasks." }
            } @else {
                (table(&["Task", "State", "Framework", "Resources"], html! {
                    @for task in &tasks.rows {
                        @let state = task["state"].as_str().unwrap_or_default();
                        @let framework = task["framework_id"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/tasks/" (segment(task["id"].as_str().unwrap_or_default()))} { (text(&task["id"])) } }
                            td { span class=(state_class(state)) { (state_name(state)) } }
                            td { (names.get(framework).copied().unwrap_or(framework)) }
                            td { (resources(&task["resources"])) }
                        }
                    }
                }))
                (cluster::pager(&format!("/ui/agents/{}", segment(&id)), paging.offset, &tasks))
            }
        },
    ))
}

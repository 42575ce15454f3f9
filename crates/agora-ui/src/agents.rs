//! Agents: their resources (used of total), attributes, state and tasks.

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::format::{items, number, resources, segment, state as state_name, state_class, text};
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

/// Tasks that have not ended, on `agent_id`.
fn tasks_on<'a>(
    state: &'a Value,
    agent_id: &'a str,
) -> impl Iterator<Item = (&'a Value, &'a Value)> {
    items(state, "frameworks").flat_map(move |framework| {
        items(framework, "tasks")
            .filter(move |task| task["slave_id"] == agent_id)
            .map(move |task| (framework, task))
    })
}

pub async fn list(api: crate::Api, Query(flash): Query<Flash>) -> Result<Markup, Response> {
    let state = layout::master_state(&api, "agents").await?;
    let agents: Vec<&Value> = items(&state, "slaves").collect();
    Ok(layout::page(
        "agents",
        "Agents",
        &flash,
        html! {
            h1 { "Agents" }
            @if agents.is_empty() {
                p.muted { "No agent is registered." }
            } @else {
                (table(&["Agent", "Host", "State", "CPUs", "Memory (MB)", "Disk (MB)", "Tasks"], html! {
                    @for agent in &agents {
                        @let id = agent["id"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/agents/" (segment(id))} { (id) } }
                            td { (text(&agent["hostname"])) }
                            td { span class=(if agent_state(agent) == "active" { "good" } else { "pending" }) { (agent_state(agent)) } }
                            td { (used_of(agent, "cpus")) }
                            td { (used_of(agent, "mem")) }
                            td { (used_of(agent, "disk")) }
                            td { (tasks_on(&state, id).count()) }
                        }
                    }
                }))
            }
            @if state["unreachable_slaves"].as_u64().unwrap_or(0) > 0 {
                p.bad { (text(&state["unreachable_slaves"])) " unreachable agent(s) are not listed until they return." }
            }
        },
    ))
}

pub async fn show(
    api: crate::Api,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Markup, Response> {
    let state = layout::master_state(&api, "agents").await?;
    let Some(agent) = items(&state, "slaves").find(|a| a["id"] == id.as_str()) else {
        return Err(layout::failure(
            "agents",
            StatusCode::NOT_FOUND,
            &format!("No agent {id} is registered."),
        ));
    };
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
            @let tasks: Vec<(&Value, &Value)> = tasks_on(&state, &id).collect();
            @if tasks.is_empty() {
                p.muted { "No tasks." }
            } @else {
                (table(&["Task", "State", "Framework", "Resources"], html! {
                    @for (framework, task) in &tasks {
                        @let state = task["state"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/tasks/" (segment(task["id"].as_str().unwrap_or_default()))} { (text(&task["id"])) } }
                            td { span class=(state_class(state)) { (state_name(state)) } }
                            td { (text(&framework["name"])) }
                            td { (resources(&task["resources"])) }
                        }
                    }
                }))
            }
        },
    ))
}

//! `agora cluster status`: the cluster at a glance, from the master's state and metrics.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Context;
use super::output::{cell, fields, number_text};
use crate::cli::ClusterCommand;

pub async fn run(context: &Context, command: ClusterCommand) -> anyhow::Result<()> {
    let ClusterCommand::Status = command;
    let state = context.master.state().await?;
    let metrics = context.master.metrics_snapshot().await?;
    let status = summary(&state, &metrics);
    context.print(&status, status_text);
    Ok(())
}

/// What `cluster status` shows, as one JSON document (there is no single API answer for it).
fn summary(state: &Value, metrics: &Value) -> Value {
    let mut resources = serde_json::Map::new();
    for name in ["cpus", "mem", "disk", "gpus"] {
        resources.insert(
            name.into(),
            json!({
                "used": metrics[format!("master/{name}_used")].as_f64().unwrap_or(0.0),
                "total": metrics[format!("master/{name}_total")].as_f64().unwrap_or(0.0),
            }),
        );
    }
    let mut tasks: BTreeMap<String, u64> = BTreeMap::new();
    for framework in state["frameworks"].as_array().into_iter().flatten() {
        for task in framework["tasks"].as_array().into_iter().flatten() {
            *tasks.entry(cell(&task["state"])).or_default() += 1;
        }
    }
    let frameworks: Vec<Value> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| json!({"id": f["id"], "name": f["name"], "active": f["active"]}))
        .collect();
    json!({
        "leader": state["leader"],
        "leader_hostname": state["leader_info"]["hostname"],
        "version": state["version"],
        "resources": resources,
        "agents": {
            "active": state["activated_slaves"],
            "deactivated": state["deactivated_slaves"],
            "unreachable": state["unreachable_slaves"],
        },
        "frameworks": frameworks,
        "tasks": tasks,
    })
}

fn status_text(status: &Value) -> String {
    let resource = |name: &str| {
        let used = status["resources"][name]["used"].as_f64().unwrap_or(0.0);
        let total = status["resources"][name]["total"].as_f64().unwrap_or(0.0);
        let percent = if total > 0.0 {
            used / total * 100.0
        } else {
            0.0
        };
        format!(
            "{} / {} ({percent:.0}%)",
            number_text(used),
            number_text(total)
        )
    };
    let mut frameworks: Vec<String> = status["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            if f["active"] == true {
                cell(&f["name"])
            } else {
                format!("{} (inactive)", cell(&f["name"]))
            }
        })
        .collect();
    frameworks.sort();
    let tasks: Vec<String> = status["tasks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(state, count)| {
            format!(
                "{} {}",
                cell(count),
                state.trim_start_matches("TASK_").to_lowercase()
            )
        })
        .collect();
    fields(&[
        (
            "Leader",
            format!(
                "{} ({})",
                cell(&status["leader"]),
                cell(&status["leader_hostname"])
            ),
        ),
        ("Version", cell(&status["version"])),
        (
            "Agents",
            format!(
                "{} active, {} deactivated, {} unreachable",
                cell(&status["agents"]["active"]),
                cell(&status["agents"]["deactivated"]),
                cell(&status["agents"]["unreachable"])
            ),
        ),
        ("CPUs", resource("cpus")),
        ("Memory (MB)", resource("mem")),
        ("Disk (MB)", resource("disk")),
        (
            "Frameworks",
            if frameworks.is_empty() {
                "-".into()
            } else {
                format!("{}: {}", frameworks.len(), frameworks.join(", "))
            },
        ),
        (
            "Tasks",
            if tasks.is_empty() {
                "none".into()
            } else {
                tasks.join(", ")
            },
        ),
    ])
}

//! `agora node list|show|drain|undrain`: agents, from the master's state and operator API.

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Context;
use super::output::fields_then;
use super::output::say;
use super::output::{cell, fields, render_or, resources_text, table, used_of};
use crate::cli::NodeCommand;

pub async fn run(context: &Context, command: NodeCommand) -> anyhow::Result<()> {
    match command {
        NodeCommand::List => {
            let agents = context.master.get_json("/master/slaves").await?;
            let state = context.master.state().await?;
            context.print(&agents, |agents| list_table(agents, &state));
        }
        NodeCommand::Show { id } => {
            let state = context.master.state().await?;
            let agent = find(&state, &id)?;
            context.print(&agent, |agent| show_text(agent, &state));
        }
        NodeCommand::Drain {
            id,
            grace,
            mark_gone,
        } => {
            let state = context.master.state().await?;
            let agent_id = id_of(&find(&state, &id)?);
            context
                .master
                .drain_agent(&agent_id, grace, mark_gone)
                .await
                .with_context(|| format!("cannot drain agent {agent_id}"))?;
            if context.output == crate::cli::Output::Table {
                say!("agent {agent_id} is draining: no new tasks, its tasks are killed");
            }
        }
        NodeCommand::Undrain { id } => {
            let state = context.master.state().await?;
            let agent_id = id_of(&find(&state, &id)?);
            context
                .master
                .reactivate_agent(&agent_id)
                .await
                .with_context(|| format!("cannot reactivate agent {agent_id}"))?;
            if context.output == crate::cli::Output::Table {
                say!("agent {agent_id} is offered again");
            }
        }
    }
    Ok(())
}

fn id_of(agent: &Value) -> String {
    agent["id"].as_str().unwrap_or_default().to_owned()
}

/// An agent by id, or by hostname when only one agent has it.
fn find(state: &Value, wanted: &str) -> anyhow::Result<Value> {
    let agents: Vec<&Value> = state["slaves"].as_array().into_iter().flatten().collect();
    if let Some(agent) = agents.iter().find(|a| a["id"] == wanted) {
        return Ok((*agent).clone());
    }
    let by_host: Vec<&&Value> = agents.iter().filter(|a| a["hostname"] == wanted).collect();
    match by_host.as_slice() {
        [agent] => Ok((**agent).clone()),
        [] => {
            anyhow::bail!("no agent {wanted} (agora node list shows the agents the master knows)")
        }
        _ => anyhow::bail!("several agents run on {wanted}; name one by its id"),
    }
}

/// The agent's state as people say it.
pub fn agent_state(agent: &Value) -> String {
    if let Some(drain) = agent["drain_info"]["state"].as_str() {
        return drain.to_lowercase();
    }
    if agent["deactivated"] == json!(true) {
        "deactivated".into()
    } else if agent["active"] == json!(true) {
        "active".into()
    } else {
        "inactive".into()
    }
}

/// Tasks (not yet ended) on each agent, across frameworks.
fn tasks_on<'a>(state: &'a Value, agent_id: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tasks"].as_array().into_iter().flatten())
        .filter(move |task| task["slave_id"] == agent_id)
}

fn list_table(agents: &Value, state: &Value) -> String {
    let mut rows = table(&["ID", "HOSTNAME", "STATE", "CPUS", "MEM", "DISK", "TASKS"]);
    for agent in agents["slaves"].as_array().into_iter().flatten() {
        let (used, total) = (&agent["used_resources"], &agent["resources"]);
        let id = agent["id"].as_str().unwrap_or_default();
        rows.add_row(vec![
            id.to_owned(),
            cell(&agent["hostname"]),
            agent_state(agent),
            used_of(used, total, "cpus"),
            used_of(used, total, "mem"),
            used_of(used, total, "disk"),
            tasks_on(state, id).count().to_string(),
        ]);
    }
    for agent in state["recovered_slaves"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&agent["id"]),
            cell(&agent["hostname"]),
            "recovering".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ]);
    }
    render_or(&rows, "No agents are registered.")
}

fn show_text(agent: &Value, state: &Value) -> String {
    let attributes: Vec<String> = agent["attributes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| format!("{name}:{}", cell(value)))
        .collect();
    let (used, total) = (&agent["used_resources"], &agent["resources"]);
    let text = fields(&[
        ("ID", cell(&agent["id"])),
        ("Hostname", cell(&agent["hostname"])),
        ("Address", cell(&agent["pid"])),
        ("State", agent_state(agent)),
        ("Version", cell(&agent["version"])),
        ("Resources", resources_text(total)),
        ("Used", resources_text(used)),
        ("CPUs", used_of(used, total, "cpus")),
        ("Memory (MB)", used_of(used, total, "mem")),
        ("Disk (MB)", used_of(used, total, "disk")),
        (
            "Attributes",
            if attributes.is_empty() {
                "-".into()
            } else {
                attributes.join(" ")
            },
        ),
    ]);
    let id = agent["id"].as_str().unwrap_or_default();
    let mut tasks = table(&["TASK", "STATE", "FRAMEWORK", "RESOURCES"]);
    for task in tasks_on(state, id) {
        tasks.add_row(vec![
            cell(&task["id"]),
            cell(&task["state"]),
            cell(&task["framework_id"]),
            resources_text(&task["resources"]),
        ]);
    }
    fields_then(text, &tasks, "No tasks.")
}

//! `agora framework list|show|teardown`: frameworks, their roles and share of the cluster.

use anyhow::Context as _;
use serde_json::Value;

use agora_client::readings::{cluster_totals, dominant_share};

use super::Context;
use super::output::fields_then;
use super::output::say;
use super::output::{age, cell, fields, now_seconds, render_or, resources_text, table};
use crate::cli::FrameworkCommand;

pub async fn run(context: &Context, command: FrameworkCommand) -> anyhow::Result<()> {
    match command {
        FrameworkCommand::List => {
            let frameworks = context.master.get_json("/master/frameworks").await?;
            let state = context.master.state().await?;
            let totals = cluster_totals(&state);
            context.print(&frameworks, |frameworks| list_table(frameworks, &totals));
        }
        FrameworkCommand::Show { id } => {
            let state = context.master.state().await?;
            let framework = find(&state, &id)?;
            let totals = cluster_totals(&state);
            context.print(&framework, |framework| show_text(framework, &totals));
        }
        FrameworkCommand::Teardown { id } => {
            let state = context.master.state().await?;
            let framework = find(&state, &id)?;
            let framework_id = framework["id"].as_str().unwrap_or_default();
            context
                .master
                .teardown(framework_id)
                .await
                .with_context(|| format!("cannot tear framework {framework_id} down"))?;
            if context.output == crate::cli::Output::Table {
                say!(
                    "framework {framework_id} ({}) is torn down: its tasks are killed",
                    cell(&framework["name"])
                );
            }
        }
    }
    Ok(())
}

/// A framework by id, or by name when one framework has it.
fn find(state: &Value, wanted: &str) -> anyhow::Result<Value> {
    let frameworks: Vec<&Value> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    if let Some(framework) = frameworks.iter().find(|f| f["id"] == wanted) {
        return Ok((*framework).clone());
    }
    let named: Vec<&&Value> = frameworks.iter().filter(|f| f["name"] == wanted).collect();
    match named.as_slice() {
        [framework] => Ok((**framework).clone()),
        [] => anyhow::bail!("no framework {wanted} (agora framework list shows them)"),
        _ => anyhow::bail!("several frameworks are called {wanted}; name one by its id"),
    }
}

pub fn roles(framework: &Value) -> String {
    match framework["roles"].as_array() {
        Some(roles) => roles.iter().map(cell).collect::<Vec<_>>().join(","),
        None => cell(&framework["role"]),
    }
}

fn list_table(frameworks: &Value, totals: &[f64; 3]) -> String {
    let mut rows = table(&[
        "ID", "NAME", "ROLES", "ACTIVE", "TASKS", "CPUS", "MEM", "SHARE",
    ]);
    for framework in frameworks["frameworks"].as_array().into_iter().flatten() {
        let used = &framework["used_resources"];
        rows.add_row(vec![
            cell(&framework["id"]),
            cell(&framework["name"]),
            roles(framework),
            cell(&framework["active"]),
            framework["tasks"]
                .as_array()
                .map_or(0, Vec::len)
                .to_string(),
            cell(&used["cpus"]),
            cell(&used["mem"]),
            format!("{:.1}%", dominant_share(used, totals) * 100.0),
        ]);
    }
    render_or(&rows, "No frameworks.")
}

fn show_text(framework: &Value, totals: &[f64; 3]) -> String {
    let used = &framework["used_resources"];
    let text = fields(&[
        ("ID", cell(&framework["id"])),
        ("Name", cell(&framework["name"])),
        ("Roles", roles(framework)),
        ("User", cell(&framework["user"])),
        ("Principal", cell(&framework["principal"])),
        ("Active", cell(&framework["active"])),
        ("Web UI", cell(&framework["webui_url"])),
        (
            "Registered",
            framework["registered_time"]
                .as_f64()
                .map_or("-".into(), |t| format!("{} ago", age(t, now_seconds()))),
        ),
        ("Used", resources_text(used)),
        ("Offered", resources_text(&framework["offered_resources"])),
        (
            "Dominant share",
            format!("{:.1}%", dominant_share(used, totals) * 100.0),
        ),
    ]);
    let mut tasks = table(&["TASK", "NAME", "STATE", "AGENT", "RESOURCES"]);
    for task in framework["tasks"].as_array().into_iter().flatten() {
        tasks.add_row(vec![
            cell(&task["id"]),
            cell(&task["name"]),
            cell(&task["state"]),
            cell(&task["slave_id"]),
            resources_text(&task["resources"]),
        ]);
    }
    fields_then(text, &tasks, "No tasks.")
}

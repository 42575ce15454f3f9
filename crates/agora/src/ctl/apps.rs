//! `agora app …` and `agora group …`: Marathon apps and groups through the services API.

use anyhow::Context as _;
use comfy_table::Table;
use serde_json::Value;

use agora_client::readings::{app_health, app_runs, app_service_ports};

use super::deployments::{Events, app_progress, started};
use super::output::fields_then;
use super::output::{cell, cells, fields, joined, number_text, render, render_or, table};
use super::{Context, read_definition};
use crate::cli::{AppCommand, GroupCommand, WaitArgs};

/// The event stream to follow a change with, unless told not to wait.
async fn events_unless(context: &Context, wait: &WaitArgs) -> anyhow::Result<Option<Events>> {
    if wait.no_wait {
        return Ok(None);
    }
    Events::subscribe(&context.services).await.map(Some)
}

pub async fn run_app(context: &Context, command: AppCommand) -> anyhow::Result<()> {
    let services = &context.services;
    match command {
        AppCommand::Add { file, wait } => {
            let definition = read_definition(&file)?;
            let events = events_unless(context, &wait).await?;
            let answer = services
                .create_app(&definition, wait.force)
                .await
                .context("cannot create the app")?;
            let what = format!("created app {}", cell(&answer.body["id"]));
            started(context, &answer, &what, events).await?;
        }
        AppCommand::List => {
            let apps = services.apps(&["apps.counts", "apps.deployments"]).await?;
            context.print(&apps, list_table);
        }
        AppCommand::Show { id } => {
            let app = services
                .app(&id, &[])
                .await
                .with_context(|| format!("cannot show app {id}"))?;
            context.print(&app, show_text);
        }
        AppCommand::Update { id, file, wait } => {
            let definition = read_definition(&file)?;
            let events = events_unless(context, &wait).await?;
            let answer = services
                .update_app(&id, &definition, wait.force)
                .await
                .with_context(|| format!("cannot update app {id}"))?;
            started(context, &answer, &format!("updated app {id}"), events).await?;
        }
        AppCommand::Scale {
            id,
            instances,
            wait,
        } => {
            let events = events_unless(context, &wait).await?;
            let answer = services
                .scale_app(&id, instances, wait.force)
                .await
                .with_context(|| format!("cannot scale app {id}"))?;
            let what = format!("scaling app {id} to {instances}");
            started(context, &answer, &what, events).await?;
        }
        AppCommand::Restart { id, wait } => {
            let events = events_unless(context, &wait).await?;
            let answer = services
                .restart_app(&id, wait.force)
                .await
                .with_context(|| format!("cannot restart app {id}"))?;
            started(context, &answer, &format!("restarting app {id}"), events).await?;
        }
        AppCommand::Remove { id, force } => {
            let answer = services
                .remove_app(&id, force)
                .await
                .with_context(|| format!("cannot remove app {id}"))?;
            started(context, &answer, &format!("removing app {id}"), None).await?;
        }
        AppCommand::Versions { id } => {
            let versions = services
                .app_versions(&id)
                .await
                .with_context(|| format!("cannot list the versions of app {id}"))?;
            context.print(&versions, versions_table);
        }
        AppCommand::Rollback { id, version, wait } => {
            let events = events_unless(context, &wait).await?;
            let answer = services
                .rollback_app(&id, &version, wait.force)
                .await
                .with_context(|| format!("cannot roll app {id} back to {version}"))?;
            let what = format!("rolling app {id} back to version {version}");
            started(context, &answer, &what, events).await?;
        }
    }
    Ok(())
}

pub async fn run_group(context: &Context, command: GroupCommand) -> anyhow::Result<()> {
    let services = &context.services;
    match command {
        GroupCommand::Add { file, wait } => {
            let definition = read_definition(&file)?;
            let events = events_unless(context, &wait).await?;
            let answer = services
                .create_group(&definition, wait.force)
                .await
                .context("cannot create the group")?;
            let what = format!("created group {}", cell(&definition["id"]));
            started(context, &answer, &what, events).await?;
        }
        GroupCommand::List => {
            let root = services.group("/").await?;
            context.print(&root, groups_table);
        }
        GroupCommand::Show { id } => {
            let group = services
                .group(&id)
                .await
                .with_context(|| format!("cannot show group {id}"))?;
            context.print(&group, group_text);
        }
        GroupCommand::Scale { id, factor, wait } => {
            let events = events_unless(context, &wait).await?;
            let answer = services
                .scale_group(&id, factor, wait.force)
                .await
                .with_context(|| format!("cannot scale group {id}"))?;
            let what = format!("scaling group {id} by {}", number_text(factor));
            started(context, &answer, &what, events).await?;
        }
        GroupCommand::Remove { id, force } => {
            let answer = services
                .remove_group(&id, force)
                .await
                .with_context(|| format!("cannot remove group {id}"))?;
            started(context, &answer, &format!("removing group {id}"), None).await?;
        }
    }
    Ok(())
}

/// What an app runs: its command, else its image or arguments.
fn runs(app: &Value) -> String {
    app_runs(app).unwrap_or_else(|| "-".into())
}

/// The first characters of a long text, ending in "…".
fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

fn service_ports(app: &Value) -> String {
    let ports: Vec<String> = app_service_ports(app).iter().map(u64::to_string).collect();
    joined(&ports, ",")
}

fn health(app: &Value) -> String {
    app_health(app).map_or("-".into(), |(healthy, running)| {
        format!("{healthy}/{running}")
    })
}

fn deployments_of(app: &Value) -> String {
    let ids: Vec<String> = app["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| cell(&d["id"]))
        .collect();
    joined(&ids, ",")
}

fn list_table(apps: &Value) -> String {
    let mut rows = table(&[
        "ID",
        "INSTANCES",
        "HEALTHY",
        "CPUS",
        "MEM",
        "PORTS",
        "DEPLOYMENT",
        "RUNS",
    ]);
    for app in apps["apps"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&app["id"]),
            format!(
                "{}/{}",
                app["tasksRunning"].as_u64().unwrap_or(0),
                cell(&app["instances"])
            ),
            health(app),
            cell(&app["cpus"]),
            cell(&app["mem"]),
            service_ports(app),
            deployments_of(app),
            clip(&runs(app), 40),
        ]);
    }
    render_or(&rows, "No apps.")
}

fn show_text(answer: &Value) -> String {
    let app = &answer["app"];
    let (ready, target) = app_progress(app);
    let constraints: Vec<String> = app["constraints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            c.as_array()
                .into_iter()
                .flatten()
                .map(cell)
                .collect::<Vec<_>>()
                .join(":")
        })
        .collect();
    let labels: Vec<String> = app["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", cell(v)))
        .collect();
    let none_if_empty = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_owned()
        } else {
            items.join(" ")
        }
    };
    let mut rows = vec![
        ("ID", cell(&app["id"])),
        ("Version", cell(&app["version"])),
        ("Runs", runs(app)),
        (
            "Instances",
            format!(
                "{} running, {} staged, {} wanted",
                app["tasksRunning"].as_u64().unwrap_or(0),
                app["tasksStaged"].as_u64().unwrap_or(0),
                cell(&app["instances"])
            ),
        ),
        ("Ready", format!("{ready}/{target}")),
        ("Healthy", health(app)),
        (
            "Resources",
            format!(
                "cpus:{} mem:{} disk:{}",
                cell(&app["cpus"]),
                cell(&app["mem"]),
                cell(&app["disk"])
            ),
        ),
        ("Service ports", service_ports(app)),
        ("Constraints", none_if_empty(constraints)),
        ("Labels", none_if_empty(labels)),
        ("Deployments", deployments_of(app)),
    ];
    if let Some(failure) = app["lastTaskFailure"].as_object() {
        rows.push((
            "Last failure",
            format!(
                "{} {} at {}: {}",
                cell(&failure["taskId"]),
                cell(&failure["state"]),
                cell(&failure["timestamp"]),
                cell(&failure["message"])
            ),
        ));
    }
    let tasks: Vec<&Value> = app["tasks"].as_array().into_iter().flatten().collect();
    fields_then(fields(&rows), &tasks_table(&tasks), "No tasks.")
}

/// Marathon tasks: id, state, host and ports, health.
pub fn tasks_table(tasks: &[&Value]) -> Table {
    let mut rows = table(&["TASK", "STATE", "HOST", "PORTS", "HEALTHY", "STARTED"]);
    for task in tasks {
        let ports: Vec<String> = task["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(cell)
            .collect();
        let results: Vec<&Value> = task["healthCheckResults"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let healthy = if results.is_empty() {
            "-".to_owned()
        } else {
            results.iter().all(|r| r["alive"] == true).to_string()
        };
        rows.add_row(vec![
            cell(&task["id"]),
            cell(&task["state"]),
            cell(&task["host"]),
            joined(&ports, ","),
            healthy,
            cell(&task["startedAt"]),
        ]);
    }
    rows
}

fn versions_table(versions: &Value) -> String {
    let mut rows = table(&["VERSION", ""]);
    for (index, version) in versions["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let current = if index == 0 { "current" } else { "" };
        rows.add_row(vec![cell(version), current.to_owned()]);
    }
    render(&rows)
}

/// Every group below (and including) `group`, depth first.
fn walk<'a>(group: &'a Value, into: &mut Vec<&'a Value>) {
    into.push(group);
    for child in group["groups"].as_array().into_iter().flatten() {
        walk(child, into);
    }
}

fn groups_table(root: &Value) -> String {
    let mut groups = Vec::new();
    walk(root, &mut groups);
    let mut rows = table(&["ID", "APPS", "INSTANCES", "DEPENDENCIES", "VERSION"]);
    for group in groups {
        let apps: Vec<&Value> = group["apps"].as_array().into_iter().flatten().collect();
        let instances: u64 = apps.iter().filter_map(|a| a["instances"].as_u64()).sum();
        rows.add_row(vec![
            cell(&group["id"]),
            apps.len().to_string(),
            instances.to_string(),
            joined(&cells(group, "dependencies"), ","),
            cell(&group["version"]),
        ]);
    }
    render(&rows)
}

fn group_text(group: &Value) -> String {
    let text = fields(&[
        ("ID", cell(&group["id"])),
        ("Version", cell(&group["version"])),
        (
            "Groups",
            group["groups"]
                .as_array()
                .map(|groups| groups.iter().map(|g| cell(&g["id"])).collect::<Vec<_>>())
                .filter(|ids| !ids.is_empty())
                .map_or("-".into(), |ids| ids.join(" ")),
        ),
    ]);
    let mut rows = table(&["APP", "INSTANCES", "CPUS", "MEM", "DEPENDENCIES", "RUNS"]);
    let mut apps = Vec::new();
    let mut groups = Vec::new();
    walk(group, &mut groups);
    for g in groups {
        apps.extend(g["apps"].as_array().into_iter().flatten());
    }
    for app in &apps {
        rows.add_row(vec![
            cell(&app["id"]),
            cell(&app["instances"]),
            cell(&app["cpus"]),
            cell(&app["mem"]),
            joined(&cells(app, "dependencies"), ","),
            clip(&runs(app), 40),
        ]);
    }
    fields_then(text, &rows, "No apps.")
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_commands_are_clipped() {
        assert_eq!(super::clip("sleep 10", 40), "sleep 10");
        assert_eq!(super::clip("abcdef", 4), "abc…");
    }
}

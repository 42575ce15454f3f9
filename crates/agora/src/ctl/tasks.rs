//! `agora task list|log|kill|exec`: tasks found through the master, their sandboxes read and
//! their containers entered through the agent that runs them.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use agora_client::AgentClient;
use agora_client::readings::is_terminal;

use super::Context;
use super::apps::tasks_table;
use super::output::say;
use super::output::{cell, render_or, resources_text, table, write_out};
use crate::cli::{Output, TaskCommand};

/// The most the agent gives in one read.
const CHUNK: u64 = 64 * 1024;

pub async fn run(context: &Context, command: TaskCommand) -> anyhow::Result<()> {
    match command {
        TaskCommand::List { app: Some(app), .. } => {
            let tasks = context
                .services
                .tasks(Some(&app))
                .await
                .with_context(|| format!("cannot list the tasks of app {app}"))?;
            context.print(&tasks, |tasks| {
                let list: Vec<&Value> = tasks["tasks"].as_array().into_iter().flatten().collect();
                render_or(&tasks_table(&list), "No tasks.")
            });
        }
        TaskCommand::List { app: None, all } => {
            let mut tasks = context
                .master
                .get_json("/master/tasks?limit=100000")
                .await?;
            if !all && let Some(list) = tasks["tasks"].as_array_mut() {
                list.retain(|task| !is_terminal(task["state"].as_str().unwrap_or_default()));
            }
            let state = context.master.state().await?;
            context.print(&tasks, |tasks| list_table(tasks, &state));
        }
        TaskCommand::Log {
            task,
            follow,
            stderr,
            lines,
        } => {
            let found = Found::find(context, &task).await?;
            let file = if stderr { "stderr" } else { "stdout" };
            log(context, &found, file, lines, follow).await?;
        }
        TaskCommand::Kill { task, scale } => {
            let found = Found::find(context, &task).await?;
            let services_framework = context.services.tasks(None).await?;
            let is_service = services_framework["tasks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["id"] == found.id.as_str());
            if !is_service {
                anyhow::bail!(
                    "task {} is not an app's (framework {}); its framework kills it",
                    found.id,
                    found.framework_id
                );
            }
            let answer = context
                .services
                .kill_tasks(std::slice::from_ref(&found.id), scale)
                .await
                .with_context(|| format!("cannot kill task {}", found.id))?;
            match context.output {
                Output::Table if scale => {
                    say!("killing task {}; its app is scaled down by one", found.id)
                }
                Output::Table => say!("killing task {}; its app replaces it", found.id),
                _ => context.print(&answer.body, |_| String::new()),
            }
        }
        TaskCommand::Exec {
            task,
            timeout,
            command,
        } => {
            let found = Found::find(context, &task).await?;
            let agent = found.agent(context)?;
            let answer = agent
                .exec(&found.id, &command, timeout)
                .await
                .with_context(|| format!("cannot run the command in task {}", found.id))?;
            if context.output != Output::Table {
                context.print(&answer, |_| String::new());
            } else {
                write_out(answer["stdout"].as_str().unwrap_or_default().as_bytes());
                eprint!("{}", answer["stderr"].as_str().unwrap_or_default());
            }
            if answer["timed_out"] == true {
                anyhow::bail!("the command did not end within its timeout and was killed");
            }
            if let Some(signal) = answer["signal"].as_i64() {
                anyhow::bail!("the command was killed by signal {signal}");
            }
            match answer["exit_code"].as_i64() {
                Some(0) | None => {}
                Some(code) => anyhow::bail!("the command exited with code {code}"),
            }
        }
    }
    Ok(())
}

fn list_table(tasks: &Value, state: &Value) -> String {
    let hosts: std::collections::HashMap<&str, &str> = state["slaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| Some((a["id"].as_str()?, a["hostname"].as_str()?)))
        .collect();
    let names: std::collections::HashMap<&str, &str> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| Some((f["id"].as_str()?, f["name"].as_str()?)))
        .collect();
    let mut rows = table(&["TASK", "STATE", "HOST", "FRAMEWORK", "RESOURCES"]);
    for task in tasks["tasks"].as_array().into_iter().flatten() {
        let agent = task["slave_id"].as_str().unwrap_or_default();
        let framework = task["framework_id"].as_str().unwrap_or_default();
        rows.add_row(vec![
            cell(&task["id"]),
            cell(&task["state"]),
            hosts.get(agent).copied().unwrap_or(agent).to_owned(),
            names
                .get(framework)
                .copied()
                .unwrap_or(framework)
                .to_owned(),
            resources_text(&task["resources"]),
        ]);
    }
    render_or(&rows, "No tasks.")
}

/// A task the master knows, by its id or a part of it only one task has.
struct Found {
    id: String,
    framework_id: String,
    agent_id: String,
    /// The agent's address, from the same state (`None` while it is not connected).
    agent_pid: Option<String>,
}

impl Found {
    async fn find(context: &Context, wanted: &str) -> anyhow::Result<Found> {
        let state = context.master.state().await?;
        let tasks: Vec<&Value> = state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|f| {
                f["tasks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(f["completed_tasks"].as_array().into_iter().flatten())
            })
            .collect();
        let exact: Vec<&&Value> = tasks.iter().filter(|t| t["id"] == wanted).collect();
        let matching: Vec<&&Value> = if exact.is_empty() {
            tasks
                .iter()
                .filter(|t| t["id"].as_str().is_some_and(|id| id.contains(wanted)))
                .collect()
        } else {
            exact
        };
        // A task id seen twice (running, and an earlier run completed) is the live one.
        let mut ids: Vec<&str> = matching.iter().filter_map(|t| t["id"].as_str()).collect();
        ids.dedup();
        let task = match (matching.as_slice(), ids.len()) {
            ([], _) => anyhow::bail!(
                "no task {wanted} (agora task list --all shows the tasks the master knows)"
            ),
            ([first, ..], 1) => first,
            (_, _) => anyhow::bail!(
                "{wanted} matches several tasks ({}); give more of the id",
                ids.iter().take(5).copied().collect::<Vec<_>>().join(", ")
            ),
        };
        let agent_pid = state["slaves"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|agent| agent["id"] == task["slave_id"])
            .and_then(|agent| agent["pid"].as_str())
            .map(str::to_owned);
        Ok(Found {
            id: cell(&task["id"]),
            framework_id: cell(&task["framework_id"]),
            agent_id: cell(&task["slave_id"]),
            agent_pid,
        })
    }

    /// The agent that runs (or ran) the task, reached as the command's caller.
    fn agent(&self, context: &Context) -> anyhow::Result<AgentClient> {
        self.agent_pid
            .as_deref()
            .map(|pid| context.agent(pid))
            .with_context(|| format!("agent {} is not connected to the master", self.agent_id))
    }

    /// The task's sandbox: its executor's directory on its agent.
    async fn sandbox(&self, agent: &AgentClient) -> anyhow::Result<String> {
        agent.sandbox_of(&self.id).await?.with_context(|| {
            format!(
                "the agent no longer has task {}'s sandbox (it is removed some time after the task ends)",
                self.id
            )
        })
    }
}

/// Prints a sandbox file (its last `lines` lines), then what is appended to it until the task
/// ends when `follow`.
async fn log(
    context: &Context,
    found: &Found,
    file: &str,
    lines: Option<usize>,
    follow: bool,
) -> anyhow::Result<()> {
    let agent = found.agent(context)?;
    let path = format!("{}/{file}", found.sandbox(&agent).await?);
    let size = agent
        .read_file(&path, None, None)
        .await
        .with_context(|| format!("cannot read {file} of task {}", found.id))?
        .offset;
    let mut offset = match lines {
        Some(lines) => start_of_last_lines(&agent, &path, size, lines).await?,
        None => 0,
    };
    // One listener for the whole follow: a Ctrl-C between two polls is not lost.
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    loop {
        let chunk = agent.read_file(&path, Some(offset), Some(CHUNK)).await?;
        if chunk.length > 0 {
            offset += chunk.length;
            write_out(chunk.data.as_bytes());
            continue;
        }
        if !follow {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = &mut interrupted => return Ok(()),
        }
        if task_ended(context, &found.id).await {
            // What the task wrote last, then stop.
            let chunk = agent.read_file(&path, Some(offset), Some(CHUNK)).await?;
            if chunk.length == 0 {
                return Ok(());
            }
        }
    }
}

async fn task_ended(context: &Context, task_id: &str) -> bool {
    let Ok(state) = context.master.state().await else {
        return false;
    };
    !state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["tasks"].as_array().into_iter().flatten())
        .any(|t| t["id"] == task_id && !is_terminal(t["state"].as_str().unwrap_or_default()))
}

/// The offset where the file's last `lines` lines begin, read backwards a chunk at a time.
async fn start_of_last_lines(
    agent: &AgentClient,
    path: &str,
    size: u64,
    lines: usize,
) -> anyhow::Result<u64> {
    if lines == 0 {
        return Ok(size);
    }
    let mut end = size;
    let mut newlines = 0;
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = agent
            .read_file(path, Some(start), Some(end - start))
            .await?;
        // Positions are counted back from the end of what `data` stands for: a piece that
        // starts inside a character has a replacement character in front, never behind.
        let bytes = chunk.data.as_bytes();
        let data_end = start + chunk.length;
        for (index, byte) in bytes.iter().enumerate().rev() {
            if *byte != b'\n' {
                continue;
            }
            let after = data_end.saturating_sub((bytes.len() - index - 1) as u64);
            // A newline that ends the file does not start a line.
            if after != size {
                newlines += 1;
                if newlines == lines {
                    return Ok(after);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

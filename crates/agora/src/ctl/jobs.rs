//! `agora job add|list|show|run|remove|history`: Chronos jobs through the jobs API.

use anyhow::Context as _;
use serde_json::Value;

use super::output::fields_then;
use super::output::say;
use super::output::{cell, fields, render_or, table};
use super::{Context, read_definition};
use crate::cli::{JobCommand, Output};

pub async fn run(context: &Context, command: JobCommand) -> anyhow::Result<()> {
    let jobs = &context.jobs;
    match command {
        JobCommand::Add { file } => {
            let definition = read_definition(&file)?;
            let name = definition["name"].as_str().unwrap_or_default().to_owned();
            jobs.put_job(&definition)
                .await
                .context("cannot create the job")?;
            if context.output == Output::Table {
                say!("job {name} is saved");
            } else {
                // The API answers 204; the job as it is now stored says more.
                let stored = jobs.job(&name).await?;
                context.print(&stored, |_| String::new());
            }
        }
        JobCommand::List => {
            let list = jobs.jobs().await?;
            context.print(&list, list_table);
        }
        JobCommand::Show { name } => {
            let job = jobs
                .job(&name)
                .await
                .with_context(|| format!("cannot show job {name}"))?;
            context.print(&job, show_text);
        }
        JobCommand::Run { name } => {
            jobs.run_job(&name)
                .await
                .with_context(|| format!("cannot run job {name}"))?;
            if context.output == Output::Table {
                say!("job {name} is queued to run now");
            }
        }
        JobCommand::Remove { name } => {
            jobs.remove_job(&name)
                .await
                .with_context(|| format!("cannot remove job {name}"))?;
            if context.output == Output::Table {
                say!("job {name} is removed");
            }
        }
        JobCommand::History { name } => {
            let stat = jobs
                .job_stat(&name)
                .await
                .with_context(|| format!("cannot read the history of job {name}"))?;
            context.print(&stat, history_text);
        }
    }
    Ok(())
}

/// A job's schedule, or the jobs it waits for.
fn schedule(job: &Value) -> String {
    match job["parents"].as_array().filter(|p| !p.is_empty()) {
        Some(parents) => format!(
            "after {}",
            parents.iter().map(cell).collect::<Vec<_>>().join(",")
        ),
        None => cell(&job["schedule"]),
    }
}

/// What happened last: success or error, with its time.
fn last_run(job: &Value) -> String {
    let success = job["lastSuccess"].as_str().filter(|s| !s.is_empty());
    let error = job["lastError"].as_str().filter(|s| !s.is_empty());
    match (success, error) {
        (Some(s), Some(e)) if e > s => format!("error {e}"),
        (Some(s), _) => format!("success {s}"),
        (None, Some(e)) => format!("error {e}"),
        (None, None) => "-".into(),
    }
}

fn list_table(jobs: &Value) -> String {
    let mut rows = table(&[
        "NAME",
        "SCHEDULE",
        "DISABLED",
        "SUCCESSES",
        "ERRORS",
        "LAST RUN",
        "COMMAND",
    ]);
    for job in jobs.as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&job["name"]),
            schedule(job),
            cell(&job["disabled"]),
            cell(&job["successCount"]),
            cell(&job["errorCount"]),
            last_run(job),
            cell(&job["command"]),
        ]);
    }
    render_or(&rows, "No jobs.")
}

fn show_text(job: &Value) -> String {
    fields(&[
        ("Name", cell(&job["name"])),
        ("Command", cell(&job["command"])),
        ("Schedule", schedule(job)),
        ("Time zone", cell(&job["scheduleTimeZone"])),
        ("Epsilon", cell(&job["epsilon"])),
        ("Owner", cell(&job["owner"])),
        ("Disabled", cell(&job["disabled"])),
        ("Retries", cell(&job["retries"])),
        (
            "Resources",
            format!(
                "cpus:{} mem:{} disk:{}",
                cell(&job["cpus"]),
                cell(&job["mem"]),
                cell(&job["disk"])
            ),
        ),
        ("Successes", cell(&job["successCount"])),
        ("Errors", cell(&job["errorCount"])),
        ("Last success", cell(&job["lastSuccess"])),
        ("Last error", cell(&job["lastError"])),
    ])
}

fn history_text(stat: &Value) -> String {
    let histogram = &stat["histogram"];
    let text = fields(&[
        ("Runs", cell(&histogram["count"])),
        (
            "Duration (s)",
            format!(
                "mean {} median {} p95 {} p99 {}",
                cell(&histogram["mean"]),
                cell(&histogram["median"]),
                cell(&histogram["95thPercentile"]),
                cell(&histogram["99thPercentile"])
            ),
        ),
    ]);
    let mut rows = table(&[
        "TASK",
        "STATE",
        "ATTEMPT",
        "STARTED",
        "ENDED",
        "SCHEDULED",
        "MESSAGE",
    ]);
    for run in stat["taskStatHistory"].as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&run["taskId"]),
            cell(&run["taskState"]),
            cell(&run["attempt"]),
            cell(&run["startTime"]),
            cell(&run["endTime"]),
            cell(&run["scheduledAt"]),
            cell(&run["message"]),
        ]);
    }
    fields_then(text, &rows, "No runs yet.")
}

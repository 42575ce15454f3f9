//! Jobs (the jobs API): schedules, last runs and a button to run one now; each job's history.

use axum::extract::{Path, Query};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde_json::Value;

use crate::format::{items, segment, state as state_name, state_class, text};
use crate::layout::{self, Flash, fields, redirect, table};

fn schedule(job: &Value) -> String {
    match job["parents"].as_array().filter(|p| !p.is_empty()) {
        Some(parents) => format!(
            "after {}",
            parents.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        None => text(&job["schedule"]),
    }
}

fn run_button(name: &str) -> Markup {
    html! {
        form.inline method="post" action={"/ui/jobs/" (segment(name)) "/run"} {
            button type="submit" { "Run now" }
        }
    }
}

pub async fn list(api: crate::Api, Query(flash): Query<Flash>) -> Response {
    let jobs = match api.jobs.jobs().await {
        Ok(jobs) => jobs,
        Err(error) => return layout::client_failure("jobs", &error),
    };
    let jobs: Vec<&Value> = jobs.as_array().into_iter().flatten().collect();
    layout::page(
        "jobs",
        "Jobs",
        &flash,
        html! {
            h1 { "Jobs" }
            @if jobs.is_empty() {
                p.muted { "No jobs. Add one with " code { "agora job add FILE" } " or the Chronos API." }
            } @else {
                (table(&["Job", "Schedule", "Successes", "Errors", "Last success", "Last error", ""], html! {
                    @for job in &jobs {
                        @let name = job["name"].as_str().unwrap_or_default();
                        tr data-job=(name) {
                            td { a href={"/ui/jobs/" (segment(name))} { (name) } }
                            td { code { (schedule(job)) } }
                            td.successes { (text(&job["successCount"])) }
                            td { (text(&job["errorCount"])) }
                            td { (text(&job["lastSuccess"])) }
                            td { (text(&job["lastError"])) }
                            td { (run_button(name)) }
                        }
                    }
                }))
            }
        },
    )
    .into_response()
}

pub async fn show(
    api: crate::Api,
    Path(name): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let (job, stat) = match (api.jobs.job(&name).await, api.jobs.job_stat(&name).await) {
        (Ok(job), Ok(stat)) => (job, stat),
        (Err(error), _) | (_, Err(error)) => return layout::client_failure("jobs", &error),
    };
    let runs: Vec<&Value> = items(&stat, "taskStatHistory").collect();
    layout::page(
        "jobs",
        &format!("Job {name}"),
        &flash,
        html! {
            h1 { "Job " (name) " " (run_button(&name)) }
            (fields(&[
                ("Command", html! { code { (text(&job["command"])) } }),
                ("Schedule", html! { code { (schedule(&job)) } }),
                ("Time zone", html! { (text(&job["scheduleTimeZone"])) }),
                ("Owner", html! { (text(&job["owner"])) }),
                ("Resources", html! { (text(&job["cpus"])) " cpus · " (text(&job["mem"])) " MB" }),
                ("Retries", html! { (text(&job["retries"])) }),
                ("Successes", html! { span #successes { (text(&job["successCount"])) } }),
                ("Errors", html! { (text(&job["errorCount"])) }),
                ("Disabled", html! { (text(&job["disabled"])) }),
            ]))
            h2 { "Last runs" }
            @if runs.is_empty() {
                p.muted { "No runs yet." }
            } @else {
                (table(&["Task", "State", "Attempt", "Started", "Ended", "Message"], html! {
                    @for run in &runs {
                        @let state = run["taskState"].as_str().unwrap_or_default();
                        tr {
                            td { a href={"/ui/tasks/" (segment(run["taskId"].as_str().unwrap_or_default()))} { (text(&run["taskId"])) } }
                            td { span class=(state_class(state)) { (state_name(state)) } }
                            td { (text(&run["attempt"])) }
                            td { (text(&run["startTime"])) }
                            td { (text(&run["endTime"])) }
                            td { (text(&run["message"])) }
                        }
                    }
                }))
            }
        },
    )
    .into_response()
}

pub async fn run_now(api: crate::Api, Path(name): Path<String>) -> Response {
    let page = format!("/ui/jobs/{}", segment(&name));
    let result = api
        .jobs
        .run_job(&name)
        .await
        .map(|()| format!("{name} is queued to run now."))
        .map_err(|e| {
            format!(
                "Cannot run {name}: {}",
                e.server_message().unwrap_or_else(|| e.to_string())
            )
        });
    redirect(&page, result)
}

//! Chronos' REST API, under both `/scheduler` (2.x, what chronos-python calls by default with
//! its `/v1` prefix… or without it) and `/v1/scheduler` (3.x). Create, run and delete answer 204
//! with no body, as Chronos does (chronos-python takes a 200 with an empty body for an error);
//! errors are `{"message": ...}` with 400, or 404 for an unknown job.

use std::sync::Arc;

use agora_http::Query;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

use agora_api::chronos::{EnvironmentVariable, FieldError, Job};

use crate::Shared;
use crate::answer::{Answer, ChronosError};
use crate::core::{JobEntry, Jobs, JobsError, Trigger};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let scheduler = Router::new()
        .route("/jobs", get(list))
        .route("/jobs/search", get(search))
        .route("/iso8601", post(put_scheduled).put(put_scheduled))
        .route("/dependency", post(put_dependent).put(put_dependent))
        .route("/job/{name}", get(show).put(run_now).delete(remove))
        .route("/task/kill/{name}", delete(kill))
        .route("/job/stat/{name}", get(stat))
        .route("/graph/csv", get(graph_csv))
        .route("/graph/dot", get(graph_dot))
        .route("/stats/{percentile}", get(stats))
        .route("/leader", get(leader));
    Router::new()
        .nest("/scheduler", scheduler.clone())
        .nest("/v1/scheduler", scheduler)
        .with_state(shared)
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A job as Chronos shows it: its definition, its counts, and its schedule as it stands now
/// (the next start and the runs left).
fn job_json(entry: &JobEntry) -> Value {
    let mut value = entry.definition.to_json(&entry.state.status);
    if let Some(schedule) = entry.schedule_now() {
        value["schedule"] = json!(schedule);
    }
    value
}

async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let jobs = shared.lock();
    let all: Vec<Value> = jobs.jobs.values().map(job_json).collect();
    axum::Json(all).into_response()
}

/// `/scheduler/jobs/search`'s query: words a job's name, command, or any of its texts hold.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Search {
    name: Option<String>,
    command: Option<String>,
    any: Option<String>,
}

async fn search(State(shared): State<Arc<Shared>>, Query(query): Query<Search>) -> Response {
    let wanted = |word: Option<String>| word.map(|v| v.to_lowercase()).filter(|v| !v.is_empty());
    let (name, command, any) = (wanted(query.name), wanted(query.command), wanted(query.any));
    let jobs = shared.lock();
    let found: Vec<Value> = jobs
        .jobs
        .values()
        .filter(|entry| {
            let job_name = entry.definition.name.to_lowercase();
            let job_command = entry.definition.command.to_lowercase();
            name.as_ref().is_none_or(|n| job_name.contains(n))
                && command.as_ref().is_none_or(|c| job_command.contains(c))
                && any.as_ref().is_none_or(|a| {
                    job_name.contains(a)
                        || job_command.contains(a)
                        || entry.definition.description.to_lowercase().contains(a)
                        || entry.definition.owner.to_lowercase().contains(a)
                })
        })
        .map(job_json)
        .collect();
    axum::Json(found).into_response()
}

fn parse_job(body: &Bytes) -> Result<Job, JobsError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| FieldError::new("job", format!("malformed JSON: {e}")))?;
    Ok(Job::parse(&value)?)
}

async fn put_job(shared: Arc<Shared>, body: Bytes, dependent: bool) -> Answer {
    let job = match parse_job(&body) {
        Ok(job) => job,
        Err(error) => return Err(ChronosError::chronos(error)),
    };
    let result = shared.lock().put(job, dependent, Timestamp::now());
    match result {
        Ok(()) => {
            shared.wake.notify_one();
            Ok(no_content())
        }
        Err(error) => Err(ChronosError::chronos(error)),
    }
}

async fn put_scheduled(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    put_job(shared, body, false).await
}

async fn put_dependent(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    put_job(shared, body, true).await
}

async fn show(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Answer {
    let jobs = shared.lock();
    match jobs.jobs.get(&name) {
        Some(entry) => Ok(axum::Json(job_json(entry)).into_response()),
        None => Err(ChronosError::chronos(JobsError::NotFound(name))),
    }
}

/// `?arguments=a,b` of a run started by hand.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RunNow {
    arguments: Option<String>,
}

/// Runs a job now: `?arguments=a,b` are appended to its command; a JSON body may add
/// `environmentVariables` for this run.
async fn run_now(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
    Query(query): Query<RunNow>,
    body: Bytes,
) -> Answer {
    let arguments: Vec<String> = query
        .arguments
        .map(|a| {
            a.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let mut environment: Vec<EnvironmentVariable> = Vec::new();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let parsed = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            serde_json::from_value::<Vec<EnvironmentVariable>>(
                v.get("environmentVariables")?.clone(),
            )
            .ok()
        });
        match parsed {
            Some(variables) => environment = variables,
            None => {
                return Err(ChronosError::chronos(
                    FieldError::new(
                        "environmentVariables",
                        "expected {\"environmentVariables\": [{\"name\": ..., \"value\": ...}]}",
                    )
                    .into(),
                ));
            }
        }
    }
    let result = shared
        .lock()
        .run_now(&name, arguments, environment, Timestamp::now());
    match result {
        Ok(_) => {
            shared.wake.notify_one();
            Ok(no_content())
        }
        Err(error) => Err(ChronosError::chronos(error)),
    }
}

async fn remove(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Answer {
    let result = shared.lock().delete(&name, Timestamp::now());
    kill_and_answer(&shared, result)
}

async fn kill(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Answer {
    let result = shared.lock().kill(&name);
    kill_and_answer(&shared, result)
}

/// Hands the tasks to kill to the framework loop; 204, or the error.
fn kill_and_answer(shared: &Shared, result: Result<Vec<String>, JobsError>) -> Answer {
    match result {
        Ok(running) => {
            shared.kills().extend(running);
            shared.wake.notify_one();
            Ok(no_content())
        }
        Err(error) => Err(ChronosError::chronos(error)),
    }
}

/// Durations (seconds) of a job's ended runs, oldest first.
fn durations(entry: &JobEntry) -> Vec<f64> {
    entry
        .state
        .history
        .iter()
        .map(|run| (run.ended - run.started).max(0) as f64 / 1000.0)
        .collect()
}

/// The value below which `fraction` of `values` fall (nearest rank).
fn percentile(values: &[f64], fraction: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((fraction * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

const PERCENTILES: [(&str, f64); 5] = [
    ("median", 0.5),
    ("75thPercentile", 0.75),
    ("95thPercentile", 0.95),
    ("98thPercentile", 0.98),
    ("99thPercentile", 0.99),
];

async fn stat(State(shared): State<Arc<Shared>>, Path(name): Path<String>) -> Answer {
    let jobs = shared.lock();
    let Some(entry) = jobs.jobs.get(&name) else {
        return Err(ChronosError::chronos(JobsError::NotFound(name)));
    };
    let values = durations(entry);
    let mut histogram = serde_json::Map::new();
    for (key, fraction) in PERCENTILES {
        histogram.insert(key.into(), json!(percentile(&values, fraction)));
    }
    let mean = if values.is_empty() {
        0.0
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    };
    histogram.insert("mean".into(), json!(mean));
    histogram.insert("count".into(), json!(values.len()));
    let format = agora_api::marathon::time::format_millis;
    let history: Vec<Value> = entry
        .state
        .history
        .iter()
        .rev()
        .map(|run| {
            let mut entry = json!({
                "taskId": run.task_id,
                "jobName": name,
                "slaveId": run.host,
                "taskState": run.state,
                "attempt": run.attempt,
                "startTime": format(run.started),
                "endTime": format(run.ended),
                "message": run.message,
            });
            if let Trigger::Schedule(slot) = run.trigger {
                entry["scheduledAt"] = json!(format(slot));
            }
            entry
        })
        .collect();
    let running: Vec<Value> = jobs
        .runs
        .values()
        .filter(|run| run.pending.job == name)
        .map(|run| {
            json!({
                "taskId": run.task_id,
                "jobName": name,
                "slaveId": run.host,
                "taskState": "TASK_RUNNING",
                "attempt": run.pending.attempt,
                "startTime": format(run.started),
            })
        })
        .collect();
    Ok(axum::Json(json!({
        "histogram": histogram,
        "taskStatHistory": history,
        "running": running,
        "skipped": entry.state.skipped,
    }))
    .into_response())
}

async fn stats(State(shared): State<Arc<Shared>>, Path(which): Path<String>) -> Answer {
    let fraction = match PERCENTILES.iter().find(|(key, _)| *key == which) {
        Some((_, fraction)) => Some(*fraction),
        None if which == "mean" => None,
        None => {
            return Err(ChronosError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown statistic {which:?}: median, mean, 75thPercentile, 95thPercentile, 98thPercentile or 99thPercentile"
                ),
            ));
        }
    };
    let jobs = shared.lock();
    let rows: Vec<Value> = jobs
        .jobs
        .values()
        .filter_map(|entry| {
            let values = durations(entry);
            if values.is_empty() {
                return None;
            }
            let time = match fraction {
                Some(fraction) => percentile(&values, fraction),
                None => values.iter().sum::<f64>() / values.len() as f64,
            };
            Some(json!({"jobNameLabel": entry.definition.name, "time": time}))
        })
        .collect();
    Ok(axum::Json(rows).into_response())
}

/// Each job's last outcome and what it is doing now, as Chronos' graph views show them.
fn states(jobs: &Jobs) -> Vec<(String, &'static str, &'static str)> {
    jobs.jobs
        .values()
        .map(|entry| {
            let name = &entry.definition.name;
            let last = match entry.state.history.back() {
                None => "fresh",
                Some(run) if run.succeeded => "success",
                Some(_) => "failure",
            };
            let now = if jobs.runs.values().any(|r| &r.pending.job == name) {
                "running"
            } else if jobs.queue.iter().any(|p| &p.job == name) {
                "queued"
            } else {
                "idle"
            };
            (name.clone(), last, now)
        })
        .collect()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn graph_csv(State(shared): State<Arc<Shared>>) -> Response {
    let jobs = shared.lock();
    let mut out = String::new();
    for (name, last, now) in states(&jobs) {
        out.push_str(&format!("node,{name},{last},{now}\n"));
    }
    for entry in jobs.jobs.values() {
        for parent in &entry.definition.parents {
            out.push_str(&format!("link,{parent},{}\n", entry.definition.name));
        }
    }
    text(out)
}

async fn graph_dot(State(shared): State<Arc<Shared>>) -> Response {
    let jobs = shared.lock();
    let mut out = String::from("digraph G {\n");
    for (name, last, _) in states(&jobs) {
        let colour = match last {
            "success" => "green",
            "failure" => "red",
            _ => "grey",
        };
        out.push_str(&format!("  \"{name}\" [color={colour}];\n"));
    }
    for entry in jobs.jobs.values() {
        for parent in &entry.definition.parents {
            out.push_str(&format!(
                "  \"{parent}\" -> \"{}\";\n",
                entry.definition.name
            ));
        }
    }
    out.push_str("}\n");
    text(out)
}

async fn leader(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"leader": shared.config.advertised})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.99), 5.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}

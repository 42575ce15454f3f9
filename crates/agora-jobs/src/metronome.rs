//! Metronome's API beside Chronos': `/v1/jobs` with `run` specs, cron `schedules` (with time
//! zones, starting deadlines and concurrency policies), runs started on demand, active runs and
//! history. Invalid input answers 422 in Metronome's shape (`message` and `details` with the
//! path and its errors); an unknown job or run 404.

use std::sync::Arc;

use agora_http::Query;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use jiff::Timestamp;
use serde_json::{Value, json};

use agora_api::chronos::FieldError;
use agora_api::marathon::time::format_millis;
use agora_api::metronome::{JobSpec, ScheduleSpec};

use crate::Shared;
use crate::answer::{Answer, ChronosError};
use crate::core::{JobEntry, Jobs, Metronome};

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/jobs", get(list).post(create))
        .route("/v1/jobs/{id}", get(show).put(replace).delete(remove))
        .route("/v1/jobs/{id}/schedules", get(schedules).post(add_schedule))
        .route(
            "/v1/jobs/{id}/schedules/{schedule}",
            get(show_schedule)
                .put(replace_schedule)
                .delete(remove_schedule),
        )
        .route("/v1/jobs/{id}/runs", get(runs).post(start_run))
        .route("/v1/jobs/{id}/runs/{run}", get(show_run))
        .route("/v1/jobs/{id}/runs/{run}/actions/stop", post(stop_run))
        .with_state(shared)
}

fn body_json(body: &Bytes) -> Result<Value, FieldError> {
    serde_json::from_slice(body).map_err(|e| FieldError::new("", format!("malformed JSON: {e}")))
}

/// What `?embed=` asks for (repeated, or comma-separated).
fn embeds(query: &[(String, String)]) -> Vec<String> {
    query
        .iter()
        .filter(|(key, _)| key == "embed")
        .flat_map(|(_, value)| value.split(',').map(str::to_owned))
        .collect()
}

fn run_json(jobs: &Jobs, job: &str, id: &str) -> Option<Value> {
    if let Some(pending) = jobs.queue.iter().find(|p| p.id == id && p.job == job) {
        return Some(json!({
            "id": pending.id, "jobId": job, "status": "INITIAL",
            "createdAt": format_millis(pending.not_before), "tasks": [],
        }));
    }
    let run = jobs
        .runs
        .values()
        .find(|r| r.pending.id == id && r.pending.job == job)?;
    Some(json!({
        "id": run.pending.id, "jobId": job, "status": "ACTIVE",
        "createdAt": format_millis(run.started),
        "tasks": [{"id": run.task_id, "startedAt": format_millis(run.started), "status": "TASK_RUNNING"}],
    }))
}

fn active_runs(jobs: &Jobs, job: &str) -> Vec<Value> {
    // A run is queued or in flight, never both (a retry is queued after its run ended).
    let ids: Vec<&str> = jobs
        .queue
        .iter()
        .filter(|p| p.job == job)
        .map(|p| p.id.as_str())
        .chain(
            jobs.runs
                .values()
                .filter(|r| r.pending.job == job)
                .map(|r| r.pending.id.as_str()),
        )
        .collect();
    ids.iter()
        .filter_map(|id| run_json(jobs, job, id))
        .collect()
}

fn history(entry: &JobEntry, full: bool) -> Value {
    let status = &entry.state.status;
    let finished = |succeeded: bool| -> Vec<Value> {
        entry
            .state
            .history
            .iter()
            .rev()
            .filter(|run| run.succeeded == succeeded)
            .map(|run| {
                json!({"id": run.run_id, "createdAt": format_millis(run.started), "finishedAt": format_millis(run.ended)})
            })
            .collect()
    };
    let mut value = json!({
        "successCount": status.success_count,
        "failureCount": status.error_count,
        "lastSuccessAt": (!status.last_success.is_empty()).then(|| status.last_success.clone()),
        "lastFailureAt": (!status.last_error.is_empty()).then(|| status.last_error.clone()),
    });
    if full {
        value["successfulFinishedRuns"] = json!(finished(true));
        value["failedFinishedRuns"] = json!(finished(false));
    }
    value
}

/// A job's schedules as Metronome shows them: the one that times the job (the first enabled)
/// with its `nextRunAt`.
fn schedules_json(entry: &JobEntry) -> Vec<Value> {
    let Some(metronome) = &entry.metronome else {
        return Vec::new();
    };
    let next = entry.schedule.as_ref().and_then(|schedule| {
        let handled = entry
            .state
            .handled
            .and_then(|ms| Timestamp::from_millisecond(ms).ok());
        schedule.next_after(handled)
    });
    let timing = metronome.schedules.iter().position(|s| s.enabled);
    metronome
        .schedules
        .iter()
        .enumerate()
        .map(|(index, schedule)| {
            let mut value = json!(schedule);
            if Some(index) == timing
                && let Some(next) = next
            {
                value["nextRunAt"] = json!(format_millis(next.as_millisecond()));
            }
            value
        })
        .collect()
}

fn job_json(jobs: &Jobs, entry: &JobEntry, embed: &[String]) -> Option<Value> {
    let metronome = entry.metronome.as_ref()?;
    let mut value = serde_json::to_value(&metronome.spec).ok()?;
    for what in embed {
        match what.as_str() {
            "activeRuns" => value["activeRuns"] = json!(active_runs(jobs, &metronome.spec.id)),
            "schedules" => value["schedules"] = json!(schedules_json(entry)),
            "history" => value["history"] = history(entry, true),
            "historySummary" => value["historySummary"] = history(entry, false),
            _ => {}
        }
    }
    Some(value)
}

async fn list(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let embed = embeds(&query);
    let jobs = shared.lock();
    let all: Vec<Value> = jobs
        .jobs
        .values()
        .filter_map(|entry| job_json(&jobs, entry, &embed))
        .collect();
    axum::Json(all).into_response()
}

/// Reads a job and, for creation, the `schedules` it may carry.
fn read_job(body: &Bytes) -> Result<(JobSpec, Option<Vec<ScheduleSpec>>), FieldError> {
    let value = body_json(body)?;
    let spec = JobSpec::parse(&value)?;
    let schedules = match value.get("schedules") {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    ScheduleSpec::parse(item).map_err(|e| {
                        FieldError::new(&format!("schedules[{index}].{}", e.field), e.message)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(FieldError::new("schedules", "expected an array")),
        None => None,
    };
    Ok((spec, schedules))
}

async fn create(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let (spec, schedules) = read_job(&body).map_err(|e| ChronosError::invalid(&e))?;
    let mut jobs = shared.lock();
    if jobs.jobs.contains_key(&spec.id) {
        return Err(ChronosError::new(
            StatusCode::CONFLICT,
            format!("Job with this id already exists: {}", spec.id),
        ));
    }
    let id = spec.id.clone();
    let metronome = Metronome {
        spec,
        schedules: schedules.unwrap_or_default(),
    };
    jobs.put_metronome(metronome, Timestamp::now())
        .map_err(ChronosError::metronome)?;
    shared.wake.notify_one();
    let embed = vec!["schedules".to_owned()];
    let value = jobs.jobs.get(&id).and_then(|e| job_json(&jobs, e, &embed));
    Ok((
        StatusCode::CREATED,
        axum::Json(value.unwrap_or(Value::Null)),
    )
        .into_response())
}

fn job_not_found(id: &str) -> ChronosError {
    ChronosError::not_found(&format!("Job {id}"))
}

async fn show(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let jobs = shared.lock();
    let value = jobs
        .jobs
        .get(&id)
        .and_then(|e| job_json(&jobs, e, &embeds(&query)))
        .ok_or_else(|| job_not_found(&id))?;
    Ok(axum::Json(value).into_response())
}

async fn replace(State(shared): State<Arc<Shared>>, Path(id): Path<String>, body: Bytes) -> Answer {
    let (mut spec, _) = read_job(&body).map_err(|e| ChronosError::invalid(&e))?;
    spec.id = id.clone();
    let mut jobs = shared.lock();
    let Some(existing) = jobs.jobs.get(&id).and_then(|e| e.metronome.clone()) else {
        return Err(job_not_found(&id));
    };
    let metronome = Metronome {
        spec,
        schedules: existing.schedules,
    };
    jobs.put_metronome(metronome, Timestamp::now())
        .map_err(ChronosError::metronome)?;
    shared.wake.notify_one();
    let value = jobs.jobs.get(&id).and_then(|e| job_json(&jobs, e, &[]));
    Ok(axum::Json(value.unwrap_or(Value::Null)).into_response())
}

/// `?stopCurrentJobRuns=true` of a job's deletion.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Removal {
    #[serde(deserialize_with = "agora_http::flag")]
    stop_current_job_runs: bool,
}

async fn remove(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): Query<Removal>,
) -> Answer {
    let mut jobs = shared.lock();
    let Some(value) = jobs.jobs.get(&id).and_then(|e| job_json(&jobs, e, &[])) else {
        return Err(job_not_found(&id));
    };
    if !query.stop_current_job_runs && !jobs.running(&id).is_empty() {
        return Err(ChronosError::new(
            StatusCode::CONFLICT,
            "Job has active runs: stop them or set stopCurrentJobRuns=true",
        ));
    }
    let running = jobs
        .delete(&id, Timestamp::now())
        .map_err(ChronosError::metronome)?;
    drop(jobs);
    shared.kills().extend(running);
    shared.wake.notify_one();
    Ok(axum::Json(value).into_response())
}

async fn schedules(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let jobs = shared.lock();
    let entry = jobs
        .jobs
        .get(&id)
        .filter(|e| e.metronome.is_some())
        .ok_or_else(|| job_not_found(&id))?;
    Ok(axum::Json(schedules_json(entry)).into_response())
}

/// Applies `change` to a job's schedules and stores the job again.
fn change_schedules(
    shared: &Shared,
    id: &str,
    change: impl FnOnce(&mut Vec<ScheduleSpec>) -> Result<(), ChronosError>,
) -> Result<(), ChronosError> {
    let mut jobs = shared.lock();
    let Some(mut metronome) = jobs.jobs.get(id).and_then(|e| e.metronome.clone()) else {
        return Err(job_not_found(id));
    };
    change(&mut metronome.schedules)?;
    jobs.put_metronome(metronome, Timestamp::now())
        .map_err(ChronosError::metronome)?;
    shared.wake.notify_one();
    Ok(())
}

fn read_schedule(body: &Bytes) -> Result<ScheduleSpec, ChronosError> {
    body_json(body)
        .and_then(|value| ScheduleSpec::parse(&value))
        .map_err(|error| ChronosError::invalid(&error))
}

fn schedule_not_found(schedule: &str, id: &str) -> ChronosError {
    ChronosError::not_found(&format!("Schedule {schedule} of job {id}"))
}

async fn add_schedule(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Answer {
    let schedule = read_schedule(&body)?;
    let answer = json!(schedule);
    change_schedules(&shared, &id, |schedules| {
        if schedules.iter().any(|s| s.id == schedule.id) {
            return Err(ChronosError::new(
                StatusCode::CONFLICT,
                format!("Schedule {} already exists", schedule.id),
            ));
        }
        schedules.push(schedule);
        Ok(())
    })?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

async fn show_schedule(
    State(shared): State<Arc<Shared>>,
    Path((id, schedule)): Path<(String, String)>,
) -> Answer {
    let jobs = shared.lock();
    let found = jobs
        .jobs
        .get(&id)
        .and_then(|e| e.metronome.as_ref())
        .and_then(|m| m.schedules.iter().find(|s| s.id == schedule))
        .ok_or_else(|| schedule_not_found(&schedule, &id))?;
    Ok(axum::Json(found).into_response())
}

async fn replace_schedule(
    State(shared): State<Arc<Shared>>,
    Path((id, schedule_id)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    let mut schedule = read_schedule(&body)?;
    schedule.id = schedule_id.clone();
    let answer = json!(schedule);
    change_schedules(&shared, &id, |schedules| {
        match schedules.iter_mut().find(|s| s.id == schedule_id) {
            Some(existing) => {
                *existing = schedule;
                Ok(())
            }
            None => Err(schedule_not_found(&schedule_id, &id)),
        }
    })?;
    Ok(axum::Json(answer).into_response())
}

async fn remove_schedule(
    State(shared): State<Arc<Shared>>,
    Path((id, schedule_id)): Path<(String, String)>,
) -> Answer {
    change_schedules(&shared, &id, |schedules| {
        let before = schedules.len();
        schedules.retain(|s| s.id != schedule_id);
        if schedules.len() == before {
            return Err(schedule_not_found(&schedule_id, &id));
        }
        Ok(())
    })?;
    Ok(axum::Json(json!({})).into_response())
}

/// Whether `id` is a Metronome job.
fn is_metronome(jobs: &Jobs, id: &str) -> bool {
    jobs.jobs.get(id).is_some_and(|e| e.metronome.is_some())
}

async fn runs(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let jobs = shared.lock();
    if !is_metronome(&jobs, &id) {
        return Err(job_not_found(&id));
    }
    Ok(axum::Json(active_runs(&jobs, &id)).into_response())
}

async fn start_run(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Answer {
    let mut jobs = shared.lock();
    if !is_metronome(&jobs, &id) {
        return Err(job_not_found(&id));
    }
    let run = jobs
        .run_now(&id, Vec::new(), Vec::new(), Timestamp::now())
        .map_err(ChronosError::metronome)?;
    shared.wake.notify_one();
    let value = run_json(&jobs, &id, &run).unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, axum::Json(value)).into_response())
}

fn run_not_found(run: &str, id: &str) -> ChronosError {
    ChronosError::not_found(&format!("Run {run} of job {id}"))
}

async fn show_run(
    State(shared): State<Arc<Shared>>,
    Path((id, run)): Path<(String, String)>,
) -> Answer {
    let jobs = shared.lock();
    if let Some(value) = run_json(&jobs, &id, &run) {
        return Ok(axum::Json(value).into_response());
    }
    let ended = jobs.jobs.get(&id).and_then(|e| {
        let last = e.state.history.iter().rev().find(|r| r.run_id == run)?;
        Some(json!({
            "id": run, "jobId": id,
            "status": if last.succeeded { "SUCCESS" } else { "FAILED" },
            "createdAt": format_millis(last.started), "completedAt": format_millis(last.ended),
            "tasks": [{"id": last.task_id, "startedAt": format_millis(last.started),
                       "completedAt": format_millis(last.ended), "status": last.state}],
        }))
    });
    let value = ended.ok_or_else(|| run_not_found(&run, &id))?;
    Ok(axum::Json(value).into_response())
}

async fn stop_run(
    State(shared): State<Arc<Shared>>,
    Path((id, run)): Path<(String, String)>,
) -> Answer {
    let tasks = shared
        .lock()
        .stop_run(&id, &run)
        .ok_or_else(|| run_not_found(&run, &id))?;
    shared.kills().extend(tasks);
    shared.wake.notify_one();
    Ok(axum::Json(json!({})).into_response())
}

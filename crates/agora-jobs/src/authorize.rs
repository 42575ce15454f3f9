//! Who may see and change which jobs: the ACLs' `view_jobs` and `manage_jobs`, by job name (a
//! name covers those it prefixes at a `.`, `-` or `/`). One layer in front of the Chronos and
//! Metronome handlers decides every request: a change names its job (in its path or body) and
//! it must be the caller's to manage (403), as must a deleted job's children, which its
//! delete changes; a read of one job must be the caller's to see
//! (404, as for a job that does not exist); the job lists are cut to what the caller sees; the
//! graph and the statistics show every job, so they need all of them. Without rules for
//! either action the layer stands aside.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use agora_http::auth::acl::Action;
use agora_http::auth::layer;

use crate::Shared;
use crate::answer::ChronosError;

/// What a request touches.
enum Touch {
    /// These jobs.
    Jobs(Vec<String>),
    /// Every job (the graph, statistics).
    All,
    /// A list, cut afterwards.
    List,
}

pub(crate) async fn authorize(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let acls = shared.config.acls.clone();
    if !acls.restricts(Action::ViewJobs) && !acls.restricts(Action::ManageJobs) {
        return next.run(request).await;
    }
    let principal = layer::principal(&request);
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    let action = if changes {
        Action::ManageJobs
    } else {
        Action::ViewJobs
    };
    let may = |name: Option<&str>| acls.permits(action, principal.as_deref(), name);
    // The job a handler acts on is the one its decoded path names.
    let Some(path) = layer::decoded_path(&request) else {
        return ChronosError::new(StatusCode::BAD_REQUEST, "the path is not UTF-8").into_response();
    };
    let Some((parts, bytes)) = layer::buffered(request).await else {
        return ChronosError::new(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )
        .into_response();
    };
    let mut touch = touched(&parts.method, &path, &bytes);
    // A deleted job's children take its parents or its schedule: they change too.
    if deletes_a_job(&parts.method, &path)
        && let Touch::Jobs(names) = &mut touch
    {
        let children: Vec<String> = {
            let jobs = shared.lock();
            names.iter().flat_map(|name| jobs.children(name)).collect()
        };
        names.extend(children);
    }
    match touch {
        Touch::Jobs(names) => {
            if let Some(denied) = names.iter().find(|name| !may(Some(name))) {
                return if changes {
                    ChronosError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "Not authorized to change job '{denied}' ('manage_jobs' in the ACLs)"
                        ),
                    )
                    .into_response()
                } else {
                    ChronosError::new(StatusCode::NOT_FOUND, format!("job {denied:?} not found"))
                        .into_response()
                };
            }
        }
        Touch::All if !may(None) => {
            return ChronosError::new(
                StatusCode::FORBIDDEN,
                "This shows every job: it needs 'view_jobs' on any job",
            )
            .into_response();
        }
        Touch::All => {}
        Touch::List => {
            let response = next.run(layer::rebuilt(parts, bytes)).await;
            let sees =
                |name: &str| acls.permits(Action::ViewJobs, principal.as_deref(), Some(name));
            return layer::edit_json(response, |value| {
                if let Some(items) = value.as_array_mut() {
                    items.retain(|job| {
                        let name = job["name"].as_str().or_else(|| job["id"].as_str());
                        name.is_some_and(sees)
                    });
                }
            })
            .await;
        }
    }
    next.run(layer::rebuilt(parts, bytes)).await
}

/// `DELETE` of a job itself (Chronos' `/job/<name>`, Metronome's `/v1/jobs/<id>`), not of
/// its runs or schedules.
fn deletes_a_job(method: &Method, path: &str) -> bool {
    if *method != Method::DELETE {
        return false;
    }
    let chronos = path
        .strip_prefix("/v1/scheduler")
        .or_else(|| path.strip_prefix("/scheduler"))
        .and_then(|rest| rest.strip_prefix("/job/"));
    let metronome = path.strip_prefix("/v1/jobs/");
    chronos
        .or(metronome)
        .is_some_and(|name| !name.contains('/'))
}

fn touched(method: &Method, path: &str, body: &[u8]) -> Touch {
    let named = |key: &str| {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get(key).and_then(Value::as_str).map(str::to_owned))
            .map_or(Touch::Jobs(Vec::new()), |name| Touch::Jobs(vec![name]))
    };
    if let Some(rest) = path
        .strip_prefix("/v1/scheduler")
        .or_else(|| path.strip_prefix("/scheduler"))
    {
        for prefix in ["/job/stat/", "/job/", "/task/kill/"] {
            if let Some(name) = rest.strip_prefix(prefix) {
                return Touch::Jobs(vec![name.to_owned()]);
            }
        }
        return match rest {
            "/jobs" | "/jobs/search" => Touch::List,
            "/iso8601" | "/dependency" => named("name"),
            "/leader" => Touch::Jobs(Vec::new()),
            _ => Touch::All,
        };
    }
    if path == "/v1/jobs" {
        return if *method == Method::GET {
            Touch::List
        } else {
            named("id")
        };
    }
    if let Some(rest) = path.strip_prefix("/v1/jobs/") {
        let id = rest.split('/').next().unwrap_or(rest);
        return Touch::Jobs(vec![id.to_owned()]);
    }
    Touch::Jobs(Vec::new())
}

//! Read-only endpoints in the Mesos v0 shapes (`/master/state` and friends), health, version,
//! leader redirect and metrics.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use agora_types::FrameworkId;

use agora_http::Query;
use serde::Deserialize;

use super::{Answer, MesosError, json_response, streamed};
use crate::core::lock;
use crate::views::Scope;
use crate::{Shared, metrics, views};

/// `?framework_id=` of `/master/frameworks`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct OneFramework {
    framework_id: Option<String>,
}

/// The query of `/master/slaves`: `slave_id` names one agent, or several separated by commas
/// (agora's); `offset` and `limit` (agora's) page through the agents by id.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Agents {
    slave_id: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The query of `/master/tasks`: a page of tasks, newest first unless `order=asc`.
#[derive(Deserialize)]
#[serde(default)]
struct TasksPage {
    limit: usize,
    offset: usize,
    order: Order,
    framework_id: Option<String>,
    task_id: Option<String>,
    /// agora's: the tasks of one agent.
    slave_id: Option<String>,
    /// agora's: only tasks that have ended (`true`) or not (`false`).
    ended: Option<bool>,
}

impl Default for TasksPage {
    fn default() -> TasksPage {
        TasksPage {
            limit: 100,
            offset: 0,
            order: Order::Des,
            framework_id: None,
            task_id: None,
            slave_id: None,
            ended: None,
        }
    }
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Order {
    Asc,
    Des,
}

/// `?frameworkId=` of `/master/teardown`.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Teardown {
    framework_id: Option<String>,
}

pub(crate) fn routes() -> Router<Shared> {
    let mut router = Router::new();
    for path in [
        "/master/state",
        "/state",
        "/state.json",
        "/master/state.json",
    ] {
        router = router.route(path, get(state));
    }
    for path in ["/master/state-summary", "/state-summary"] {
        router = router.route(path, get(state_summary));
    }
    for path in ["/master/frameworks", "/frameworks"] {
        router = router.route(path, get(frameworks));
    }
    for path in ["/master/slaves", "/slaves"] {
        router = router.route(path, get(agents));
    }
    for path in ["/master/tasks", "/tasks"] {
        router = router.route(path, get(tasks));
    }
    for path in ["/master/roles", "/roles"] {
        router = router.route(path, get(roles));
    }
    for path in ["/master/health", "/health"] {
        router = router.route(path, get(health));
    }
    router
        .route("/master/weights", get(weights))
        .route("/master/redirect", get(redirect))
        .route("/master/teardown", post(teardown))
        .route("/version", get(version))
        .route("/metrics/snapshot", get(metrics_snapshot))
        .route("/metrics", get(metrics_text))
}

/// The principal a request came from, if it named one.
type Caller = Option<Extension<agora_http::auth::Caller>>;

fn principal(caller: &Caller) -> Option<&str> {
    caller
        .as_ref()
        .and_then(|Extension(caller)| caller.principal.as_deref())
}

fn principal_of(caller: &Caller) -> Option<String> {
    principal(caller).map(str::to_owned)
}

async fn state(State(shared): State<Shared>, caller: Caller) -> Response {
    streamed(&shared, Scope::ALL, principal_of(&caller), views::v0_state)
}

async fn state_summary(State(shared): State<Shared>, caller: Caller) -> Response {
    streamed(
        &shared,
        Scope::ALL,
        principal_of(&caller),
        views::state_summary,
    )
}

async fn frameworks(
    State(shared): State<Shared>,
    caller: Caller,
    Query(params): Query<OneFramework>,
) -> Response {
    streamed(
        &shared,
        Scope::TASKS,
        principal_of(&caller),
        move |capture, viewer, out| {
            views::v0_frameworks(capture, viewer, params.framework_id.as_deref(), out)
        },
    )
}

async fn agents(State(shared): State<Shared>, Query(params): Query<Agents>) -> Response {
    streamed(&shared, Scope::ALL, None, move |capture, _, out| {
        let page = views::AgentsPage {
            ids: params
                .slave_id
                .as_deref()
                .map(|ids| ids.split(',').collect())
                .unwrap_or_default(),
            page: (params.offset.is_some() || params.limit.is_some()).then(|| {
                (
                    params.offset.unwrap_or(0),
                    params.limit.unwrap_or(usize::MAX),
                )
            }),
        };
        views::v0_agents(capture, &page, out)
    })
}

async fn tasks(
    State(shared): State<Shared>,
    caller: Caller,
    Query(params): Query<TasksPage>,
) -> Response {
    streamed(
        &shared,
        Scope::TASKS,
        principal_of(&caller),
        move |capture, viewer, out| {
            let page = views::TasksPage {
                limit: params.limit,
                offset: params.offset,
                ascending: params.order == Order::Asc,
                framework_id: params.framework_id.as_deref(),
                task_id: params.task_id.as_deref(),
                agent_id: params.slave_id.as_deref(),
                ended: params.ended,
            };
            views::v0_tasks(capture, viewer, &page, out)
        },
    )
}

async fn roles(State(shared): State<Shared>) -> Response {
    let roles: Vec<Value> = lock(&shared)
        .roles_json()
        .into_iter()
        .map(|role| {
            let resources = role["resources"]
                .as_array()
                .map(|wire| {
                    let wire: Vec<agora_api::mesos::WireResource> = wire
                        .iter()
                        .filter_map(|r| serde_json::from_value(r.clone()).ok())
                        .collect();
                    agora_api::mesos::to_resources(&wire).unwrap_or_default()
                })
                .unwrap_or_default();
            let frameworks: Vec<Value> = role["frameworks"]
                .as_array()
                .map(|f| f.iter().map(|id| id["value"].clone()).collect())
                .unwrap_or_default();
            json!({
                "name": role["name"],
                "weight": role["weight"],
                "frameworks": frameworks,
                "resources": agora_api::v0::flat_resources(&resources),
            })
        })
        .collect();
    json_response(&json!({"roles": roles}))
}

async fn weights(State(shared): State<Shared>) -> Response {
    let master = lock(&shared);
    let weights: Vec<Value> = master
        .weights
        .iter()
        .map(|(role, weight)| json!({"role": role, "weight": weight}))
        .collect();
    json_response(&json!(weights))
}

async fn health() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response()
}

async fn version() -> Response {
    json_response(&views::version_json())
}

/// A single master is always the leader: redirect to itself.
async fn redirect(State(shared): State<Shared>) -> Response {
    // The address, as standbys name the leader (a hostname may not resolve where the caller
    // is).
    let location = {
        let master = lock(&shared);
        format!("//{}:{}", master.info.address.ip, master.info.port)
    };
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// `POST /master/teardown`: the framework named by `frameworkId` in a JSON body or the query.
/// Mesos takes a form body; a form is what any web page can post, so agora takes JSON.
async fn teardown(
    State(shared): State<Shared>,
    caller: Caller,
    Query(params): Query<Teardown>,
    body: Bytes,
) -> Answer {
    let from_body = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value
                .get("frameworkId")
                .and_then(Value::as_str)
                .map(str::to_owned),
            Err(error) => {
                return Err(MesosError::bad_request(format!(
                    "Failed to parse the body as JSON: {error}"
                )));
            }
        }
    };
    let Some(framework_id) = from_body.or(params.framework_id) else {
        return Err(MesosError::bad_request(
            "Missing 'frameworkId' in the request's JSON body or query",
        ));
    };
    let framework_id = FrameworkId::new(framework_id);
    {
        let mut master = lock(&shared);
        let Some(framework) = master.frameworks.get(&framework_id) else {
            return Err(MesosError::bad_request(format!(
                "No framework found with specified ID {framework_id}"
            )));
        };
        let owner = framework.info.principal.clone().unwrap_or_default();
        if !master.config.acls.permits(
            agora_http::auth::acl::Action::TeardownFrameworks,
            principal(&caller),
            Some(&owner),
        ) {
            return Err(MesosError::forbidden(format!(
                "Not authorized to tear down {framework_id} ('teardown_frameworks' in the ACLs)"
            )));
        }
        master.remove_framework(&framework_id);
    }
    super::committed(&shared).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_LENGTH, HeaderValue::from_static("0"))],
    )
        .into_response())
}

/// The master's metrics and those of the components next to it; the others are asked after the
/// master's lock is released.
fn all_metrics(shared: &Shared) -> Vec<(String, f64)> {
    let (mut snapshot, sources) = {
        let master = lock(shared);
        (metrics::snapshot(&master), master.extra_metrics.clone())
    };
    for source in sources {
        snapshot.extend(source());
    }
    snapshot
}

async fn metrics_snapshot(State(shared): State<Shared>) -> Response {
    let snapshot = all_metrics(&shared);
    let map: serde_json::Map<String, Value> =
        snapshot.into_iter().map(|(k, v)| (k, json!(v))).collect();
    json_response(&Value::Object(map))
}

/// `/metrics`: Prometheus text, or Marathon's Dropwizard JSON for clients that ask for JSON.
async fn metrics_text(State(shared): State<Shared>, headers: axum::http::HeaderMap) -> Response {
    let snapshot = all_metrics(&shared);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| {
            accept.contains("application/json") && !accept.contains("text/plain")
        });
    if wants_json {
        return json_response(&metrics::dropwizard(&snapshot));
    }
    let mut text = metrics::prometheus(&snapshot);
    let texts = lock(&shared).extra_metrics_text.clone();
    for source in texts {
        text.push_str(&source());
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

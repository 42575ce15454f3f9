//! `/slave(1)/state` in the Mesos v0 shape (frameworks, executors with their sandbox
//! `directory`, tasks) and the agent's metrics.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use agora_api::v0::flat_resources;
use agora_types::{Resources, TaskState};

use agora_http::auth::acl::{Acls, Action};

use super::files::Caller;
use super::{Shared, json_response};
use crate::core::{Agent, AgentState, Executor, FrameworkEntry, TaskRecord};
use crate::unavailable::Unavailable;

/// Who reads the state: frameworks, executors and tasks show only where the ACLs let them
/// (`view_frameworks`, `view_executors`, `view_tasks`, each by the user they run as), as the
/// master's views do.
#[derive(Clone, Copy)]
struct Viewer<'a> {
    acls: &'a Acls,
    principal: Option<&'a str>,
}

impl Viewer<'_> {
    fn sees_framework(&self, framework: &FrameworkEntry) -> bool {
        self.acls.permits(
            Action::ViewFrameworks,
            self.principal,
            Some(&framework.info.user),
        )
    }

    fn sees_executor(&self, framework: &FrameworkEntry, executor: &Executor) -> bool {
        let user = executor.info.run_as(&framework.info.user);
        self.acls
            .permits(Action::ViewExecutors, self.principal, Some(user))
    }

    fn sees_task(
        &self,
        framework: &FrameworkEntry,
        executor: &Executor,
        task: &TaskRecord,
    ) -> bool {
        let user = task.info.run_as(Some(&executor.info), &framework.info.user);
        self.acls
            .permits(Action::ViewTasks, self.principal, Some(user))
    }
}

fn task_json(framework_id: &str, executor: &Executor, task: &TaskRecord, agent_id: &str) -> Value {
    let resources = agora_api::mesos::to_resources(&task.info.resources).unwrap_or_default();
    let statuses: Vec<Value> = task
        .status
        .iter()
        .map(|s| json!({"state": s.state, "timestamp": s.timestamp.unwrap_or(0.0)}))
        .collect();
    json!({
        "id": task.info.task_id.value,
        "name": task.info.name,
        "framework_id": framework_id,
        "executor_id": if executor.info.kind.as_deref() == Some("COMMAND") { "" } else { executor.info.executor_id.value.as_str() },
        "slave_id": agent_id,
        "state": task.state,
        "resources": flat_resources(&resources),
        "statuses": statuses,
    })
}

fn executor_json(
    viewer: Viewer<'_>,
    framework: &FrameworkEntry,
    framework_id: &str,
    executor: &Executor,
    agent_id: &str,
) -> Value {
    let mut resources =
        agora_api::mesos::to_resources(&executor.info.resources).unwrap_or_default();
    for task in executor.tasks.values().filter(|t| !t.state.is_terminal()) {
        resources += &agora_api::mesos::to_resources(&task.info.resources).unwrap_or_default();
    }
    let seen = |task: &&TaskRecord| viewer.sees_task(framework, executor, task);
    let (queued, live): (Vec<&TaskRecord>, Vec<&TaskRecord>) = executor
        .tasks
        .values()
        .map(|task| &**task)
        .filter(seen)
        .partition(|t| !t.launched && t.state == TaskState::Staging);
    json!({
        "id": executor.info.executor_id.value,
        "name": executor.info.name.clone().unwrap_or_default(),
        "source": "",
        "container": executor.container_id,
        "directory": executor.directory.display().to_string(),
        "resources": flat_resources(&resources),
        "type": executor.info.kind.clone().unwrap_or_else(|| "CUSTOM".into()),
        "tasks": live.iter().map(|t| task_json(framework_id, executor, t, agent_id)).collect::<Vec<_>>(),
        "queued_tasks": queued.iter().map(|t| task_json(framework_id, executor, t, agent_id)).collect::<Vec<_>>(),
        "completed_tasks": executor.completed_tasks.iter().map(|task| &**task).filter(seen).map(|t| task_json(framework_id, executor, t, agent_id)).collect::<Vec<_>>(),
    })
}

fn framework_json(viewer: Viewer<'_>, framework: &FrameworkEntry, agent_id: &str) -> Value {
    let id = framework
        .info
        .id
        .as_ref()
        .map(|id| id.value.clone())
        .unwrap_or_default();
    json!({
        "id": id,
        "name": framework.info.name,
        "user": framework.info.user,
        "failover_timeout": framework.info.failover_timeout,
        "checkpoint": framework.info.checkpoint,
        "hostname": framework.info.hostname.clone().unwrap_or_default(),
        "role": framework.info.role.clone().unwrap_or_else(|| "*".into()),
        "executors": framework.executors.values().filter(|e| viewer.sees_executor(framework, e)).map(|e| executor_json(viewer, framework, &id, e, agent_id)).collect::<Vec<_>>(),
        "completed_executors": framework.completed_executors.iter().filter(|e| viewer.sees_executor(framework, e)).map(|e| executor_json(viewer, framework, &id, e, agent_id)).collect::<Vec<_>>(),
    })
}

fn used_resources(state: &AgentState) -> Resources {
    let mut used = Resources::new();
    for framework in state.frameworks.values() {
        for executor in framework.executors.values() {
            for task in executor.tasks.values().filter(|t| !t.state.is_terminal()) {
                used += &agora_api::mesos::to_resources(&task.info.resources).unwrap_or_default();
            }
        }
    }
    used
}

pub(crate) async fn state(State(agent): State<Shared>, caller: Caller) -> Response {
    let principal = caller
        .as_ref()
        .and_then(|axum::Extension(caller)| caller.principal.as_deref());
    let viewer = Viewer {
        acls: &agent.config.acls,
        principal,
    };
    let mut value = agent.with_state(|state| {
        let agent_id = state.agent_id.clone().unwrap_or_default();
        let resources = &agent.config.resources;
        let attributes: serde_json::Map<String, Value> =
            agent.config.attributes.iter().map(|a| (a.name.clone(), a.v0_value())).collect();
        let mut reserved = serde_json::Map::new();
        for role in resources.reserved().iter().map(|r| r.role().to_owned()) {
            reserved.insert(role.clone(), flat_resources(&resources.filter(|r| r.role() == role)));
        }
        json!({
            "version": "1.11.0",
            "build_date": "",
            "build_time": 0.0,
            "build_user": "agora",
            "start_time": agent.start_time,
            "id": agent_id,
            "pid": format!("slave(1)@{}", agent.config.endpoint()),
            "hostname": agent.config.hostname,
            "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT", "TASK_KILLING_STATE"],
            "resources": flat_resources(resources),
            "reserved_resources": reserved,
            "unreserved_resources": flat_resources(&resources.unreserved()),
            "used_resources": flat_resources(&used_resources(state)),
            "attributes": attributes,
            "master_hostname": master_hostname(&agent.config),
            "flags": {
                "master": agent.config.master,
                "work_dir": agent.config.work_dir.display().to_string(),
                "port": agent.config.port.to_string(),
                "hostname": agent.config.hostname,
                "authenticate_http_readwrite": agent.config.authentication.readwrite.to_string(),
                "authenticate_http_readonly": agent.config.authentication.readonly.to_string(),
                "authenticate_http_executors": agent.config.authenticate_http_executors.to_string(),
            },
            "security": security_json(&agent.config),
            "isolation": isolation_json(&agent),
            "master_link": {
                "connected": state.master_connected,
                "error": state.master_error,
            },
            "frameworks": state.frameworks.values().filter(|f| viewer.sees_framework(f)).map(|f| framework_json(viewer, f, &agent_id)).collect::<Vec<_>>(),
            "completed_frameworks": state.completed_frameworks.iter().filter(|f| viewer.sees_framework(f)).map(|f| framework_json(viewer, f, &agent_id)).collect::<Vec<_>>(),
        })
    });
    for extension in agent
        .extensions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        value[extension.key.as_str()] = (extension.state)();
    }
    json_response(&value)
}

/// Which isolation tasks get, and why not where they do not: `detail` says it for cgroups (as
/// before namespaces came), `namespaces_detail` and `switch_user_detail` for the others.
fn isolation_json(agent: &Agent) -> Value {
    let said = |result: &Result<(), Unavailable>, yes: &str| match result {
        Ok(()) => yes.to_owned(),
        Err(reason) => reason.to_string(),
    };
    json!({
        "cgroups": agent.cgroups.is_ok(),
        "detail": match &agent.cgroups {
            Ok(cgroups) => cgroups.describe(),
            Err(reason) => reason.to_string(),
        },
        "namespaces": agent.namespaces.is_ok(),
        "namespaces_detail": said(&agent.namespaces, "pid and mount namespaces, private /tmp and /proc"),
        "switch_user": agent.switch_user.is_ok(),
        "switch_user_detail": said(&agent.switch_user, "tasks run as their user"),
    })
}

/// Which isolation tasks get, as `slave/isolation_{cgroups,namespaces,switch_user}` (1 or 0).
pub(crate) fn isolation_metrics(agent: &Agent) -> Vec<(String, f64)> {
    let flag = |on: bool| f64::from(u8::from(on));
    vec![
        (
            "slave/isolation_cgroups".to_owned(),
            flag(agent.cgroups.is_ok()),
        ),
        (
            "slave/isolation_namespaces".to_owned(),
            flag(agent.namespaces.is_ok()),
        ),
        (
            "slave/isolation_switch_user".to_owned(),
            flag(agent.switch_user.is_ok()),
        ),
        (
            "slave/warm_containers".to_owned(),
            agent.warm.as_ref().map_or(0.0, |pool| pool.len() as f64),
        ),
        (
            "slave/executor_stream_overflows".to_owned(),
            agent
                .stream_overflows
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        ),
    ]
}

/// One live container: whose it is, what it may use and what it has used.
struct ContainerView {
    framework_id: String,
    executor_id: String,
    executor_name: String,
    container_id: String,
    pid: Option<i32>,
    limits: crate::cgroups::Limits,
    usage: crate::cgroups::Usage,
    /// The first processes of its tasks' Docker containers, whose usage is the container's
    /// too (they run outside the executor's cgroups, under the Docker Engine).
    docker_pids: Vec<i32>,
}

/// Every live executor's container (none without cgroups: nothing is invented).
fn containers(agent: &Shared) -> Vec<ContainerView> {
    let Ok(cgroups) = &agent.cgroups else {
        return Vec::new();
    };
    let listed: Vec<ContainerView> = agent.with_state(|state| {
        state
            .frameworks
            .iter()
            .flat_map(|(framework_id, framework)| {
                framework
                    .executors
                    .values()
                    .map(move |executor| ContainerView {
                        framework_id: framework_id.to_string(),
                        executor_id: executor.info.executor_id.value.clone(),
                        executor_name: executor.info.name.clone().unwrap_or_default(),
                        container_id: executor.container_id.clone(),
                        pid: executor.pid,
                        limits: crate::core::container_limits(executor),
                        usage: crate::cgroups::Usage::default(),
                        // Only the built-in executor's word is taken for it: it ran the
                        // container (a framework's executor could name any process).
                        docker_pids: executor
                            .tasks
                            .values()
                            .filter(|_| executor.kind != crate::core::ExecutorKind::Custom)
                            .filter(|task| !task.state.is_terminal())
                            .filter_map(|task| {
                                let labels = task.status.as_ref()?.labels.as_ref()?;
                                labels["labels"].as_array()?.iter().find(|label| {
                                    label["key"] == crate::command_executor::DOCKER_PID_LABEL
                                })?["value"]
                                    .as_str()?
                                    .parse()
                                    .ok()
                            })
                            .collect(),
                    })
            })
            .collect()
    });
    // The cgroup files are read without the agent's lock.
    listed
        .into_iter()
        .map(|mut view| {
            view.usage = cgroups.container(&view.container_id).usage();
            for pid in &view.docker_pids {
                if let Some(container) = cgroups.of_process(*pid) {
                    view.usage = view.usage.plus(container.usage());
                }
            }
            view
        })
        .collect()
}

fn statistics_json(view: &ContainerView, now: f64) -> Value {
    json!({
        "timestamp": now,
        "cpus_limit": view.limits.cpus,
        "cpus_user_time_secs": view.usage.cpu_user_seconds,
        "cpus_system_time_secs": view.usage.cpu_system_seconds,
        "mem_limit_bytes": view.limits.mem_bytes,
        "mem_rss_bytes": view.usage.mem_bytes,
        "mem_max_rss_bytes": view.usage.mem_peak_bytes,
        "processes": view.usage.pids,
    })
}

/// `/monitor/statistics`: each live executor's container, its limits and usage, in Mesos'
/// shape.
pub(crate) async fn statistics(State(agent): State<Shared>) -> Response {
    let now = crate::core::epoch_secs();
    let entries: Vec<Value> = containers(&agent)
        .iter()
        .map(|view| {
            json!({
                "executor_id": view.executor_id,
                "executor_name": view.executor_name,
                "framework_id": view.framework_id,
                "source": "",
                "statistics": statistics_json(view, now),
            })
        })
        .collect();
    json_response(&Value::Array(entries))
}

/// `/containers`: the same, by container, with the executor's pid (Mesos' agent endpoint).
pub(crate) async fn containers_endpoint(State(agent): State<Shared>) -> Response {
    let now = crate::core::epoch_secs();
    let entries: Vec<Value> = containers(&agent)
        .iter()
        .map(|view| {
            json!({
                "container_id": view.container_id,
                "executor_id": view.executor_id,
                "executor_name": view.executor_name,
                "framework_id": view.framework_id,
                "source": "",
                "status": {"executor_pid": view.pid},
                "statistics": statistics_json(view, now),
            })
        })
        .collect();
    json_response(&Value::Array(entries))
}

/// Per-container usage as labelled Prometheus families (`agora_container_*`).
pub(crate) fn container_metrics_text(agent: &Shared) -> String {
    let views = containers(agent);
    if views.is_empty() {
        return String::new();
    }
    let labels = |view: &ContainerView| {
        vec![
            ("framework_id", view.framework_id.clone()),
            ("executor_id", view.executor_id.clone()),
            ("container_id", view.container_id.clone()),
        ]
    };
    let family = |name: &str, counter: bool, value: &dyn Fn(&ContainerView) -> f64| {
        let samples: Vec<(Vec<(&str, String)>, f64)> = views
            .iter()
            .map(|view| (labels(view), value(view)))
            .collect();
        agora_api::prometheus::render_family(name, counter, &samples)
    };
    [
        family("agora_container_cpu_user_seconds_total", true, &|v| {
            v.usage.cpu_user_seconds
        }),
        family("agora_container_cpu_system_seconds_total", true, &|v| {
            v.usage.cpu_system_seconds
        }),
        family("agora_container_cpus_limit", false, &|v| v.limits.cpus),
        family("agora_container_memory_bytes", false, &|v| {
            v.usage.mem_bytes as f64
        }),
        family("agora_container_memory_peak_bytes", false, &|v| {
            v.usage.mem_peak_bytes as f64
        }),
        family("agora_container_memory_limit_bytes", false, &|v| {
            v.limits.mem_bytes as f64
        }),
        family("agora_container_processes", false, &|v| v.usage.pids as f64),
    ]
    .concat()
}

fn metrics(agent: &Shared) -> Vec<(String, f64)> {
    let mut metrics = agent.with_state(|state| {
        let used = used_resources(state);
        let mut metrics = vec![
            (
                "slave/registered".to_owned(),
                if state.master_connected { 1.0 } else { 0.0 },
            ),
            (
                "slave/uptime_secs".to_owned(),
                crate::core::epoch_secs() - agent.start_time,
            ),
        ];
        for name in ["cpus", "mem", "disk", "gpus"] {
            let total = agent.config.resources.scalar(name).to_f64();
            let used = used.scalar(name).to_f64();
            metrics.push((format!("slave/{name}_total"), total));
            metrics.push((format!("slave/{name}_used"), used));
            metrics.push((
                format!("slave/{name}_percent"),
                if total > 0.0 { used / total } else { 0.0 },
            ));
        }
        let mut counts = std::collections::HashMap::new();
        let mut executors = 0.0;
        for framework in state.frameworks.values() {
            for executor in framework.executors.values() {
                executors += 1.0;
                for task in executor.tasks.values() {
                    *counts.entry(task.state).or_insert(0.0) += 1.0;
                }
            }
        }
        for state_name in [
            TaskState::Staging,
            TaskState::Starting,
            TaskState::Running,
            TaskState::Killing,
        ] {
            metrics.push((
                format!("slave/tasks_{}", state_name.metric_suffix()),
                counts.get(&state_name).copied().unwrap_or(0.0),
            ));
        }
        metrics.push(("slave/executors_running".to_owned(), executors));
        metrics.push((
            "slave/frameworks_active".to_owned(),
            state.frameworks.len() as f64,
        ));
        metrics.push((
            "slave/status_updates_pending".to_owned(),
            state.updates.values().map(|q| q.pending.len() as f64).sum(),
        ));
        metrics
    });
    metrics.extend(isolation_metrics(agent));
    for extension in agent
        .extensions
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        metrics.extend((extension.metrics)());
    }
    metrics
}

pub(crate) async fn metrics_snapshot(State(agent): State<Shared>) -> Response {
    let map: serde_json::Map<String, Value> = metrics(&agent)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    json_response(&Value::Object(map))
}

pub(crate) async fn metrics_text(State(agent): State<Shared>) -> Response {
    let mut text = agora_api::prometheus::render(&metrics(&agent), |_| false);
    text.push_str(&container_metrics_text(&agent));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        text,
    )
        .into_response()
}

/// What protects the agent, and what does not, said where operators look.
fn security_json(config: &crate::AgentConfig) -> Value {
    let mut warnings = Vec::new();
    if !config.authentication.readwrite {
        warnings.push("requests that change state are not authenticated: anyone who reaches this agent can run commands in its tasks");
    }
    if config.executor_tls.is_none() {
        warnings.push("the API is plain HTTP: secrets, tokens and tasks' output cross the network in the clear");
    }
    json!({
        "authentication": if config.authentication.any() { "on" } else { "off" },
        "tls": if config.executor_tls.is_some() { "on" } else { "off" },
        "warnings": warnings,
    })
}

/// The leading master's host, as Mesos shows the master the agent follows (empty while no
/// master leads).
fn master_hostname(config: &crate::AgentConfig) -> String {
    let master = config.current_master().unwrap_or_default();
    match master.rsplit_once(':') {
        Some((host, _)) => host.to_owned(),
        None => master,
    }
}

//! JSON renderings of the master's state: the v1 operator shapes (`GET_STATE` and the
//! operator event stream) and the v0 shapes of `/master/state` and friends.

use serde_json::{Value, json};

use agora_api::mesos::ExecutorInfo;
use agora_http::auth::acl::{Acls, Action};

use agora_api::mesos::{ResourceFormat, from_resources};
use agora_api::v0::flat_resources;
use agora_types::Resources;

use agora_api::mesos::FrameworkInfo;
use agora_types::AgentId;

use crate::core::{Agent, Framework, Master, Task};

/// The Mesos version we answer with; pymesos parses it as dotted integers.
pub(crate) const MESOS_VERSION: &str = "1.11.0";

fn wire(resources: &Resources) -> Value {
    json!(from_resources(resources, ResourceFormat::default(), None))
}

fn nanos(secs: f64) -> Value {
    json!({"nanoseconds": (secs * 1e9) as i64})
}

/// Resources used by an agent's running tasks and offered of it, read from the master (for an
/// event about one agent; whole views work it out from their capture).
pub(crate) fn agent_usage(master: &Master, agent: &Agent) -> Used {
    let mut usage = Used::default();
    for (framework_id, task_id) in &agent.tasks {
        if let Some(task) = master
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
            && !task.released
        {
            usage.used += &task.resources;
        }
    }
    for offer in agent.offers.iter().filter_map(|id| master.offers.get(id)) {
        usage.offered += &offer.resources;
    }
    usage
}

/// The same for a framework.
pub(crate) fn framework_usage(master: &Master, framework: &Framework) -> Used {
    let mut usage = Used::default();
    for task in framework.tasks.values().filter(|t| !t.released) {
        usage.used += &task.resources;
    }
    for offer_id in &framework.offers {
        if let Some(offer) = master.offers.get(offer_id) {
            usage.offered += &offer.resources;
        }
    }
    usage
}

/// Whom a view is for: frameworks, tasks and executors are shown to a principal only as far as
/// the ACLs let it see them (`view_frameworks`, `view_tasks`, `view_executors`, each by the
/// user they run as).
#[derive(Clone, Copy)]
pub(crate) struct Viewer<'a> {
    acls: &'a Acls,
    principal: Option<&'a str>,
}

impl<'a> Viewer<'a> {
    pub fn new(acls: &'a Acls, principal: Option<&'a str>) -> Viewer<'a> {
        Viewer { acls, principal }
    }

    /// A viewer who sees everything (one already checked to).
    pub fn everything() -> Viewer<'static> {
        static PERMISSIVE: std::sync::LazyLock<Acls> = std::sync::LazyLock::new(Acls::default);
        Viewer {
            acls: &PERMISSIVE,
            principal: None,
        }
    }

    pub fn sees_framework(&self, framework: &FrameworkInfo) -> bool {
        self.acls.permits(
            Action::ViewFrameworks,
            self.principal,
            Some(&framework.user),
        )
    }

    pub fn sees_task(&self, framework: &FrameworkInfo, task: &Task) -> bool {
        let user = task.info.run_as(&framework.user);
        self.acls
            .permits(Action::ViewTasks, self.principal, Some(user))
    }

    pub fn sees_executor(&self, framework: &FrameworkInfo, info: &ExecutorInfo) -> bool {
        let user = info.run_as(&framework.user);
        self.acls
            .permits(Action::ViewExecutors, self.principal, Some(user))
    }

    /// Whether the viewer sees everything (the operator event stream shows all).
    pub fn sees_all(&self) -> bool {
        [
            Action::ViewFrameworks,
            Action::ViewTasks,
            Action::ViewExecutors,
        ]
        .into_iter()
        .all(|action| self.acls.permits(action, self.principal, None))
    }
}

pub(crate) fn v1_task(task: &Task) -> Value {
    let info = task.info.get();
    let mut value = json!({
        "name": info.name,
        "task_id": info.task_id,
        "framework_id": {"value": task.framework_id.as_str()},
        "agent_id": {"value": task.agent_id.as_str()},
        "state": task.state,
        "resources": info.resources,
        "statuses": task.statuses.whole(
            task.agent_id.as_str(),
            task.executor_id.as_ref().map(|e| e.as_str()),
        ),
    });
    if let Some(map) = value.as_object_mut() {
        if let Some(executor) = &task.executor_id {
            map.insert("executor_id".into(), json!({"value": executor.as_str()}));
        }
        for (key, field) in [
            ("labels", &info.labels),
            ("discovery", &info.discovery),
            ("container", &info.container),
            ("health_check", &info.health_check),
        ] {
            if let Some(field) = field {
                map.insert(key.into(), field.clone());
            }
        }
        if let Some(kill_policy) = &info.kill_policy {
            map.insert("kill_policy".into(), json!(kill_policy));
        }
    }
    value
}

pub(crate) fn v1_agent(agent: &AgentCopy, usage: &Used) -> Value {
    let mut value = json!({
        "agent_info": *agent.info,
        "active": agent.active,
        "deactivated": agent.deactivated,
        "version": agent.version,
        "pid": format!("slave(1)@{}", agent.endpoint),
        "registered_time": nanos(agent.registered_time),
        "total_resources": wire(&agent.total),
        "allocated_resources": wire(&usage.used),
        "offered_resources": wire(&usage.offered),
        "capabilities": [{"type": "MULTI_ROLE"}, {"type": "HIERARCHICAL_ROLE"}, {"type": "RESERVATION_REFINEMENT"}],
    });
    if let (Some(map), Some(time)) = (value.as_object_mut(), agent.reregistered_time) {
        map.insert("reregistered_time".into(), nanos(time));
    }
    if let (Some(map), Some(drain)) = (value.as_object_mut(), agent.drain) {
        map.insert("drain_info".into(), json!({"state": drain.as_str()}));
    }
    value
}

pub(crate) fn v1_framework(framework: &FrameworkCopy, usage: &Used) -> Value {
    let mut value = json!({
        "framework_info": framework.info,
        "active": framework.connected,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "registered_time": nanos(framework.registered_time),
        "allocated_resources": wire(&usage.used),
        "offered_resources": wire(&usage.offered),
    });
    if let Some(map) = value.as_object_mut() {
        if let Some(time) = framework.reregistered_time {
            map.insert("reregistered_time".into(), nanos(time));
        }
        if let Some(time) = framework.unregistered_time {
            map.insert("unregistered_time".into(), nanos(time));
        }
    }
    value
}

pub(crate) fn v1_executor(agent_id: &AgentId, info: &ExecutorInfo) -> Value {
    json!({"executor_info": info, "agent_id": {"value": agent_id.as_str()}})
}

pub(crate) fn version_json() -> Value {
    json!({
        "version": MESOS_VERSION,
        "agora_version": env!("CARGO_PKG_VERSION"),
        "build_date": "",
        "build_time": 0.0,
        "build_user": "agora",
    })
}

pub(crate) fn v0_task(task: &Task) -> Value {
    let statuses: Vec<Value> = task
        .statuses
        .views()
        .map(|s| {
            let mut status = json!({"state": s.state, "timestamp": s.timestamp});
            if let (Some(map), Some(healthy)) = (status.as_object_mut(), s.healthy) {
                map.insert("healthy".into(), json!(healthy));
            }
            if let (Some(map), Some(container)) = (status.as_object_mut(), s.container_status) {
                map.insert("container_status".into(), container.clone());
            }
            if let (Some(map), Some(labels)) = (status.as_object_mut(), s.labels) {
                map.insert("labels".into(), labels.clone());
            }
            status
        })
        .collect();
    let info = task.info.get();
    let resources = agora_api::mesos::to_resources(&info.resources).unwrap_or_default();
    let mut value = json!({
        "id": info.task_id.value,
        "name": info.name,
        "framework_id": task.framework_id.as_str(),
        "executor_id": task.executor_id.as_ref().map(|e| e.as_str()).unwrap_or(""),
        "slave_id": task.agent_id.as_str(),
        "state": task.state,
        "resources": flat_resources(&resources),
        "role": task.role,
        "statuses": statuses,
    });
    if let Some(map) = value.as_object_mut() {
        for (key, field) in [
            ("labels", &info.labels),
            ("discovery", &info.discovery),
            ("container", &info.container),
            ("health_check", &info.health_check),
        ] {
            if let Some(field) = field {
                map.insert(key.into(), field.clone());
            }
        }
    }
    value
}

/// A framework in the v0 shape, all but its task lists (which documents stream after it).
pub(crate) fn v0_framework_head(
    capture: &Capture,
    framework: &FrameworkCopy,
    usage: &Used,
    viewer: Viewer,
) -> serde_json::Map<String, Value> {
    let offers: Vec<Value> = framework
        .offers
        .iter()
        .filter_map(|id| capture.offers.get(id).map(|o| (id, o)))
        .map(|(id, offer)| {
            json!({
                "id": id.as_str(),
                "framework_id": framework.id.as_str(),
                "slave_id": offer.agent_id.as_str(),
                "allocation_info": {"role": offer.role},
                "resources": flat_resources(&offer.resources),
            })
        })
        .collect();
    let executors: Vec<Value> = framework
        .executors
        .iter()
        .filter(|(_, _, info)| viewer.sees_executor(&framework.info, info))
        .map(|(agent_id, executor_id, info)| {
            let resources = agora_api::mesos::to_resources(&info.resources).unwrap_or_default();
            json!({
                "executor_id": executor_id.as_str(),
                "name": info.name.clone().unwrap_or_default(),
                "framework_id": framework.id.as_str(),
                "command": info.command,
                "resources": flat_resources(&resources),
                "type": info.kind.clone().unwrap_or_else(|| "CUSTOM".into()),
                "slave_id": agent_id.as_str(),
            })
        })
        .collect();
    let capabilities: Vec<&str> = framework
        .info
        .capabilities
        .iter()
        .map(|c| c.kind.as_str())
        .collect();
    let mut all = usage.used.clone();
    all += &usage.offered;
    let mut value = json!({
        "id": framework.id.as_str(),
        "name": framework.info.name,
        "user": framework.info.user,
        "hostname": framework.info.hostname.clone().unwrap_or_default(),
        "webui_url": framework.info.webui_url.clone().unwrap_or_default(),
        "capabilities": capabilities,
        "active": framework.connected,
        "connected": framework.connected,
        "recovered": framework.recovered,
        "failover_timeout": framework.info.failover_timeout,
        "checkpoint": framework.info.checkpoint,
        "registered_time": framework.registered_time,
        "unregistered_time": framework.unregistered_time.unwrap_or(0.0),
        "used_resources": flat_resources(&usage.used),
        "offered_resources": flat_resources(&usage.offered),
        "resources": flat_resources(&all),
        "offers": offers,
        "executors": executors,
    });
    if let Some(map) = value.as_object_mut() {
        if framework.info.has_capability("MULTI_ROLE") {
            map.insert("roles".into(), json!(framework.roles));
        } else {
            map.insert(
                "role".into(),
                json!(
                    framework
                        .roles
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "*".into())
                ),
            );
        }
        if let Some(time) = framework.reregistered_time {
            map.insert("reregistered_time".into(), json!(time));
        }
        if let Some(labels) = &framework.info.labels {
            map.insert("labels".into(), labels.clone());
        }
        if let Some(principal) = &framework.info.principal {
            map.insert("principal".into(), json!(principal));
        }
    }
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub(crate) fn v0_agent(agent: &AgentCopy, usage: &Used) -> Value {
    let mut reserved = serde_json::Map::new();
    let reserved_resources = agent.total.reserved();
    let mut roles: Vec<&str> = reserved_resources.iter().map(|r| r.role()).collect();
    roles.sort_unstable();
    roles.dedup();
    for role in roles {
        let for_role = reserved_resources.filter(|r| r.role() == role);
        reserved.insert(role.to_owned(), flat_resources(&for_role));
    }
    let attributes: serde_json::Map<String, Value> = agent
        .info
        .attributes
        .iter()
        .map(|a| (a.name.clone(), a.v0_value()))
        .collect();
    let mut value = json!({
        "id": agent.id.as_str(),
        "pid": format!("slave(1)@{}", agent.endpoint),
        "hostname": agent.info.hostname,
        "port": agent.info.port,
        "registered_time": agent.registered_time,
        "resources": flat_resources(&agent.total),
        "used_resources": flat_resources(&usage.used),
        "offered_resources": flat_resources(&usage.offered),
        "reserved_resources": reserved,
        "unreserved_resources": flat_resources(&agent.total.unreserved()),
        "attributes": attributes,
        "active": agent.active,
        "deactivated": agent.deactivated,
        "version": agent.version,
        "capabilities": ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT"],
    });
    if let Some(map) = value.as_object_mut() {
        if let Some(time) = agent.reregistered_time {
            map.insert("reregistered_time".into(), json!(time));
        }
        if let Some(drain) = agent.drain {
            map.insert("drain_info".into(), json!({"state": drain.as_str()}));
        }
    }
    value
}

pub(crate) fn flags(master: &Master) -> Value {
    let config = &master.config;
    json!({
        "port": config.port.to_string(),
        "hostname": config.hostname,
        "work_dir": config.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
        "agent_ping_timeout": format!("{}secs", config.agent_ping_timeout.as_secs_f64()),
        "max_agent_ping_timeouts": config.max_agent_ping_timeouts.to_string(),
        "agent_reregister_timeout": format!("{}secs", config.agent_reregister_timeout.as_secs_f64()),
        "allocation_interval": format!("{}secs", config.allocation_interval.as_secs_f64()),
        "authenticate_frameworks": config.authentication.frameworks.to_string(),
        "authenticate_agents": config.authentication.agents.to_string(),
        "authenticate_http_readwrite": config.authentication.readwrite.to_string(),
        "authenticate_http_readonly": config.authentication.readonly.to_string(),
        "tls_require_agent_cert": config.require_agent_certificate.to_string(),
    })
}

/// What protects the cluster, and what does not, said where operators look.
pub(crate) fn security(master: &Master) -> Value {
    let required = &master.config.authentication;
    let mut warnings = Vec::new();
    if !required.readwrite {
        warnings.push(
            "requests that change state are not authenticated: anyone who reaches this master can run commands on the cluster",
        );
    }
    if !required.frameworks {
        warnings.push("frameworks are not authenticated");
    }
    if !required.agents {
        warnings.push("agents are not authenticated: any process that reaches the master can join as an agent");
    }
    if !master.config.tls {
        warnings.push("the API is plain HTTP: secrets, tokens and tasks' commands cross the network in the clear");
    }
    json!({
        "authentication": if required.any() { "on" } else { "off" },
        "tls": if master.config.tls { "on" } else { "off" },
        "warnings": warnings,
    })
}

mod capture;
mod documents;
mod out;

pub(crate) use capture::{AgentCopy, Capture, FrameworkCopy, Scope, Used};
pub(crate) use documents::*;
pub(crate) use out::{Out, Written};

#[cfg(test)]
mod snapshot_tests;

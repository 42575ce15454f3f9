//! Whole state documents, written item by item from a [`Capture`]: the v0 `/master/state`,
//! `/master/state-summary`, `/master/frameworks`, `/master/slaves` and `/master/tasks`, and the
//! v1 operator `GET_STATE`, `GET_TASKS`, `GET_FRAMEWORKS`, `GET_AGENTS`, `GET_EXECUTORS`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use agora_types::TaskState;

use super::capture::{AgentCopy, Capture, FrameworkCopy};
use super::out::{Out, Written};
use super::{MESOS_VERSION, Viewer, v0_agent, v0_framework_head, v0_task, v1_agent, v1_executor};
use super::{v1_framework, v1_task};
use crate::core::Task;

/// `/master/state`.
pub(crate) fn v0_state(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    let head = &capture.head;
    let listed = || capture.agents.iter().filter(|a| a.listed());
    let activated = listed().filter(|a| !a.deactivated).count();
    let deactivated = listed().filter(|a| a.deactivated).count();
    let unreachable = capture.agents.iter().filter(|a| a.unreachable).count();
    let fields = json!({
        "version": MESOS_VERSION,
        "build_date": "",
        "build_time": 0.0,
        "build_user": "agora",
        "start_time": head.start_time,
        "elected_time": head.start_time,
        "id": head.id,
        "pid": head.info.pid,
        "hostname": head.info.hostname,
        "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
        "activated_slaves": activated,
        "deactivated_slaves": deactivated,
        "unreachable_slaves": unreachable,
        "leader": head.info.pid,
        "leader_info": head.info,
        "flags": head.flags,
        "security": head.security,
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    });
    out.raw("{")?;
    if let Value::Object(fields) = &fields {
        out.members(fields)?;
    }
    agents_members(capture, &AgentsPage::default(), false, out)?;
    frameworks_members(capture, viewer, None, false, out)?;
    out.raw("}")
}

/// Which agents `/master/slaves` lists: those named (none: all), a page of them by id.
#[derive(Default)]
pub(crate) struct AgentsPage<'a> {
    pub ids: Vec<&'a str>,
    /// Offset and limit; agents are then listed in the order of their ids.
    pub page: Option<(usize, usize)>,
}

fn agents_members(capture: &Capture, wanted: &AgentsPage, first: bool, out: &mut Out) -> Written {
    let usage = capture.usage();
    let mut agents: Vec<&AgentCopy> = capture
        .agents
        .iter()
        .filter(|a| a.listed())
        .filter(|a| wanted.ids.is_empty() || wanted.ids.contains(&a.id.as_str()))
        .collect();
    if let Some((offset, limit)) = wanted.page {
        agents.sort_unstable_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        agents = agents.into_iter().skip(offset).take(limit).collect();
    }
    out.key("slaves", first)?;
    out.array(agents, |out, agent| {
        out.value(&v0_agent(agent, usage.agent(&agent.id)))
    })?;
    out.key("recovered_slaves", false)?;
    out.array(capture.agents.iter().filter(|a| a.recovered()), |out, a| {
        out.value(&json!({"id": a.id.as_str(), "hostname": a.info.hostname, "port": a.info.port}))
    })
}

fn frameworks_members(
    capture: &Capture,
    viewer: Viewer,
    wanted: Option<&str>,
    first: bool,
    out: &mut Out,
) -> Written {
    let usage = capture.usage();
    let keep = |f: &&FrameworkCopy| {
        wanted.is_none_or(|w| w == f.id.as_str()) && viewer.sees_framework(&f.info)
    };
    let framework = |out: &mut Out, framework: &FrameworkCopy| {
        out.raw("{")?;
        out.members(&v0_framework_head(
            capture,
            framework,
            usage.framework(&framework.id),
            viewer,
        ))?;
        let seen = |task: &&std::sync::Arc<Task>| viewer.sees_task(&framework.info, task);
        let unreachable = |task: &&std::sync::Arc<Task>| task.state == TaskState::Unreachable;
        out.key("tasks", false)?;
        out.array(
            framework
                .tasks
                .iter()
                .filter(seen)
                .filter(|t| !unreachable(t)),
            |out, task| out.value(&v0_task(task)),
        )?;
        out.key("unreachable_tasks", false)?;
        out.array(
            framework.tasks.iter().filter(seen).filter(unreachable),
            |out, task| out.value(&v0_task(task)),
        )?;
        out.key("completed_tasks", false)?;
        out.array(
            framework.completed_tasks.iter().filter(seen),
            |out, task| out.value(&v0_task(task)),
        )?;
        out.raw("}")
    };
    out.key("frameworks", first)?;
    out.array(capture.frameworks.iter().filter(keep), framework)?;
    out.key("completed_frameworks", false)?;
    out.array(capture.completed_frameworks.iter().filter(keep), framework)
}

/// `/master/frameworks` (`?framework_id=` picks one).
pub(crate) fn v0_frameworks(
    capture: &Capture,
    viewer: Viewer,
    wanted: Option<&str>,
    out: &mut Out,
) -> Written {
    out.raw("{")?;
    frameworks_members(capture, viewer, wanted, true, out)?;
    out.raw(",\"unregistered_frameworks\":[]}")
}

/// `/master/slaves`.
pub(crate) fn v0_agents(capture: &Capture, wanted: &AgentsPage, out: &mut Out) -> Written {
    out.raw("{")?;
    agents_members(capture, wanted, true, out)?;
    out.raw("}")
}

/// A page of `/master/tasks`: newest first unless `ascending`.
pub(crate) struct TasksPage<'a> {
    pub limit: usize,
    pub offset: usize,
    pub ascending: bool,
    pub framework_id: Option<&'a str>,
    pub task_id: Option<&'a str>,
    pub agent_id: Option<&'a str>,
    /// Only tasks that have (`true`) or have not (`false`) reached a terminal state.
    pub ended: Option<bool>,
}

pub(crate) fn v0_tasks(
    capture: &Capture,
    viewer: Viewer,
    page: &TasksPage,
    out: &mut Out,
) -> Written {
    let mut all: Vec<&Task> = Vec::new();
    for framework in capture
        .frameworks
        .iter()
        .chain(&capture.completed_frameworks)
    {
        if page
            .framework_id
            .is_some_and(|id| id != framework.id.as_str())
        {
            continue;
        }
        all.extend(
            framework
                .tasks
                .iter()
                .chain(&framework.completed_tasks)
                .filter(|task| viewer.sees_task(&framework.info, task))
                .filter(|task| {
                    page.task_id.is_none_or(|id| id == task.statuses.task_id())
                        && page.agent_id.is_none_or(|id| id == task.agent_id.as_str())
                        && page
                            .ended
                            .is_none_or(|ended| ended == task.state.is_terminal())
                })
                .map(|task| &**task),
        );
    }
    // Oldest first (or newest), ties by id so that pages do not overlap; only the tasks up to
    // the page's end are sorted.
    let order = |a: &&Task, b: &&Task| {
        let by_start = a
            .statuses
            .first_timestamp()
            .total_cmp(&b.statuses.first_timestamp())
            .then_with(|| a.statuses.task_id().cmp(b.statuses.task_id()));
        if page.ascending {
            by_start
        } else {
            by_start.reverse()
        }
    };
    let end = page.offset.saturating_add(page.limit).min(all.len());
    if end == 0 {
        all.clear();
    } else if end < all.len() {
        all.select_nth_unstable_by(end - 1, order);
        all.truncate(end);
    }
    all.sort_unstable_by(order);
    out.raw("{\"tasks\":")?;
    out.array(
        all.into_iter().skip(page.offset).take(page.limit),
        |out, task| out.value(&v0_task(task)),
    )?;
    out.raw("}")
}

/// `/master/state-summary`: agents and frameworks with task counts by state, no tasks.
pub(crate) fn state_summary(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    let usage = capture.usage();
    // Per agent: the states of the tasks the viewer may see, and their frameworks.
    let mut on_agent: std::collections::HashMap<&str, (Counts, Vec<&str>)> =
        std::collections::HashMap::new();
    for framework in capture
        .frameworks
        .iter()
        .filter(|f| viewer.sees_framework(&f.info))
    {
        for task in framework
            .tasks
            .iter()
            .filter(|t| viewer.sees_task(&framework.info, t))
        {
            let (counts, frameworks) = on_agent.entry(task.agent_id.as_str()).or_default();
            counts.add(task.state);
            frameworks.push(framework.id.as_str());
        }
    }
    out.raw("{")?;
    out.key("hostname", true)?;
    out.value(&capture.head.info.hostname)?;
    out.key("slaves", false)?;
    out.array(
        capture.agents.iter().filter(|a| a.listed()),
        |out, agent: &AgentCopy| {
            let mut value = v0_agent(agent, usage.agent(&agent.id));
            let (counts, mut framework_ids) =
                on_agent.remove(agent.id.as_str()).unwrap_or_default();
            framework_ids.sort_unstable();
            framework_ids.dedup();
            if let Some(map) = value.as_object_mut() {
                counts.insert_into(map);
                map.insert("framework_ids".into(), json!(framework_ids));
            }
            out.value(&value)
        },
    )?;
    out.key("frameworks", false)?;
    out.array(
        capture
            .frameworks
            .iter()
            .filter(|f| viewer.sees_framework(&f.info)),
        |out, framework| {
            let used = usage.framework(&framework.id);
            let mut counts = Counts::default();
            let mut agent_ids: Vec<&str> = Vec::with_capacity(framework.tasks.len());
            for task in &framework.tasks {
                counts.add(task.state);
                agent_ids.push(task.agent_id.as_str());
            }
            agent_ids.sort_unstable();
            agent_ids.dedup();
            let mut value = json!({
                "id": framework.id.as_str(),
                "name": framework.info.name,
                "pid": "",
                "used_resources": agora_api::v0::flat_resources(&used.used),
                "offered_resources": agora_api::v0::flat_resources(&used.offered),
                "capabilities": framework.info.capabilities.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
                "hostname": framework.info.hostname.clone().unwrap_or_default(),
                "webui_url": framework.info.webui_url.clone().unwrap_or_default(),
                "active": framework.connected,
                "connected": framework.connected,
                "recovered": framework.recovered,
                "slave_ids": agent_ids,
            });
            if let Some(map) = value.as_object_mut() {
                counts.insert_into(map);
            }
            out.value(&value)
        },
    )?;
    out.raw("}")
}

/// Tasks by state, every state named (`TASK_RUNNING: 3`, `TASK_FAILED: 0`, …).
#[derive(Default)]
struct Counts(BTreeMap<&'static str, u64>);

impl Counts {
    fn add(&mut self, state: TaskState) {
        *self.0.entry(state.as_str()).or_default() += 1;
    }

    fn insert_into(&self, map: &mut serde_json::Map<String, Value>) {
        for state in TaskState::ALL {
            let count = self.0.get(state.as_str()).copied().unwrap_or(0);
            map.insert(state.as_str().to_owned(), json!(count));
        }
    }
}

/// The v1 `get_tasks` object.
pub(crate) fn get_tasks(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    let visible = |framework: &FrameworkCopy, task: &Task| viewer.sees_task(&framework.info, task);
    let active = || {
        capture.frameworks.iter().flat_map(|framework| {
            framework
                .tasks
                .iter()
                .filter(move |task| visible(framework, task))
        })
    };
    out.raw("{")?;
    out.key("tasks", true)?;
    out.array(
        active().filter(|t| t.state != TaskState::Unreachable),
        |out, task| out.value(&v1_task(task)),
    )?;
    out.key("unreachable_tasks", false)?;
    out.array(
        active().filter(|t| t.state == TaskState::Unreachable),
        |out, task| out.value(&v1_task(task)),
    )?;
    out.key("completed_tasks", false)?;
    out.array(
        capture
            .frameworks
            .iter()
            .chain(&capture.completed_frameworks)
            .flat_map(|framework| {
                framework
                    .completed_tasks
                    .iter()
                    .filter(move |task| visible(framework, task))
            }),
        |out, task| out.value(&v1_task(task)),
    )?;
    out.raw("}")
}

/// The v1 `get_agents` object.
pub(crate) fn get_agents(capture: &Capture, out: &mut Out) -> Written {
    let usage = capture.usage();
    out.raw("{")?;
    out.key("agents", true)?;
    out.array(
        capture.agents.iter().filter(|a| a.listed()),
        |out, agent| out.value(&v1_agent(agent, usage.agent(&agent.id))),
    )?;
    out.key("recovered_agents", false)?;
    out.array(capture.agents.iter().filter(|a| a.recovered()), |out, a| {
        out.value(&*a.info)
    })?;
    out.raw("}")
}

/// The v1 `get_frameworks` object.
pub(crate) fn get_frameworks(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    let usage = capture.usage();
    let seen = |f: &&FrameworkCopy| viewer.sees_framework(&f.info);
    out.raw("{")?;
    out.key("frameworks", true)?;
    out.array(capture.frameworks.iter().filter(seen), |out, f| {
        out.value(&v1_framework(f, usage.framework(&f.id)))
    })?;
    out.key("completed_frameworks", false)?;
    out.array(
        capture.completed_frameworks.iter().filter(seen),
        |out, f| out.value(&v1_framework(f, usage.framework(&f.id))),
    )?;
    out.raw("}")
}

/// The v1 `get_executors` object.
pub(crate) fn get_executors(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    out.raw("{")?;
    out.key("executors", true)?;
    out.array(
        capture.frameworks.iter().flat_map(|framework| {
            framework
                .executors
                .iter()
                .filter(move |(_, _, info)| viewer.sees_executor(&framework.info, info))
        }),
        |out, (agent_id, _, info)| out.value(&v1_executor(agent_id, info)),
    )?;
    out.raw("}")
}

/// The v1 `get_state` object.
pub(crate) fn get_state(capture: &Capture, viewer: Viewer, out: &mut Out) -> Written {
    out.raw("{")?;
    out.key("get_tasks", true)?;
    get_tasks(capture, viewer, out)?;
    out.key("get_executors", false)?;
    get_executors(capture, viewer, out)?;
    out.key("get_frameworks", false)?;
    get_frameworks(capture, viewer, out)?;
    out.key("get_agents", false)?;
    get_agents(capture, out)?;
    out.raw("}")
}

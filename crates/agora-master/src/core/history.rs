//! A task's statuses as the master keeps them: the latest whole, the earlier ones without
//! what only their delivery needed (uuid, data) or what the latest says again (ids, check
//! status). A whole
//! `TaskStatus` is some hundreds of bytes; at 100,000 tasks with a few statuses each, keeping
//! every one whole was most of the master's memory.

use std::borrow::Cow;

use serde_json::Value;

use agora_api::mesos::{Id, TaskStatus};
use agora_types::{AgentId, TaskId, TaskState};

/// Statuses kept per task, the latest included.
const MAX_STATUSES: usize = 32;

/// An earlier status, as much of it as views show: 56 bytes with its strings apart, and most
/// tasks keep two or three.
#[derive(Clone, Debug, PartialEq)]
struct EarlierStatus {
    state: TaskState,
    healthy: Option<bool>,
    /// Mesos' sources are three; another is not kept.
    source: Option<Source>,
    timestamp: f64,
    reason: Option<Box<str>>,
    message: Option<Box<str>>,
    /// Its container status and labels, which few statuses carry.
    extras: Option<Box<(Option<Value>, Option<Value>)>>,
}

const SOURCES: [&str; 3] = ["SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR"];

/// One of Mesos' three sources (an index into [`SOURCES`]).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Source(u8);

impl Source {
    fn of(source: Option<&str>) -> Option<Source> {
        let source = source?;
        SOURCES
            .iter()
            .position(|known| *known == source)
            .and_then(|index| u8::try_from(index).ok())
            .map(Source)
    }

    fn name(self) -> &'static str {
        SOURCES
            .get(usize::from(self.0))
            .copied()
            .unwrap_or_default()
    }
}

fn known_source(source: Option<&str>) -> Option<&'static str> {
    Source::of(source).map(Source::name)
}

/// One status of a task, earlier or latest, for views.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StatusView<'a> {
    pub state: TaskState,
    pub timestamp: f64,
    pub healthy: Option<bool>,
    pub container_status: Option<&'a Value>,
    pub labels: Option<&'a Value>,
}

/// The latest status, whole but compact: a `TaskStatus` is 384 bytes before its strings, most
/// of its fields empty in most statuses. What statuses seldom carry sits behind one more box.
#[derive(Clone, Debug, PartialEq)]
struct LatestStatus {
    /// The task's own ids, shared with it when the status names them (it nearly always does).
    task_id: TaskId,
    agent_id: Option<AgentId>,
    state: TaskState,
    healthy: Option<bool>,
    timestamp: Option<f64>,
    /// Mesos' three sources without a string of their own.
    source: Option<Cow<'static, str>>,
    uuid: Option<Box<str>>,
    reason: Option<Box<str>>,
    message: Option<Box<str>>,
    executor_id: Option<Box<str>>,
    rare: Option<Box<Rare>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Rare {
    data: Option<String>,
    check_status: Option<Value>,
    labels: Option<Value>,
    container_status: Option<Value>,
    unreachable_time: Option<Value>,
    limitation: Option<Value>,
}

fn boxed(text: Option<String>) -> Option<Box<str>> {
    text.map(String::into_boxed_str)
}

impl LatestStatus {
    fn of(status: TaskStatus, task_id: &TaskId, agent_id: &AgentId) -> LatestStatus {
        let rare = Rare {
            data: status.data,
            check_status: status.check_status,
            labels: status.labels,
            container_status: status.container_status,
            unreachable_time: status.unreachable_time,
            limitation: status.limitation,
        };
        LatestStatus {
            task_id: if status.task_id.value == task_id.as_str() {
                task_id.clone()
            } else {
                TaskId::new(status.task_id.value)
            },
            state: status.state,
            healthy: status.healthy,
            timestamp: status.timestamp,
            source: match known_source(status.source.as_deref()) {
                Some(known) => Some(Cow::Borrowed(known)),
                None => status.source.map(Cow::Owned),
            },
            uuid: boxed(status.uuid),
            reason: boxed(status.reason),
            message: boxed(status.message),
            agent_id: status.agent_id.map(|id| {
                if id.value == agent_id.as_str() {
                    agent_id.clone()
                } else {
                    AgentId::new(id.value)
                }
            }),
            executor_id: status.executor_id.map(|id| id.value.into_boxed_str()),
            rare: (rare != Rare::default()).then(|| Box::new(rare)),
        }
    }

    fn whole(&self) -> TaskStatus {
        let rare = self.rare.as_deref().cloned().unwrap_or_default();
        let text = |text: &Option<Box<str>>| text.as_deref().map(str::to_owned);
        TaskStatus {
            task_id: Id::new(self.task_id.as_str()),
            state: self.state,
            message: text(&self.message),
            source: self.source.as_deref().map(str::to_owned),
            reason: text(&self.reason),
            data: rare.data,
            agent_id: self.agent_id.as_ref().map(|id| Id::new(id.as_str())),
            executor_id: self.executor_id.as_deref().map(Id::new),
            timestamp: self.timestamp,
            uuid: text(&self.uuid),
            healthy: self.healthy,
            check_status: rare.check_status,
            labels: rare.labels,
            container_status: rare.container_status,
            unreachable_time: rare.unreachable_time,
            limitation: rare.limitation,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct StatusHistory {
    /// A boxed slice, not a `Vec`: a `Task` is 8 bytes smaller, and so fits a smaller
    /// allocation.
    earlier: Box<[EarlierStatus]>,
    /// Boxed: a task, in the maps of tasks, stays small.
    latest: Box<LatestStatus>,
}

impl StatusHistory {
    /// A history of `first`, a status of the task `task_id` on `agent_id`.
    pub fn new(first: TaskStatus, task_id: &TaskId, agent_id: &AgentId) -> StatusHistory {
        StatusHistory {
            earlier: Box::default(),
            latest: Box::new(LatestStatus::of(first, task_id, agent_id)),
        }
    }

    /// The latest status, whole.
    pub fn latest(&self) -> TaskStatus {
        self.latest.whole()
    }

    pub fn latest_state(&self) -> TaskState {
        self.latest.state
    }

    pub fn latest_uuid(&self) -> Option<&str> {
        self.latest.uuid.as_deref()
    }

    /// The task's id, as its statuses name it.
    pub fn task_id(&self) -> &str {
        self.latest.task_id.as_str()
    }

    /// The latest status becomes an earlier one; the oldest go past [`MAX_STATUSES`].
    pub fn push(&mut self, status: TaskStatus, agent_id: &AgentId) {
        let latest = LatestStatus::of(status, &self.latest.task_id, agent_id);
        let previous = *std::mem::replace(&mut self.latest, Box::new(latest));
        let rare = previous.rare.map(|rare| *rare).unwrap_or_default();
        // Room for one more, not for the doubling a Vec grows by: most tasks keep few.
        let mut earlier = std::mem::take(&mut self.earlier).into_vec();
        earlier.reserve_exact(1);
        let extras = (rare.container_status.is_some() || rare.labels.is_some())
            .then(|| Box::new((rare.container_status, rare.labels)));
        earlier.push(EarlierStatus {
            state: previous.state,
            healthy: previous.healthy,
            source: Source::of(previous.source.as_deref()),
            timestamp: previous.timestamp.unwrap_or(0.0),
            reason: previous.reason,
            message: previous.message,
            extras,
        });
        if earlier.len() >= MAX_STATUSES {
            earlier.remove(0);
        }
        self.earlier = earlier.into_boxed_slice();
    }

    /// When the first status kept was made.
    pub fn first_timestamp(&self) -> f64 {
        match self.earlier.first() {
            Some(first) => first.timestamp,
            None => self.latest.timestamp.unwrap_or(0.0),
        }
    }

    /// Every status kept, oldest first.
    pub fn views(&self) -> impl Iterator<Item = StatusView<'_>> {
        let earlier = self.earlier.iter().map(|status| {
            let extras = status.extras.as_deref();
            StatusView {
                state: status.state,
                timestamp: status.timestamp,
                healthy: status.healthy,
                container_status: extras.and_then(|(status, _)| status.as_ref()),
                labels: extras.and_then(|(_, labels)| labels.as_ref()),
            }
        });
        let latest = &self.latest;
        let rare = latest.rare.as_deref();
        earlier.chain(std::iter::once(StatusView {
            state: latest.state,
            timestamp: latest.timestamp.unwrap_or(0.0),
            healthy: latest.healthy,
            container_status: rare.and_then(|rare| rare.container_status.as_ref()),
            labels: rare.and_then(|rare| rare.labels.as_ref()),
        }))
    }

    /// Every status kept, oldest first, as whole statuses: the earlier ones with what was kept
    /// of them and the task's ids.
    pub fn whole(&self, agent_id: &str, executor_id: Option<&str>) -> Vec<TaskStatus> {
        let task_id = self.latest.task_id.as_str();
        let mut all: Vec<TaskStatus> = self
            .earlier
            .iter()
            .map(|earlier| {
                let mut status = TaskStatus::new(task_id, earlier.state);
                status.timestamp = Some(earlier.timestamp);
                status.healthy = earlier.healthy;
                status.source = earlier.source.map(|source| source.name().to_owned());
                status.reason = earlier.reason.as_deref().map(str::to_owned);
                status.message = earlier.message.as_deref().map(str::to_owned);
                if let Some((container_status, labels)) = earlier.extras.as_deref() {
                    status.container_status = container_status.clone();
                    status.labels = labels.clone();
                }
                status.agent_id = Some(Id::new(agent_id));
                status.executor_id = executor_id.map(Id::new);
                status
            })
            .collect();
        all.push(self.latest.whole());
        all
    }

    /// Every status's time set anew (for tests that compare whole documents).
    #[cfg(test)]
    pub fn set_timestamps(&mut self, mut time: impl FnMut(usize) -> f64) {
        for (n, earlier) in self.earlier.iter_mut().enumerate() {
            earlier.timestamp = time(n);
        }
        self.latest.timestamp = Some(time(self.earlier.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> TaskId {
        TaskId::new("t")
    }

    fn agent() -> AgentId {
        AgentId::new("a1")
    }

    fn status(state: TaskState, at: f64) -> TaskStatus {
        let mut status = TaskStatus::new("t", state);
        status.timestamp = Some(at);
        status.uuid = Some(format!("u{at}"));
        status
    }

    #[test]
    fn the_latest_is_whole_and_the_earlier_kept_for_views() {
        let mut history = StatusHistory::new(status(TaskState::Staging, 1.0), &task(), &agent());
        let mut running = status(TaskState::Running, 2.0);
        running.healthy = Some(true);
        running.reason = Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED".into());
        running.container_status = Some(serde_json::json!({"network_infos": []}));
        history.push(running, &agent());
        history.push(status(TaskState::Killed, 3.0), &agent());
        assert_eq!(history.latest_uuid(), Some("u3"));
        let views: Vec<(TaskState, f64, Option<bool>)> = history
            .views()
            .map(|v| (v.state, v.timestamp, v.healthy))
            .collect();
        assert_eq!(
            views,
            [
                (TaskState::Staging, 1.0, None),
                (TaskState::Running, 2.0, Some(true)),
                (TaskState::Killed, 3.0, None)
            ]
        );
        assert!(
            history
                .views()
                .nth(1)
                .and_then(|v| v.container_status)
                .is_some()
        );
        let whole = history.whole("a1", Some("e1"));
        assert_eq!(whole.len(), 3);
        assert_eq!(
            whole[1].agent_id.as_ref().map(|i| i.value.as_str()),
            Some("a1")
        );
        assert_eq!(whole[1].uuid, None, "an earlier status keeps no uuid");
        assert_eq!(
            whole[1].reason.as_deref(),
            Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
        );
        assert_eq!(whole[2].uuid.as_deref(), Some("u3"));
        assert_eq!(history.first_timestamp(), 1.0);
    }

    #[test]
    fn the_latest_reads_back_as_it_came() {
        let bare = TaskStatus::new("t", TaskState::Staging);
        assert_eq!(
            StatusHistory::new(bare.clone(), &task(), &agent()).latest(),
            bare
        );
        let mut full = status(TaskState::Running, 5.0);
        full.message = Some("up".into());
        full.source = Some("SOURCE_SOMEWHERE_ELSE".into());
        full.reason = Some("REASON_COMMAND_EXECUTOR_FAILED".into());
        full.data = Some("ZGF0YQ==".into());
        full.agent_id = Some(Id::new("a1"));
        full.executor_id = Some(Id::new("e1"));
        full.healthy = Some(false);
        full.check_status = Some(serde_json::json!({"type": "COMMAND"}));
        full.labels = Some(serde_json::json!({"labels": []}));
        full.container_status = Some(serde_json::json!({"network_infos": []}));
        full.unreachable_time = Some(serde_json::json!({"nanoseconds": 1}));
        full.limitation = Some(serde_json::json!({"message": "oom"}));
        let mut history = StatusHistory::new(bare, &task(), &agent());
        history.push(full.clone(), &agent());
        assert_eq!(history.latest(), full);
        assert_eq!(history.latest_state(), TaskState::Running);
        assert_eq!(history.task_id(), "t");
        full.source = Some("SOURCE_EXECUTOR".into());
        history.push(full.clone(), &agent());
        assert_eq!(history.latest(), full);
    }

    #[test]
    fn statuses_stay_small() {
        // 100,000 tasks keep two or three earlier statuses and a latest one each.
        assert!(std::mem::size_of::<EarlierStatus>() <= 56);
        assert!(std::mem::size_of::<LatestStatus>() <= 160);
    }

    #[test]
    fn at_most_the_latest_statuses_are_kept() {
        let mut history = StatusHistory::new(status(TaskState::Staging, 0.0), &task(), &agent());
        for n in 1..100 {
            history.push(status(TaskState::Running, f64::from(n)), &agent());
        }
        assert_eq!(history.views().count(), MAX_STATUSES);
        assert_eq!(
            history.first_timestamp(),
            f64::from(100 - MAX_STATUSES as u32)
        );
    }
}

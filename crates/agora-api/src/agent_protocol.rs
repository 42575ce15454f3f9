//! agora's own master↔agent protocol (not part of any public API). The agent subscribes with
//! `POST /internal/agent/subscribe` (its registration, including what it runs) and receives a
//! RecordIO stream of [`AgentCommand`]s; it reports with plain POSTs of the messages below.
//! JSON keeps it debuggable with curl; the shapes reuse the Mesos messages.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::mesos::{
    AgentInfo, ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskInfo, TaskStatus, WireResource,
    named_user, null_vec,
};

/// The header an agent sends its secret in, on its subscription and every report: the master
/// gives each agent one when it first registers, and takes an agent id and its reports only
/// from whoever holds it.
pub const AGENT_TOKEN_HEADER: &str = "agora-agent-token";

/// A task the agent runs or has run but whose terminal update is not yet acknowledged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentTask {
    pub framework_id: String,
    /// Shared: a hollow agent re-registering thousands of tasks at once copies none of them.
    pub task: Arc<TaskInfo>,
    /// The latest state the agent knows (possibly not yet acknowledged).
    pub status: TaskStatus,
}

/// A task of a registration as the master reads it: the few fields it acts on, and the
/// TaskInfo's JSON kept as the agent sent it. Parsing every TaskInfo of 10,000 re-registering
/// agents whole, only to write each back as JSON, was a fifth of the master's work.
#[derive(Clone, Debug, Deserialize)]
pub struct ReportedTask {
    pub framework_id: String,
    pub task: ReportedTaskInfo,
    pub status: TaskStatus,
}

#[derive(Clone, Debug)]
pub struct ReportedTaskInfo {
    pub head: TaskInfoHead,
    /// The whole TaskInfo.
    pub json: Box<RawValue>,
}

impl<'de> Deserialize<'de> for ReportedTaskInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = Box::<RawValue>::deserialize(deserializer)?;
        let head = serde_json::from_str(json.get()).map_err(serde::de::Error::custom)?;
        Ok(ReportedTaskInfo { head, json })
    }
}

/// What the master reads of a reported TaskInfo.
#[derive(Clone, Debug, Deserialize)]
pub struct TaskInfoHead {
    pub task_id: Id,
    #[serde(default, deserialize_with = "null_vec")]
    pub resources: Vec<WireResource>,
    #[serde(default)]
    pub executor: Option<ExecutorHead>,
    #[serde(default)]
    pub command: Option<CommandHead>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ExecutorHead {
    pub executor_id: Id,
    #[serde(default)]
    pub command: Option<CommandHead>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct CommandHead {
    #[serde(default)]
    pub user: Option<String>,
}

impl TaskInfoHead {
    /// The user the task itself names, by [`TaskInfo::run_as`]'s rule, if it names one.
    pub fn own_user(&self) -> Option<&str> {
        fn user_of(command: Option<&CommandHead>) -> Option<&str> {
            named_user(command.and_then(|c| c.user.as_deref()))
        }
        user_of(self.command.as_ref())
            .or_else(|| user_of(self.executor.as_ref().and_then(|e| e.command.as_ref())))
    }
}

/// An agent's subscription. Agents send it with [`AgentTask`]s; the master reads it with
/// [`ReportedTask`]s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: Deserialize<'de>"))]
pub struct RegisterAgent<T = AgentTask> {
    /// Set when the agent was registered before (agent or master restart).
    #[serde(default)]
    pub agent_id: Option<String>,
    pub info: AgentInfo,
    /// `host:port` of the agent's HTTP endpoint.
    pub endpoint: String,
    pub version: String,
    #[serde(default)]
    pub tasks: Vec<T>,
    #[serde(default)]
    pub frameworks: Vec<FrameworkInfo>,
    #[serde(default)]
    pub executors: Vec<RunningExecutor>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningExecutor {
    pub framework_id: String,
    pub executor: ExecutorInfo,
}

/// What the master tells an agent, in order, on its subscription stream.
// Commands are built, serialised and dropped at once; boxing the large variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AgentCommand {
    /// First record of every subscription.
    Registered {
        agent_id: String,
        master_id: String,
        ping_interval_ms: u64,
        /// The agent's secret ([`AGENT_TOKEN_HEADER`]), when the master issues a new one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
    },
    /// Run tasks: one task, or a task group when `group` is true; `executor` is set for custom
    /// executors and task groups.
    RunTasks {
        framework: FrameworkInfo,
        #[serde(default)]
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
        #[serde(default)]
        group: bool,
    },
    KillTask {
        framework_id: String,
        task_id: String,
        #[serde(default)]
        kill_policy: Option<KillPolicy>,
    },
    /// The framework acknowledged the update with this uuid.
    Acknowledge {
        framework_id: String,
        task_id: String,
        uuid: String,
    },
    ShutdownExecutor {
        framework_id: String,
        executor_id: String,
    },
    /// The framework is gone: kill everything of it.
    ShutdownFramework {
        framework_id: String,
    },
    /// A framework message for an executor (base64 data).
    FrameworkMessage {
        framework_id: String,
        executor_id: String,
        data: String,
    },
    /// The framework's info changed (failover to a new scheduler).
    UpdateFramework {
        framework: FrameworkInfo,
    },
    /// The master refuses this agent (marked gone); it must stop.
    Shutdown {
        message: String,
    },
    Heartbeat,
}

impl AgentCommand {
    pub fn to_json(&self) -> Vec<u8> {
        crate::scheduler::ascii_json(self)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub agent_id: String,
    pub framework_id: String,
    pub status: TaskStatus,
}

/// Several status updates in one request (`/internal/agent/statuses`): an agent starting many
/// tasks delivers their updates in batches, not one request each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdates {
    pub agent_id: String,
    pub updates: Vec<FrameworkStatus>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameworkStatus {
    pub framework_id: String,
    pub status: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorMessage {
    pub agent_id: String,
    pub framework_id: String,
    pub executor_id: String,
    pub data: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExecutorExited {
    pub agent_id: String,
    pub framework_id: String,
    pub executor_id: String,
    #[serde(default)]
    pub status: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ping {
    pub agent_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesos::CommandInfo;
    use proptest::prelude::*;

    fn command(user: Option<Option<&str>>) -> Option<CommandInfo> {
        user.map(|user| CommandInfo {
            user: user.map(str::to_owned),
            ..CommandInfo::default()
        })
    }

    fn user() -> impl Strategy<Value = Option<Option<&'static str>>> {
        prop::option::of(prop::option::of(prop::sample::select(vec![
            "", "www", "nobody",
        ])))
    }

    proptest! {
        /// The master's reading of a reported task agrees with the whole TaskInfo's.
        #[test]
        fn a_reported_task_reads_as_the_whole_task_info(
            task_user in user(),
            executor in prop::option::of(user()),
            cpus in (0u32..80).prop_map(|tenths| f64::from(tenths) / 10.0),
        ) {
            let task = TaskInfo {
                name: "web".into(),
                task_id: Id::new("t1"),
                resources: vec![WireResource {
                    name: "cpus".into(),
                    kind: "SCALAR".into(),
                    scalar: Some(crate::mesos::ScalarValue { value: cpus }),
                    ..WireResource::default()
                }],
                command: command(task_user),
                executor: executor.map(|user| ExecutorInfo {
                    executor_id: Id::new("e1"),
                    command: command(user),
                    ..ExecutorInfo::default()
                }),
                ..TaskInfo::default()
            };
            let sent = AgentTask {
                framework_id: "f1".into(),
                task: Arc::new(task.clone()),
                status: TaskStatus::new("t1", agora_types::TaskState::Running),
            };
            let read: ReportedTask =
                serde_json::from_str(&serde_json::to_string(&sent).unwrap()).unwrap();
            let head = &read.task.head;
            prop_assert_eq!(&head.task_id, &task.task_id);
            prop_assert_eq!(&head.resources, &task.resources);
            prop_assert_eq!(
                head.executor.as_ref().map(|e| &e.executor_id),
                task.executor.as_ref().map(|e| &e.executor_id)
            );
            prop_assert_eq!(
                head.own_user().unwrap_or(""),
                task.run_as(task.executor.as_ref(), "")
            );
            let whole: TaskInfo = serde_json::from_str(read.task.json.get()).unwrap();
            prop_assert_eq!(whole, task);
        }
    }
}

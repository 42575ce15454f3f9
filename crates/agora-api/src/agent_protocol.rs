//! agora's own master↔agent protocol (not part of any public API). The agent subscribes with
//! `POST /internal/agent/subscribe` (its registration, including what it runs) and receives a
//! RecordIO stream of [`AgentCommand`]s; it reports with plain POSTs of the messages below.
//! JSON keeps it debuggable with curl; the shapes reuse the Mesos messages.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::mesos::{AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskInfo, TaskStatus};

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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegisterAgent {
    /// Set when the agent was registered before (agent or master restart).
    #[serde(default)]
    pub agent_id: Option<String>,
    pub info: AgentInfo,
    /// `host:port` of the agent's HTTP endpoint.
    pub endpoint: String,
    pub version: String,
    #[serde(default)]
    pub tasks: Vec<AgentTask>,
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

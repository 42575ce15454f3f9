//! What the agent keeps about frameworks, executors, tasks and their update queues.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use agora_api::executor::Event as ExecutorEvent;
use agora_api::mesos::{ExecutorInfo, FrameworkInfo, KillPolicy, TaskInfo, TaskStatus};
use agora_api::recordio;
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ExecutorKind {
    /// The built-in executor running one command task.
    Command,
    /// The built-in executor running a task group (LAUNCH_GROUP).
    Default,
    /// The framework's own executor.
    Custom,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ExecutorState {
    Registering,
    Running,
    Terminating,
    Terminated,
}

#[derive(Clone)]
pub(crate) struct TaskRecord {
    pub info: TaskInfo,
    pub state: TaskState,
    pub status: Option<TaskStatus>,
    pub launched: bool,
}

pub(crate) struct Executor {
    pub info: ExecutorInfo,
    pub kind: ExecutorKind,
    pub container_id: String,
    pub directory: PathBuf,
    pub pid: Option<i32>,
    pub pid_start_time: Option<u64>,
    pub state: ExecutorState,
    pub stream: Option<agora_http::events::EventSender>,
    /// Launches waiting for the executor to subscribe: (task ids, is a group).
    pub queued: Vec<(Vec<TaskId>, bool)>,
    /// Boxed: a B-tree node holds room for 11 values, and an executor mostly runs one task
    /// (a node of 11 unboxed records was 14 KB per running task).
    pub tasks: BTreeMap<TaskId, Box<TaskRecord>>,
    pub completed_tasks: VecDeque<Box<TaskRecord>>,
    /// A kill or shutdown was requested: tasks that die with it are KILLED, not FAILED.
    pub killing: bool,
    /// Recovered after an agent restart and not yet re-subscribed.
    pub recovered: bool,
    /// Kills that arrived while a recovered executor had not re-subscribed yet.
    pub pending_kills: Vec<(TaskId, Option<KillPolicy>)>,
    /// The executor's own secret (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`), sent back as a
    /// bearer token; `None` only for executors started before agents gave them one.
    pub token: Option<String>,
}

impl Executor {
    pub(super) fn send(&self, event: &ExecutorEvent) -> bool {
        match &self.stream {
            Some(stream) => stream.send(recordio::encode(&event.to_json())).is_ok(),
            None => false,
        }
    }
}

pub(crate) struct FrameworkEntry {
    pub info: FrameworkInfo,
    pub executors: BTreeMap<ExecutorId, Executor>,
    pub completed_executors: VecDeque<Executor>,
}

pub(crate) use crate::status_queue::UpdateQueue;

pub(crate) struct AgentState {
    pub agent_id: Option<String>,
    /// The secret the master gave this agent (sent with every request to it).
    pub agent_token: Option<String>,
    pub master_connected: bool,
    /// Why the last attempt to reach the master failed (cleared once registered).
    pub master_error: Option<String>,
    pub frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
    pub completed_frameworks: VecDeque<FrameworkEntry>,
    pub updates: crate::status_queue::Queues,
}

impl AgentState {
    pub(crate) fn executor(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<&Executor> {
        self.frameworks
            .get(framework_id)?
            .executors
            .get(executor_id)
    }

    pub(crate) fn executor_mut(
        &mut self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) -> Option<&mut Executor> {
        self.frameworks
            .get_mut(framework_id)?
            .executors
            .get_mut(executor_id)
    }
}

/// The command executor's own share, on top of its tasks' (Mesos adds the same).
const COMMAND_EXECUTOR_CPUS: f64 = 0.1;
const COMMAND_EXECUTOR_MEM_BYTES: u64 = 32 << 20;

/// What an executor's container may use: its own resources and those of its live tasks.
pub(crate) fn container_limits(executor: &Executor) -> crate::cgroups::Limits {
    let mut resources =
        agora_api::mesos::to_resources(&executor.info.resources).unwrap_or_default();
    for task in executor.tasks.values().filter(|t| !t.state.is_terminal()) {
        resources += &agora_api::mesos::to_resources(&task.info.resources).unwrap_or_default();
    }
    let (extra_cpus, extra_mem) = match executor.kind {
        ExecutorKind::Custom => (0.0, 0),
        _ => (COMMAND_EXECUTOR_CPUS, COMMAND_EXECUTOR_MEM_BYTES),
    };
    crate::cgroups::Limits {
        cpus: resources.scalar("cpus").to_f64() + extra_cpus,
        mem_bytes: (resources.scalar("mem").to_f64() * 1024.0 * 1024.0) as u64 + extra_mem,
    }
}

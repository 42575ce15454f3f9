//! The agent's state and the rules that change it: executors and their tasks, the status
//! update queues, and recovery. All methods lock briefly and never hold the lock across I/O
//! other than the checkpoint write, which must precede acknowledging an executor's update.

mod executor_calls;
mod executors;
mod launch;
mod recovery;
mod start;
mod types;
mod updates;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use agora_api::agent_protocol::{AgentTask, RegisterAgent, RunningExecutor};
use agora_api::mesos::{AgentInfo, CommandInfo, Id, TaskStatus};

use crate::config::AgentConfig;
use crate::persist::Written;
use crate::unavailable::Unavailable;

pub(crate) use types::{
    AgentState, Executor, ExecutorKind, FrameworkEntry, TaskRecord, UpdateQueue, container_limits,
};

pub(crate) use crate::status_queue::epoch_secs;
pub(crate) use recovery::master_client_builder;

pub(crate) struct Agent {
    pub config: AgentConfig,
    pub client: reqwest::Client,
    pub start_time: f64,
    pub shutdown: CancellationToken,
    /// Wakes the status sender (a new update, or the master link came back).
    pub updates_wanted: Notify,
    /// Set while the agent stops its executors: new tasks are refused, not started.
    stopping: std::sync::atomic::AtomicBool,
    state: Mutex<AgentState>,
    /// What the checkpoint files hold (locked only inside `save_locked`, under the state lock).
    written: Mutex<Written>,
    /// Starts executors, when it could be started.
    launcher: Option<crate::launcher::Launcher>,
    /// Sections other components add to the agent's state and metrics.
    pub extensions: std::sync::RwLock<Vec<crate::Extension>>,
    /// The cgroup hierarchies containers go in, or why there are none.
    pub cgroups: Result<crate::cgroups::Cgroups, Unavailable>,
    /// Whether containers get pid and mount namespaces, or why not.
    pub namespaces: Result<(), Unavailable>,
    /// Whether tasks run as their users, or why not.
    pub switch_user: Result<(), Unavailable>,
    pub(crate) fetcher: crate::fetcher::Fetcher,
    /// Built-in executors' containers made ahead of their tasks (with the launcher only).
    pub(crate) warm: Option<crate::warm::WarmPool>,
    /// Executors cut off for falling behind their event streams.
    pub(crate) stream_overflows: Arc<std::sync::atomic::AtomicU64>,
}

impl Agent {
    pub(crate) fn written(&self) -> MutexGuard<'_, Written> {
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, AgentState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn agent_id(&self) -> Option<String> {
        self.lock().agent_id.clone()
    }

    /// Asks the warm pool, if there is one, to fill up again (see [`crate::warm::WarmPool::want`]).
    fn want_warm(&self) {
        if let Some(pool) = &self.warm {
            pool.want();
        }
    }

    /// Whether the agent is stopping its executors (and starts nothing new).
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn launcher(&self) -> Option<&crate::launcher::Launcher> {
        self.launcher.as_ref()
    }

    /// The built-in executor: this binary's `agora executor`.
    pub(crate) fn builtin_command(&self) -> CommandInfo {
        CommandInfo {
            shell: false,
            value: Some(self.config.executor_binary.display().to_string()),
            arguments: vec!["agora".into(), "executor".into()],
            ..CommandInfo::default()
        }
    }

    /// Writes the checkpoint. Failing to checkpoint is logged: the agent keeps running, as
    /// losing recovery is better than losing the tasks.
    pub(crate) fn save(&self) {
        self.save_locked(&self.lock());
    }

    pub(crate) fn agent_info(&self, state: &AgentState) -> AgentInfo {
        AgentInfo {
            hostname: self.config.hostname.clone(),
            port: self.config.port,
            resources: agora_api::mesos::from_resources(
                &self.config.resources,
                agora_api::mesos::ResourceFormat::default(),
                None,
            ),
            attributes: self.config.attributes.clone(),
            id: state.agent_id.as_ref().map(|id| Id::new(id.clone())),
        }
    }

    /// What the agent tells the master when it (re-)registers.
    pub(crate) fn registration(&self) -> RegisterAgent {
        let state = self.lock();
        let mut tasks = Vec::new();
        let mut executors = Vec::new();
        for (framework_id, framework) in &state.frameworks {
            for executor in framework.executors.values() {
                if executor.kind != ExecutorKind::Command {
                    executors.push(RunningExecutor {
                        framework_id: framework_id.to_string(),
                        executor: executor.info.clone(),
                    });
                }
                for task in executor.tasks.values() {
                    let status = task.status.clone().unwrap_or_else(|| {
                        TaskStatus::new(task.info.task_id.value.as_str(), task.state)
                    });
                    tasks.push(AgentTask {
                        framework_id: framework_id.to_string(),
                        task: Arc::new(task.info.clone()),
                        status,
                    });
                }
            }
        }
        RegisterAgent {
            agent_id: state.agent_id.clone(),
            info: self.agent_info(&state),
            endpoint: self.config.endpoint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tasks,
            frameworks: state.frameworks.values().map(|f| f.info.clone()).collect(),
            executors,
        }
    }

    /// The secret the master gave this agent, for the requests it sends there.
    pub(crate) fn agent_token(&self) -> Option<String> {
        self.lock().agent_token.clone()
    }

    pub(crate) fn set_registered(&self, agent_id: String, token: Option<String>) {
        let mut state = self.lock();
        let mut changed = state.agent_id.as_deref() != Some(agent_id.as_str());
        state.agent_id = Some(agent_id);
        if let Some(token) = token {
            changed |= state.agent_token.as_deref() != Some(token.as_str());
            state.agent_token = Some(token);
        }
        state.master_connected = true;
        state.master_error = None;
        crate::status_queue::retry_now(&mut state.updates, self.config.status_update_retry);
        if changed {
            self.save_locked(&state);
        }
        drop(state);
        self.updates_wanted.notify_one();
    }

    pub(crate) fn set_disconnected(&self) {
        self.lock().master_connected = false;
    }

    /// Why the master could not be reached (shown in the agent's state).
    pub(crate) fn set_master_error(&self, error: String) {
        self.lock().master_error = Some(error);
    }

    /// How long an executor has between SHUTDOWN and SIGKILL: its own grace period, else the
    /// agent's `--executor-shutdown-grace-period`.
    pub(crate) fn shutdown_grace(&self, executor: &Executor) -> Duration {
        executor
            .info
            .shutdown_grace_period
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.executor_shutdown_grace)
    }

    pub(crate) fn with_state<T>(&self, read: impl FnOnce(&AgentState) -> T) -> T {
        read(&self.lock())
    }
}

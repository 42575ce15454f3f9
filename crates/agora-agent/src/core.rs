//! The agent's state and the rules that change it: executors and their tasks, the status
//! update queues, and recovery. All methods lock briefly and never hold the lock across I/O
//! other than the checkpoint write, which must precede acknowledging an executor's update.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use agora_api::agent_protocol::{AgentTask, RegisterAgent, RunningExecutor};
use agora_api::executor::{self, Event as ExecutorEvent};
use agora_api::mesos::{
    AgentInfo, CommandInfo, ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskGroupInfo, TaskInfo,
    TaskStatus, encode_bytes,
};
use agora_api::recordio;
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

use crate::AgentError;
use crate::checkpoint;
use crate::config::AgentConfig;
use crate::persist::Written;
use crate::spawn;

const MAX_STATUS_RETRY: Duration = Duration::from_secs(600);
const MAX_COMPLETED: usize = 100;

pub(crate) fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) fn new_uuid() -> String {
    encode_bytes(uuid::Uuid::new_v4().as_bytes())
}

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
    pub tasks: BTreeMap<TaskId, TaskRecord>,
    pub completed_tasks: VecDeque<TaskRecord>,
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
    fn send(&self, event: &ExecutorEvent) -> bool {
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

/// Updates of one task, delivered to the master one at a time, in order.
pub(crate) struct UpdateQueue {
    pub pending: VecDeque<TaskStatus>,
    pub next_attempt: Instant,
    pub interval: Duration,
}

pub(crate) struct AgentState {
    pub agent_id: Option<String>,
    /// The secret the master gave this agent (sent with every request to it).
    pub agent_token: Option<String>,
    pub master_connected: bool,
    /// Why the last attempt to reach the master failed (cleared once registered).
    pub master_error: Option<String>,
    pub frameworks: BTreeMap<FrameworkId, FrameworkEntry>,
    pub completed_frameworks: VecDeque<FrameworkEntry>,
    pub updates: BTreeMap<(FrameworkId, TaskId), UpdateQueue>,
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
    pub cgroups: Result<crate::cgroups::Cgroups, String>,
    /// Whether containers get pid and mount namespaces, or why not.
    pub namespaces: Result<(), String>,
    /// Whether tasks run as their users, or why not.
    pub switch_user: Result<(), String>,
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

    /// Loads the checkpoint: live executors are re-adopted (they will re-subscribe), dead ones
    /// have their unfinished tasks failed.
    pub fn recover(
        mut config: AgentConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Agent>, AgentError> {
        // Sandboxes are named to executors, which run elsewhere (a warm container's working
        // directory is its old sandbox): a relative work dir would name other places.
        config.work_dir = std::path::absolute(&config.work_dir)
            .and_then(|dir| {
                crate::modes::make_dir_with(&dir, crate::modes::TRAVERSE_ONLY)?;
                crate::modes::make_dir_with(&checkpoint::meta(&dir), crate::modes::PRIVATE_DIR)?;
                Ok(dir)
            })
            .map_err(|source| AgentError::WorkDir {
                path: config.work_dir.display().to_string(),
                source,
            })?;
        let saved = checkpoint::load(&config.work_dir)?;
        let written = Written::loaded(&saved);
        let launcher = if config.launcher {
            match crate::launcher::Launcher::spawn(&config.executor_binary) {
                Ok(launcher) => Some(launcher),
                Err(error) => {
                    tracing::warn!(%error, "cannot start the executor launcher; the agent starts executors itself");
                    None
                }
            }
        } else {
            None
        };
        let client = agora_client::Access::default()
            .with_tls(config.master_tls.clone())
            .client_builder()
            .default_headers(config.master_headers.clone())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| AgentError::Client(e.to_string()))?;
        let mut state = AgentState {
            agent_id: saved.agent_id.clone(),
            agent_token: saved.agent_token.clone(),
            master_connected: false,
            master_error: None,
            frameworks: BTreeMap::new(),
            completed_frameworks: VecDeque::new(),
            updates: BTreeMap::new(),
        };
        for update in saved.updates.into_iter().filter(|u| !u.pending.is_empty()) {
            let key = (
                FrameworkId::new(update.framework_id),
                TaskId::new(update.task_id),
            );
            state.updates.insert(
                key,
                UpdateQueue {
                    pending: update.pending.into(),
                    next_attempt: Instant::now(),
                    interval: config.status_update_retry,
                },
            );
        }
        let mut dead: Vec<(FrameworkId, ExecutorId)> = Vec::new();
        for framework in saved.frameworks {
            let Some(framework_id) = framework
                .info
                .id
                .as_ref()
                .map(|id| FrameworkId::new(id.value.clone()))
            else {
                continue;
            };
            let mut entry = FrameworkEntry {
                info: framework.info.clone(),
                executors: BTreeMap::new(),
                completed_executors: VecDeque::new(),
            };
            for saved_executor in framework.executors {
                let executor_id = ExecutorId::new(saved_executor.info.executor_id.value.clone());
                let alive = saved_executor
                    .pid
                    .is_some_and(|pid| spawn::is_same_process(pid, saved_executor.pid_start_time));
                let tasks = saved_executor
                    .tasks
                    .into_iter()
                    .map(|task| {
                        let id = TaskId::new(task.info.task_id.value.clone());
                        (
                            id,
                            TaskRecord {
                                info: task.info,
                                state: task.state,
                                status: task.status,
                                launched: task.launched,
                            },
                        )
                    })
                    .collect();
                let executor = Executor {
                    info: saved_executor.info,
                    kind: saved_executor.kind,
                    container_id: saved_executor.container_id,
                    directory: saved_executor.directory,
                    pid: saved_executor.pid,
                    pid_start_time: saved_executor.pid_start_time,
                    state: ExecutorState::Registering,
                    stream: None,
                    queued: Vec::new(),
                    tasks,
                    completed_tasks: VecDeque::new(),
                    killing: false,
                    recovered: true,
                    pending_kills: Vec::new(),
                    token: saved_executor.token,
                };
                if !alive {
                    dead.push((framework_id.clone(), executor_id.clone()));
                }
                entry.executors.insert(executor_id, executor);
            }
            state.frameworks.insert(framework_id, entry);
        }
        let cgroups = isolator(config.isolation.cgroups, "cgroups", || {
            detect_cgroups(&config)
        })?;
        let namespaces = isolator(config.isolation.namespaces, "namespaces", || {
            let available = crate::namespaces::available();
            match &available {
                Ok(()) => tracing::info!("tasks run in their own pid and mount namespaces"),
                Err(reason) => {
                    tracing::warn!(%reason, "tasks run without namespaces (they share the agent's /tmp and see its processes)")
                }
            }
            available
        })?;
        let fetcher = crate::fetcher::Fetcher::new(
            config.work_dir.join("fetch"),
            config.fetcher_cache_bytes,
            config.fetcher_max_bytes,
        );
        crate::warm::remove_leftovers(&config.work_dir);
        let warm = (launcher.is_some() && config.warm_containers > 0)
            .then(|| crate::warm::WarmPool::new(&config.work_dir, config.warm_containers));
        let switch_user = if !config.switch_user {
            Err("turned off (--switch-user false)".to_owned())
        } else if !nix::unistd::Uid::effective().is_root() {
            tracing::warn!("tasks run as the agent's user: switching users needs root");
            Err("the agent does not run as root".to_owned())
        } else {
            Ok(())
        };
        let agent = Arc::new(Agent {
            config,
            client,
            start_time: epoch_secs(),
            shutdown,
            updates_wanted: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(state),
            written: Mutex::new(written),
            launcher,
            extensions: std::sync::RwLock::new(Vec::new()),
            cgroups,
            namespaces,
            switch_user,
            fetcher,
            warm,
            stream_overflows: Arc::default(),
        });
        for (framework_id, executor_id) in dead {
            tracing::warn!(framework = %framework_id, executor = %executor_id, "executor died while the agent was down");
            agent.executor_terminated(
                &framework_id,
                &executor_id,
                None,
                "Executor terminated while the agent was down",
            );
        }
        let recovered: Vec<(FrameworkId, ExecutorId, i32)> = {
            let state = agent.lock();
            state
                .frameworks
                .iter()
                .flat_map(|(fid, f)| {
                    f.executors
                        .iter()
                        .filter_map(|(eid, e)| e.pid.map(|pid| (fid.clone(), eid.clone(), pid)))
                })
                .collect()
        };
        if let Ok(cgroups) = &agent.cgroups {
            // Where this agent's cgroups are, for operators and for whoever cleans up after
            // an agent that was killed: one directory a line.
            let listed: Vec<String> = cgroups
                .parent_dirs()
                .iter()
                .map(|dir| dir.display().to_string())
                .collect();
            let meta = crate::checkpoint::meta(&agent.config.work_dir);
            let file = meta.join("cgroups");
            if let Err(error) = std::fs::create_dir_all(&meta)
                .and_then(|()| std::fs::write(&file, listed.join("\n") + "\n"))
            {
                tracing::warn!(file = %file.display(), %error, "cannot record the agent's cgroups");
            }
            let live: std::collections::BTreeSet<String> = agent.with_state(|state| {
                state
                    .frameworks
                    .values()
                    .flat_map(|f| f.executors.values().map(|e| e.container_id.clone()))
                    .collect()
            });
            for orphan in cgroups.orphans(&live) {
                tokio::task::spawn_blocking(move || orphan.empty_and_remove());
            }
        }
        if let Some(agent_id) = agent.agent_id() {
            // Docker containers whose executor is gone (it ended while the agent was down, or
            // was killed) are removed; those of live executors are theirs to keep.
            let live: Vec<String> = agent.with_state(|state| {
                state
                    .frameworks
                    .values()
                    .flat_map(|f| f.executors.values())
                    .filter(|e| e.state != ExecutorState::Terminated)
                    .map(|e| e.container_id.clone())
                    .collect()
            });
            tokio::spawn(async move { crate::docker::remove_orphans(&agent_id, &live).await });
        }
        for (framework_id, executor_id, pid) in recovered {
            tracing::info!(framework = %framework_id, executor = %executor_id, pid, "re-adopting executor");
            agent
                .clone()
                .watch_recovered(framework_id.clone(), executor_id.clone(), pid);
            agent.clone().expect_subscription(
                framework_id,
                executor_id,
                agent.config.recovery_timeout,
            );
        }
        agent.save();
        // After the orphans were listed: the warm containers are not theirs.
        crate::warm::WarmPool::start(&agent);
        Ok(agent)
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
                        task: task.info.clone(),
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
        for queue in state.updates.values_mut() {
            queue.next_attempt = Instant::now();
            queue.interval = self.config.status_update_retry;
        }
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

    fn sandbox_for(
        &self,
        agent_id: &str,
        framework_id: &FrameworkId,
        executor_id: &str,
        container_id: &str,
    ) -> PathBuf {
        self.config
            .work_dir
            .join("slaves")
            .join(agent_id)
            .join("frameworks")
            .join(framework_id.as_str())
            .join("executors")
            .join(executor_id)
            .join("runs")
            .join(container_id)
    }

    /// Ends every task of a launch the agent will not make, with `status` and `message`.
    fn refuse_launch(
        &self,
        framework_id: &FrameworkId,
        tasks: &[TaskInfo],
        (state, reason): (TaskState, &str),
        message: &str,
    ) {
        let mut locked = self.lock();
        for task in tasks {
            if agora_api::mesos::validate_id("Task", &task.task_id.value).is_err() {
                continue;
            }
            let status = TaskStatus::new(task.task_id.value.as_str(), state)
                .with_source("SOURCE_AGENT")
                .with_reason(reason)
                .with_message(message.to_owned());
            self.enqueue_update(&mut locked, framework_id, status);
        }
        drop(locked);
        self.updates_wanted.notify_one();
    }

    /// RUN_TASKS from the master: find or start the executor, then deliver or queue the tasks.
    pub(crate) fn run_tasks(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
        group: bool,
    ) {
        let Some(framework_id) = framework
            .id
            .as_ref()
            .map(|id| FrameworkId::new(id.value.clone()))
        else {
            return;
        };
        let (kind, executor_info) = match (&executor, tasks.first()) {
            (Some(executor), _) if group => (ExecutorKind::Default, executor.clone()),
            (Some(executor), _) => (ExecutorKind::Custom, executor.clone()),
            (None, Some(task)) => (
                ExecutorKind::Command,
                command_executor_info(&framework_id, task),
            ),
            (None, None) => return,
        };
        // Ids name the sandbox and checkpoint files: the master checks them, and so does the
        // agent before any path is made of them.
        if let Err(error) = agora_api::mesos::validate_id("Framework", framework_id.as_str()) {
            // Not even an update can be kept for it (its queue is a file named after it).
            tracing::warn!(%error, "launch for an invalid framework id dropped");
            return;
        }
        if let Some(error) = std::iter::once(("Executor", executor_info.executor_id.value.as_str()))
            .chain(tasks.iter().map(|t| ("Task", t.task_id.value.as_str())))
            .find_map(|(kind, id)| agora_api::mesos::validate_id(kind, id).err())
        {
            tracing::warn!(framework = %framework_id, %error, "launch refused");
            let status = (TaskState::Error, "REASON_TASK_INVALID");
            self.refuse_launch(&framework_id, &tasks, status, &error.to_string());
            return;
        }
        // What a Docker task asks of this host must be what `--docker-allow` allows.
        let refused = tasks
            .iter()
            .filter_map(|task| task.container.as_ref())
            .chain(executor_info.container.as_ref())
            .flat_map(|container| self.config.docker.refusals(container))
            .map(|refusal| refusal.reason)
            .next();
        if let Some(reason) = refused {
            tracing::warn!(framework = %framework_id, %reason, "launch refused");
            let status = (TaskState::Error, "REASON_TASK_UNAUTHORIZED");
            self.refuse_launch(&framework_id, &tasks, status, &format!("Docker: {reason}"));
            return;
        }
        // Every secret the tasks' environments name must be readable here (a command
        // executor's command is its task's, checked with it).
        let executor_command = match kind {
            ExecutorKind::Custom | ExecutorKind::Default => executor_info.command.as_ref(),
            ExecutorKind::Command => None,
        };
        let commands = tasks
            .iter()
            .map(|task| task.command.as_ref())
            .chain([executor_command]);
        if let Err(reason) = crate::secrets::check(commands, self.config.secrets.as_deref()) {
            tracing::warn!(framework = %framework_id, %reason, "launch refused");
            let status = (TaskState::Failed, "REASON_CONTAINER_LAUNCH_FAILED");
            self.refuse_launch(&framework_id, &tasks, status, &format!("Secret: {reason}"));
            return;
        }
        let executor_id = ExecutorId::new(executor_info.executor_id.value.clone());
        let touched: Vec<TaskId> = tasks
            .iter()
            .map(|task| TaskId::new(task.task_id.value.clone()))
            .collect();
        let mut state = self.lock();
        let Some(agent_id) = state.agent_id.clone() else {
            return;
        };
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            for task in &tasks {
                let status = TaskStatus::new(task.task_id.value.as_str(), TaskState::Lost)
                    .with_source("SOURCE_AGENT")
                    .with_reason("REASON_AGENT_RESTARTED")
                    .with_message("The agent is shutting down");
                self.enqueue_update(&mut state, &framework_id, status);
            }
            self.save_locked(&state);
            drop(state);
            self.updates_wanted.notify_one();
            return;
        }
        let entry = state
            .frameworks
            .entry(framework_id.clone())
            .or_insert_with(|| FrameworkEntry {
                info: framework.clone(),
                executors: BTreeMap::new(),
                completed_executors: VecDeque::new(),
            });
        entry.info = framework.clone();
        let task_ids: Vec<TaskId> = tasks
            .iter()
            .map(|t| TaskId::new(t.task_id.value.clone()))
            .collect();
        let mut warm = None;
        let needs_start = entry.executors.get(&executor_id).is_none_or(|e| {
            matches!(
                e.state,
                ExecutorState::Terminating | ExecutorState::Terminated
            )
        });
        if needs_start {
            if let Some(old) = entry.executors.remove(&executor_id) {
                entry.completed_executors.push_back(old);
            }
            // A built-in executor takes a warm container, whose id becomes its container's.
            warm = match (&self.warm, kind) {
                (Some(pool), ExecutorKind::Command | ExecutorKind::Default) => pool.take(),
                _ => None,
            };
            let container_id = warm
                .as_ref()
                .map(|w| w.container_id.clone())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let directory = self.sandbox_for(
                &agent_id,
                &framework_id,
                executor_id.as_str(),
                &container_id,
            );
            entry.executors.insert(
                executor_id.clone(),
                Executor {
                    info: executor_info.clone(),
                    kind,
                    container_id,
                    directory,
                    pid: None,
                    pid_start_time: None,
                    state: ExecutorState::Registering,
                    stream: None,
                    queued: Vec::new(),
                    tasks: BTreeMap::new(),
                    completed_tasks: VecDeque::new(),
                    killing: false,
                    recovered: false,
                    pending_kills: Vec::new(),
                    token: Some(agora_http::auth::new_secret()),
                },
            );
        }
        let Some(executor) = entry.executors.get_mut(&executor_id) else {
            return;
        };
        for task in tasks {
            let id = TaskId::new(task.task_id.value.clone());
            executor.tasks.insert(
                id,
                TaskRecord {
                    info: task,
                    state: TaskState::Staging,
                    status: None,
                    launched: false,
                },
            );
        }
        if !needs_start && let Ok(cgroups) = &self.cgroups {
            // More tasks in a running executor: its container grows with them.
            let container = cgroups.container(&executor.container_id);
            if let Err(error) = container.set_limits(container_limits(executor)) {
                tracing::warn!(executor = %executor_id, %error, "cannot raise a container's limits");
            }
        }
        if executor.stream.is_some() && executor.state == ExecutorState::Running {
            deliver(executor, &task_ids, group, self.config.secrets.as_deref());
        } else {
            executor.queued.push((task_ids, group));
        }
        let framework_info = entry.info.clone();
        let prepared = if needs_start {
            self.prepare_executor(
                &agent_id,
                &framework_id,
                &framework_info,
                &executor_id,
                &state,
            )
            .map(|prepared| Some(PreparedExecutor { warm, ..prepared }))
        } else {
            Ok(None)
        };
        if let Err(message) = &prepared {
            self.launch_failed(
                &mut state,
                &framework_id,
                &executor_id,
                &LaunchFailure::container(message.clone()),
            );
        }
        self.save_scoped(&state, &framework_id, Some(&executor_id), &touched);
        drop(state);
        self.updates_wanted.notify_one();
        // Sandbox and process are made without the agent's lock: with many executors starting,
        // their updates and everything else the agent does need not wait behind each spawn.
        if let Ok(Some(prepared)) = prepared {
            let agent = self.clone();
            tokio::spawn(async move {
                let spawned = spawn_executor(&agent, prepared).await;
                agent.executor_spawned(&framework_id, &executor_id, spawned);
            });
        }
    }

    fn launch_failed(
        &self,
        state: &mut AgentState,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        failure: &LaunchFailure,
    ) {
        self.fail_executor_tasks(
            state,
            framework_id,
            executor_id,
            TaskState::Failed,
            failure.reason,
            &failure.message,
        );
        mark_terminated(state, framework_id, executor_id);
    }

    /// Records a spawned executor's pid and starts watching it; a spawn that failed fails its
    /// tasks. An executor dropped meanwhile (its framework shut down) has its process killed.
    fn executor_spawned(
        self: &Arc<Self>,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        spawned: Result<Spawned, LaunchFailure>,
    ) {
        let mut state = self.lock();
        let child = match spawned {
            Ok(child) => child,
            Err(failure) => {
                self.want_warm();
                self.launch_failed(&mut state, framework_id, executor_id, &failure);
                self.save_scoped(&state, framework_id, Some(executor_id), &[]);
                drop(state);
                self.updates_wanted.notify_one();
                return;
            }
        };
        let pid = Some(child.pid);
        let Some(executor) = state.executor_mut(framework_id, executor_id) else {
            if let Some(pid) = pid {
                spawn::signal_group(pid, Signal::SIGKILL);
            }
            return;
        };
        executor.pid = pid;
        executor.pid_start_time = pid.and_then(spawn::start_time);
        tracing::info!(framework = %framework_id, executor = %executor_id, pid, "executor started");
        if executor.killing
            && let Some(pid) = pid
        {
            // Killed while it was being fetched and started: it ends now, its tasks KILLED.
            spawn::signal_group(pid, Signal::SIGKILL);
        }
        self.save_scoped(&state, framework_id, Some(executor_id), &[]);
        drop(state);
        self.clone()
            .watch_child(framework_id.clone(), executor_id.clone(), child);
        self.clone().expect_subscription(
            framework_id.clone(),
            executor_id.clone(),
            self.config.executor_registration_timeout,
        );
    }

    /// What starting an executor takes: its command, environment and sandbox.
    fn prepare_executor(
        &self,
        agent_id: &str,
        framework_id: &FrameworkId,
        framework: &FrameworkInfo,
        executor_id: &ExecutorId,
        state: &AgentState,
    ) -> Result<PreparedExecutor, String> {
        let Some(executor) = state.executor(framework_id, executor_id) else {
            return Err("executor vanished".into());
        };
        let mut environment: BTreeMap<String, String> = BTreeMap::new();
        let directory = executor.directory.display().to_string();
        let grace = executor
            .info
            .shutdown_grace_period
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.executor_shutdown_grace);
        for (key, value) in [
            ("MESOS_FRAMEWORK_ID", framework_id.to_string()),
            ("MESOS_EXECUTOR_ID", executor_id.to_string()),
            ("MESOS_DIRECTORY", directory.clone()),
            ("MESOS_SANDBOX", directory),
            ("MESOS_AGENT_ENDPOINT", self.config.endpoint()),
            ("MESOS_SLAVE_ID", agent_id.to_owned()),
            (
                "MESOS_SLAVE_PID",
                format!("slave(1)@{}", self.config.endpoint()),
            ),
            (
                "MESOS_CHECKPOINT",
                if framework.checkpoint { "1" } else { "0" }.to_owned(),
            ),
            (
                "MESOS_HTTP_COMMAND_EXECUTOR",
                if executor.kind == ExecutorKind::Command {
                    "1"
                } else {
                    "0"
                }
                .to_owned(),
            ),
            (
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD",
                format!("{}secs", grace.as_secs_f64()),
            ),
            (
                "MESOS_RECOVERY_TIMEOUT",
                format!("{}secs", self.config.recovery_timeout.as_secs_f64()),
            ),
            ("MESOS_SUBSCRIPTION_BACKOFF_MAX", "2secs".to_owned()),
            (
                crate::command_executor::KILL_GRACE_ENV,
                format!("{}secs", self.config.default_kill_grace.as_secs_f64()),
            ),
            (
                crate::command_executor::KILL_DRAIN_ENV,
                format!("{}secs", self.config.kill_drain.as_secs_f64()),
            ),
            (
                crate::command_executor::CONTAINER_ID_ENV,
                executor.container_id.clone(),
            ),
            ("LIBPROCESS_PORT", "0".to_owned()),
        ] {
            environment.insert(key.to_owned(), value);
        }
        if let Some(token) = &executor.token {
            environment.insert(crate::executor_auth::TOKEN_ENV.to_owned(), token.clone());
        }
        if let Some(socket) = &self.config.executor_socket {
            environment.insert(
                crate::command_executor::DOMAIN_SOCKET_ENV.to_owned(),
                socket.display().to_string(),
            );
        }
        // An agent serving TLS is reached over it: the built-in executor reads agora's
        // variables, a framework's executor Mesos' (libprocess') own.
        if let Some(tls) = &self.config.executor_tls {
            environment.insert(
                crate::command_executor::AGENT_CERT_ENV.to_owned(),
                tls.cert_pem.clone(),
            );
            environment.insert("LIBPROCESS_SSL_ENABLED".to_owned(), "true".into());
            if let Some(file) = &tls.ca_file {
                environment.insert(
                    "LIBPROCESS_SSL_CA_FILE".to_owned(),
                    file.display().to_string(),
                );
            }
        }
        let command = match executor.kind {
            ExecutorKind::Command | ExecutorKind::Default => self.builtin_command(),
            ExecutorKind::Custom => match &executor.info.command {
                Some(command) => {
                    let mut command = command.clone();
                    crate::secrets::resolve_command(&mut command, self.config.secrets.as_deref())
                        .map_err(|error| format!("Secret: {error}"))?;
                    command
                }
                None => return Err("ExecutorInfo has no command".into()),
            },
        };
        if let Some(variables) = command.environment.as_ref().map(|e| &e.variables) {
            for variable in variables {
                environment.insert(
                    variable.name.clone(),
                    variable.value.clone().unwrap_or_default(),
                );
            }
        }
        let cgroup = self.cgroups.as_ref().ok().map(|cgroups| {
            (
                cgroups.container(&executor.container_id),
                container_limits(executor),
            )
        });
        // The task's user (it is the command executor's command), else the framework's.
        // Docker tasks run as the image says (or their `user` parameter): their executor
        // talks to the Docker Engine, which takes root, as Mesos' docker executor does.
        let docker = executor
            .tasks
            .values()
            .any(|task| crate::docker::spec::is_docker(&task.info));
        let user = match &self.switch_user {
            Ok(()) if !docker => command_user(executor, framework),
            _ => None,
        };
        Ok(PreparedExecutor {
            builtin: executor.kind != ExecutorKind::Custom,
            command,
            environment,
            directory: executor.directory.clone(),
            cgroup,
            namespaces: self.namespaces.is_ok(),
            user,
            uris: executor
                .info
                .command
                .as_ref()
                .map(|command| command.uris.clone())
                .unwrap_or_default(),
            container_id: executor.container_id.clone(),
            warm: None,
        })
    }

    fn watch_child(
        self: Arc<Self>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        child: Spawned,
    ) {
        tokio::spawn(async move {
            let status = child.exit.await;
            self.executor_terminated(&framework_id, &executor_id, status, "Executor terminated");
        });
    }

    /// A recovered executor is not our child: poll its pid.
    fn watch_recovered(
        self: Arc<Self>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        pid: i32,
    ) {
        tokio::spawn(async move {
            let start = spawn::start_time(pid);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if !spawn::is_same_process(pid, start) {
                    break;
                }
            }
            self.executor_terminated(&framework_id, &executor_id, None, "Executor terminated");
        });
    }

    /// Destroys an executor that has not subscribed in time.
    fn expect_subscription(
        self: Arc<Self>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        timeout: Duration,
    ) {
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let pid = {
                let state = self.lock();
                let Some(executor) = state.executor(&framework_id, &executor_id) else {
                    return;
                };
                if executor.state != ExecutorState::Registering {
                    return;
                }
                executor.pid
            };
            tracing::warn!(framework = %framework_id, executor = %executor_id, "executor did not subscribe in time; destroying it");
            {
                let mut state = self.lock();
                self.fail_executor_tasks(
                    &mut state,
                    &framework_id,
                    &executor_id,
                    TaskState::Failed,
                    "REASON_EXECUTOR_REGISTRATION_TIMEOUT",
                    "Executor did not register within the registration timeout",
                );
                self.save_locked(&state);
            }
            self.updates_wanted.notify_one();
            if let Some(pid) = pid {
                spawn::signal_group(pid, Signal::SIGKILL);
            }
        });
    }

    /// Queues an update for the master (after recording the task's state).
    fn enqueue_update(
        &self,
        state: &mut AgentState,
        framework_id: &FrameworkId,
        mut status: TaskStatus,
    ) {
        let task_id = TaskId::new(status.task_id.value.clone());
        if status.uuid.is_none() {
            status.uuid = Some(new_uuid());
        }
        if status.timestamp.is_none() {
            status.timestamp = Some(epoch_secs());
        }
        if let Some(agent_id) = &state.agent_id {
            status.agent_id = Some(Id::new(agent_id.clone()));
        }
        if let Some(framework) = state.frameworks.get_mut(framework_id) {
            // An executor's own updates name it: no need to look through every executor.
            let named = status
                .executor_id
                .as_ref()
                .map(|id| ExecutorId::new(id.value.clone()))
                .filter(|id| framework.executors.contains_key(id));
            let executors: Box<dyn Iterator<Item = &mut Executor>> = match named {
                Some(id) => Box::new(framework.executors.get_mut(&id).into_iter()),
                None => Box::new(framework.executors.values_mut()),
            };
            for executor in executors {
                if let Some(task) = executor.tasks.get_mut(&task_id) {
                    task.state = status.state;
                    status
                        .executor_id
                        .get_or_insert_with(|| Id::new(executor.info.executor_id.value.clone()));
                    task.status = Some(status.clone());
                }
            }
        }
        let queue = state
            .updates
            .entry((framework_id.clone(), task_id))
            .or_insert_with(|| UpdateQueue {
                pending: VecDeque::new(),
                next_attempt: Instant::now(),
                interval: self.config.status_update_retry,
            });
        if queue
            .pending
            .iter()
            .any(|pending| pending.uuid == status.uuid)
        {
            return;
        }
        if queue.pending.is_empty() {
            queue.next_attempt = Instant::now();
            queue.interval = self.config.status_update_retry;
        }
        queue.pending.push_back(status);
    }

    /// The heads of the update queues that are due, marking them as attempted.
    pub(crate) fn due_updates(
        &self,
    ) -> (
        Option<String>,
        Vec<(FrameworkId, TaskStatus)>,
        Option<Instant>,
    ) {
        let mut state = self.lock();
        if !state.master_connected {
            return (None, Vec::new(), None);
        }
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for ((framework_id, _), queue) in state.updates.iter_mut() {
            let Some(head) = queue.pending.front() else {
                continue;
            };
            if queue.next_attempt <= now {
                due.push((framework_id.clone(), head.clone()));
                queue.next_attempt = now + queue.interval;
                queue.interval = (queue.interval * 2).min(MAX_STATUS_RETRY);
            }
            next = Some(next.map_or(queue.next_attempt, |n: Instant| n.min(queue.next_attempt)));
        }
        (state.agent_id.clone(), due, next)
    }

    /// ACKNOWLEDGE from the framework (through the master).
    pub(crate) fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) {
        let mut state = self.lock();
        let key = (framework_id.clone(), task_id.clone());
        let Some(queue) = state.updates.get_mut(&key) else {
            return;
        };
        if queue.pending.front().and_then(|s| s.uuid.as_deref()) != Some(uuid) {
            return;
        }
        let acked = queue.pending.pop_front();
        queue.next_attempt = Instant::now();
        queue.interval = self.config.status_update_retry;
        if queue.pending.is_empty() {
            state.updates.remove(&key);
        }
        let executor_id = state.frameworks.get(framework_id).and_then(|framework| {
            let named = acked
                .as_ref()
                .and_then(|status| status.executor_id.as_ref())
                .map(|id| ExecutorId::new(id.value.clone()))
                .filter(|id| {
                    framework
                        .executors
                        .get(id)
                        .is_some_and(|executor| executor.tasks.contains_key(task_id))
                });
            named.or_else(|| {
                framework
                    .executors
                    .iter()
                    .find(|(_, executor)| executor.tasks.contains_key(task_id))
                    .map(|(id, _)| id.clone())
            })
        });
        if let Some(acked) = acked
            && acked.state.is_terminal()
        {
            complete_task(&mut state, framework_id, task_id);
        }
        cleanup_framework(&mut state, framework_id);
        // What remains in the task's file was synced when it arrived: rewriting it without the
        // acknowledged update needs no sync (after a crash that update is only sent again),
        // and a sync here, under the lock, would hold up the whole agent.
        self.save_scoped_deferred(
            &state,
            framework_id,
            executor_id.as_ref(),
            std::slice::from_ref(task_id),
            Some(&mut Vec::new()),
        );
        drop(state);
        self.updates_wanted.notify_one();
    }

    /// KILL from the master.
    pub(crate) fn kill_task(
        &self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    ) {
        let mut state = self.lock();
        let Some(framework) = state.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some((executor_id, executor)) = framework
            .executors
            .iter_mut()
            .find(|(_, e)| e.tasks.contains_key(task_id))
        else {
            return;
        };
        let executor_id = executor_id.clone();
        let launched = executor.tasks.get(task_id).is_some_and(|t| t.launched);
        if launched {
            let kill = ExecutorEvent::Kill {
                kill: executor::Kill {
                    task_id: Id::new(task_id.as_str()),
                    kill_policy,
                },
            };
            if executor.recovered && executor.stream.is_none() {
                // It will re-subscribe shortly; the kill waits for it.
                executor
                    .pending_kills
                    .push((task_id.clone(), kill_policy_of(&kill)));
                return;
            }
            if !executor.send(&kill) {
                // The executor has the task but is not connected (e.g. not yet re-subscribed
                // after an agent restart): destroy it; its tasks end as KILLED.
                self.shutdown_executor_locked(&mut state, framework_id, &executor_id);
                self.save_locked(&state);
            }
            return;
        }
        // Not delivered yet: the agent kills it itself.
        for (ids, _) in &mut executor.queued {
            ids.retain(|id| id != task_id);
        }
        executor.queued.retain(|(ids, _)| !ids.is_empty());
        let nothing_left = executor
            .tasks
            .iter()
            .all(|(id, task)| task.state.is_terminal() || id == task_id);
        let status = TaskStatus::new(task_id.as_str(), TaskState::Killed)
            .with_source("SOURCE_AGENT")
            .with_reason("REASON_TASK_KILLED_DURING_LAUNCH")
            .with_message("Killed before delivery to the executor");
        self.enqueue_update(&mut state, framework_id, status);
        if nothing_left {
            self.shutdown_executor_locked(&mut state, framework_id, &executor_id);
        }
        self.save_locked(&state);
        drop(state);
        self.updates_wanted.notify_one();
    }

    pub(crate) fn shutdown_executor(
        self: &Arc<Self>,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        let mut state = self.lock();
        self.shutdown_executor_locked(&mut state, framework_id, executor_id);
    }

    /// Sends SHUTDOWN (or kills an executor that never subscribed) and SIGKILLs the group after
    /// the grace period.
    fn shutdown_executor_locked(
        &self,
        state: &mut AgentState,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
    ) {
        let Some(executor) = state.executor_mut(framework_id, executor_id) else {
            return;
        };
        if executor.state == ExecutorState::Terminated {
            return;
        }
        executor.killing = true;
        executor.state = ExecutorState::Terminating;
        let pid = executor.pid;
        let grace = executor
            .info
            .shutdown_grace_period
            .as_ref()
            .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            .unwrap_or(self.config.executor_shutdown_grace);
        if !executor.send(&ExecutorEvent::Shutdown)
            && let Some(pid) = pid
        {
            spawn::signal_group(pid, Signal::SIGTERM);
        }
        if let Some(pid) = pid {
            let start = executor.pid_start_time;
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                if spawn::is_same_process(pid, start) {
                    spawn::signal_group(pid, Signal::SIGKILL);
                }
            });
        }
    }

    pub(crate) fn shutdown_framework(self: &Arc<Self>, framework_id: &FrameworkId) {
        let mut state = self.lock();
        let executors: Vec<ExecutorId> = state
            .frameworks
            .get(framework_id)
            .map(|f| f.executors.keys().cloned().collect())
            .unwrap_or_default();
        for executor_id in executors {
            self.shutdown_executor_locked(&mut state, framework_id, &executor_id);
        }
        // Updates for a removed framework can never be acknowledged. Executors that already
        // ended were waiting only for those: the framework may be complete now.
        state.updates.retain(|(fid, _), _| fid != framework_id);
        cleanup_framework(&mut state, framework_id);
        self.save_locked(&state);
    }

    pub(crate) fn update_framework(&self, info: FrameworkInfo) {
        let Some(framework_id) = info
            .id
            .as_ref()
            .map(|id| FrameworkId::new(id.value.clone()))
        else {
            return;
        };
        let mut state = self.lock();
        if let Some(framework) = state.frameworks.get_mut(&framework_id) {
            framework.info = info;
            self.save_locked(&state);
        }
    }

    pub(crate) fn framework_message(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: String,
    ) {
        let state = self.lock();
        if let Some(executor) = state.executor(framework_id, executor_id) {
            executor.send(&ExecutorEvent::Message {
                message: executor::Message { data },
            });
        }
    }

    /// Whether a call carrying `token` may speak for the executor it names (see
    /// `executor_auth`); a call naming no known executor is answered by the call itself.
    pub(crate) fn executor_admits(
        &self,
        call: &executor::Call,
        token: Option<&str>,
    ) -> Result<(), (u16, &'static str)> {
        let state = self.lock();
        let Some(executor) = state.executor(
            &FrameworkId::new(call.framework_id.value.clone()),
            &ExecutorId::new(call.executor_id.value.clone()),
        ) else {
            return Ok(());
        };
        self.admit(executor, token, false)
    }

    /// Whether a call carrying `token` may speak for `executor` (see `executor_auth`).
    fn admit(
        &self,
        executor: &Executor,
        token: Option<&str>,
        subscribing: bool,
    ) -> Result<(), (u16, &'static str)> {
        crate::executor_auth::admit(
            executor,
            token,
            subscribing,
            self.config.authenticate_http_executors,
        )
        .map_err(crate::executor_auth::Refusal::answer)
    }

    /// Executor SUBSCRIBE: attaches the event stream, sends SUBSCRIBED and any queued launches.
    pub(crate) fn executor_subscribe(
        self: &Arc<Self>,
        call: &executor::Call,
        token: Option<&str>,
        stream: agora_http::events::EventSender,
    ) -> Result<(), (u16, &'static str)> {
        let framework_id = FrameworkId::new(call.framework_id.value.clone());
        let executor_id = ExecutorId::new(call.executor_id.value.clone());
        let mut state = self.lock();
        let agent_info = self.agent_info(&state);
        let Some(framework) = state.frameworks.get_mut(&framework_id) else {
            return Err((400, "Framework cannot be found"));
        };
        let framework_info = framework.info.clone();
        let Some(executor) = framework.executors.get_mut(&executor_id) else {
            return Err((400, "Executor cannot be found"));
        };
        self.admit(executor, token, true)?;
        if executor.state == ExecutorState::Terminated {
            return Err((400, "Executor is terminated"));
        }
        let subscribed = ExecutorEvent::Subscribed {
            subscribed: Box::new(executor::Subscribed {
                executor_info: ExecutorInfo {
                    executor_id: Id::new(executor_id.as_str()),
                    ..executor.info.clone()
                },
                framework_info,
                agent_info,
                container_id: Some(Id::new(executor.container_id.clone())),
            }),
        };
        executor.stream = Some(stream);
        executor.send(&subscribed);
        if executor.state == ExecutorState::Registering {
            executor.state = ExecutorState::Running;
        }
        executor.recovered = false;
        // A re-subscribing executor lists tasks it has but whose updates the agent never saw.
        let known_by_executor: Vec<TaskId> = call
            .subscribe
            .as_ref()
            .map(|s| {
                s.unacknowledged_tasks
                    .iter()
                    .map(|t| TaskId::new(t.task_id.value.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for task_id in known_by_executor {
            if let Some(task) = executor.tasks.get_mut(&task_id) {
                task.launched = true;
            }
        }
        let queued = std::mem::take(&mut executor.queued);
        for (task_ids, group) in queued {
            deliver(executor, &task_ids, group, self.config.secrets.as_deref());
        }
        for (task_id, kill_policy) in std::mem::take(&mut executor.pending_kills) {
            executor.send(&ExecutorEvent::Kill {
                kill: executor::Kill {
                    task_id: Id::new(task_id.as_str()),
                    kill_policy,
                },
            });
        }
        // Re-sent updates count only for the executor's own tasks.
        let resent: Vec<TaskStatus> = call
            .subscribe
            .as_ref()
            .map(|s| {
                s.unacknowledged_updates
                    .iter()
                    .map(|u| u.status.clone())
                    .filter(|status| {
                        executor
                            .tasks
                            .contains_key(&TaskId::new(status.task_id.value.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut touched: Vec<TaskId> = state
            .executor(&framework_id, &executor_id)
            .map(|e| e.tasks.keys().cloned().collect())
            .unwrap_or_default();
        let mut acknowledgements = Vec::new();
        for status in resent {
            touched.push(TaskId::new(status.task_id.value.clone()));
            acknowledgements.push((status.task_id.clone(), status.uuid.clone()));
            self.enqueue_update(&mut state, &framework_id, status);
        }
        if acknowledgements.is_empty() {
            // Nothing here must be on disk before the executor hears back (its tasks are
            // checkpointed since they were given to it; should the agent die before this is
            // written, the executor's next SUBSCRIBE lists the tasks it has): it is written
            // just after, off the executor's way to its first task.
            let agent = self.clone();
            let (framework_id, executor_id) = (framework_id.clone(), executor_id.clone());
            tokio::spawn(async move {
                let state = agent.lock();
                agent.save_scoped(&state, &framework_id, Some(&executor_id), &touched);
            });
        } else {
            self.save_scoped(&state, &framework_id, Some(&executor_id), &touched);
        }
        // Re-sent updates are handled as if sent by UPDATE: checkpointed (just now, synced),
        // then acknowledged, or the executor would wait for them forever.
        if let Some(executor) = state.executor(&framework_id, &executor_id) {
            for (task_id, uuid) in acknowledgements {
                executor.send(&ExecutorEvent::Acknowledged {
                    acknowledged: executor::Acknowledged {
                        task_id,
                        uuid: uuid.unwrap_or_default(),
                    },
                });
            }
        }
        drop(state);
        self.updates_wanted.notify_one();
        tracing::info!(framework = %framework_id, executor = %executor_id, "executor subscribed");
        Ok(())
    }

    /// Executor UPDATE: checkpointed, queued for the master; returns the files to sync before
    /// the update may be acknowledged to the executor ([`Agent::acknowledge_to_executor`]).
    pub(crate) fn executor_update(
        &self,
        call: &executor::Call,
        token: Option<&str>,
    ) -> Result<Vec<PathBuf>, (u16, &'static str)> {
        let framework_id = FrameworkId::new(call.framework_id.value.clone());
        let executor_id = ExecutorId::new(call.executor_id.value.clone());
        let Some(update) = &call.update else {
            return Err((400, "Expecting 'update' to be present"));
        };
        let mut state = self.lock();
        let Some(executor) = state.executor(&framework_id, &executor_id) else {
            return Err((400, "Executor cannot be found"));
        };
        self.admit(executor, token, false)?;
        if executor.stream.is_none() {
            return Err((403, "Executor is not subscribed"));
        }
        // An executor speaks for its own tasks only (the task id also names the update's
        // checkpoint file). A late repeat for a task that has ended is acknowledged and dropped.
        let task_id = TaskId::new(update.status.task_id.value.clone());
        if !executor.tasks.contains_key(&task_id) {
            if executor
                .completed_tasks
                .iter()
                .any(|t| t.info.task_id.value == task_id.as_str())
            {
                return Ok(Vec::new());
            }
            return Err((400, "Task is not one of this executor's tasks"));
        }
        let mut status = update.status.clone();
        status.executor_id = Some(Id::new(executor_id.as_str()));
        if matches!(status.state, TaskState::Failed | TaskState::Killed)
            && let Some(limitation) = self.memory_limitation(executor)
        {
            // The kernel killed it for its memory: say so, as Mesos' memory isolator does.
            status.state = TaskState::Failed;
            status.source = Some("SOURCE_AGENT".into());
            status.reason = Some(MEMORY_LIMITATION.into());
            status.message = Some(limitation);
        }
        let task_id = status.task_id.value.clone();
        self.enqueue_update(&mut state, &framework_id, status);
        // The executor is up (its command started): the pool may make the next container
        // without slowing that start down.
        self.want_warm();
        let mut unsynced = Vec::new();
        self.save_scoped_deferred(
            &state,
            &framework_id,
            Some(&executor_id),
            &[TaskId::new(task_id.clone())],
            Some(&mut unsynced),
        );
        drop(state);
        self.updates_wanted.notify_one();
        Ok(unsynced)
    }

    /// Tells the executor its update is safe (after its checkpoint reached the disk).
    pub(crate) fn acknowledge_to_executor(&self, call: &executor::Call) {
        let framework_id = FrameworkId::new(call.framework_id.value.clone());
        let executor_id = ExecutorId::new(call.executor_id.value.clone());
        let Some(update) = &call.update else {
            return;
        };
        let state = self.lock();
        if let Some(executor) = state.executor(&framework_id, &executor_id) {
            executor.send(&ExecutorEvent::Acknowledged {
                acknowledged: executor::Acknowledged {
                    task_id: update.status.task_id.clone(),
                    uuid: update.status.uuid.clone().unwrap_or_default(),
                },
            });
        }
    }

    /// The executor's process ended: its unfinished tasks fail (or are killed, when a kill or
    /// shutdown was under way), and a custom executor's scheduler hears of it.
    pub(crate) fn executor_terminated(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        exit_status: Option<i32>,
        message: &str,
    ) {
        self.want_warm();
        let mut state = self.lock();
        let Some(executor) = state.executor(framework_id, executor_id) else {
            return;
        };
        if executor.state == ExecutorState::Terminated {
            return;
        }
        let killing = executor.killing;
        let kind = executor.kind;
        let limitation = self.memory_limitation(executor);
        let docker = executor
            .tasks
            .values()
            .chain(executor.completed_tasks.iter())
            .any(|task| crate::docker::spec::is_docker(&task.info))
            .then(|| executor.container_id.clone());
        let container = self
            .cgroups
            .as_ref()
            .ok()
            .map(|cgroups| cgroups.container(&executor.container_id));
        let message = match exit_status {
            Some(raw) if raw & 0x7f == 0 => format!("{message} with status {}", (raw >> 8) & 0xff),
            Some(raw) => format!("{message} by signal {}", raw & 0x7f),
            None => message.to_owned(),
        };
        let (state_for_tasks, reason, message) = match limitation {
            Some(limitation) => (TaskState::Failed, MEMORY_LIMITATION, limitation),
            None if killing => (TaskState::Killed, "REASON_EXECUTOR_TERMINATED", message),
            None => (TaskState::Failed, "REASON_EXECUTOR_TERMINATED", message),
        };
        self.fail_executor_tasks(
            &mut state,
            framework_id,
            executor_id,
            state_for_tasks,
            reason,
            &message,
        );
        mark_terminated(&mut state, framework_id, executor_id);
        cleanup_framework(&mut state, framework_id);
        self.save_locked(&state);
        drop(state);
        tracing::info!(framework = %framework_id, executor = %executor_id, ?exit_status, "executor terminated");
        self.updates_wanted.notify_one();
        if let Some(container) = container {
            // Nothing of the container outlives its executor: daemons, orphans, all of it.
            tokio::task::spawn_blocking(move || container.empty_and_remove());
        }
        if let Some(container_id) = docker {
            // Its Docker containers too, should the executor have died before removing them.
            tokio::spawn(async move { crate::docker::remove_container_of(&container_id).await });
        }
        if kind != ExecutorKind::Command {
            crate::master_link::report_executor_exit(self, framework_id, executor_id, exit_status);
        }
    }

    /// If the kernel killed a process of the executor's container for its memory limit, the
    /// message saying so.
    fn memory_limitation(&self, executor: &Executor) -> Option<String> {
        let cgroups = self.cgroups.as_ref().ok()?;
        let container = cgroups.container(&executor.container_id);
        if !container.oom_killed() {
            return None;
        }
        let limits = container_limits(executor);
        let usage = container.usage();
        Some(format!(
            "Memory limit exceeded: Requested: {}MB Maximum Used: {}MB",
            limits.mem_bytes >> 20,
            usage.mem_peak_bytes.max(usage.mem_bytes) >> 20
        ))
    }

    fn fail_executor_tasks(
        &self,
        state: &mut AgentState,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        task_state: TaskState,
        reason: &str,
        message: &str,
    ) {
        let Some(executor) = state.executor(framework_id, executor_id) else {
            return;
        };
        let unfinished: Vec<TaskId> = executor
            .tasks
            .values()
            .filter(|task| !task.state.is_terminal())
            .map(|task| TaskId::new(task.info.task_id.value.clone()))
            .collect();
        for task_id in unfinished {
            let status = TaskStatus::new(task_id.as_str(), task_state)
                .with_source("SOURCE_AGENT")
                .with_reason(reason)
                .with_message(message);
            self.enqueue_update(state, framework_id, status);
        }
    }

    /// Stops every executor and waits (bounded) for them to end.
    pub(crate) async fn shutdown_all(&self, grace: Duration) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(pool) = &self.warm {
            pool.drain();
        }
        let pids: Vec<i32> = {
            let mut state = self.lock();
            let mut pids = Vec::new();
            let keys: Vec<(FrameworkId, ExecutorId)> = state
                .frameworks
                .iter()
                .flat_map(|(fid, f)| f.executors.keys().map(|eid| (fid.clone(), eid.clone())))
                .collect();
            for (framework_id, executor_id) in keys {
                if let Some(executor) = state.executor_mut(&framework_id, &executor_id) {
                    executor.killing = true;
                    executor.state = ExecutorState::Terminating;
                    if !executor.send(&ExecutorEvent::Shutdown)
                        && let Some(pid) = executor.pid
                    {
                        spawn::signal_group(pid, Signal::SIGTERM);
                    }
                    pids.extend(executor.pid);
                }
            }
            pids
        };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && pids.iter().any(|pid| spawn::start_time(*pid).is_some())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in pids {
            spawn::signal_group(pid, Signal::SIGKILL);
        }
    }

    pub(crate) fn heartbeat_executors(&self) {
        let state = self.lock();
        for framework in state.frameworks.values() {
            for executor in framework.executors.values() {
                executor.send(&ExecutorEvent::Heartbeat);
            }
        }
    }

    pub(crate) fn with_state<T>(&self, read: impl FnOnce(&AgentState) -> T) -> T {
        read(&self.lock())
    }
}

fn kill_policy_of(event: &ExecutorEvent) -> Option<KillPolicy> {
    match event {
        ExecutorEvent::Kill { kill } => kill.kill_policy.clone(),
        _ => None,
    }
}

/// Sends LAUNCH or LAUNCH_GROUP for tasks the executor has not been given yet, with their
/// secrets' values (which only the executor receives).
fn deliver(
    executor: &mut Executor,
    task_ids: &[TaskId],
    group: bool,
    secrets: Option<&agora_secrets::SecretsDir>,
) {
    let tasks: Vec<TaskInfo> = task_ids
        .iter()
        .filter_map(|id| executor.tasks.get(id))
        .filter(|task| !task.launched && !task.state.is_terminal())
        .map(|task| crate::secrets::resolve_task(&task.info, secrets))
        .collect();
    if tasks.is_empty() {
        return;
    }
    let sent = if group {
        executor.send(&ExecutorEvent::LaunchGroup {
            launch_group: executor::LaunchGroup {
                task_group: TaskGroupInfo {
                    tasks: tasks.clone(),
                },
            },
        })
    } else {
        tasks.iter().all(|task| {
            executor.send(&ExecutorEvent::Launch {
                launch: executor::Launch { task: task.clone() },
            })
        })
    };
    if sent {
        for id in task_ids {
            if let Some(task) = executor.tasks.get_mut(id) {
                task.launched = true;
            }
        }
    }
}

fn mark_terminated(state: &mut AgentState, framework_id: &FrameworkId, executor_id: &ExecutorId) {
    if let Some(executor) = state.executor_mut(framework_id, executor_id) {
        executor.state = ExecutorState::Terminated;
        executor.stream = None;
        executor.queued.clear();
    }
}

/// Moves a task whose terminal update was acknowledged out of its executor's live set.
/// An executor ready to be spawned (see [`Agent::prepare_executor`]).
struct PreparedExecutor {
    /// The built-in executor (forked by the launcher rather than executed).
    builtin: bool,
    command: CommandInfo,
    environment: BTreeMap<String, String>,
    directory: PathBuf,
    /// Its container's cgroup and limits, when the agent isolates with cgroups.
    cgroup: Option<(crate::cgroups::Container, crate::cgroups::Limits)>,
    /// In its own pid and mount namespaces.
    namespaces: bool,
    /// The user it runs as, when the agent switches users.
    user: Option<String>,
    /// What the fetcher puts in the sandbox first (`CommandInfo.uris`).
    uris: Vec<serde_json::Value>,
    container_id: String,
    /// The warm container it takes, if one was ready.
    warm: Option<crate::warm::Warm>,
}

/// Why an executor could not be started, as the reason its tasks fail with.
pub(crate) struct LaunchFailure {
    reason: &'static str,
    message: String,
}

impl LaunchFailure {
    fn container(message: impl Into<String>) -> LaunchFailure {
        LaunchFailure {
            reason: "REASON_CONTAINER_LAUNCH_FAILED",
            message: message.into(),
        }
    }
}

impl From<String> for LaunchFailure {
    fn from(message: String) -> LaunchFailure {
        LaunchFailure::container(message)
    }
}

/// Whom an executor runs as: its command's user, else its framework's.
fn command_user(executor: &Executor, framework: &FrameworkInfo) -> Option<String> {
    executor
        .info
        .command
        .as_ref()
        .and_then(|command| command.user.clone())
        .or_else(|| Some(framework.user.clone()))
        .filter(|user| !user.is_empty())
}

/// A started executor: its pid and its end, as the raw wait status Mesos reports in FAILURE
/// events (exit 3 is 768), or `None` when it cannot be known.
pub(crate) struct Spawned {
    pid: i32,
    exit: std::pin::Pin<Box<dyn std::future::Future<Output = Option<i32>> + Send>>,
}

/// Creates the sandbox (with its `latest` link) and starts the executor in it: through the
/// launcher when there is one, else directly.
async fn spawn_executor(
    agent: &Arc<Agent>,
    mut prepared: PreparedExecutor,
) -> Result<Spawned, LaunchFailure> {
    let launcher = agent.launcher.as_ref();
    let directory = &prepared.directory;
    // The user database is asked (off the async workers) while the sandbox is made.
    let name = prepared.user.clone();
    let user =
        tokio::spawn(async move { crate::namespaces::RunAs::switch_to(name.as_deref()).await });
    let mut warm = prepared.warm.take();
    if let Some(taken) = warm.take() {
        // The warm container's sandbox moves into the task's place; its open files, working
        // directory and `/tmp` move with it.
        let moved = directory
            .parent()
            .map_or(Ok(()), |runs| {
                crate::modes::make_dirs(runs, crate::modes::TRAVERSE_ONLY)
            })
            .and_then(|()| std::fs::rename(&taken.directory, directory));
        match moved {
            Ok(()) => warm = Some(taken),
            Err(error) => {
                tracing::warn!(%error, "cannot move a warm container's sandbox: the executor starts cold");
                discard(taken).await;
            }
        }
    }
    if warm.is_none() {
        directory
            .parent()
            .map_or(Ok(()), |runs| {
                crate::modes::make_dirs(runs, crate::modes::TRAVERSE_ONLY)
            })
            .and_then(|()| std::fs::create_dir_all(directory))
            .map_err(|e| format!("Failed to create sandbox {}: {e}", directory.display()))?;
    }
    if let Some(parent) = directory.parent() {
        let latest = parent.join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(directory, &latest);
    }
    let user = user
        .await
        .map_err(|e| format!("Failed to look the user up: {e}"))??;
    if let Some(user) = &user {
        // The sandbox and its output files are the user's before anything runs in it; a warm
        // container's `/tmp`, made before its user was known, first (never through a link).
        let tmp = warm.as_ref().map(|_| directory.join("tmp"));
        tmp.map_or(Ok(()), |tmp| match user.own_dir(&tmp, None) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            done => done,
        })
        .and_then(|()| spawn::sandbox_output(directory).map(|_| ()))
        .and_then(|()| user.own(directory))
        .map_err(|e| {
            format!(
                "Failed to prepare the sandbox for user '{}': {e}",
                user.name
            )
        })?;
    }
    if !prepared.uris.is_empty() {
        agent
            .fetcher
            .fetch_all(&prepared.uris, directory, user.as_ref())
            .await
            .map_err(|e| LaunchFailure {
                reason: crate::fetcher::FETCHER_FAILED,
                message: format!(
                    "Failed to fetch all URIs for container '{}': {e}",
                    prepared.container_id
                ),
            })?;
    }
    if let Some(warm) = warm {
        match assign_warm(agent, &prepared, warm, user.clone()).await {
            Ok(spawned) => return Ok(spawned),
            Err((warm, error)) => {
                // It ended while waiting, or the launcher went: the executor starts cold, in
                // the same (emptied, remade) cgroups and the sandbox already in place.
                tracing::warn!(%error, "cannot assign a warm container: the executor starts cold");
                if let Some(warm) = warm {
                    discard(warm).await;
                }
            }
        }
    }
    let mut cgroup_procs = Vec::new();
    if let Some((container, limits)) = &prepared.cgroup {
        cgroup_procs = container.procs_files();
        let (container, limits) = (container.clone(), *limits);
        // Making cgroups takes milliseconds in the kernel: not on an async worker.
        tokio::task::spawn_blocking(move || container.create(limits))
            .await
            .map_err(|e| format!("Failed to create the container's cgroup: {e}"))?
            .map_err(|e| format!("Failed to create the container's cgroup: {e}"))?;
    }
    if let Some(launcher) = launcher {
        let request = crate::launcher::LaunchRequest {
            builtin: prepared.builtin,
            command: prepared.command.clone(),
            environment: prepared.environment.clone(),
            directory: prepared.directory.clone(),
            cgroup_procs: cgroup_procs.clone(),
            namespaces: prepared.namespaces,
            user: user.clone(),
            keep_visible: None,
            socket_dir: agent.config.socket_dir(),
        };
        match launcher.launch(request).await {
            Ok(launched) => return Ok(spawned_by_launcher(launched)),
            Err(message) if message != crate::launcher::GONE => return Err(message.into()),
            Err(_) => {}
        }
    }
    // Without the launcher, executors get their cgroups and user but no namespaces.
    let mut command = spawn::command(spawn::Launch {
        command: &prepared.command,
        environment: prepared.environment,
        directory,
    })
    .map_err(|e| format!("Failed to launch executor: {e}"))?;
    crate::launcher::prepare_on_spawn(&mut command, &cgroup_procs, user.as_ref())
        .map_err(|e| format!("Failed to launch executor: {e}"))?;
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("Failed to launch executor: {e}"))?;
    let pid = child
        .id()
        .ok_or_else(|| "Failed to launch executor: it ended at once".to_owned())?
        as i32;
    let exit = async move {
        use std::os::unix::process::ExitStatusExt;
        child.wait().await.ok().map(|status| status.into_raw())
    };
    Ok(Spawned {
        pid,
        exit: Box::pin(exit),
    })
}

/// Gives a warm container (its sandbox already in place) the executor's task: its cgroups get
/// the executor's limits, and the launcher tells it its environment, sandbox and user. On
/// failure the container comes back, for the executor to start cold.
async fn assign_warm(
    agent: &Arc<Agent>,
    prepared: &PreparedExecutor,
    warm: crate::warm::Warm,
    user: Option<crate::namespaces::RunAs>,
) -> Result<Spawned, (Option<crate::warm::Warm>, String)> {
    if let Some((container, limits)) = &prepared.cgroup
        && let Err(error) = container.set_limits(*limits)
    {
        return Err((
            Some(warm),
            format!("cannot set the container's limits: {error}"),
        ));
    }
    let (Some(launcher), Some(pid)) = (agent.launcher.as_ref(), warm.pid()) else {
        return Err((Some(warm), crate::launcher::GONE.to_owned()));
    };
    let assigned = launcher
        .assign(crate::launcher::Assignment {
            pid,
            environment: prepared.environment.clone(),
            directory: prepared.directory.clone(),
            user,
        })
        .await;
    if let Err(error) = assigned {
        return Err((Some(warm), error));
    }
    match warm.assigned() {
        Some(launched) => Ok(spawned_by_launcher(launched)),
        None => Err((None, "the warm container has no process".to_owned())),
    }
}

/// Kills a warm container no task will have and empties its cgroups, before the executor
/// starts cold in the same ones.
async fn discard(warm: crate::warm::Warm) {
    let _ = tokio::task::spawn_blocking(move || warm.discard()).await;
}

/// An executor the launcher started, ending when the launcher says (or, if the launcher went
/// away first, when its process is gone).
fn spawned_by_launcher(launched: crate::launcher::Launched) -> Spawned {
    let pid = launched.pid;
    let start = spawn::start_time(pid);
    let exit = async move {
        match launched.exit.await {
            Ok(status) => Some(status),
            // The launcher went away: no status to tell, only the end.
            Err(_) => {
                while spawn::is_same_process(pid, start) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None
            }
        }
    };
    Spawned {
        pid,
        exit: Box::pin(exit),
    }
}

fn complete_task(state: &mut AgentState, framework_id: &FrameworkId, task_id: &TaskId) {
    let Some(framework) = state.frameworks.get_mut(framework_id) else {
        return;
    };
    for executor in framework.executors.values_mut() {
        if let Some(task) = executor.tasks.remove(task_id) {
            executor.completed_tasks.push_back(task);
            while executor.completed_tasks.len() > MAX_COMPLETED {
                executor.completed_tasks.pop_front();
            }
        }
    }
}

/// Terminated executors with nothing left to deliver become completed; a framework with no
/// executors left becomes completed too.
fn cleanup_framework(state: &mut AgentState, framework_id: &FrameworkId) {
    let updates = &state.updates;
    let Some(framework) = state.frameworks.get_mut(framework_id) else {
        return;
    };
    // Runs on every acknowledgement: only terminated executors look up their tasks' queues.
    let finished: Vec<ExecutorId> = framework
        .executors
        .iter()
        .filter(|(_, executor)| {
            executor.state == ExecutorState::Terminated
                && executor
                    .tasks
                    .keys()
                    .all(|task_id| !updates.contains_key(&(framework_id.clone(), task_id.clone())))
        })
        .map(|(id, _)| id.clone())
        .collect();
    for executor_id in finished {
        if let Some(mut executor) = framework.executors.remove(&executor_id) {
            let tasks: Vec<TaskRecord> =
                std::mem::take(&mut executor.tasks).into_values().collect();
            executor.completed_tasks.extend(tasks);
            framework.completed_executors.push_back(executor);
            while framework.completed_executors.len() > MAX_COMPLETED {
                framework.completed_executors.pop_front();
            }
        }
    }
    if framework.executors.is_empty()
        && let Some(framework) = state.frameworks.remove(framework_id)
    {
        state.completed_frameworks.push_back(framework);
        while state.completed_frameworks.len() > MAX_COMPLETED {
            state.completed_frameworks.pop_front();
        }
    }
}

/// The ExecutorInfo of the built-in command executor for one task: its id is the task id.
fn command_executor_info(framework_id: &FrameworkId, task: &TaskInfo) -> ExecutorInfo {
    ExecutorInfo {
        kind: Some("COMMAND".into()),
        executor_id: Id::new(task.task_id.value.clone()),
        framework_id: Some(Id::new(framework_id.as_str())),
        name: Some(format!("Command Executor (Task: {})", task.task_id.value)),
        command: task.command.clone(),
        ..ExecutorInfo::default()
    }
}

/// One isolator at start: off, used where `detect` finds it works, or required to work.
fn isolator<T>(
    wanted: crate::Isolator,
    name: &'static str,
    detect: impl FnOnce() -> Result<T, String>,
) -> Result<Result<T, String>, AgentError> {
    match wanted {
        crate::Isolator::Off => Ok(Err(format!("{name} turned off (--isolation)"))),
        crate::Isolator::Auto => Ok(detect()),
        crate::Isolator::Required => detect().map(Ok).map_err(|reason| AgentError::Isolation {
            isolator: name,
            reason,
        }),
    }
}

/// The cgroup hierarchies, said once at start: which isolation tasks get, or why none.
fn detect_cgroups(config: &AgentConfig) -> Result<crate::cgroups::Cgroups, String> {
    let cgroups = crate::cgroups::Cgroups::detect(
        &config.work_dir,
        config.cgroups_cfs_quota,
        config.cgroups_favor_dynmods,
    );
    match &cgroups {
        Ok(cgroups) => tracing::info!(isolation = %cgroups.describe(), "tasks run in cgroups"),
        Err(reason) => {
            tracing::warn!(%reason, "tasks run without cgroup isolation (no cpu or memory limits)")
        }
    }
    cgroups
}

/// Mesos' reason for a task killed over its memory limit.
const MEMORY_LIMITATION: &str = "REASON_CONTAINER_LIMITATION_MEMORY";

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

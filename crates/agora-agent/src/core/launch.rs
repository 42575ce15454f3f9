//! RUN_TASKS: the launch checked, its executor found or made ready to start, its tasks
//! delivered or queued, and the start's outcome recorded.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use nix::sys::signal::Signal;

use agora_api::mesos::{CommandInfo, ExecutorInfo, FrameworkInfo, Id, TaskInfo, TaskStatus};
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

use super::Agent;
use super::executors::{deliver, mark_terminated};
use super::start::{Spawned, spawn_executor};
use super::types::{
    AgentState, Executor, ExecutorKind, ExecutorState, FrameworkEntry, TaskRecord, container_limits,
};
use crate::spawn;

impl Agent {
    pub(super) fn sandbox_for(
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
    pub(super) fn refuse_launch(
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
        let Some(framework_id) = framework.framework_id() else {
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
        let executor_id = ExecutorId::new(&executor_info.executor_id.value);
        let touched: Vec<TaskId> = tasks
            .iter()
            .map(|task| TaskId::new(&task.task_id.value))
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
            .map(|t| TaskId::new(&t.task_id.value))
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
            let id = TaskId::new(&task.task_id.value);
            executor.tasks.insert(
                id,
                Box::new(TaskRecord {
                    info: task,
                    state: TaskState::Staging,
                    status: None,
                    launched: false,
                }),
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
        if let Err(failure) = &prepared {
            self.launch_failed(&mut state, &framework_id, &executor_id, failure);
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

    pub(super) fn launch_failed(
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
    pub(super) fn executor_spawned(
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
    pub(super) fn prepare_executor(
        &self,
        agent_id: &str,
        framework_id: &FrameworkId,
        framework: &FrameworkInfo,
        executor_id: &ExecutorId,
        state: &AgentState,
    ) -> Result<PreparedExecutor, LaunchFailure> {
        let Some(executor) = state.executor(framework_id, executor_id) else {
            return Err(LaunchFailure::container("executor vanished"));
        };
        let mut environment: BTreeMap<String, String> = BTreeMap::new();
        let directory = executor.directory.display().to_string();
        let grace = self.shutdown_grace(executor);
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
                        .map_err(|error| LaunchFailure::container(format!("Secret: {error}")))?;
                    command
                }
                None => return Err(LaunchFailure::container("ExecutorInfo has no command")),
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
}

/// An executor ready to be spawned (see [`Agent::prepare_executor`]).
pub(super) struct PreparedExecutor {
    /// The built-in executor (forked by the launcher rather than executed).
    pub(super) builtin: bool,
    pub(super) command: CommandInfo,
    pub(super) environment: BTreeMap<String, String>,
    pub(super) directory: PathBuf,
    /// Its container's cgroup and limits, when the agent isolates with cgroups.
    pub(super) cgroup: Option<(crate::cgroups::Container, crate::cgroups::Limits)>,
    /// In its own pid and mount namespaces.
    pub(super) namespaces: bool,
    /// The user it runs as, when the agent switches users.
    pub(super) user: Option<String>,
    /// What the fetcher puts in the sandbox first (`CommandInfo.uris`).
    pub(super) uris: Vec<serde_json::Value>,
    pub(super) container_id: String,
    /// The warm container it takes, if one was ready.
    pub(super) warm: Option<crate::warm::Warm>,
}

/// Why an executor could not be started, as the reason its tasks fail with.
pub(super) struct LaunchFailure {
    pub(super) reason: &'static str,
    pub(super) message: String,
}

impl LaunchFailure {
    pub(super) fn container(message: impl Into<String>) -> LaunchFailure {
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
pub(super) fn command_user(executor: &Executor, framework: &FrameworkInfo) -> Option<String> {
    executor
        .info
        .command
        .as_ref()
        .and_then(|command| command.user.clone())
        .or_else(|| Some(framework.user.clone()))
        .filter(|user| !user.is_empty())
}

/// The ExecutorInfo of the built-in command executor for one task: its id is the task id.
pub(super) fn command_executor_info(framework_id: &FrameworkId, task: &TaskInfo) -> ExecutorInfo {
    ExecutorInfo {
        kind: Some("COMMAND".into()),
        executor_id: Id::new(task.task_id.value.clone()),
        framework_id: Some(Id::new(framework_id.as_str())),
        name: Some(format!("Command Executor (Task: {})", task.task_id.value)),
        command: task.command.clone(),
        ..ExecutorInfo::default()
    }
}

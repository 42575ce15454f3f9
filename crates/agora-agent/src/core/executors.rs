//! Executors' lives as the agent steers them: watched, killed, shut down, and what their
//! ending does to their tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use agora_api::executor::{self, Event as ExecutorEvent};
use agora_api::mesos::{FrameworkInfo, Id, KillPolicy, TaskGroupInfo, TaskInfo, TaskStatus};
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

use super::Agent;
use super::start::Spawned;
use super::types::{AgentState, Executor, ExecutorKind, ExecutorState, container_limits};
use super::updates::cleanup_framework;
use crate::spawn;

impl Agent {
    pub(super) fn watch_child(
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

    /// Destroys an executor that has not subscribed in time.
    pub(super) fn expect_subscription(
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
    pub(super) fn shutdown_executor_locked(
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
        let grace = self.shutdown_grace(executor);
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
        let Some(framework_id) = info.framework_id() else {
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
    pub(super) fn memory_limitation(&self, executor: &Executor) -> Option<String> {
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

    pub(super) fn fail_executor_tasks(
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
            .map(|task| TaskId::new(&task.info.task_id.value))
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
}

pub(super) fn kill_policy_of(event: &ExecutorEvent) -> Option<KillPolicy> {
    match event {
        ExecutorEvent::Kill { kill } => kill.kill_policy.clone(),
        _ => None,
    }
}

/// Sends LAUNCH or LAUNCH_GROUP for tasks the executor has not been given yet, with their
/// secrets' values (which only the executor receives).
pub(super) fn deliver(
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

pub(super) fn mark_terminated(
    state: &mut AgentState,
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
) {
    if let Some(executor) = state.executor_mut(framework_id, executor_id) {
        executor.state = ExecutorState::Terminated;
        executor.stream = None;
        executor.queued.clear();
    }
}

/// Mesos' reason for a task killed over its memory limit.
pub(super) const MEMORY_LIMITATION: &str = "REASON_CONTAINER_LIMITATION_MEMORY";

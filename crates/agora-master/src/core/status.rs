//! Task status routing: agent updates to frameworks, acknowledgements back to agents,
//! master-generated updates, reconciliation, kills and framework messages.

use agora_api::agent_protocol::{AgentCommand, ExecutorExited, ExecutorMessage, StatusUpdate};
use agora_api::mesos::{Id, KillPolicy, TaskStatus};
use agora_api::scheduler::{Acknowledge, Event, Failure, Message, ReconcileTask};
use agora_types::{AgentId, ExecutorId, FrameworkId, TaskId, TaskState};

use super::{AgentConnection, Master, epoch_secs};

impl Master {
    /// A reliable update from an agent: record it, release resources on a terminal state and
    /// forward it (with its uuid, so the framework acknowledges it).
    pub(crate) fn agent_status_update(&mut self, update: StatusUpdate) {
        let agent_id = AgentId::new(&update.agent_id);
        if let Some(agent) = self.agents.get_mut(&agent_id)
            && matches!(agent.connection, AgentConnection::Connected(_))
        {
            agent.last_seen = std::time::Instant::now();
        }
        let framework_id = FrameworkId::new(&update.framework_id);
        if !self.frameworks.contains_key(&framework_id) {
            self.metrics.invalid_status_updates += 1;
            // The framework is gone: the agent must stop its tasks and stop retrying.
            self.send_agent(
                &agent_id,
                &AgentCommand::ShutdownFramework {
                    framework_id: update.framework_id,
                },
            );
            return;
        }
        let mut status = update.status;
        let task_id = TaskId::new(&status.task_id.value);
        // Only the agent that runs a task speaks for it.
        if let Some(task) = self
            .frameworks
            .get(&framework_id)
            .and_then(|f| f.tasks.get(&task_id))
            && task.agent_id != agent_id
        {
            self.metrics.invalid_status_updates += 1;
            tracing::warn!(agent = %agent_id, task = %task_id, runs_on = %task.agent_id, "status update from an agent that does not run the task dropped");
            return;
        }
        self.metrics.valid_status_updates += 1;
        status.agent_id = Some(Id::new(agent_id.as_str()));
        self.record_status(&framework_id, &task_id, &status);
        self.forward_update(&framework_id, status);
    }

    /// An update the master itself generates (no uuid, never acknowledged). Terminal states
    /// complete the task at once.
    pub(crate) fn master_update(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        mut status: TaskStatus,
    ) {
        status.uuid = None;
        if status.timestamp.is_none() {
            status.timestamp = Some(epoch_secs());
        }
        self.record_status(framework_id, task_id, &status);
        if status.state.is_terminal() {
            self.complete_task(framework_id, task_id);
        }
        self.forward_update(framework_id, status);
    }

    fn forward_update(&mut self, framework_id: &FrameworkId, mut status: TaskStatus) {
        let partition_aware = self
            .frameworks
            .get(framework_id)
            .is_some_and(|f| f.partition_aware());
        status.state = status.state.for_framework(partition_aware);
        self.send_event(framework_id, &Event::update(status));
    }

    fn record_status(&mut self, framework_id: &FrameworkId, task_id: &TaskId, status: &TaskStatus) {
        let now = self.now_ms();
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let mut stored = status.clone();
        if stored.timestamp.is_none() {
            stored.timestamp = Some(epoch_secs());
        }
        let Some((changed, release, agent_id, role, resources)) =
            framework.tasks.update(task_id, |task| {
                let changed = task.state != status.state;
                task.state = status.state;
                if status.state != TaskState::Unreachable {
                    task.unreachable_since = None;
                }
                task.statuses.push(stored, &task.agent_id);
                let release = status.state.is_terminal() && !task.released;
                if release {
                    task.released = true;
                }
                (
                    changed,
                    release,
                    task.agent_id.clone(),
                    task.role.clone(),
                    task.resources.clone(),
                )
            })
        else {
            return;
        };
        if changed {
            self.metrics.count_task_state(status.state);
        }
        if release {
            self.allocator
                .recover(framework_id, &agent_id, &role, &resources, None, now);
            self.want_allocation();
        }
        // Building the event costs; skip it when nobody listens.
        if !self.operator_streams.is_empty() {
            self.publish(serde_json::json!({
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": {"value": framework_id.as_str()},
                    "status": status,
                    "state": status.state,
                }
            }));
        }
    }

    /// Moves a task to the completed list.
    pub(crate) fn complete_task(&mut self, framework_id: &FrameworkId, task_id: &TaskId) {
        let limit = self.config.max_completed_tasks_per_framework;
        let Some(framework) = self.frameworks.get_mut(framework_id) else {
            return;
        };
        let Some(task) = framework.tasks.remove(task_id) else {
            return;
        };
        let agent_id = task.agent_id.clone();
        framework.completed_tasks.push_back(task);
        while framework.completed_tasks.len() > limit {
            framework.completed_tasks.pop_front();
        }
        if let Some(agent) = self.agents.get_mut(&agent_id) {
            agent.tasks.remove(&(framework_id.clone(), task_id.clone()));
        }
    }

    /// ACKNOWLEDGE: passes the ack to the agent; a terminal task whose last update is acked
    /// is complete.
    pub(crate) fn acknowledge(&mut self, framework_id: &FrameworkId, ack: Acknowledge) {
        let agent_id = AgentId::new(&ack.agent_id.value);
        let task_id = TaskId::new(&ack.task_id.value);
        self.send_agent(
            &agent_id,
            &AgentCommand::Acknowledge {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                uuid: ack.uuid.clone(),
            },
        );
        let terminal_acked = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(&task_id))
            .is_some_and(|task| {
                task.state.is_terminal() && task.statuses.latest_uuid() == Some(ack.uuid.as_str())
            });
        if terminal_acked {
            self.complete_task(framework_id, &task_id);
        }
    }

    /// RECONCILE: implicit (no tasks) answers for every known task; explicit per Mesos' rules.
    pub(crate) fn reconcile(&mut self, framework_id: &FrameworkId, tasks: Vec<ReconcileTask>) {
        let Some(framework) = self.frameworks.get(framework_id) else {
            return;
        };
        let partition_aware = framework.partition_aware();
        let mut answers: Vec<TaskStatus> = Vec::new();
        let latest = |task: &super::Task| {
            let mut status = task.latest_status();
            status.state = task.state;
            status.uuid = None;
            status.source = Some("SOURCE_MASTER".into());
            status.reason = Some("REASON_RECONCILIATION".into());
            status.message = Some("Reconciliation: Latest task state".into());
            status.agent_id = Some(Id::new(task.agent_id.as_str()));
            status.timestamp = Some(epoch_secs());
            status
        };
        if tasks.is_empty() {
            answers.extend(framework.tasks.values().map(|task| latest(task)));
        } else {
            for wanted in tasks {
                let task_id = TaskId::new(&wanted.task_id.value);
                if let Some(task) = framework.tasks.get(&task_id) {
                    answers.push(latest(task));
                    continue;
                }
                let agent_id = wanted.agent_id.as_ref().map(|id| AgentId::new(&id.value));
                let state = match &agent_id {
                    Some(agent_id) if self.gone_agents.contains(agent_id) => {
                        Some(TaskState::GoneByOperator)
                    }
                    Some(agent_id) => match self.agents.get(agent_id) {
                        Some(agent) if !agent.is_reachable() => Some(TaskState::Unreachable),
                        Some(agent) if !agent.registered => None,
                        Some(_) => Some(TaskState::Gone),
                        None => Some(TaskState::Unknown),
                    },
                    None if self
                        .agents
                        .values()
                        .any(|a| a.is_reachable() && !a.registered) =>
                    {
                        None
                    }
                    None => Some(TaskState::Unknown),
                };
                let Some(state) = state else { continue };
                let mut status = TaskStatus::new(task_id.as_str(), state)
                    .with_source("SOURCE_MASTER")
                    .with_reason("REASON_RECONCILIATION")
                    .with_message("Reconciliation: Task is unknown");
                status.agent_id = wanted.agent_id.clone();
                if let Some(AgentConnection::Unreachable { since }) = agent_id
                    .as_ref()
                    .and_then(|id| self.agents.get(id))
                    .map(|a| &a.connection)
                {
                    status.unreachable_time =
                        Some(serde_json::json!({"nanoseconds": (since * 1e9) as i64}));
                }
                status.timestamp = Some(epoch_secs());
                answers.push(status);
            }
        }
        for mut status in answers {
            status.state = status.state.for_framework(partition_aware);
            self.send_event(framework_id, &Event::update(status));
        }
    }

    /// KILL: asks the task's agent to kill it; an unknown task gets TASK_UNKNOWN (LOST).
    pub(crate) fn kill_task(
        &mut self,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        kill_policy: Option<KillPolicy>,
    ) {
        let task = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.tasks.get(task_id))
            .cloned();
        let Some(task) = task else {
            let status = TaskStatus::new(task_id.as_str(), TaskState::Unknown)
                .with_source("SOURCE_MASTER")
                .with_reason("REASON_RECONCILIATION")
                .with_message("Attempted to kill an unknown task");
            self.forward_update(framework_id, status);
            return;
        };
        if task.state.is_terminal() {
            return;
        }
        let kill_policy = kill_policy.or_else(|| task.info.get().kill_policy);
        let sent = self.send_agent(
            &task.agent_id,
            &AgentCommand::KillTask {
                framework_id: framework_id.to_string(),
                task_id: task_id.to_string(),
                kill_policy: kill_policy.clone(),
            },
        );
        if !sent {
            tracing::warn!(task = %task_id, agent = %task.agent_id, "cannot kill task now: its agent is not connected; the kill is sent when it re-registers");
            if let Some(agent) = self.agents.get_mut(&task.agent_id)
                && !agent
                    .pending_kills
                    .iter()
                    .any(|(f, t, _)| f == framework_id && t == task_id)
            {
                agent
                    .pending_kills
                    .push((framework_id.clone(), task_id.clone(), kill_policy));
            }
        }
    }

    pub(crate) fn shutdown_executor(
        &mut self,
        framework_id: &FrameworkId,
        agent_id: &AgentId,
        executor_id: &ExecutorId,
    ) {
        self.send_agent(
            agent_id,
            &AgentCommand::ShutdownExecutor {
                framework_id: framework_id.to_string(),
                executor_id: executor_id.to_string(),
            },
        );
    }

    pub(crate) fn framework_message(&mut self, framework_id: &FrameworkId, message: Message) {
        let agent_id = AgentId::new(&message.agent_id.value);
        self.metrics.framework_to_executor_messages += 1;
        self.send_agent(
            &agent_id,
            &AgentCommand::FrameworkMessage {
                framework_id: framework_id.to_string(),
                executor_id: message.executor_id.value,
                data: message.data,
            },
        );
    }

    /// An executor sent a message to its scheduler.
    pub(crate) fn executor_message(&mut self, message: ExecutorMessage) {
        let framework_id = FrameworkId::new(message.framework_id);
        self.metrics.executor_to_framework_messages += 1;
        self.send_event(
            &framework_id,
            &Event::Message {
                message: Message {
                    agent_id: Id::new(message.agent_id),
                    executor_id: Id::new(message.executor_id),
                    data: message.data,
                },
            },
        );
    }

    /// A custom executor ended: the scheduler gets FAILURE with its exit status.
    pub(crate) fn executor_exited(&mut self, exited: ExecutorExited) {
        let framework_id = FrameworkId::new(exited.framework_id);
        let agent_id = AgentId::new(exited.agent_id);
        let executor_id = ExecutorId::new(exited.executor_id);
        if let Some(framework) = self.frameworks.get_mut(&framework_id) {
            framework
                .executors
                .remove(&(agent_id.clone(), executor_id.clone()));
        }
        self.send_event(
            &framework_id,
            &Event::Failure {
                failure: Failure {
                    agent_id: Some(Id::new(agent_id.as_str())),
                    executor_id: Some(Id::new(executor_id.as_str())),
                    status: exited.status,
                },
            },
        );
    }
}

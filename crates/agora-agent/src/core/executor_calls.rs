//! The executor API's calls as the agent's state sees them: who may make them, SUBSCRIBE
//! and UPDATE.

use std::path::PathBuf;
use std::sync::Arc;

use super::Agent;
use super::executors::{MEMORY_LIMITATION, deliver};
use super::types::{Executor, ExecutorState};
use agora_api::executor::{self, Event as ExecutorEvent};
use agora_api::mesos::{ExecutorInfo, Id, TaskStatus};
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

impl Agent {
    /// Whether a call carrying `token` may speak for the executor it names (see
    /// `executor_auth`); a call naming no known executor is answered by the call itself.
    pub(crate) fn executor_admits(
        &self,
        call: &executor::Call,
        token: Option<&str>,
    ) -> Result<(), (u16, &'static str)> {
        let state = self.lock();
        let Some(executor) = state.executor(
            &FrameworkId::new(&call.framework_id.value),
            &ExecutorId::new(&call.executor_id.value),
        ) else {
            return Ok(());
        };
        self.admit(executor, token, false)
    }

    /// Whether a call carrying `token` may speak for `executor` (see `executor_auth`).
    pub(super) fn admit(
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
        let framework_id = FrameworkId::new(&call.framework_id.value);
        let executor_id = ExecutorId::new(&call.executor_id.value);
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
                    .map(|t| TaskId::new(&t.task_id.value))
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
                            .contains_key(&TaskId::new(&status.task_id.value))
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
            touched.push(TaskId::new(&status.task_id.value));
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
        let framework_id = FrameworkId::new(&call.framework_id.value);
        let executor_id = ExecutorId::new(&call.executor_id.value);
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
        let task_id = TaskId::new(&update.status.task_id.value);
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
            &[TaskId::new(&task_id)],
            Some(&mut unsynced),
        );
        drop(state);
        self.updates_wanted.notify_one();
        Ok(unsynced)
    }

    /// Tells the executor its update is safe (after its checkpoint reached the disk).
    pub(crate) fn acknowledge_to_executor(&self, call: &executor::Call) {
        let framework_id = FrameworkId::new(&call.framework_id.value);
        let executor_id = ExecutorId::new(&call.executor_id.value);
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
}

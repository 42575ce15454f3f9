//! Status updates to the master: one queue per task, delivered in order, retried with
//! backoff until acknowledged; acknowledged terminal tasks move to the completed ones.

use super::Agent;
use super::types::{AgentState, Executor, ExecutorState, TaskRecord};
use crate::status_queue;
use agora_api::mesos::{Id, TaskStatus};
use agora_types::{ExecutorId, FrameworkId, TaskId};

pub(super) const MAX_COMPLETED: usize = 100;

impl Agent {
    /// Queues an update for the master (after recording the task's state).
    pub(super) fn enqueue_update(
        &self,
        state: &mut AgentState,
        framework_id: &FrameworkId,
        mut status: TaskStatus,
    ) {
        let task_id = TaskId::new(&status.task_id.value);
        status_queue::stamp(&mut status, state.agent_id.as_deref());
        if let Some(framework) = state.frameworks.get_mut(framework_id) {
            // An executor's own updates name it: no need to look through every executor.
            let named = status
                .executor_id
                .as_ref()
                .map(|id| ExecutorId::new(&id.value))
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
        status_queue::push(
            &mut state.updates,
            framework_id,
            status,
            self.config.status_update_retry,
        );
    }

    /// The heads of the update queues that are due, marking them as attempted.
    pub(crate) fn due_updates(&self) -> status_queue::Due {
        let state = &mut *self.lock();
        status_queue::due_for(
            state.master_connected,
            state.agent_id.as_ref(),
            &mut state.updates,
        )
    }

    /// ACKNOWLEDGE from the framework (through the master).
    pub(crate) fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) {
        let mut state = self.lock();
        let retry = self.config.status_update_retry;
        let Some(acked) =
            status_queue::acknowledge(&mut state.updates, framework_id, task_id, uuid, retry)
        else {
            return;
        };
        let executor_id = state.frameworks.get(framework_id).and_then(|framework| {
            let named = acked
                .executor_id
                .as_ref()
                .map(|id| ExecutorId::new(&id.value))
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
        if acked.state.is_terminal() {
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
}

/// Moves a task whose terminal update was acknowledged out of its executor's live set.
pub(super) fn complete_task(state: &mut AgentState, framework_id: &FrameworkId, task_id: &TaskId) {
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
pub(super) fn cleanup_framework(state: &mut AgentState, framework_id: &FrameworkId) {
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
            let tasks: Vec<Box<TaskRecord>> =
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

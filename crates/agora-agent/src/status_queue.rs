//! The rules of status update delivery, shared by the real agent and hollow agents: one queue
//! per task, delivered to the master one update at a time and in order, retried with doubling
//! intervals until the framework acknowledges the head.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use agora_api::mesos::{Id, TaskStatus};
use agora_types::{FrameworkId, TaskId};

pub(crate) const MAX_STATUS_RETRY: Duration = Duration::from_secs(600);

/// Updates of one task, delivered to the master one at a time, in order.
pub(crate) struct UpdateQueue {
    pub pending: VecDeque<TaskStatus>,
    pub next_attempt: Instant,
    pub interval: Duration,
}

pub(crate) type Queues = BTreeMap<(FrameworkId, TaskId), UpdateQueue>;

pub(crate) fn epoch_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) fn new_uuid() -> String {
    agora_api::mesos::encode_bytes(uuid::Uuid::new_v4().as_bytes())
}

/// Gives an update what the agent adds to every one: its uuid, its time, the agent's id.
pub(crate) fn stamp(status: &mut TaskStatus, agent_id: Option<&str>) {
    if status.uuid.is_none() {
        status.uuid = Some(new_uuid());
    }
    if status.timestamp.is_none() {
        status.timestamp = Some(epoch_secs());
    }
    if let Some(agent_id) = agent_id {
        status.agent_id = Some(Id::new(agent_id));
    }
}

/// Queues a stamped update behind the task's others (once: an update already queued, by its
/// uuid, is not queued again).
pub(crate) fn push(
    queues: &mut Queues,
    framework_id: &FrameworkId,
    status: TaskStatus,
    retry: Duration,
) {
    let task_id = TaskId::new(&status.task_id.value);
    let queue = queues
        .entry((framework_id.clone(), task_id))
        .or_insert_with(|| UpdateQueue {
            pending: VecDeque::new(),
            next_attempt: Instant::now(),
            interval: retry,
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
        queue.interval = retry;
    }
    queue.pending.push_back(status);
}

/// What the status sender gets: the agent's id, the updates due now, when the next is due.
pub(crate) type Due = (
    Option<String>,
    Vec<(FrameworkId, TaskStatus)>,
    Option<Instant>,
);

/// [`due`] for an agent, while it is connected to its master (nothing is due while not).
pub(crate) fn due_for(connected: bool, agent_id: Option<&String>, queues: &mut Queues) -> Due {
    if !connected {
        return (None, Vec::new(), None);
    }
    let (due, next) = due(queues);
    (agent_id.cloned(), due, next)
}

/// The heads of the queues that are due, marked as attempted, and when the next one is due.
pub(crate) fn due(queues: &mut Queues) -> (Vec<(FrameworkId, TaskStatus)>, Option<Instant>) {
    let now = Instant::now();
    let mut due = Vec::new();
    let mut next: Option<Instant> = None;
    for ((framework_id, _), queue) in queues.iter_mut() {
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
    (due, next)
}

/// The framework acknowledged the update `uuid` of a task: if it is the head of the task's
/// queue, the head goes (and is returned) and the next update is due at once.
pub(crate) fn acknowledge(
    queues: &mut Queues,
    framework_id: &FrameworkId,
    task_id: &TaskId,
    uuid: &str,
    retry: Duration,
) -> Option<TaskStatus> {
    let key = (framework_id.clone(), task_id.clone());
    let queue = queues.get_mut(&key)?;
    if queue.pending.front().and_then(|s| s.uuid.as_deref()) != Some(uuid) {
        return None;
    }
    let acked = queue.pending.pop_front();
    queue.next_attempt = Instant::now();
    queue.interval = retry;
    if queue.pending.is_empty() {
        queues.remove(&key);
    }
    acked
}

/// A master was (re)joined: every queue's head is due now, at the first interval.
pub(crate) fn retry_now(queues: &mut Queues, retry: Duration) {
    for queue in queues.values_mut() {
        queue.next_attempt = Instant::now();
        queue.interval = retry;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_types::TaskState;

    fn update(task: &str, state: TaskState) -> TaskStatus {
        let mut status = TaskStatus::new(task, state);
        stamp(&mut status, Some("a1"));
        status
    }

    #[test]
    fn one_update_per_task_at_a_time_in_order_until_acknowledged() {
        let retry = Duration::from_secs(10);
        let framework = FrameworkId::new("f");
        let mut queues = Queues::new();
        let starting = update("t", TaskState::Starting);
        let running = update("t", TaskState::Running);
        push(&mut queues, &framework, starting.clone(), retry);
        push(&mut queues, &framework, running.clone(), retry);
        push(&mut queues, &framework, running.clone(), retry);
        push(
            &mut queues,
            &framework,
            update("u", TaskState::Running),
            retry,
        );

        let (due_now, next) = due(&mut queues);
        assert_eq!(due_now.len(), 2);
        assert_eq!(due_now[0].1.state, TaskState::Starting);
        assert!(next.is_some());
        // Attempted: not due again before the interval.
        assert!(due(&mut queues).0.is_empty());

        let task = TaskId::new("t");
        let wrong = acknowledge(&mut queues, &framework, &task, "not the head", retry);
        assert!(wrong.is_none());
        let head = starting.uuid.clone().unwrap_or_default();
        let acked = acknowledge(&mut queues, &framework, &task, &head, retry);
        assert_eq!(acked.map(|s| s.state), Some(TaskState::Starting));
        let (due_now, _) = due(&mut queues);
        assert_eq!(due_now.len(), 1);
        assert_eq!(due_now[0].1.uuid, running.uuid);

        let last = running.uuid.unwrap_or_default();
        assert!(acknowledge(&mut queues, &framework, &task, &last, retry).is_some());
        assert!(!queues.contains_key(&(framework, task)));
    }

    #[test]
    fn retries_double_up_to_a_bound_and_restart_on_a_new_master() {
        let retry = Duration::from_secs(400);
        let framework = FrameworkId::new("f");
        let mut queues = Queues::new();
        push(
            &mut queues,
            &framework,
            update("t", TaskState::Running),
            retry,
        );
        let _ = due(&mut queues);
        let queue = &queues[&(framework.clone(), TaskId::new("t"))];
        assert_eq!(queue.interval, MAX_STATUS_RETRY);
        retry_now(&mut queues, retry);
        assert_eq!(due(&mut queues).0.len(), 1);
    }
}

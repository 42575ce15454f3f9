//! A framework's live tasks with their tally — how many are in each state, and the scalars
//! of those still holding their resources — kept as the tasks change, so that the metrics
//! never walk every task under the master's lock (at 100,000 tasks that walk held the lock
//! about 10 ms each time `/metrics/snapshot` was asked). Reads go through `Deref`; every
//! change goes through a method here, which keeps the tally right.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use agora_types::{Scalar, TaskId, TaskState};

use super::Task;

/// The scalars the metrics report, in this order.
pub(crate) const SCALARS: [&str; 4] = ["cpus", "mem", "disk", "gpus"];

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    /// Live tasks by state (`TaskState as usize`).
    by_state: [u64; TaskState::ALL.len()],
    /// [`SCALARS`] of the tasks whose resources are not yet released.
    held: [Scalar; 4],
}

impl Tally {
    pub fn in_state(&self, state: TaskState) -> u64 {
        self.by_state[state as usize]
    }

    pub fn held(&self) -> [Scalar; 4] {
        self.held
    }

    /// Adds `other` into this one.
    pub fn add(&mut self, other: &Tally) {
        for (sum, count) in self.by_state.iter_mut().zip(other.by_state) {
            *sum += count;
        }
        for (sum, value) in self.held.iter_mut().zip(other.held) {
            *sum += value;
        }
    }

    fn count(&mut self, task: &Task) {
        self.by_state[task.state as usize] += 1;
        if !task.released {
            for (sum, name) in self.held.iter_mut().zip(SCALARS) {
                *sum += task.resources.scalar(name);
            }
        }
    }

    fn uncount(&mut self, task: &Task) {
        let count = &mut self.by_state[task.state as usize];
        *count = count.saturating_sub(1);
        if !task.released {
            for (sum, name) in self.held.iter_mut().zip(SCALARS) {
                *sum -= task.resources.scalar(name);
            }
        }
    }

    /// The tally of `tasks` counted one by one (what the kept one must always equal).
    #[cfg(test)]
    pub fn of<'a>(tasks: impl IntoIterator<Item = &'a Arc<Task>>) -> Tally {
        let mut tally = Tally::default();
        for task in tasks {
            tally.count(task);
        }
        tally
    }
}

/// Shared so a state view can take every task in one pass under the lock and render it after;
/// a change to a task a view still holds copies it (`Arc::make_mut`).
#[derive(Default)]
pub(crate) struct TaskMap {
    tasks: HashMap<TaskId, Arc<Task>>,
    tally: Tally,
}

impl Deref for TaskMap {
    type Target = HashMap<TaskId, Arc<Task>>;

    fn deref(&self) -> &Self::Target {
        &self.tasks
    }
}

impl TaskMap {
    pub fn tally(&self) -> &Tally {
        &self.tally
    }

    pub fn insert(&mut self, id: TaskId, task: Arc<Task>) -> Option<Arc<Task>> {
        self.tally.count(&task);
        let replaced = self.tasks.insert(id, task);
        if let Some(old) = &replaced {
            self.tally.uncount(old);
        }
        replaced
    }

    pub fn remove(&mut self, id: &TaskId) -> Option<Arc<Task>> {
        let removed = self.tasks.remove(id);
        if let Some(task) = &removed {
            self.tally.uncount(task);
        }
        removed
    }

    /// Changes one task (copied first if a view holds it); `None` when there is no such task.
    pub fn update<R>(&mut self, id: &TaskId, change: impl FnOnce(&mut Task) -> R) -> Option<R> {
        let task = Arc::make_mut(self.tasks.get_mut(id)?);
        self.tally.uncount(task);
        let result = change(task);
        self.tally.count(task);
        Some(result)
    }

    /// Every task, taken out.
    pub fn drain(&mut self) -> impl Iterator<Item = (TaskId, Arc<Task>)> + '_ {
        self.tally = Tally::default();
        self.tasks.drain()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_api::mesos::{TaskInfo, TaskStatus};
    use agora_types::{AgentId, FrameworkId, Resource, Resources};
    use proptest::prelude::*;

    fn task(id: u8, cpus: u8, state: TaskState, released: bool) -> Arc<Task> {
        let mut resources = Resources::new();
        resources.push(Resource::scalar("cpus", f64::from(cpus) / 10.0));
        resources.push(Resource::scalar("mem", f64::from(cpus) * 32.0));
        Arc::new(Task {
            info: super::super::task_info::StoredTaskInfo::new(&TaskInfo::default()),
            framework_id: FrameworkId::new("f"),
            agent_id: AgentId::new("a"),
            executor_id: None,
            state,
            statuses: super::super::history::StatusHistory::new(
                TaskStatus::new(&id.to_string(), state),
                &agora_types::TaskId::new(id.to_string()),
                &AgentId::new("a"),
            ),
            resources,
            role: "*".into(),
            released,
            unreachable_since: None,
        })
    }

    #[derive(Clone, Debug)]
    enum Change {
        Insert(u8, u8, usize, bool),
        Remove(u8),
        Update(u8, usize, bool),
        Drain,
    }

    fn change() -> impl Strategy<Value = Change> {
        let state = 0..TaskState::ALL.len();
        prop_oneof![
            (0..8u8, 0..20u8, state.clone(), any::<bool>())
                .prop_map(|(id, cpus, s, r)| Change::Insert(id, cpus, s, r)),
            (0..8u8).prop_map(Change::Remove),
            (0..8u8, state, any::<bool>()).prop_map(|(id, s, r)| Change::Update(id, s, r)),
            Just(Change::Drain),
        ]
    }

    proptest! {
        /// Whatever the changes (views holding tasks or not), the kept tally is the one
        /// counted from the tasks.
        #[test]
        fn the_tally_is_always_the_tasks_counted(changes in proptest::collection::vec(change(), 0..60)) {
            let mut map = TaskMap::default();
            let mut held_by_a_view = Vec::new();
            for change in changes {
                match change {
                    Change::Insert(id, cpus, state, released) => {
                        map.insert(TaskId::new(id.to_string()), task(id, cpus, TaskState::ALL[state], released));
                    }
                    Change::Remove(id) => {
                        map.remove(&TaskId::new(id.to_string()));
                    }
                    Change::Update(id, state, released) => {
                        held_by_a_view.extend(map.values().cloned());
                        map.update(&TaskId::new(id.to_string()), |task| {
                            task.state = TaskState::ALL[state];
                            task.released |= released;
                        });
                    }
                    Change::Drain => {
                        let _ = map.drain().count();
                    }
                }
                prop_assert_eq!(*map.tally(), Tally::of(map.values()));
            }
        }
    }
}
#[cfg(test)]
mod size {
    /// A master keeps 100,000 of each: a few bytes more put a task in a larger allocation.
    #[test]
    fn a_task_stays_small() {
        assert!(std::mem::size_of::<super::super::Task>() <= 168);
        assert!(std::mem::size_of::<agora_types::Resource>() <= 64);
    }
}

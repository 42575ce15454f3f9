//! Writing the checkpoint incrementally. Every change to the agent's state calls
//! [`Agent::save_locked`], which must be cheap with thousands of tasks: a fingerprint of each
//! executor and of each task's update queue (hashes of the few fields that change) tells which
//! files are stale, and only those are serialized and written. Update queues are synced to disk
//! before the executor's update is acknowledged (the guarantee Mesos gives); the agent and
//! executor files are replaced atomically without a sync: what they add after a power loss (the
//! latest acknowledged state of a task) is also known to the master.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::checkpoint::{
    self, Checkpoint, ExecutorCheckpoint, ExecutorFile, FrameworkCheckpoint, TaskCheckpoint,
    UpdateCheckpoint,
};
use agora_types::{ExecutorId, FrameworkId, TaskId};

use crate::core::{Agent, AgentState, Executor, UpdateQueue};

/// What the files on disk hold, as fingerprints.
#[derive(Default)]
pub(crate) struct Written {
    agent: Vec<u8>,
    executors: HashMap<(String, String), u64>,
    updates: HashMap<(String, String), u64>,
}

impl Written {
    /// After recovery: the files found on disk, so those no longer wanted get removed.
    pub(crate) fn loaded(checkpoint: &Checkpoint) -> Written {
        let mut written = Written::default();
        for framework in &checkpoint.frameworks {
            let Some(framework_id) = framework.info.id.as_ref() else {
                continue;
            };
            for executor in &framework.executors {
                written.executors.insert(
                    (
                        framework_id.value.clone(),
                        executor.info.executor_id.value.clone(),
                    ),
                    0,
                );
            }
        }
        for update in &checkpoint.updates {
            written
                .updates
                .insert((update.framework_id.clone(), update.task_id.clone()), 0);
        }
        written
    }
}

fn executor_fingerprint(executor: &Executor) -> u64 {
    let mut hasher = DefaultHasher::new();
    executor.pid.hash(&mut hasher);
    executor.pid_start_time.hash(&mut hasher);
    executor.tasks.len().hash(&mut hasher);
    for (id, task) in &executor.tasks {
        id.as_str().hash(&mut hasher);
        std::mem::discriminant(&task.state).hash(&mut hasher);
        task.launched.hash(&mut hasher);
        if let Some(status) = &task.status {
            status.uuid.hash(&mut hasher);
            std::mem::discriminant(&status.state).hash(&mut hasher);
            status.healthy.hash(&mut hasher);
            status.timestamp.map(f64::to_bits).hash(&mut hasher);
        }
    }
    // Never 0: that marks a file found on disk at recovery.
    hasher.finish().max(1)
}

/// The fingerprint of an emptied update file; those of pending updates are at least 3.
const EMPTY_UPDATES: u64 = 2;

fn updates_fingerprint(queue: &UpdateQueue) -> u64 {
    let mut hasher = DefaultHasher::new();
    queue.pending.len().hash(&mut hasher);
    for status in &queue.pending {
        status.uuid.hash(&mut hasher);
        std::mem::discriminant(&status.state).hash(&mut hasher);
    }
    hasher.finish().max(EMPTY_UPDATES + 1)
}

fn executor_checkpoint(executor: &Executor) -> ExecutorCheckpoint {
    ExecutorCheckpoint {
        info: executor.info.clone(),
        kind: executor.kind,
        container_id: executor.container_id.clone(),
        directory: executor.directory.clone(),
        pid: executor.pid,
        pid_start_time: executor.pid_start_time,
        token: executor.token.clone(),
        tasks: executor
            .tasks
            .values()
            .map(|task| TaskCheckpoint {
                info: task.info.clone(),
                state: task.state,
                status: task.status.clone(),
                launched: task.launched,
            })
            .collect(),
    }
}

fn report(what: &str, error: std::io::Error) {
    tracing::error!(%error, what, "cannot write the agent checkpoint");
}

impl Agent {
    /// Writes what changed anywhere in the checkpoint. A failed write is logged: the agent keeps
    /// running, as losing recovery is better than losing the tasks; the file is retried on the
    /// next save.
    pub(crate) fn save_locked(&self, state: &AgentState) {
        let mut written = self.written();
        self.save_agent_file(state, &mut written);
        let mut live = HashSet::new();
        for (framework_id, framework) in &state.frameworks {
            for executor_id in framework.executors.keys() {
                let key = (framework_id.to_string(), executor_id.to_string());
                self.save_executor(state, &mut written, &key);
                live.insert(key);
            }
        }
        let gone: Vec<(String, String)> = written
            .executors
            .keys()
            .filter(|key| !live.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            self.save_executor(state, &mut written, &key);
        }
        let tasks: HashSet<(String, String)> = state
            .frameworks
            .iter()
            .flat_map(|(framework_id, framework)| {
                framework.executors.values().flat_map(move |executor| {
                    executor
                        .tasks
                        .keys()
                        .map(move |task_id| (framework_id.to_string(), task_id.to_string()))
                })
            })
            .collect();
        let mut live = HashSet::new();
        for (framework_id, task_id) in state.updates.keys() {
            let key = (framework_id.to_string(), task_id.to_string());
            let task_live = tasks.contains(&key);
            self.save_updates(state, &mut written, &key, task_live, None);
            live.insert(key);
        }
        let gone: Vec<(String, String)> = written
            .updates
            .keys()
            .filter(|key| !live.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            let task_live = tasks.contains(&key);
            self.save_updates(state, &mut written, &key, task_live, None);
        }
    }

    /// Writes what changed for one executor and some tasks of a framework: the hot paths
    /// (launch, executor updates, acknowledgements) touch nothing else, and must not pay for
    /// looking at every other executor.
    pub(crate) fn save_scoped(
        &self,
        state: &AgentState,
        framework_id: &FrameworkId,
        executor_id: Option<&ExecutorId>,
        tasks: &[TaskId],
    ) {
        self.save_scoped_deferred(state, framework_id, executor_id, tasks, None);
    }

    /// [`Agent::save_scoped`], leaving the sync of update files to the caller when `unsynced`
    /// is given (their paths are added to it): syncing outside the agent's lock lets many
    /// executors' updates reach the disk together instead of one after another.
    pub(crate) fn save_scoped_deferred(
        &self,
        state: &AgentState,
        framework_id: &FrameworkId,
        executor_id: Option<&ExecutorId>,
        tasks: &[TaskId],
        mut unsynced: Option<&mut Vec<std::path::PathBuf>>,
    ) {
        let mut written = self.written();
        self.save_agent_file(state, &mut written);
        if let Some(executor_id) = executor_id {
            let key = (framework_id.to_string(), executor_id.to_string());
            self.save_executor(state, &mut written, &key);
        }
        let framework = state.frameworks.get(framework_id);
        let executor = executor_id.and_then(|id| framework?.executors.get(id));
        for task_id in tasks {
            let key = (framework_id.to_string(), task_id.to_string());
            let task_live = match (executor, framework) {
                (Some(executor), _) if executor.tasks.contains_key(task_id) => true,
                (_, Some(framework)) => framework
                    .executors
                    .values()
                    .any(|executor| executor.tasks.contains_key(task_id)),
                (_, None) => false,
            };
            let deferred = unsynced.as_deref_mut();
            self.save_updates(state, &mut written, &key, task_live, deferred);
        }
    }

    fn save_agent_file(&self, state: &AgentState, written: &mut Written) {
        let agent_file = Checkpoint {
            agent_id: state.agent_id.clone(),
            agent_token: state.agent_token.clone(),
            frameworks: state
                .frameworks
                .values()
                .map(|framework| FrameworkCheckpoint {
                    info: framework.info.clone(),
                    executors: Vec::new(),
                })
                .collect(),
            updates: Vec::new(),
        };
        match serde_json::to_vec(&agent_file) {
            Ok(bytes) if bytes != written.agent => {
                let path = checkpoint::agent_path(&self.config.work_dir);
                match checkpoint::replace(&path, &bytes) {
                    Ok(()) => written.agent = bytes,
                    Err(error) => report("agent", error),
                }
            }
            Ok(_) => {}
            Err(error) => report("agent", std::io::Error::other(error)),
        }
    }

    /// Writes one executor's file if it changed, or removes it if the executor is gone.
    fn save_executor(&self, state: &AgentState, written: &mut Written, key: &(String, String)) {
        let executor = state
            .frameworks
            .get(&FrameworkId::new(&key.0))
            .and_then(|f| f.executors.get(&ExecutorId::new(&key.1)));
        let wanted = executor.map(|executor| {
            (executor_fingerprint(executor), || ExecutorFile {
                framework_id: key.0.clone(),
                executor: executor_checkpoint(executor),
            })
        });
        let path = checkpoint::executor_path(&self.config.work_dir, &key.0, &key.1);
        bring_in_line(
            &mut written.executors,
            key,
            &path,
            wanted,
            false,
            "executor",
        );
    }

    /// Writes one task's unacknowledged updates if they changed. Once none is left the file is
    /// emptied while the task lives, and removed when it is gone: a file made and removed for
    /// every update would cost the filesystem an inode each time (and ext4 without a journal
    /// searches past recently freed inodes on every allocation). They are synced (they are what
    /// an executor's acknowledgement promises) unless `unsynced` takes the path, for the caller
    /// to sync after releasing the lock.
    fn save_updates(
        &self,
        state: &AgentState,
        written: &mut Written,
        key: &(String, String),
        task_live: bool,
        unsynced: Option<&mut Vec<std::path::PathBuf>>,
    ) {
        let queue = state
            .updates
            .get(&(FrameworkId::new(&key.0), TaskId::new(&key.1)))
            .filter(|queue| !queue.pending.is_empty());
        let fingerprint = match queue {
            Some(queue) => Some(updates_fingerprint(queue)),
            // Only a file already there is emptied; none is made for nothing.
            None if task_live && written.updates.contains_key(key) => Some(EMPTY_UPDATES),
            None => None,
        };
        let wanted = fingerprint.map(|fingerprint| {
            (fingerprint, || UpdateCheckpoint {
                framework_id: key.0.clone(),
                task_id: key.1.clone(),
                pending: queue
                    .map(|queue| queue.pending.iter().cloned().collect())
                    .unwrap_or_default(),
            })
        });
        let path = checkpoint::updates_path(&self.config.work_dir, &key.0, &key.1);
        // Emptying needs no sync: updates that come back after a crash are only sent again.
        let durable = unsynced.is_none() && queue.is_some();
        let wrote = bring_in_line(&mut written.updates, key, &path, wanted, durable, "updates");
        if wrote
            && queue.is_some()
            && let Some(unsynced) = unsynced
        {
            unsynced.push(path);
        }
    }
}

/// Brings one checkpoint file in line with what it should hold: removed when nothing should
/// (and something was written), left alone when its fingerprint is already on disk, otherwise
/// serialized and written. Returns whether it wrote.
fn bring_in_line<T: serde::Serialize>(
    files: &mut HashMap<(String, String), u64>,
    key: &(String, String),
    path: &std::path::Path,
    wanted: Option<(u64, impl FnOnce() -> T)>,
    durable: bool,
    what: &str,
) -> bool {
    let Some((fingerprint, contents)) = wanted else {
        if files.contains_key(key) {
            match checkpoint::remove(path) {
                Ok(()) => {
                    files.remove(key);
                }
                Err(error) => report(what, error),
            }
        }
        return false;
    };
    if files.get(key) == Some(&fingerprint) {
        return false;
    }
    let result = serde_json::to_vec(&contents())
        .map_err(std::io::Error::other)
        .and_then(|bytes| checkpoint::write(path, &bytes, durable));
    match result {
        Ok(()) => {
            files.insert(key.clone(), fingerprint);
            true
        }
        Err(error) => {
            report(what, error);
            false
        }
    }
}

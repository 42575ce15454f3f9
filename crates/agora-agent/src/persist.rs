//! Writing the checkpoint incrementally. Every change to the agent's state calls
//! [`Agent::save_locked`], which must be cheap with thousands of tasks: a fingerprint of each
//! executor and of each task's update queue (hashes of the few fields that change) tells which
//! files are stale, and only those are serialized and written.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::checkpoint::{
    self, Checkpoint, ExecutorCheckpoint, ExecutorFile, FrameworkCheckpoint, TaskCheckpoint,
    UpdateCheckpoint,
};
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

fn updates_fingerprint(queue: &UpdateQueue) -> u64 {
    let mut hasher = DefaultHasher::new();
    queue.pending.len().hash(&mut hasher);
    for status in &queue.pending {
        status.uuid.hash(&mut hasher);
        std::mem::discriminant(&status.state).hash(&mut hasher);
    }
    hasher.finish().max(1)
}

fn executor_checkpoint(executor: &Executor) -> ExecutorCheckpoint {
    ExecutorCheckpoint {
        info: executor.info.clone(),
        kind: executor.kind,
        container_id: executor.container_id.clone(),
        directory: executor.directory.clone(),
        pid: executor.pid,
        pid_start_time: executor.pid_start_time,
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

impl Agent {
    /// Writes what changed in the checkpoint. A failed write is logged: the agent keeps running,
    /// as losing recovery is better than losing the tasks; the file is retried on the next save.
    pub(crate) fn save_locked(&self, state: &AgentState) {
        let mut written = self.written();
        let work_dir = &self.config.work_dir;
        let report = |what: &str, error: std::io::Error| {
            tracing::error!(%error, what, "cannot write the agent checkpoint");
        };

        let agent_file = Checkpoint {
            agent_id: state.agent_id.clone(),
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
                match checkpoint::write(&checkpoint::agent_path(work_dir), &bytes) {
                    Ok(()) => written.agent = bytes,
                    Err(error) => report("agent", error),
                }
            }
            Ok(_) => {}
            Err(error) => report("agent", std::io::Error::other(error)),
        }

        let mut live = HashSet::new();
        for (framework_id, framework) in &state.frameworks {
            for (executor_id, executor) in &framework.executors {
                let key = (framework_id.to_string(), executor_id.to_string());
                let fingerprint = executor_fingerprint(executor);
                if written.executors.get(&key) != Some(&fingerprint) {
                    let file = ExecutorFile {
                        framework_id: key.0.clone(),
                        executor: executor_checkpoint(executor),
                    };
                    let path = checkpoint::executor_path(work_dir, &key.0, &key.1);
                    let result = serde_json::to_vec(&file)
                        .map_err(std::io::Error::other)
                        .and_then(|bytes| checkpoint::write(&path, &bytes));
                    match result {
                        Ok(()) => {
                            written.executors.insert(key.clone(), fingerprint);
                        }
                        Err(error) => report("executor", error),
                    }
                }
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
            match checkpoint::remove(&checkpoint::executor_path(work_dir, &key.0, &key.1)) {
                Ok(()) => {
                    written.executors.remove(&key);
                }
                Err(error) => report("executor", error),
            }
        }

        let mut live = HashSet::new();
        for ((framework_id, task_id), queue) in &state.updates {
            if queue.pending.is_empty() {
                continue;
            }
            let key = (framework_id.to_string(), task_id.to_string());
            let fingerprint = updates_fingerprint(queue);
            if written.updates.get(&key) != Some(&fingerprint) {
                let file = UpdateCheckpoint {
                    framework_id: key.0.clone(),
                    task_id: key.1.clone(),
                    pending: queue.pending.iter().cloned().collect(),
                };
                let path = checkpoint::updates_path(work_dir, &key.0, &key.1);
                let result = serde_json::to_vec(&file)
                    .map_err(std::io::Error::other)
                    .and_then(|bytes| checkpoint::write(&path, &bytes));
                match result {
                    Ok(()) => {
                        written.updates.insert(key.clone(), fingerprint);
                    }
                    Err(error) => report("updates", error),
                }
            }
            live.insert(key);
        }
        let gone: Vec<(String, String)> = written
            .updates
            .keys()
            .filter(|key| !live.contains(*key))
            .cloned()
            .collect();
        for key in gone {
            match checkpoint::remove(&checkpoint::updates_path(work_dir, &key.0, &key.1)) {
                Ok(()) => {
                    written.updates.remove(&key);
                }
                Err(error) => report("updates", error),
            }
        }
    }
}

//! The agent's checkpoint: everything needed to recover after a restart (its id, frameworks,
//! executors with their pids and sandboxes, tasks, and status updates not yet acknowledged),
//! in one JSON file under `<work_dir>/meta`, replaced atomically on every change.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use agora_api::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus};
use agora_types::TaskState;

use crate::AgentError;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub agent_id: Option<String>,
    pub frameworks: Vec<FrameworkCheckpoint>,
    pub updates: Vec<UpdateCheckpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FrameworkCheckpoint {
    pub info: FrameworkInfo,
    pub executors: Vec<ExecutorCheckpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExecutorCheckpoint {
    pub info: ExecutorInfo,
    pub kind: crate::core::ExecutorKind,
    pub container_id: String,
    pub directory: PathBuf,
    pub pid: Option<i32>,
    /// `/proc/<pid>/stat` start time, so a reused pid is not mistaken for the executor.
    pub pid_start_time: Option<u64>,
    pub tasks: Vec<TaskCheckpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TaskCheckpoint {
    pub info: TaskInfo,
    pub state: TaskState,
    pub status: Option<TaskStatus>,
    /// Delivered to the executor (false while queued until it subscribes).
    pub launched: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UpdateCheckpoint {
    pub framework_id: String,
    pub task_id: String,
    pub pending: Vec<TaskStatus>,
}

pub(crate) fn path(work_dir: &Path) -> PathBuf {
    work_dir.join("meta").join("agent.json")
}

pub(crate) fn load(work_dir: &Path) -> Result<Checkpoint, AgentError> {
    let path = path(work_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Checkpoint {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
        Err(source) => Err(AgentError::WorkDir {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Writes to a temporary file, syncs it and renames it over the old one, so a crash leaves
/// either the old or the new checkpoint, never a torn one.
pub(crate) fn store(work_dir: &Path, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let path = path(work_dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(checkpoint).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    std::fs::rename(&temporary, &path)
}

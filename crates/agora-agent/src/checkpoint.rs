//! The agent's checkpoint: everything needed to recover after a restart (its id, frameworks,
//! executors with their pids and sandboxes, tasks, and status updates not yet acknowledged),
//! under `<work_dir>/meta`, in small files so a change rewrites only what changed:
//! `agent.json` (id and frameworks), `frameworks/<framework>/executors/<executor>.json` (one
//! executor and its tasks) and `updates/<framework>/<task>.json` (a task's unacknowledged
//! updates). Each file is replaced atomically (write, sync, rename). An `agent.json` written by
//! an older agent, with everything inside, still loads.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use agora_api::mesos::{ExecutorInfo, FrameworkInfo, TaskInfo, TaskStatus};
use agora_types::TaskState;

use crate::AgentError;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub agent_id: Option<String>,
    /// The secret the master gave this agent: its id is taken, and its reports accepted,
    /// only with it.
    #[serde(default)]
    pub agent_token: Option<String>,
    pub frameworks: Vec<FrameworkCheckpoint>,
    #[serde(default)]
    pub updates: Vec<UpdateCheckpoint>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FrameworkCheckpoint {
    pub info: FrameworkInfo,
    #[serde(default)]
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
    /// The executor's secret, so it is still itself to a restarted agent.
    #[serde(default)]
    pub token: Option<String>,
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

pub(crate) fn meta(work_dir: &Path) -> PathBuf {
    work_dir.join("meta")
}

pub(crate) fn agent_path(work_dir: &Path) -> PathBuf {
    meta(work_dir).join("agent.json")
}

pub(crate) fn executor_path(work_dir: &Path, framework_id: &str, executor_id: &str) -> PathBuf {
    meta(work_dir)
        .join("frameworks")
        .join(framework_id)
        .join("executors")
        .join(format!("{executor_id}.json"))
}

pub(crate) fn updates_path(work_dir: &Path, framework_id: &str, task_id: &str) -> PathBuf {
    meta(work_dir)
        .join("updates")
        .join(framework_id)
        .join(format!("{task_id}.json"))
}

/// One executor's file.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExecutorFile {
    pub framework_id: String,
    pub executor: ExecutorCheckpoint,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Checkpoint {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AgentError::WorkDir {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Reads an executor or update file: the first JSON value (trailing bytes of an interrupted
/// overwrite are ignored); an unreadable one is skipped with a warning, since what it held is
/// also known to the executor (which re-sends unacknowledged updates) or the master.
fn read_lenient<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    let mut values = serde_json::Deserializer::from_slice(&bytes).into_iter::<T>();
    match values.next() {
        Some(Ok(value)) => Some(value),
        _ => {
            tracing::warn!(path = %path.display(), "unreadable checkpoint file skipped");
            None
        }
    }
}

/// The `.json` files two levels below `dir` (`dir/<a>/<b>.json`, or with `middle` between).
fn files_below(dir: &Path, middle: Option<&str>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(outer) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in outer.flatten() {
        let mut inner = entry.path();
        if let Some(middle) = middle {
            inner = inner.join(middle);
        }
        let Ok(entries) = std::fs::read_dir(&inner) else {
            continue;
        };
        for file in entries.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Loads the whole checkpoint: `agent.json` with every executor and update file merged in.
pub(crate) fn load(work_dir: &Path) -> Result<Checkpoint, AgentError> {
    let mut checkpoint: Checkpoint = read(&agent_path(work_dir))?.unwrap_or_default();
    let meta = meta(work_dir);
    for path in files_below(&meta.join("frameworks"), Some("executors")) {
        let Some(file) = read_lenient::<ExecutorFile>(&path) else {
            continue;
        };
        let framework = checkpoint.frameworks.iter_mut().find(|f| {
            f.info.id.as_ref().map(|id| id.value.as_str()) == Some(file.framework_id.as_str())
        });
        match framework {
            Some(framework) => framework.executors.push(file.executor),
            None => {
                tracing::warn!(path = %path.display(), "checkpointed executor of an unknown framework ignored")
            }
        }
    }
    for path in files_below(&meta.join("updates"), None) {
        if let Some(update) = read_lenient::<UpdateCheckpoint>(&path) {
            checkpoint.updates.push(update);
        }
    }
    Ok(checkpoint)
}

/// Writes to a temporary file and renames it over the old one, so a crash leaves either the old
/// or the new file, never a torn one (for `agent.json`, which changes rarely).
pub(crate) fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        crate::modes::make_dirs(parent, crate::modes::PRIVATE_DIR)?;
    }
    let temporary = path.with_extension("json.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(crate::modes::PRIVATE_FILE)
        .open(&temporary)?;
    file.write_all(bytes)?;
    std::fs::rename(&temporary, path)
}

/// Overwrites a file in place: one positioned write from the start, then the length cut to
/// fit. A process crash leaves the old or the new JSON (possibly followed by old bytes, which
/// loading ignores); creating a new file per write (write, rename) made the file system's inode
/// allocation the agent's main cost with thousands of tasks. `durable` syncs the data, for what
/// an acknowledgement promises.
pub(crate) fn write(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(crate::modes::PRIVATE_FILE)
            .open(path)
    };
    let file = match open() {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                crate::modes::make_dirs(parent, crate::modes::PRIVATE_DIR)?;
            }
            open()?
        }
        Err(error) => return Err(error),
    };
    file.write_all_at(bytes, 0)?;
    file.set_len(bytes.len() as u64)?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// Syncs a file written without `durable`; one replaced or removed since needs nothing more.
pub(crate) fn sync(path: &Path) -> std::io::Result<()> {
    match std::fs::File::open(path) {
        Ok(file) => file.sync_data(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// Removes a file that may not exist.
pub(crate) fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn executor(id: &str, pid: i32) -> serde_json::Value {
        json!({"info": {"executor_id": {"value": id}, "command": {"value": "x"}},
            "kind": "Command", "container_id": "c", "directory": "/tmp/d", "pid": pid,
            "pid_start_time": 1, "tasks": []})
    }

    #[test]
    fn loads_split_files_and_an_older_single_file() {
        let dir = tempfile::tempdir().unwrap();
        let framework = json!({"user": "u", "name": "f", "id": {"value": "fw"}});
        // An older agent's checkpoint: everything in agent.json.
        let old = json!({"agent_id": "a1", "frameworks": [{"info": framework,
            "executors": [executor("e1", 10)]}],
            "updates": [{"framework_id": "fw", "task_id": "t1", "pending": []}]});
        write(&agent_path(dir.path()), old.to_string().as_bytes(), true).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.agent_id.as_deref(), Some("a1"));
        assert_eq!(loaded.frameworks[0].executors.len(), 1);
        assert_eq!(loaded.updates.len(), 1);

        // Today's layout: executors and update queues in files of their own.
        let new = json!({"agent_id": "a1", "frameworks": [{"info": framework}]});
        write(&agent_path(dir.path()), new.to_string().as_bytes(), true).unwrap();
        for (id, pid) in [("e1", 10), ("e2", 11)] {
            let file = json!({"framework_id": "fw", "executor": executor(id, pid)});
            write(
                &executor_path(dir.path(), "fw", id),
                file.to_string().as_bytes(),
                true,
            )
            .unwrap();
        }
        let orphan = json!({"framework_id": "gone", "executor": executor("e3", 12)});
        write(
            &executor_path(dir.path(), "gone", "e3"),
            orphan.to_string().as_bytes(),
            true,
        )
        .unwrap();
        let update = json!({"framework_id": "fw", "task_id": "t2", "pending": []});
        write(
            &updates_path(dir.path(), "fw", "t2"),
            update.to_string().as_bytes(),
            true,
        )
        .unwrap();
        let loaded = load(dir.path()).unwrap();
        let pids: Vec<Option<i32>> = loaded.frameworks[0]
            .executors
            .iter()
            .map(|e| e.pid)
            .collect();
        assert_eq!(
            pids,
            vec![Some(10), Some(11)],
            "the unknown framework's executor is ignored"
        );
        assert_eq!(loaded.updates[0].task_id, "t2");

        remove(&executor_path(dir.path(), "fw", "e2")).unwrap();
        remove(&executor_path(dir.path(), "fw", "e2")).unwrap();
        assert_eq!(load(dir.path()).unwrap().frameworks[0].executors.len(), 1);

        // Overwritten in place with something shorter: the old tail is ignored. A torn file is
        // skipped, not fatal.
        let path = executor_path(dir.path(), "fw", "e1");
        let long = json!({"framework_id": "fw", "executor": executor("e1", 10), "padding": "x".repeat(500)});
        write(&path, long.to_string().as_bytes(), false).unwrap();
        let short = json!({"framework_id": "fw", "executor": executor("e1", 42)});
        let mut bytes = short.to_string().into_bytes();
        bytes.extend_from_slice(&long.to_string().as_bytes()[bytes.len()..]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            load(dir.path()).unwrap().frameworks[0].executors[0].pid,
            Some(42)
        );
        std::fs::write(&path, b"{\"framework_id\": \"fw\", \"exec").unwrap();
        assert!(load(dir.path()).unwrap().frameworks[0].executors.is_empty());
    }
}

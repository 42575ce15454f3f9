//! Warm containers: built-in executors' containers made ahead of their tasks.
//!
//! Starting a container costs milliseconds that have nothing to do with the task: a cgroup
//! made and joined in each hierarchy, new pid and mount namespaces, the private `/tmp` and
//! `/proc`, the fork of an init and of the executor. The agent keeps a few containers made
//! that far (`--warm-containers`), each executor waiting, as root, for its assignment. A
//! task for a built-in executor (command, default or Docker) takes one: its sandbox
//! directory is renamed into the task's place (a rename carries the open files, the
//! working directory and the `/tmp` bind along), its cgroups get the task's limits, and the
//! launcher tells the executor its environment, sandbox and user; it becomes that user and
//! runs as if it had just been started. The pool is filled again in the background once that
//! executor reports (see [`WarmPool::want`]). A container that cannot be moved or assigned is
//! discarded and the executor starts cold in its place.
//!
//! A warm container's id is its container id from then on, so its cgroups need no renaming
//! (cgroup v2 cannot rename). Warm containers die with the launcher (their wait ends at
//! end-of-file); what they leave — cgroups and directories — the next agent start removes as
//! orphans.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::signal::Signal;

use crate::core::Agent;
use crate::launcher::{LaunchError, LaunchRequest, Launched};

/// One warm container. Dropped without being assigned, its process is killed and its
/// cgroups and directory removed.
pub(crate) struct Warm {
    pub container_id: String,
    pub directory: PathBuf,
    launched: Option<Launched>,
    cgroup: Option<crate::cgroups::Container>,
    /// Given to a task: dropping it leaves everything alone.
    assigned: bool,
}

impl Warm {
    /// Its process, now the task's executor: nothing is cleaned up when it is dropped.
    pub(crate) fn assigned(mut self) -> Option<Launched> {
        self.assigned = true;
        self.launched.take()
    }

    /// Its pid, for the assignment.
    pub(crate) fn pid(&self) -> Option<i32> {
        self.launched.as_ref().map(|launched| launched.pid)
    }

    fn alive(&mut self) -> bool {
        use tokio::sync::oneshot::error::TryRecvError;
        self.launched
            .as_mut()
            .is_some_and(|launched| matches!(launched.exit.try_recv(), Err(TryRecvError::Empty)))
    }
}

impl Warm {
    /// Kills it and removes its cgroups and directory, now: for when its executor starts
    /// cold instead, in the same cgroups. Blocks (run it off the async workers).
    pub(crate) fn discard(mut self) {
        if let Some(clean) = self.cleanup() {
            clean();
        }
    }

    /// What is left to do for a container no task got: its process killed (if it still
    /// runs: its pid may be another's once it has ended) and a blocking clean-up to run.
    fn cleanup(&mut self) -> Option<impl FnOnce() + Send + 'static> {
        if self.assigned {
            return None;
        }
        self.assigned = true;
        if self.alive()
            && let Some(launched) = &self.launched
        {
            crate::spawn::signal_group(launched.pid, Signal::SIGKILL);
        }
        self.launched = None;
        let cgroup = self.cgroup.take();
        let directory = self.directory.clone();
        Some(move || {
            if let Some(cgroup) = cgroup {
                cgroup.empty_and_remove();
            }
            let _ = std::fs::remove_dir_all(directory);
        })
    }
}

impl Drop for Warm {
    fn drop(&mut self) {
        let Some(clean) = self.cleanup() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(clean)),
            Err(_) => clean(),
        }
    }
}

/// Where warm containers wait: on the file system of the sandboxes, so a rename moves one.
fn dir(work_dir: &Path) -> PathBuf {
    work_dir.join("warm")
}

/// Removes what warm containers of an earlier agent left (their processes ended with its
/// launcher; their cgroups are orphans, removed as such).
pub(crate) fn remove_leftovers(work_dir: &Path) {
    let _ = std::fs::remove_dir_all(dir(work_dir));
}

/// The agent's warm containers.
pub(crate) struct WarmPool {
    size: usize,
    dir: PathBuf,
    ready: std::sync::Mutex<VecDeque<Warm>>,
    wanted: tokio::sync::Notify,
}

impl WarmPool {
    /// A pool of `size` containers (none are made until [`WarmPool::start`]).
    pub(crate) fn new(work_dir: &Path, size: usize) -> WarmPool {
        WarmPool {
            size,
            dir: dir(work_dir),
            ready: std::sync::Mutex::new(VecDeque::new()),
            wanted: tokio::sync::Notify::new(),
        }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, VecDeque<Warm>> {
        self.ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A live warm container, if one is ready.
    pub(crate) fn take(&self) -> Option<Warm> {
        let mut ready = self.ready();
        while let Some(mut warm) = ready.pop_front() {
            if warm.alive() {
                return Some(warm);
            }
        }
        None
    }

    /// How many are ready.
    pub(crate) fn len(&self) -> usize {
        self.ready().len()
    }

    /// Kills and removes every warm container (the agent is stopping).
    pub(crate) fn drain(&self) {
        let drained: Vec<Warm> = self.ready().drain(..).collect();
        drop(drained);
    }

    /// Asks for the pool to be filled up again. The agent asks when an executor sends an
    /// update (its command has started), after a failed launch and when an executor ends —
    /// not when it takes a container: making the next one would compete with that
    /// executor's start for the machine's cores.
    pub(crate) fn want(&self) {
        self.wanted.notify_one();
    }

    /// Starts the pool's filler: it makes containers until `size` are ready each time it is
    /// wanted, until the agent shuts down.
    pub(crate) fn start(agent: &Arc<Agent>) {
        let Some(pool) = agent.warm.as_ref() else {
            return;
        };
        pool.want();
        let agent = agent.clone();
        tokio::spawn(async move {
            let Some(pool) = agent.warm.as_ref() else {
                return;
            };
            let stopping = || agent.shutdown.is_cancelled() || agent.is_stopping();
            loop {
                tokio::select! {
                    () = agent.shutdown.cancelled() => return,
                    () = pool.wanted.notified() => {}
                }
                while pool.len() < pool.size && !stopping() {
                    match make(&agent, pool).await {
                        // Made while the agent began to stop: it goes (dropped) at once.
                        Ok(_) if stopping() => break,
                        Ok(warm) => {
                            pool.ready().push_back(warm);
                            if stopping() {
                                // The agent drained the pool meanwhile: this one goes too.
                                pool.drain();
                            }
                        }
                        // Without the launcher, executors start cold (said when it went).
                        Err(WarmError::Launcher(LaunchError::Gone)) => break,
                        Err(error) => {
                            // Not retried in a loop: tasks start cold meanwhile, and the next
                            // wish tries again.
                            tracing::warn!(%error, "cannot make a warm container");
                            break;
                        }
                    }
                }
            }
        });
    }
}

/// Makes one warm container: its directory, and the launcher's prepared executor in its
/// cgroups and namespaces.
async fn make(agent: &Agent, pool: &WarmPool) -> Result<Warm, WarmError> {
    let launcher = agent.launcher().ok_or(LaunchError::Gone)?;
    let container_id = uuid::Uuid::new_v4().to_string();
    let directory = pool.dir.join(&container_id);
    crate::modes::make_dirs(&pool.dir, crate::modes::TRAVERSE_ONLY)
        .and_then(|()| std::fs::create_dir_all(&directory))
        .map_err(|source| WarmError::Dir {
            path: directory.display().to_string(),
            source,
        })?;
    let cgroup = agent
        .cgroups
        .as_ref()
        .ok()
        .map(|cgroups| cgroups.container(&container_id));
    // Dropped on any failure below: its directory and cgroups go with it.
    let mut warm = Warm {
        container_id,
        directory: directory.clone(),
        launched: None,
        cgroup: cgroup.clone(),
        assigned: false,
    };
    // The container makes its cgroups itself, at the least priority; they have no limits
    // until the task's are set.
    let cgroup_procs = cgroup.map(|c| c.procs_files()).unwrap_or_default();
    let request = LaunchRequest {
        builtin: true,
        command: agent.builtin_command(),
        environment: BTreeMap::new(),
        directory,
        cgroup_procs,
        namespaces: agent.namespaces.is_ok(),
        user: None,
        keep_visible: Some(agent.config.work_dir.clone()),
        socket_dir: agent.config.socket_dir(),
    };
    match launcher.warm(request).await {
        Ok(launched) => {
            warm.launched = Some(launched);
            Ok(warm)
        }
        Err(error) => {
            // Its own words, before its directory goes with it.
            let said = std::fs::read(warm.directory.join("stderr")).unwrap_or_default();
            let said = String::from_utf8_lossy(&said[..said.len().min(1024)])
                .trim()
                .to_owned();
            Err(if said.is_empty() {
                WarmError::Launcher(error)
            } else {
                WarmError::Said { error, said }
            })
        }
    }
}

/// Why a warm container could not be made.
#[derive(Debug, thiserror::Error)]
enum WarmError {
    #[error(transparent)]
    Launcher(#[from] LaunchError),
    #[error("cannot create {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    /// The launcher's error and what the container wrote to its stderr.
    #[error("{error}: {said}")]
    Said { error: LaunchError, said: String },
}

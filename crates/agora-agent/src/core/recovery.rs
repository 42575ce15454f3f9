//! Starting over a work directory: the checkpoint read back, live executors re-adopted,
//! dead ones' tasks failed, leftovers of a previous run removed, isolation detected.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use agora_types::{ExecutorId, FrameworkId, TaskId};

use super::types::{AgentState, Executor, ExecutorState, FrameworkEntry, TaskRecord, UpdateQueue};
use super::{Agent, epoch_secs};
use crate::AgentError;
use crate::checkpoint;
use crate::config::AgentConfig;
use crate::persist::Written;
use crate::spawn;
use crate::unavailable::Unavailable;

impl Agent {
    /// Loads the checkpoint: live executors are re-adopted (they will re-subscribe), dead ones
    /// have their unfinished tasks failed.
    pub fn recover(
        mut config: AgentConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Agent>, AgentError> {
        config.work_dir = prepare_work_dir(&config.work_dir)?;
        let saved = checkpoint::load(&config.work_dir)?;
        let written = Written::loaded(&saved);
        let launcher = start_launcher(&config);
        let client = master_client(&config)?;
        let (state, dead) = restore_state(saved, &config);
        let cgroups = isolator(config.isolation.cgroups, "cgroups", || {
            detect_cgroups(&config)
        })?;
        let namespaces = isolator(config.isolation.namespaces, "namespaces", detect_namespaces)?;
        let switch_user = detect_switch_user(&config);
        let fetcher = crate::fetcher::Fetcher::new(
            config.work_dir.join("fetch"),
            config.fetcher_cache_bytes,
            config.fetcher_max_bytes,
        );
        crate::warm::remove_leftovers(&config.work_dir);
        let warm = (launcher.is_some() && config.warm_containers > 0)
            .then(|| crate::warm::WarmPool::new(&config.work_dir, config.warm_containers));
        let agent = Arc::new(Agent {
            config,
            client,
            start_time: epoch_secs(),
            shutdown,
            updates_wanted: Notify::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(state),
            written: Mutex::new(written),
            launcher,
            extensions: std::sync::RwLock::new(Vec::new()),
            cgroups,
            namespaces,
            switch_user,
            fetcher,
            warm,
            stream_overflows: Arc::default(),
        });
        agent.end_dead_executors(dead);
        let live = agent.live_executor_pids();
        agent.remove_orphan_cgroups();
        agent.remove_orphan_docker_containers();
        agent.readopt(live);
        agent.save();
        // After the orphans were listed: the warm containers are not theirs.
        crate::warm::WarmPool::start(&agent);
        Ok(agent)
    }

    /// Executors that died while the agent was down: their unfinished tasks fail.
    fn end_dead_executors(&self, dead: Vec<(FrameworkId, ExecutorId)>) {
        for (framework_id, executor_id) in dead {
            tracing::warn!(framework = %framework_id, executor = %executor_id, "executor died while the agent was down");
            self.executor_terminated(
                &framework_id,
                &executor_id,
                None,
                "Executor terminated while the agent was down",
            );
        }
    }

    /// The executors with a process, to re-adopt.
    fn live_executor_pids(&self) -> Vec<(FrameworkId, ExecutorId, i32)> {
        self.with_state(|state| {
            state
                .frameworks
                .iter()
                .flat_map(|(fid, f)| {
                    f.executors
                        .iter()
                        .filter_map(|(eid, e)| e.pid.map(|pid| (fid.clone(), eid.clone(), pid)))
                })
                .collect()
        })
    }

    /// Records where this agent's cgroups are and removes the containers no executor has.
    fn remove_orphan_cgroups(&self) {
        let Ok(cgroups) = &self.cgroups else {
            return;
        };
        // Where this agent's cgroups are, for operators and for whoever cleans up after an
        // agent that was killed: one directory a line.
        let listed: Vec<String> = cgroups
            .parent_dirs()
            .iter()
            .map(|dir| dir.display().to_string())
            .collect();
        let meta = crate::checkpoint::meta(&self.config.work_dir);
        let file = meta.join("cgroups");
        if let Err(error) = std::fs::create_dir_all(&meta)
            .and_then(|()| std::fs::write(&file, listed.join("\n") + "\n"))
        {
            tracing::warn!(file = %file.display(), %error, "cannot record the agent's cgroups");
        }
        let live: std::collections::BTreeSet<String> = self.with_state(|state| {
            state
                .frameworks
                .values()
                .flat_map(|f| f.executors.values().map(|e| e.container_id.clone()))
                .collect()
        });
        for orphan in cgroups.orphans(&live) {
            tokio::task::spawn_blocking(move || orphan.empty_and_remove());
        }
    }

    /// Docker containers whose executor is gone (it ended while the agent was down, or was
    /// killed) are removed; those of live executors are theirs to keep.
    fn remove_orphan_docker_containers(&self) {
        let Some(agent_id) = self.agent_id() else {
            return;
        };
        let live: Vec<String> = self.with_state(|state| {
            state
                .frameworks
                .values()
                .flat_map(|f| f.executors.values())
                .filter(|e| e.state != ExecutorState::Terminated)
                .map(|e| e.container_id.clone())
                .collect()
        });
        tokio::spawn(async move { crate::docker::remove_orphans(&agent_id, &live).await });
    }

    /// Watches recovered executors' processes and waits (bounded) for them to re-subscribe.
    fn readopt(self: &Arc<Self>, live: Vec<(FrameworkId, ExecutorId, i32)>) {
        for (framework_id, executor_id, pid) in live {
            tracing::info!(framework = %framework_id, executor = %executor_id, pid, "re-adopting executor");
            self.clone()
                .watch_recovered(framework_id.clone(), executor_id.clone(), pid);
            self.clone().expect_subscription(
                framework_id,
                executor_id,
                self.config.recovery_timeout,
            );
        }
    }

    /// A recovered executor is not our child: poll its pid.
    pub(super) fn watch_recovered(
        self: Arc<Self>,
        framework_id: FrameworkId,
        executor_id: ExecutorId,
        pid: i32,
    ) {
        tokio::spawn(async move {
            let start = spawn::start_time(pid);
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if !spawn::is_same_process(pid, start) {
                    break;
                }
            }
            self.executor_terminated(&framework_id, &executor_id, None, "Executor terminated");
        });
    }
}

/// One isolator at start: off, used where `detect` finds it works, or required to work.
pub(super) fn isolator<T>(
    wanted: crate::Isolator,
    name: &'static str,
    detect: impl FnOnce() -> Result<T, Unavailable>,
) -> Result<Result<T, Unavailable>, AgentError> {
    match wanted {
        crate::Isolator::Off => Ok(Err(Unavailable::TurnedOff(name))),
        crate::Isolator::Auto => Ok(detect()),
        crate::Isolator::Required => detect().map(Ok).map_err(|reason| AgentError::Isolation {
            isolator: name,
            reason,
        }),
    }
}

/// The cgroup hierarchies, said once at start: which isolation tasks get, or why none.
pub(super) fn detect_cgroups(config: &AgentConfig) -> Result<crate::cgroups::Cgroups, Unavailable> {
    let cgroups = crate::cgroups::Cgroups::detect(
        &config.work_dir,
        config.cgroups_cfs_quota,
        config.cgroups_favor_dynmods,
    );
    match &cgroups {
        Ok(cgroups) => tracing::info!(isolation = %cgroups.describe(), "tasks run in cgroups"),
        Err(reason) => {
            tracing::warn!(%reason, "tasks run without cgroup isolation (no cpu or memory limits)")
        }
    }
    cgroups
}

/// The work directory, made absolute and with its private `meta/`. Sandboxes are named to
/// executors, which run elsewhere (a warm container's working directory is its old sandbox):
/// a relative work dir would name other places.
fn prepare_work_dir(work_dir: &Path) -> Result<PathBuf, AgentError> {
    std::path::absolute(work_dir)
        .and_then(|dir| {
            crate::modes::make_dir_with(&dir, crate::modes::TRAVERSE_ONLY)?;
            crate::modes::make_dir_with(&checkpoint::meta(&dir), crate::modes::PRIVATE_DIR)?;
            Ok(dir)
        })
        .map_err(|source| AgentError::WorkDir {
            path: work_dir.display().to_string(),
            source,
        })
}

/// The launcher, when wanted and it starts; without it the agent starts executors itself.
fn start_launcher(config: &AgentConfig) -> Option<crate::launcher::Launcher> {
    if !config.launcher {
        return None;
    }
    crate::launcher::Launcher::spawn(&config.executor_binary)
        .inspect_err(|error| {
            tracing::warn!(%error, "cannot start the executor launcher; the agent starts executors itself");
        })
        .ok()
}

/// The HTTP client the agent reaches its master with.
fn master_client(config: &AgentConfig) -> Result<reqwest::Client, AgentError> {
    master_client_builder(config)
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))
}

/// How an agent reaches its master: its TLS settings and credential.
pub(crate) fn master_client_builder(config: &AgentConfig) -> reqwest::ClientBuilder {
    agora_client::Access::default()
        .with_tls(config.master_tls.clone())
        .client_builder()
        .default_headers(config.master_headers.clone())
        .connect_timeout(Duration::from_secs(5))
}

/// The state the checkpoint describes, every executor `Registering` until it re-subscribes,
/// and the executors whose process is gone.
fn restore_state(
    saved: checkpoint::Checkpoint,
    config: &AgentConfig,
) -> (AgentState, Vec<(FrameworkId, ExecutorId)>) {
    let mut state = AgentState {
        agent_id: saved.agent_id.clone(),
        agent_token: saved.agent_token.clone(),
        master_connected: false,
        master_error: None,
        frameworks: BTreeMap::new(),
        completed_frameworks: VecDeque::new(),
        updates: BTreeMap::new(),
    };
    for update in saved.updates.into_iter().filter(|u| !u.pending.is_empty()) {
        let key = (
            FrameworkId::new(update.framework_id),
            TaskId::new(update.task_id),
        );
        state.updates.insert(
            key,
            UpdateQueue {
                pending: update.pending.into(),
                next_attempt: Instant::now(),
                interval: config.status_update_retry,
            },
        );
    }
    let mut dead: Vec<(FrameworkId, ExecutorId)> = Vec::new();
    for framework in saved.frameworks {
        let Some(framework_id) = framework.info.framework_id() else {
            continue;
        };
        let mut entry = FrameworkEntry {
            info: framework.info.clone(),
            executors: BTreeMap::new(),
            completed_executors: VecDeque::new(),
        };
        for saved_executor in framework.executors {
            let executor_id = ExecutorId::new(&saved_executor.info.executor_id.value);
            let alive = saved_executor
                .pid
                .is_some_and(|pid| spawn::is_same_process(pid, saved_executor.pid_start_time));
            let tasks = saved_executor
                .tasks
                .into_iter()
                .map(|task| {
                    let id = TaskId::new(&task.info.task_id.value);
                    (
                        id,
                        Box::new(TaskRecord {
                            info: task.info,
                            state: task.state,
                            status: task.status,
                            launched: task.launched,
                        }),
                    )
                })
                .collect();
            let executor = Executor {
                info: saved_executor.info,
                kind: saved_executor.kind,
                container_id: saved_executor.container_id,
                directory: saved_executor.directory,
                pid: saved_executor.pid,
                pid_start_time: saved_executor.pid_start_time,
                state: ExecutorState::Registering,
                stream: None,
                queued: Vec::new(),
                tasks,
                completed_tasks: VecDeque::new(),
                killing: false,
                recovered: true,
                pending_kills: Vec::new(),
                token: saved_executor.token,
            };
            if !alive {
                dead.push((framework_id.clone(), executor_id.clone()));
            }
            entry.executors.insert(executor_id, executor);
        }
        state.frameworks.insert(framework_id, entry);
    }
    (state, dead)
}

/// Whether tasks can have their own pid and mount namespaces, said once at start.
fn detect_namespaces() -> Result<(), Unavailable> {
    let available = crate::namespaces::available();
    match &available {
        Ok(()) => tracing::info!("tasks run in their own pid and mount namespaces"),
        Err(reason) => {
            tracing::warn!(%reason, "tasks run without namespaces (they share the agent's /tmp and see its processes)")
        }
    }
    available
}

/// Whether tasks run as their users, or why not.
fn detect_switch_user(config: &AgentConfig) -> Result<(), Unavailable> {
    if !config.switch_user {
        Err(Unavailable::SwitchUserOff)
    } else if !nix::unistd::Uid::effective().is_root() {
        tracing::warn!("tasks run as the agent's user: switching users needs root");
        Err(Unavailable::NotRoot)
    } else {
        Ok(())
    }
}

//! Making an executor's sandbox and starting its process: in a warm container, through the
//! launcher, or directly.

use std::sync::Arc;
use std::time::Duration;

use super::Agent;
use super::launch::{LaunchFailure, PreparedExecutor};
use crate::launcher::LaunchError;
use crate::spawn;

/// A started executor: its pid and its end, as the raw wait status Mesos reports in FAILURE
/// events (exit 3 is 768), or `None` when it cannot be known.
pub(super) struct Spawned {
    pub(super) pid: i32,
    pub(super) exit: std::pin::Pin<Box<dyn std::future::Future<Output = Option<i32>> + Send>>,
}

/// Creates the sandbox (with its `latest` link) and starts the executor in it: through the
/// launcher when there is one, else directly.
pub(super) async fn spawn_executor(
    agent: &Arc<Agent>,
    mut prepared: PreparedExecutor,
) -> Result<Spawned, LaunchFailure> {
    let launcher = agent.launcher.as_ref();
    let directory = &prepared.directory;
    // The user database is asked (off the async workers) while the sandbox is made.
    let name = prepared.user.clone();
    let user =
        tokio::spawn(async move { crate::namespaces::RunAs::switch_to(name.as_deref()).await });
    let mut warm = prepared.warm.take();
    if let Some(taken) = warm.take() {
        // The warm container's sandbox moves into the task's place; its open files, working
        // directory and `/tmp` move with it.
        let moved = directory
            .parent()
            .map_or(Ok(()), |runs| {
                crate::modes::make_dirs(runs, crate::modes::TRAVERSE_ONLY)
            })
            .and_then(|()| std::fs::rename(&taken.directory, directory));
        match moved {
            Ok(()) => warm = Some(taken),
            Err(error) => {
                tracing::warn!(%error, "cannot move a warm container's sandbox: the executor starts cold");
                discard(taken).await;
            }
        }
    }
    if warm.is_none() {
        directory
            .parent()
            .map_or(Ok(()), |runs| {
                crate::modes::make_dirs(runs, crate::modes::TRAVERSE_ONLY)
            })
            .and_then(|()| std::fs::create_dir_all(directory))
            .map_err(|e| format!("Failed to create sandbox {}: {e}", directory.display()))?;
    }
    if let Some(parent) = directory.parent() {
        let latest = parent.join("latest");
        let _ = std::fs::remove_file(&latest);
        let _ = std::os::unix::fs::symlink(directory, &latest);
    }
    let user = user
        .await
        .map_err(crate::namespaces::UnknownUser::from)
        .and_then(|user| user)
        .map_err(|unknown| LaunchFailure::container(unknown.to_string()))?;
    if let Some(user) = &user {
        // The sandbox and its output files are the user's before anything runs in it; a warm
        // container's `/tmp`, made before its user was known, first (never through a link).
        let tmp = warm.as_ref().map(|_| directory.join("tmp"));
        tmp.map_or(Ok(()), |tmp| match user.own_dir(&tmp, None) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            done => done,
        })
        .and_then(|()| spawn::sandbox_output(directory).map(|_| ()))
        .and_then(|()| user.own(directory))
        .map_err(|e| {
            format!(
                "Failed to prepare the sandbox for user '{}': {e}",
                user.name
            )
        })?;
    }
    if !prepared.uris.is_empty() {
        agent
            .fetcher
            .fetch_all(&prepared.uris, directory, user.as_ref())
            .await
            .map_err(|e| LaunchFailure {
                reason: crate::fetcher::FETCHER_FAILED,
                message: format!(
                    "Failed to fetch all URIs for container '{}': {e}",
                    prepared.container_id
                ),
            })?;
    }
    if let Some(warm) = warm {
        match assign_warm(agent, &prepared, warm, user.clone()).await {
            Ok(spawned) => return Ok(spawned),
            Err((warm, error)) => {
                // It ended while waiting, or the launcher went: the executor starts cold, in
                // the same (emptied, remade) cgroups and the sandbox already in place.
                tracing::warn!(%error, "cannot assign a warm container: the executor starts cold");
                if let Some(warm) = warm {
                    discard(warm).await;
                }
            }
        }
    }
    let mut cgroup_procs = Vec::new();
    if let Some((container, limits)) = &prepared.cgroup {
        cgroup_procs = container.procs_files();
        let (container, limits) = (container.clone(), *limits);
        // Making cgroups takes milliseconds in the kernel: not on an async worker.
        tokio::task::spawn_blocking(move || container.create(limits))
            .await
            .map_err(|e| format!("Failed to create the container's cgroup: {e}"))?
            .map_err(|e| format!("Failed to create the container's cgroup: {e}"))?;
    }
    if let Some(launcher) = launcher {
        let request = crate::launcher::LaunchRequest {
            builtin: prepared.builtin,
            command: prepared.command.clone(),
            environment: prepared.environment.clone(),
            directory: prepared.directory.clone(),
            cgroup_procs: cgroup_procs.clone(),
            namespaces: prepared.namespaces,
            user: user.clone(),
            keep_visible: None,
            socket_dir: agent.config.socket_dir(),
        };
        match launcher.launch(request).await {
            Ok(launched) => return Ok(spawned_by_launcher(launched)),
            Err(LaunchError::Refused(message)) => return Err(message.into()),
            Err(LaunchError::Gone) => {}
        }
    }
    // Without the launcher, executors get their cgroups and user but no namespaces.
    let mut command = spawn::command(spawn::Launch {
        command: &prepared.command,
        environment: prepared.environment,
        directory,
    })
    .map_err(|e| format!("Failed to launch executor: {e}"))?;
    crate::launcher::prepare_on_spawn(&mut command, &cgroup_procs, user.as_ref())
        .map_err(|e| format!("Failed to launch executor: {e}"))?;
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| format!("Failed to launch executor: {e}"))?;
    let pid = child
        .id()
        .ok_or_else(|| "Failed to launch executor: it ended at once".to_owned())?
        as i32;
    let exit = async move {
        use std::os::unix::process::ExitStatusExt;
        child.wait().await.ok().map(|status| status.into_raw())
    };
    Ok(Spawned {
        pid,
        exit: Box::pin(exit),
    })
}

/// Gives a warm container (its sandbox already in place) the executor's task: its cgroups get
/// the executor's limits, and the launcher tells it its environment, sandbox and user. On
/// failure the container comes back, for the executor to start cold.
pub(super) async fn assign_warm(
    agent: &Arc<Agent>,
    prepared: &PreparedExecutor,
    warm: crate::warm::Warm,
    user: Option<crate::namespaces::RunAs>,
) -> Result<Spawned, (Option<crate::warm::Warm>, String)> {
    if let Some((container, limits)) = &prepared.cgroup
        && let Err(error) = container.set_limits(*limits)
    {
        return Err((
            Some(warm),
            format!("cannot set the container's limits: {error}"),
        ));
    }
    let (Some(launcher), Some(pid)) = (agent.launcher.as_ref(), warm.pid()) else {
        return Err((Some(warm), LaunchError::Gone.to_string()));
    };
    let assigned = launcher
        .assign(crate::launcher::Assignment {
            pid,
            environment: prepared.environment.clone(),
            directory: prepared.directory.clone(),
            user,
        })
        .await;
    if let Err(error) = assigned {
        return Err((Some(warm), error.to_string()));
    }
    match warm.assigned() {
        Some(launched) => Ok(spawned_by_launcher(launched)),
        None => Err((None, "the warm container has no process".to_owned())),
    }
}

/// Kills a warm container no task will have and empties its cgroups, before the executor
/// starts cold in the same ones.
pub(super) async fn discard(warm: crate::warm::Warm) {
    let _ = tokio::task::spawn_blocking(move || warm.discard()).await;
}

/// An executor the launcher started, ending when the launcher says (or, if the launcher went
/// away first, when its process is gone).
pub(super) fn spawned_by_launcher(launched: crate::launcher::Launched) -> Spawned {
    let pid = launched.pid;
    let start = spawn::start_time(pid);
    let exit = async move {
        match launched.exit.await {
            Ok(status) => Some(status),
            // The launcher went away: no status to tell, only the end.
            Err(_) => {
                while spawn::is_same_process(pid, start) {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                None
            }
        }
    };
    Spawned {
        pid,
        exit: Box::pin(exit),
    }
}

//! What the agent and its launcher say to each other: one JSON object a line, requests
//! one way and replies (and children's ends) the other.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use agora_api::mesos::CommandInfo;

use crate::namespaces::RunAs;

/// Set in the launcher's environment: `agora executor` then serves as the launcher.
pub const LAUNCHER_ENV: &str = "AGORA_LAUNCHER";

/// What to start: the built-in executor (forked) or a command (spawned), in a sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LaunchRequest {
    pub builtin: bool,
    pub command: CommandInfo,
    pub environment: BTreeMap<String, String>,
    pub directory: PathBuf,
    /// `cgroup.procs` files the process joins before it runs anything (its container's).
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// In its own pid and mount namespaces, under a reaping init (see [`crate::namespaces`]).
    #[serde(default)]
    pub namespaces: bool,
    /// The user it runs as, when not the agent's.
    #[serde(default)]
    pub user: Option<RunAs>,
    /// What stays reachable at its own path when it lies under `/tmp` (which the container
    /// replaces): the sandbox, or for a warm container the agent's work dir, where its
    /// sandbox will be moved.
    #[serde(default)]
    pub keep_visible: Option<PathBuf>,
    /// The directory of the agent's executor socket, kept reachable likewise.
    #[serde(default)]
    pub socket_dir: Option<PathBuf>,
}

/// A warm container's task: who it becomes and where its sandbox went.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Assignment {
    /// The warm container's pid, as [`Launcher::warm`] answered it.
    pub pid: i32,
    pub environment: BTreeMap<String, String>,
    pub directory: PathBuf,
    pub user: Option<RunAs>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Request {
    pub id: u64,
    pub action: Action,
}

#[derive(Serialize, Deserialize)]
pub(super) enum Action {
    Launch(LaunchRequest),
    /// A built-in executor prepared in its container up to the point where it needs its task
    /// (its cgroups joined, namespaces and mounts made), then waiting for [`Action::Assign`].
    Warm(LaunchRequest),
    Assign(Assignment),
}

#[derive(Serialize, Deserialize)]
pub(super) enum Reply {
    Started { id: u64, pid: i32 },
    Assigned { id: u64 },
    Failed { id: u64, error: String },
    Exited { pid: i32, status: i32 },
}

//! The agora agent: registers its machine's resources with the master, runs executors and
//! their tasks in sandboxes, delivers every status update reliably (checkpointed, retried until
//! acknowledged), serves the Mesos executor API and sandbox files, and recovers its running
//! executors when it restarts over the same work directory.
//!
//! The public surface is [`AgentConfig`], [`start`], [`AgentHandle`],
//! [`run_command_executor`], the built-in executor that `agora executor` runs, and
//! [`serve_launcher`], the helper that starts executors without loading the binary again for
//! each (`agora executor` with [`LAUNCHER_ENV`] set).

mod beneath;
mod cgroups;
mod checkpoint;
mod command_executor;
mod config;
mod core;
mod docker;
mod executor_auth;
mod fetcher;
mod fnv;
mod hollow;
mod http;
mod launcher;
mod master_link;
mod modes;
// Namespaces and clone, between fork and exec in the launcher; each has a SAFETY note.
#[allow(unsafe_code)]
mod namespaces;
mod persist;
mod proc_tree;
mod secrets;
mod spawn;
mod status_queue;
mod unavailable;
mod warm;

use std::sync::Arc;

pub use command_executor::{ExecutorError, run as run_command_executor};
pub use config::{AgentConfig, ExecutorTls, Isolation, Isolator, detect_resources};
pub use hollow::{
    HollowAgents, HollowConfig, HollowSummary, HollowTasks, RUNTIME_ENV as HOLLOW_RUNTIME_ENV,
    start_hollow,
};
pub use launcher::{LAUNCHER_ENV, serve_launcher};
pub use unavailable::Unavailable;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot use work dir {path}: {source}")]
    WorkDir {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint {path} is corrupt: {reason}")]
    Checkpoint { path: String, reason: String },
    #[error("http client: {0}")]
    Client(String),
    #[error("hollow agents: {0}")]
    Hollow(String),
    #[error("{isolator} isolation is required (--isolation) but cannot work: {reason}")]
    Isolation {
        isolator: &'static str,
        reason: unavailable::Unavailable,
    },
}

/// A section another component adds to the agent (discovery's proxy, for one): a key of
/// `/slave(1)/state` and metrics next to the agent's own.
#[derive(Clone)]
pub struct Extension {
    pub key: String,
    pub state: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
    pub metrics: Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>,
}

/// A running agent: its HTTP routes and a way to stop its executors.
#[derive(Clone)]
pub struct AgentHandle {
    pub router: axum::Router,
    /// The executor API alone, for the Unix socket of [`AgentConfig::executor_socket`].
    pub executor_router: axum::Router,
    agent: Arc<core::Agent>,
}

impl AgentHandle {
    /// Stops every executor (SHUTDOWN, then SIGKILL after the grace period) and waits for them.
    /// Used by `agora up` on Ctrl-C; a standalone agent leaves its tasks running for recovery.
    pub async fn shutdown_executors(&self, grace: std::time::Duration) {
        self.agent.shutdown_all(grace).await;
    }

    /// Adds a section to the agent's state and metrics.
    pub fn add_extension(&self, extension: Extension) {
        self.agent
            .extensions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(extension);
    }

    /// Per-container usage as Prometheus text (`agora_container_*` families), for a `/metrics`
    /// served by someone else (the master's, in `agora up`).
    pub fn container_metrics(&self) -> String {
        http::state::container_metrics_text(&self.agent)
    }

    /// Which isolation tasks get, as `slave/isolation_{cgroups,namespaces,switch_user}` (1 or 0), for a
    /// `/metrics` served by someone else.
    pub fn isolation_metrics(&self) -> Vec<(String, f64)> {
        http::state::isolation_metrics(&self.agent)
    }

    /// The agent id once registered.
    pub fn agent_id(&self) -> Option<String> {
        self.agent.agent_id()
    }
}

/// Recovers the agent's checkpointed state and starts its loops (master link, status update
/// delivery, executor supervision).
pub fn start(
    config: AgentConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<AgentHandle, AgentError> {
    let agent = core::Agent::recover(config, shutdown)?;
    master_link::spawn(agent.clone());
    let router = http::router(agent.clone());
    let executor_router = http::executor_router(agent.clone());
    Ok(AgentHandle {
        router,
        executor_router,
        agent,
    })
}

//! The agora master: admits agents, offers their resources to frameworks through the DRF
//! allocator, validates launches, routes tasks and status updates, detects failed agents and
//! frameworks, and serves the Mesos scheduler, operator and state HTTP APIs.
//!
//! The public surface is [`MasterConfig`] and [`start`], which returns the axum router to mount
//! (alone, or merged with an agent's for `agora up`) and a handle for shutdown.

mod config;
mod core;
mod http;
mod metrics;
mod registry;
mod stream;
mod views;

use std::sync::{Arc, Mutex};

pub use config::MasterConfig;

use crate::core::Master;

pub use crate::core::{MasterError, master_info};

/// A running master: its HTTP routes and the background loops (allocation, failure detection,
/// heartbeats) that stop when the handle's token is cancelled.
pub struct MasterHandle {
    pub router: axum::Router,
    shared: Shared,
}

pub(crate) type Shared = Arc<Mutex<Master>>;

/// More metrics for the master's `/metrics` and `/metrics/snapshot`, as `(name, value)` pairs
/// under Mesos-style names (`services/apps` is served as `agora_services_apps`); names ending
/// in `_total` are counters (unlike the master's own, where Mesos uses `cpus_total` for a
/// gauge).
pub type MetricsSource = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

/// Prometheus text another component adds to the master's `/metrics` as it is (for
/// families with labels, which the Mesos-style snapshot cannot hold).
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

impl MasterHandle {
    /// Adds Prometheus text to the master's `/metrics`.
    pub fn add_metrics_text(&self, source: MetricsText) {
        core::lock(&self.shared).extra_metrics_text.push(source);
    }

    /// Adds a component's metrics to the master's.
    pub fn add_metrics(&self, source: MetricsSource) {
        core::lock(&self.shared).extra_metrics.push(source);
    }

    /// Whether the master has at least this many active agents (used by `agora up` and tests).
    pub fn active_agents(&self) -> usize {
        core::lock(&self.shared).active_agent_count()
    }
}

/// Builds the master from its configuration over the registry its registrar writes (reading
/// it once) and starts its loops. A registrar that fails is the caller's to act on: the
/// master's state is no longer durable (or, in ZooKeeper, no longer its own).
pub fn start(
    config: MasterConfig,
    registrar: agora_store::Registrar,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<MasterHandle, MasterError> {
    let require_agent_certificate = config.require_agent_certificate;
    let master = Master::recover(config, registrar)?;
    let shared: Shared = Arc::new(Mutex::new(master));
    core::spawn_loops(shared.clone(), shutdown);
    let router = http::router(shared.clone(), require_agent_certificate);
    Ok(MasterHandle { router, shared })
}

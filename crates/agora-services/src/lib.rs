//! The services scheduler: long-running apps behind Marathon's `/v2` API. It is a framework
//! like any other — it reaches the master only through the scheduler SDK — and keeps its apps,
//! groups, versions, deployments, instances and event subscriptions in the store.
//!
//! It covers apps (create, read, partial and multi-app update, delete, restart, versions and
//! rollback), groups with dependencies, deployments (multi-step, cancellable, rolling restarts
//! by `upgradeStrategy`), healing with launch backoff and unreachable strategies, health and
//! readiness checks, placement constraints, service ports, `/v2/tasks` (JSON and the HAProxy
//! bridge's text form), `/v2/queue`, events (SSE and callbacks), `/v2/info`, `/v2/leader`,
//! `/ping` and metrics.

mod callbacks;
mod core;
mod deploy;
mod framework;
mod groups;
mod health;
mod http;
mod readiness;
mod views;

use std::sync::{Arc, Mutex};

use agora_store::Registrar;

pub use crate::core::ServicesError;

#[derive(Clone)]
pub struct ServicesConfig {
    /// The master's `host:port`.
    pub master: String,
    /// The `host:port` this API is served on (for `/v2/info` and `/v2/leader`).
    pub advertised: String,
    /// Where the services state is written (apps, groups, versions, deployments, instances):
    /// the embedded store's or ZooKeeper's registrar.
    pub registrar: Registrar,
    /// The user tasks run as when their app names none: the framework's user (Marathon's
    /// `--mesos_user`).
    pub user: String,
    /// Who the framework is to the master (Marathon's `--mesos_authentication_principal`).
    pub access: agora_client::Access,
    /// The principal it registers with (`FrameworkInfo.principal`).
    pub principal: Option<String>,
    /// Who may see and change which apps (`view_apps`, `manage_apps` in `--acls`).
    pub acls: Arc<agora_http::auth::acl::Acls>,
    /// What Docker apps may ask of their hosts (`--docker-allow`): refused with a 422.
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where apps' secrets are (`--secrets-dir`): an app naming a secret is refused without.
    pub secrets: Option<Arc<agora_secrets::SecretsDir>>,
}

/// The running services scheduler.
pub struct ServicesHandle {
    /// The `/v2` routes (and `/ping`).
    pub router: axum::Router,
    shared: Arc<Shared>,
}

impl ServicesHandle {
    /// Gauges and counters as `(name, value)` under `services/...`; counters end in `_total`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        self.shared.lock().metrics()
    }
}

/// Starts the framework and returns its handle.
pub fn start(
    config: ServicesConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<ServicesHandle, ServicesError> {
    let mut services = core::Services::load(config.registrar.clone())?;
    services.admission = core::Admission {
        docker: config.docker.clone(),
        secrets: config.secrets.clone(),
    };
    let shared = Arc::new(Shared {
        services: Mutex::new(services),
        wake: tokio::sync::Notify::new(),
        config: config.clone(),
    });
    tokio::spawn(callbacks::run(shared.clone(), shutdown.clone()));
    tokio::spawn(readiness::run(shared.clone(), shutdown.clone()));
    tokio::spawn(framework::run(shared.clone(), shutdown));
    Ok(ServicesHandle {
        router: http::router(shared.clone()),
        shared,
    })
}

pub(crate) struct Shared {
    pub services: Mutex<core::Services>,
    /// Something changed that may need launches or kills.
    pub wake: tokio::sync::Notify,
    pub config: ServicesConfig,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, core::Services> {
        self.services.lock().unwrap_or_else(|p| p.into_inner())
    }
}

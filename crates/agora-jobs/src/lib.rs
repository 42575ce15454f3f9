//! The jobs scheduler: Chronos-style recurring and dependent batch jobs. Like the services
//! scheduler it is a framework of the master — it reaches it only through the scheduler SDK —
//! and keeps its jobs, their state and history in the store.
//!
//! Built so far (issue 4 is in progress): the jobs and the rules that change them
//! ([`core::Jobs`]), the framework loop (schedules applied on time, runs launched on offers,
//! followed to their end, retried, dependent jobs started), and Chronos' REST API under
//! `/scheduler` and `/v1/scheduler`, and Metronome's `/v1/jobs` with cron schedules.

mod answer;
mod authorize;
pub mod core;
mod durable;
mod framework;
mod http;
mod metronome;

use std::sync::{Arc, Mutex};

use agora_store::Registrar;

pub use crate::core::{Jobs, JobsError};

#[derive(Clone)]
pub struct JobsConfig {
    /// The master's `host:port`.
    pub master: String,
    /// The `host:port` this API is served on (for `/scheduler/leader`).
    pub advertised: String,
    /// Where the jobs state is written (jobs, schedules, runs in flight, history): the
    /// embedded store's or ZooKeeper's registrar.
    pub registrar: Registrar,
    /// Time before a failed run is tried again (Chronos' `--failure_retry`: 60 s).
    pub failure_retry: std::time::Duration,
    /// The user runs run as when their job names none: the framework's user (Chronos'
    /// `--user`).
    pub user: String,
    /// Who the framework is to the master (Chronos' `--mesos_authentication_principal`).
    pub access: agora_client::Access,
    /// The principal it registers with (`FrameworkInfo.principal`).
    pub principal: Option<String>,
    /// Who may see and change which jobs (`view_jobs`, `manage_jobs` in `--acls`).
    pub acls: Arc<agora_http::auth::acl::Acls>,
    /// What Docker jobs may ask of their hosts (`--docker-allow`).
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where jobs' secrets are (`--secrets-dir`): a job naming a secret is refused without.
    pub secrets: Option<Arc<agora_secrets::SecretsDir>>,
}

/// The running jobs scheduler.
pub struct JobsHandle {
    /// The `/scheduler`, `/v1/scheduler` (Chronos) and `/v1/jobs` (Metronome) routes.
    pub router: axum::Router,
    shared: Arc<Shared>,
}

impl JobsHandle {
    /// Gauges and counters as `(name, value)` under `jobs/...`; counters end in `_total`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        self.shared.lock().metrics()
    }
}

/// Loads the jobs and starts the framework.
pub fn start(
    config: JobsConfig,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<JobsHandle, JobsError> {
    let mut jobs = Jobs::load(config.registrar.clone(), jiff::Timestamp::now())?;
    jobs.failure_retry = jiff::SignedDuration::try_from(config.failure_retry)
        .unwrap_or(jiff::SignedDuration::from_secs(60));
    jobs.docker = config.docker.clone();
    jobs.secrets = config.secrets.clone();
    let shared = Arc::new(Shared {
        jobs: Mutex::new(jobs),
        kills: Mutex::new(Vec::new()),
        wake: tokio::sync::Notify::new(),
        config,
    });
    tokio::spawn(framework::run(shared.clone(), shutdown));
    Ok(JobsHandle {
        router: http::router(shared.clone())
            .merge(metronome::router(shared.clone()))
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                durable::committed,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                authorize::authorize,
            )),
        shared,
    })
}

pub(crate) struct Shared {
    pub jobs: Mutex<Jobs>,
    /// Tasks the API asked to kill, for the framework loop to send.
    pub kills: Mutex<Vec<String>>,
    /// Something changed: look at the schedules and the queue again.
    pub wake: tokio::sync::Notify,
    pub config: JobsConfig,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn kills(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.kills.lock().unwrap_or_else(|p| p.into_inner())
    }
}

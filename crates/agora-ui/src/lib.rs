//! agora's web UI, served by the master at `/`: server-rendered pages (maud) over the cluster's
//! public APIs — the master's state, the services (Marathon) and jobs (Chronos) APIs, the
//! agents' sandboxes — read through `agora-client` like any other client. The dashboard stays
//! live over Server-Sent Events; a few lines of embedded script do the rest. No external
//! assets: everything is in the binary.

mod agents;
mod apps;
mod assets;
mod chart;
mod dashboard;
mod events;
mod format;
mod frameworks;
mod history;
mod jobs;
mod layout;
mod tasks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use agora_client::{JobsClient, MasterClient, ServicesClient};

/// Where the UI finds the APIs it shows: the master's own address (loopback in `agora up`).
#[derive(Clone, Debug)]
pub struct UiConfig {
    pub master: String,
    /// How often the allocation history takes a sample.
    pub sample_every: Duration,
}

impl UiConfig {
    pub fn new(master: String) -> UiConfig {
        UiConfig {
            master,
            sample_every: Duration::from_secs(5),
        }
    }
}

/// What every page handler reaches.
pub(crate) struct Ui {
    pub master: MasterClient,
    pub services: ServicesClient,
    pub jobs: JobsClient,
    pub history: Mutex<history::History>,
    pub events: Mutex<events::RecentEvents>,
    /// The dashboard's live part as last rendered, for every `/ui/live` viewer.
    pub live: tokio::sync::watch::Sender<Arc<String>>,
    /// Where each tailed task's files are, so a tail's poll is one read on its agent.
    pub tails: Mutex<tasks::TailTargets>,
}

pub(crate) type Shared = Arc<Ui>;

/// Starts the UI's background work (allocation sampling, following the event stream) and
/// returns its routes.
pub fn start(config: UiConfig, shutdown: CancellationToken) -> Router {
    let ui = Arc::new(Ui {
        master: MasterClient::new(&config.master),
        services: ServicesClient::new(&config.master),
        jobs: JobsClient::new(&config.master),
        history: Mutex::new(history::History::new(720)),
        events: Mutex::new(events::RecentEvents::new(40)),
        live: tokio::sync::watch::Sender::new(Arc::new(String::new())),
        tails: Mutex::new(tasks::TailTargets::default()),
    });
    tokio::spawn(dashboard::render_loop(ui.clone(), shutdown.clone()));
    tokio::spawn(history::sample(
        ui.clone(),
        config.sample_every,
        shutdown.clone(),
    ));
    tokio::spawn(events::follow(ui.clone(), shutdown));
    router(ui)
}

fn router(ui: Shared) -> Router {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/ui", get(dashboard::page))
        .route("/ui/live", get(dashboard::live_events))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/agents", get(agents::list))
        .route("/ui/agents/{id}", get(agents::show))
        .route("/ui/frameworks", get(frameworks::list))
        .route("/ui/frameworks/{id}", get(frameworks::show))
        .route("/ui/apps", get(apps::list).post(apps::create))
        .route("/ui/apps/{*id}", get(apps::show).post(apps::act))
        .route("/ui/deployments/{id}", post(apps::deployment))
        .route("/ui/jobs", get(jobs::list))
        .route("/ui/jobs/{name}", get(jobs::show))
        .route("/ui/jobs/{name}/run", post(jobs::run_now))
        .route("/ui/tasks", get(tasks::list))
        .route("/ui/tasks/{id}", get(tasks::show))
        .route("/ui/tasks/{id}/browse", get(tasks::browse))
        .route("/ui/tasks/{id}/read", get(tasks::read))
        .with_state(ui)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

//! agora's web UI, served by the master at `/`: server-rendered pages (maud) over the cluster's
//! public APIs — the master's state, the services (Marathon) and jobs (Chronos) APIs, the
//! agents' sandboxes — read through `agora-client` like any other client. The dashboard stays
//! live over Server-Sent Events; a few lines of embedded script do the rest. No external
//! assets: everything is in the binary.

mod agents;
mod apps;
mod assets;
mod chart;
mod cluster;
mod dashboard;
mod events;
mod format;
mod frameworks;
mod history;
mod jobs;
mod layout;
mod session;
mod tasks;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use agora_client::{Access, AgentClient, JobsClient, MasterClient, ServicesClient};
use agora_http::auth::Caller;
use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::request::Parts;

/// Where the UI finds the APIs it shows: the master's own address (loopback in `agora up`).
#[derive(Clone, Debug)]
pub struct UiConfig {
    pub master: String,
    /// How often the allocation history takes a sample.
    pub sample_every: Duration,
    /// Who the UI's own background work (the dashboard, the allocation history, recent
    /// events) is to the APIs; pages read them as whoever signed in.
    pub access: Access,
    /// The session cookie is sent over https only (the UI is served over TLS).
    pub secure_cookies: bool,
    /// What the UI trusts of agents when it reads their sandboxes for a viewer (none: plain
    /// HTTP).
    pub agent_tls: Option<agora_client::Tls>,
    /// The cluster's ACLs: who may see the dashboard that is rendered once for everyone.
    pub acls: Arc<agora_http::auth::acl::Acls>,
}

impl UiConfig {
    pub fn new(master: String) -> UiConfig {
        UiConfig {
            master,
            sample_every: Duration::from_secs(5),
            access: Access::default(),
            secure_cookies: false,
            agent_tls: None,
            acls: Arc::default(),
        }
    }
}

/// What every page handler reaches. `master` and `services` are the UI's own
/// identity, for its background work; a page reads through [`Api`], as its viewer.
pub(crate) struct Ui {
    pub master: MasterClient,
    pub services: ServicesClient,
    /// The same clients without an identity, which pages lend theirs (`Api`).
    anonymous: Api,
    /// Whether the session cookie is for https only.
    pub secure_cookies: bool,
    /// Who may see the shared dashboard.
    acls: Arc<agora_http::auth::acl::Acls>,
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
    // Pages read as their viewer, over the same TLS as the UI's own work.
    let anonymous = Access::default().with_tls(config.access.tls.clone());
    let ui = Arc::new(Ui {
        master: MasterClient::with_access(&config.master, &config.access),
        services: ServicesClient::with_access(&config.master, &config.access),
        anonymous: Api {
            master: MasterClient::with_access(&config.master, &anonymous),
            services: ServicesClient::with_access(&config.master, &anonymous),
            jobs: JobsClient::with_access(&config.master, &anonymous),
            // Where is the caller's business: `at` names the agent.
            agents: AgentClient::with_access(
                "127.0.0.1",
                &Access::default().with_tls(config.agent_tls.clone()),
            ),
            authorization: None,
            sees_all: false,
        },
        secure_cookies: config.secure_cookies,
        acls: config.acls.clone(),
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
        .route("/ui/login", get(session::form).post(session::sign_in))
        .route("/ui/logout", post(session::sign_out))
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

/// The cluster's APIs as the viewer of a page reaches them: acting as whoever signed in (their
/// session token, or the credentials their request carried), or as nobody.
#[derive(Clone)]
pub(crate) struct Api {
    pub master: MasterClient,
    pub services: ServicesClient,
    pub jobs: JobsClient,
    /// Agents, reached with their TLS (one client for all: `at` each agent).
    agents: AgentClient,
    authorization: Option<HeaderValue>,
    /// The viewer may see everything the shared dashboard shows (every framework, task and
    /// app, and the metrics).
    pub sees_all: bool,
}

impl Ui {
    /// Whether `principal` may see all the shared dashboard shows: rules for `ANY` object of
    /// each view, the metrics and the whole app tree.
    fn sees_all(&self, principal: Option<&str>) -> bool {
        use agora_http::auth::acl::Action;
        [
            Action::ViewFrameworks,
            Action::ViewTasks,
            Action::ViewExecutors,
        ]
        .into_iter()
        .all(|action| self.acls.permits(action, principal, None))
            && self
                .acls
                .permits(Action::GetEndpoints, principal, Some("/metrics/snapshot"))
            && self.acls.permits(Action::ViewApps, principal, Some("/"))
    }

    /// The master as nobody (to sign in).
    pub fn anonymous_master(&self) -> &MasterClient {
        &self.anonymous.master
    }
}

impl Api {
    /// A task's agent, reached as the same viewer.
    pub fn agent(&self, address: &str) -> AgentClient {
        self.agents
            .at(address)
            .acting_as(self.authorization.clone())
    }
}

impl FromRequestParts<Shared> for Api {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Api, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>();
        let authorization = caller.and_then(|caller| caller.forward.clone());
        let principal = caller.and_then(|caller| caller.principal.as_deref());
        let anonymous = &ui.anonymous;
        Ok(Api {
            master: anonymous.master.acting_as(authorization.clone()),
            services: anonymous.services.acting_as(authorization.clone()),
            jobs: anonymous.jobs.acting_as(authorization.clone()),
            agents: anonymous.agents.clone(),
            authorization,
            sees_all: ui.sees_all(principal),
        })
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

//! A master in a ZooKeeper group, as Mesos' masters are: it joins the group with its
//! MasterInfo, answers as a standby (307 to the leader, 503 while there is none) until it
//! leads, then opens the state beside the group — every write fenced by its membership — and
//! serves as the master. A master that loses its session stops at once, as Mesos' does, and
//! its supervisor starts it again as a standby.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use agora_store::{Registrar, Store};
use agora_zk::{Contender, Detector, Leadership, StoreOptions, ZkError, ZkStore, ZkUrl};

use crate::cli::HaArgs;
use crate::state::Stores;

/// How long to wait before trying an unreachable ensemble again.
const RETRY_UNREACHABLE: Duration = Duration::from_secs(2);

/// A router whose routes can be replaced while it serves: a standby's answers, then the
/// master's.
pub fn switchable(initial: Router) -> (watch::Sender<Router>, Router) {
    let (routes, current) = watch::channel(initial);
    let service = tower::service_fn(move |request: Request| {
        let router = current.borrow().clone();
        async move { tower::ServiceExt::oneshot(router, request).await }
    });
    (routes, Router::new().fallback_service(service))
}

/// This master, elected.
pub struct Elected {
    pub stores: Stores,
    pub contender: Contender,
}

/// Joins the group at `args.zk` with `info`, answers as a standby through `routes` until this
/// master leads, and opens the state.
pub async fn elect(
    args: &HaArgs,
    zk: &str,
    info: &agora_api::mesos::MasterInfo,
    scheme: &'static str,
    forwarder: &Forwarder,
    routes: &watch::Sender<Router>,
) -> anyhow::Result<Elected> {
    let url = ZkUrl::parse(zk)?;
    let info_json = serde_json::to_value(info).context("cannot encode this master's info")?;
    let contender = loop {
        match Contender::join(&url, args.zk_session_timeout, &info_json).await {
            Ok(contender) => break contender,
            Err(error @ ZkError::Connect { .. }) => {
                tracing::warn!(%error, "ZooKeeper is unreachable; trying again");
                to_stderr!(
                    "agora master: {error}; trying again every {}s",
                    RETRY_UNREACHABLE.as_secs()
                );
                tokio::time::sleep(RETRY_UNREACHABLE).await;
            }
            Err(error) => return Err(error.into()),
        }
    };
    // Opened while still a standby, so that a state root that is not this cluster's is
    // refused at start rather than at takeover.
    let options = StoreOptions::of_group(
        &url,
        args.zk_state.clone(),
        Some(contender.member_path()),
        args.zk_session_timeout,
    );
    let store = ZkStore::open(&url, options).await?;
    let mut leadership = contender.leadership();
    loop {
        let now = leadership.borrow_and_update().clone();
        match now {
            Leadership::Leading => break,
            Leadership::Following { leader } => {
                let leader = leader_url(&leader, scheme);
                tracing::info!(leader = ?leader, "standing by");
                let forwarder = Some(forwarder.clone());
                routes.send_modify(|current| *current = standby(leader, forwarder));
            }
            Leadership::Lost => anyhow::bail!("this master's ZooKeeper session ended"),
        }
        leadership
            .changed()
            .await
            .context("the ZooKeeper group watch ended")?;
    }
    tracing::info!(group = %url, member = contender.member(), "elected: this master leads");
    // No longer anyone's standby: until the master serves, callers are told to come back.
    routes.send_modify(|current| *current = recovering());
    // Read on the store's own session what the predecessor wrote on its: synced first.
    let store = Arc::new(store);
    let syncing = store.clone();
    tokio::task::spawn_blocking(move || syncing.sync())
        .await
        .context("the state store stopped")?
        .context("cannot bring the state up to date")?;
    let store: Arc<dyn Store> = store;
    let registrar = Registrar::spawn(store).context("cannot start the registrar")?;
    Ok(Elected {
        stores: Stores::shared(registrar),
        contender,
    })
}

/// Stops the process once this master no longer leads: it must not act on state that is
/// another master's now.
pub fn exit_when_deposed(contender: &Contender) {
    let mut leadership = contender.leadership();
    tokio::spawn(async move {
        let lost = leadership
            .wait_for(|now| *now != Leadership::Leading)
            .await
            .is_ok();
        if !lost {
            // The membership was dropped: this master is stopping on its own.
            return;
        }
        tracing::error!("this master no longer leads; stopping");
        to_stderr!(
            "agora master: this master no longer leads (its ZooKeeper session ended); stopping \
             so that its supervisor starts it again as a standby"
        );
        std::process::exit(1);
    });
}

/// What keeps a node's view of the leading master current: a ZooKeeper detector, or the
/// asking of a list of masters.
pub enum LeaderSource {
    ZooKeeper { _detector: Detector },
    Masters(tokio::task::JoinHandle<()>),
}

impl Drop for LeaderSource {
    fn drop(&mut self) {
        if let LeaderSource::Masters(task) = self {
            task.abort();
        }
    }
}

fn is_zk(master: &str) -> bool {
    master.starts_with("zk://") || master.starts_with("zoo://")
}

/// The leading master, followed, when `master` names several: a ZooKeeper URL (`zk://`,
/// `zoo://`), as Mesos agents take `--master=zk://…` (an unreachable ensemble is retried with a
/// message), or a list `h1:5050,h2:5050`, whose masters are asked where the leader is. `None`
/// for one master's address.
pub async fn follow_leader(
    master: &str,
    access: &agora_client::Access,
) -> anyhow::Result<Option<(LeaderSource, watch::Receiver<Option<String>>)>> {
    if master.contains(',') && !is_zk(master) {
        let masters: Vec<String> = master
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect();
        let client = access
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(2))
            .build()
            .context("cannot build the client that asks for the leader")?;
        let (publish, leader) = watch::channel(None);
        let access = access.clone();
        let task = tokio::spawn(ask_for_leader(client, access, masters, publish));
        return Ok(Some((LeaderSource::Masters(task), leader)));
    }
    if !is_zk(master) {
        return Ok(None);
    }
    let url = ZkUrl::parse(master)?;
    loop {
        match Detector::follow(&url, agora_zk::DEFAULT_SESSION_TIMEOUT).await {
            Ok(detector) => {
                let leader = detector.leader_address();
                return Ok(Some((
                    LeaderSource::ZooKeeper {
                        _detector: detector,
                    },
                    leader,
                )));
            }
            Err(error) => {
                tracing::warn!(%error, "ZooKeeper is unreachable; trying again");
                to_stderr!(
                    "agora: {error}; trying again every {}s",
                    RETRY_UNREACHABLE.as_secs()
                );
                tokio::time::sleep(RETRY_UNREACHABLE).await;
            }
        }
    }
}

/// How often a node given a list of masters asks them where the leader is.
const ASK_EVERY: Duration = Duration::from_secs(1);

/// Asks the masters in turn for `/master/redirect` (each, leader or standby, points at the
/// leader) and publishes the leader's `host:port`; the last one known stands while none
/// answers.
async fn ask_for_leader(
    client: reqwest::Client,
    access: agora_client::Access,
    masters: Vec<String>,
    publish: watch::Sender<Option<String>>,
) {
    loop {
        for master in &masters {
            let url = format!("{}/master/redirect", access.base_url(master));
            let Ok(answer) = client.get(&url).send().await else {
                continue;
            };
            let location = answer
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(host_port_of);
            if let Some(leader) = location {
                publish.send_if_modified(|current| {
                    let changed = current.as_deref() != Some(leader.as_str());
                    *current = Some(leader);
                    changed
                });
                break;
            }
        }
        if publish.is_closed() {
            return;
        }
        tokio::time::sleep(ASK_EVERY).await;
    }
}

/// `host:port` of a redirect's `Location`: `//host:port/…`, `http(s)://host:port/…`.
fn host_port_of(location: &str) -> Option<String> {
    let rest = location
        .strip_prefix("https://")
        .or_else(|| location.strip_prefix("http://"))
        .or_else(|| location.strip_prefix("//"))?;
    let host = rest.split(['/', '?']).next()?;
    (!host.is_empty()).then(|| host.to_owned())
}

/// The leading master's `host:port` now, for a command that runs once: `master` itself unless
/// it names several (a ZooKeeper URL, a list), whose leader is waited for (bounded).
pub async fn leader_now(master: &str, access: &agora_client::Access) -> anyhow::Result<String> {
    let found = tokio::time::timeout(LEADER_WAIT, async {
        let Some((_source, mut leader)) = follow_leader(master, access).await? else {
            return Ok(master.to_owned());
        };
        let address = leader
            .wait_for(Option::is_some)
            .await
            .context("the leader's detection stopped")?
            .clone();
        Ok::<_, anyhow::Error>(address.unwrap_or_default())
    })
    .await;
    match found {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "no master leads among {master} (waited {}s): are the masters running?",
            LEADER_WAIT.as_secs()
        ),
    }
}

/// How long a command waits for a leader to be elected.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// `scheme://ip:port` of a MasterInfo, as `/master/redirect` points to it.
fn leader_url(info: &serde_json::Value, scheme: &str) -> Option<String> {
    agora_zk::address_of(info).map(|address| format!("{scheme}://{address}"))
}

/// Paths a standby proxies to the leader rather than redirecting: Marathon's, Chronos' and
/// Metronome's APIs and the web UI, as Marathon's and Chronos' standbys proxy theirs (their
/// clients do not all follow redirects; a browser must stay on the address it was given).
/// Everything else is Mesos', whose standbys redirect.
fn proxied(path: &str) -> bool {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    path == "/"
        || [
            "/v2",
            "/scheduler",
            "/v1/scheduler",
            "/v1/jobs",
            "/ui",
            "/acs",
        ]
        .iter()
        .any(|prefix| under(prefix))
}

/// Marks a request a standby forwards: one that comes back to a standby is a loop.
const PROXIED_BY: &str = "x-agora-proxied-by";

/// Bodies a standby forwards are held whole (the gate in front has bounded them already).
const MAX_FORWARDED_BODY: usize = 64 * 1024 * 1024;

/// How a standby reaches the leader.
#[derive(Clone)]
pub struct Forwarder {
    client: reqwest::Client,
    /// This standby's own address, named in the loop guard.
    me: String,
}

impl Forwarder {
    pub fn new(tls: Option<agora_client::Tls>, me: String) -> anyhow::Result<Forwarder> {
        let client = agora_client::Access::default()
            .with_tls(tls)
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("cannot build the standby's client")?;
        Ok(Forwarder { client, me })
    }

    async fn forward(&self, leader: &str, request: Request) -> Response {
        if let Some(via) = request.headers().get(PROXIED_BY) {
            let via = via.to_str().unwrap_or("?");
            return (
                StatusCode::BAD_GATEWAY,
                format!(
                    "A standby ({via}) forwarded this to {}, which is not the leader either: the \
                     masters disagree on who leads; try again",
                    self.me
                ),
            )
                .into_response();
        }
        let (parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let body = match axum::body::to_bytes(body, MAX_FORWARDED_BODY).await {
            Ok(body) => body,
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {error}"),
                )
                    .into_response();
            }
        };
        let mut headers = parts.headers;
        // The Host stays the caller's: the leader's same-origin rule compares a browser's
        // Origin with it, and the caller asked this address.
        strip_hop_by_hop(&mut headers);
        if let Ok(me) = HeaderValue::from_str(&self.me) {
            headers.insert(PROXIED_BY, me);
        }
        let sent = self
            .client
            .request(parts.method, format!("{leader}{path}"))
            .headers(headers)
            .body(body)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(error) => {
                return (
                    StatusCode::BAD_GATEWAY,
                    format!("cannot reach the leading master at {leader}: {error}"),
                )
                    .into_response();
            }
        };
        let status = answer.status();
        let mut headers = answer.headers().clone();
        strip_hop_by_hop(&mut headers);
        // Streams (the event buses, the UI's live page) flow as they come.
        let mut response = axum::body::Body::from_stream(answer.bytes_stream()).into_response();
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        if let Ok(value) = HeaderValue::from_str(leader) {
            response.headers_mut().insert("X-Marathon-Leader", value);
        }
        response
    }
}

/// What a master that was just elected answers while it loads the state: 503 with
/// `Retry-After`, so that nobody is sent to the leader it replaces.
fn recovering() -> Router {
    Router::new()
        .route("/health", axum::routing::get(|| async { StatusCode::OK }))
        .fallback(|| async {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                "This master was just elected and is recovering its state",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        })
}

/// Headers for one connection only (RFC 9110 7.6.1), and those `Connection` names.
fn strip_hop_by_hop(headers: &mut axum::http::HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for hop in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(hop);
    }
}

/// What a standby answers: `/health`; Marathon's, Chronos' and Metronome's APIs and the UI
/// proxied to the leader; a redirect to the leader for everything else (503 while there is
/// none, as Mesos' `/master/redirect` says it).
pub fn standby(leader: Option<String>, forwarder: Option<Forwarder>) -> Router {
    let leader = Arc::new(leader);
    Router::new()
        .route("/health", axum::routing::get(|| async { StatusCode::OK }))
        .fallback(move |request: Request| {
            let leader = leader.clone();
            let forwarder = forwarder.clone();
            async move {
                match (leader.as_deref(), forwarder) {
                    (Some(leader), Some(forwarder)) if proxied(request.uri().path()) => {
                        forwarder.forward(leader, request).await
                    }
                    (leader, _) => redirect(leader, &request),
                }
            }
        })
}

fn redirect(leader: Option<&str>, request: &Request) -> Response {
    // Mesos' v1 APIs check their body's type in their handlers (the gate leaves them be): a
    // standby holds a call to the same rule before it sends it on, as the leader would.
    if agora_http::MesosV1::of(request.uri().path()).is_some()
        && request.method() == axum::http::Method::POST
        && let Err(refused) = agora_http::mesos_content_type(request.headers())
    {
        return refused.into_response();
    }
    let Some(leader) = leader else {
        return (StatusCode::SERVICE_UNAVAILABLE, "No leader elected").into_response();
    };
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = if path == "/master/redirect" {
        leader.to_owned()
    } else {
        format!("{leader}{path}")
    };
    let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Ok(value) = HeaderValue::from_str(leader) {
        // Marathon's standbys name the leader so.
        response.headers_mut().insert("X-Marathon-Leader", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::{host_port_of, proxied, strip_hop_by_hop};

    #[test]
    fn hop_by_hop_headers_stay_on_their_connection() {
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("upgrade", "websocket"),
            ("host", "10.0.0.2:5050"),
            ("authorization", "Basic eDp5"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "host"]);
    }

    #[test]
    fn the_leader_is_read_from_a_redirect() {
        assert_eq!(
            host_port_of("//10.0.0.1:5050").as_deref(),
            Some("10.0.0.1:5050")
        );
        assert_eq!(
            host_port_of("http://10.0.0.1:5050/master/state").as_deref(),
            Some("10.0.0.1:5050")
        );
        assert_eq!(host_port_of("https://m1:5050").as_deref(), Some("m1:5050"));
        assert_eq!(host_port_of("/relative"), None);
        assert_eq!(host_port_of("//"), None);
    }

    #[test]
    fn marathon_chronos_metronome_and_the_ui_are_proxied_mesos_redirected() {
        for path in [
            "/",
            "/v2/apps",
            "/v2",
            "/scheduler/jobs",
            "/v1/scheduler/iso8601",
            "/v1/jobs",
            "/v1/jobs/a/runs",
            "/ui/apps",
            "/acs/api/v1/auth/login",
        ] {
            assert!(proxied(path), "{path}");
        }
        for path in [
            "/master/state",
            "/api/v1/scheduler",
            "/api/v1",
            "/state",
            "/v2x",
            "/metrics",
            "/master/redirect",
        ] {
            assert!(!proxied(path), "{path}");
        }
    }
}

//! Service discovery for every node: apps reachable on `<bind>:<servicePort>` through a TCP
//! proxy that follows the services API's event stream, with HTTP virtual hosts on a shared
//! port, Mesos-DNS names, and an HAProxy configuration rendered from the same routes.
//!
//! `start` runs the follower and whatever of the proxy and DNS the config asks for;
//! `haproxy::run_bridge` is the `agora lb haproxy` loop.

pub mod dns;
mod follow;

pub mod haproxy;
mod members;
mod model;
mod pool;
mod proxy;
mod resolve;
pub mod routes;
mod vhost;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use follow::View;

pub use routes::{Balance, Groups, Routes};

/// What a node's discovery serves.
#[derive(Clone, Debug)]
pub struct DiscoveryConfig {
    /// HOST:PORT of a master serving the services API (`/v2`) (or, with `leader`, what names
    /// the masters: a `zk://` URL).
    pub master: String,
    /// The leading master's HOST:PORT when masters fail over (`None` while there is none):
    /// discovery follows each new leader, routing on what it knew in between.
    pub leader: Option<watch::Receiver<Option<String>>>,
    /// Where service ports listen; `None` turns the proxy off.
    pub proxy_bind: Option<IpAddr>,
    /// Balance for ports without an `HAPROXY_{n}_BALANCE` label.
    pub balance: Balance,
    /// Threads serving proxied connections.
    pub proxy_threads: usize,
    /// The shared port for HTTP virtual hosts (on `proxy_bind`); `None` turns it off.
    pub http_port: Option<u16>,
    /// DNS, if served.
    pub dns: Option<DnsConfig>,
    /// This node's address, for `ns1.<domain>`.
    pub node_ip: IpAddr,
    /// Who this node is to the master's APIs (when they ask).
    pub access: agora_client::Access,
}

#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// UDP and TCP port, on the proxy's bind address (all interfaces if the proxy is off).
    pub port: u16,
    /// `mesos` unless configured.
    pub domain: String,
}

pub struct DiscoveryHandle {
    config: DiscoveryConfig,
    view: watch::Receiver<View>,
    proxy: Option<Arc<proxy::Proxy>>,
    http: Arc<HttpPort>,
    dns: Option<Arc<DnsState>>,
}

/// The DNS server's zone and whether it could listen.
struct DnsState {
    served: Arc<dns::Served>,
    address: std::net::SocketAddr,
    error: std::sync::Mutex<Option<String>>,
}

/// The shared HTTP port's listener state.
#[derive(Default)]
struct HttpPort {
    listening: std::sync::atomic::AtomicBool,
    error: std::sync::Mutex<Option<String>>,
}

/// Starts following the services API and serving; stops with `shutdown`.
pub fn start(config: DiscoveryConfig, shutdown: CancellationToken) -> DiscoveryHandle {
    let (publish, view) = watch::channel(View::default());
    tokio::spawn(follow::follow(
        follow::Masters {
            fixed: config.master.clone(),
            leader: config.leader.clone(),
        },
        config.access.clone(),
        publish,
        shutdown.clone(),
    ));
    let http = Arc::new(HttpPort::default());
    let workers = match config.proxy_bind {
        Some(_) => match proxy::start_workers(config.proxy_threads, &shutdown) {
            Ok(handle) => Some(handle),
            Err(error) => {
                // The caller's runtime serves the connections instead.
                tracing::warn!(%error, "cannot start the proxy's threads");
                None
            }
        },
        None => None,
    };
    let proxy = config.proxy_bind.map(|bind| {
        let proxy = proxy::Proxy::new(bind, config.balance, workers, shutdown.clone());
        tokio::spawn(drive_proxy(proxy.clone(), view.clone(), shutdown.clone()));
        if let Some(port) = config.http_port {
            tokio::spawn(serve_http(
                proxy.clone(),
                std::net::SocketAddr::new(bind, port),
                http.clone(),
                shutdown.clone(),
            ));
        }
        proxy
    });
    let dns = config.dns.as_ref().map(|dns_config| {
        let bind = config.proxy_bind.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let state = Arc::new(DnsState {
            served: Arc::new(dns::Served::default()),
            address: std::net::SocketAddr::new(bind, dns_config.port),
            error: std::sync::Mutex::new(None),
        });
        tokio::spawn(drive_dns(
            state.clone(),
            follow::Masters {
                fixed: config.master.clone(),
                leader: config.leader.clone(),
            },
            config.access.clone(),
            dns_config.domain.clone(),
            config.node_ip,
            view.clone(),
            shutdown.clone(),
        ));
        state
    });
    DiscoveryHandle {
        config,
        view,
        proxy,
        http,
        dns,
    }
}

/// How often the master's frameworks and agents are read for DNS.
const MEMBERS_EVERY: Duration = Duration::from_secs(10);

/// Builds the zone from each new view (and the master's members), and serves it; a port that
/// cannot be bound is reported and tried again.
async fn drive_dns(
    state: Arc<DnsState>,
    masters: follow::Masters,
    access: agora_client::Access,
    domain: String,
    node_ip: IpAddr,
    mut view: watch::Receiver<View>,
    shutdown: CancellationToken,
) {
    let (members_tx, mut members) = watch::channel(dns::Members::default());
    let poke = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(members::follow(
        masters,
        access,
        node_ip,
        members_tx,
        MEMBERS_EVERY,
        poke.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(listen_dns(state.clone(), shutdown.clone()));
    let mut hosts = proxy::HostCache::default();
    loop {
        let current = view.borrow_and_update().clone();
        let known = members.borrow_and_update().clone();
        let addresses = hosts
            .resolve_hosts(current.cluster.tasks.values().map(|t| t.host.as_str()))
            .await;
        state.served.replace(dns::Zone::build(
            &domain,
            &current.cluster,
            &known,
            &addresses,
        ));
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                poke.notify_one();
            }
            changed = members.changed() => if changed.is_err() { return },
        }
    }
}

async fn listen_dns(state: Arc<DnsState>, shutdown: CancellationToken) {
    loop {
        match dns::serve(state.address, state.served.clone(), shutdown.clone()).await {
            Ok(()) => {
                *state.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::info!(address = %state.address, "DNS listening (UDP and TCP)");
                return;
            }
            Err(error) => {
                let message = format!("cannot listen on {}: {error}", state.address);
                let mut slot = state.error.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_deref() != Some(message.as_str()) {
                    tracing::warn!(address = %state.address, %error, "DNS cannot listen");
                }
                *slot = Some(message);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY_BINDS) => {}
        }
    }
}

/// Binds the shared HTTP port (trying again every few seconds while it cannot) and serves
/// virtual hosts on it.
async fn serve_http(
    proxy: Arc<proxy::Proxy>,
    address: std::net::SocketAddr,
    state: Arc<HttpPort>,
    shutdown: CancellationToken,
) {
    let listener = loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => break listener,
            Err(error) => {
                let message = format!("cannot listen on {address}: {error}");
                let mut slot = state.error.lock().unwrap_or_else(|e| e.into_inner());
                if slot.as_deref() != Some(message.as_str()) {
                    tracing::warn!(%address, %error, "the HTTP virtual-host port cannot be bound");
                }
                *slot = Some(message);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(RETRY_BINDS) => {}
        }
    };
    *state.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    state.listening.store(true, Ordering::Relaxed);
    tracing::info!(%address, "HTTP virtual hosts listening");
    vhost::VhostServer::new(proxy)
        .serve(listener, shutdown)
        .await;
}

/// How often ports that could not be bound are tried again.
const RETRY_BINDS: Duration = Duration::from_secs(5);

async fn drive_proxy(
    proxy: Arc<proxy::Proxy>,
    mut view: watch::Receiver<View>,
    shutdown: CancellationToken,
) {
    let mut hosts = proxy::HostCache::default();
    let mut retry = tokio::time::interval(RETRY_BINDS);
    retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = view.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = view.borrow_and_update().clone();
                if !current.synced {
                    continue;
                }
                let routes = Routes::of(&current.cluster, &Groups::default());
                let addresses = hosts.resolve(&routes).await;
                proxy.update(&routes, &addresses).await;
            }
            _ = retry.tick() => proxy.retry_binds().await,
        }
    }
}

impl DiscoveryHandle {
    /// What discovery serves and what it could not, for the agent's state.
    pub fn state(&self) -> Value {
        let view = self.view.borrow().clone();
        let routes = Routes::of(&view.cluster, &Groups::default());
        let proxy = self.proxy.as_ref().map(|proxy| {
            let ports: serde_json::Map<String, Value> = routes
                .ports
                .iter()
                .map(|(port, route)| {
                    let backends: Vec<String> = proxy
                        .pool(*port)
                        .map(|p| p.backends.iter().map(|b| b.addr.to_string()).collect())
                        .unwrap_or_default();
                    (
                        port.to_string(),
                        json!({"app": route.app_id, "backends": backends, "http": route.http}),
                    )
                })
                .collect();
            let errors: serde_json::Map<String, Value> = proxy
                .bind_errors()
                .into_iter()
                .map(|(port, error)| (port.to_string(), json!(error)))
                .collect();
            let vhosts: serde_json::Map<String, Value> = routes
                .vhosts
                .iter()
                .map(|(host, port)| (host.clone(), json!(port)))
                .collect();
            json!({
                "bind": self.config.proxy_bind.map(|b| b.to_string()),
                "listening": proxy.listening(),
                "ports": ports,
                "bind_errors": errors,
                "http": {
                    "port": self.config.http_port,
                    "listening": self.http.listening.load(Ordering::Relaxed),
                    "error": *self.http.error.lock().unwrap_or_else(|e| e.into_inner()),
                    "vhosts": vhosts,
                },
            })
        });
        let dns = self.dns.as_ref().map(|dns| {
            json!({
                "address": dns.address.to_string(),
                "domain": self.config.dns.as_ref().map(|d| d.domain.clone()),
                "names": dns.served.zone().names.len(),
                "error": *dns.error.lock().unwrap_or_else(|e| e.into_inner()),
            })
        });
        json!({
            "master": self.config.master,
            "synced": view.synced,
            "dns": dns,
            "apps": view.cluster.apps.len(),
            "tasks": view.cluster.tasks.len(),
            "port_conflicts": routes.conflicts,
            "proxy": proxy,
        })
    }

    /// Gauges and counters under `discovery/`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let view = self.view.borrow().clone();
        let mut metrics = vec![
            (
                "discovery/synced".to_owned(),
                f64::from(u8::from(view.synced)),
            ),
            ("discovery/apps".to_owned(), view.cluster.apps.len() as f64),
        ];
        if let Some(dns) = &self.dns {
            metrics.extend([
                (
                    "discovery/dns_names".to_owned(),
                    dns.served.zone().names.len() as f64,
                ),
                (
                    "discovery/dns_queries_total".to_owned(),
                    dns.served.queries.load(Ordering::Relaxed) as f64,
                ),
                (
                    "discovery/dns_bind_errors".to_owned(),
                    f64::from(u8::from(
                        dns.error
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .is_some(),
                    )),
                ),
            ]);
        }
        if let Some(proxy) = &self.proxy {
            let counter = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
            metrics.extend([
                (
                    "discovery/proxy_ports_listening".to_owned(),
                    proxy.listening().len() as f64,
                ),
                (
                    "discovery/proxy_bind_errors".to_owned(),
                    (proxy.bind_errors().len()
                        + usize::from(
                            self.http
                                .error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .is_some(),
                        )) as f64,
                ),
                (
                    "discovery/proxy_connections_total".to_owned(),
                    counter(&proxy.counters.connections),
                ),
                (
                    "discovery/proxy_retries_total".to_owned(),
                    counter(&proxy.counters.retries),
                ),
                (
                    "discovery/proxy_failures_total".to_owned(),
                    counter(&proxy.counters.failures),
                ),
                (
                    "discovery/route_updates_total".to_owned(),
                    counter(&proxy.counters.route_updates),
                ),
            ]);
        }
        metrics
    }
}

//! Running the server roles: bind, build each role's config from the flags, serve until
//! Ctrl-C or SIGTERM.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use agora_agent::{AgentConfig, detect_resources};
use agora_api::mesos::Attribute;
use agora_http::auth::acl::SYSTEM_PRINCIPAL;
use agora_master::MasterConfig;
use agora_types::Resources;

use crate::cli::{
    AgentArgs, AgentOptions, DiscoveryArgs, MasterArgs, MasterOptions, NetworkArgs, UpArgs,
};
use crate::{executor_socket, security};

fn hostname(network: &NetworkArgs) -> String {
    network.hostname.clone().unwrap_or_else(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// Where `agora up` listens unless `--bind` says otherwise: it is a developer's cluster, and
/// anyone who reaches it can run commands.
const UP_BIND: &str = "127.0.0.1";
/// Connections waiting to be accepted, at most.
const LISTEN_BACKLOG: u32 = 16_384;

/// Where `agora master` and `agora agent` listen unless `--bind` says otherwise.
const SERVER_BIND: &str = "0.0.0.0";

fn bind_ip(network: &NetworkArgs, default: &str) -> anyhow::Result<IpAddr> {
    let text = network.bind.as_deref().unwrap_or(default);
    text.parse()
        .with_context(|| format!("invalid --bind address '{text}'"))
}

pub(crate) async fn bind(
    network: &NetworkArgs,
    default: &str,
    port: u16,
) -> anyhow::Result<(TcpListener, u16)> {
    let address = SocketAddr::new(bind_ip(network, default)?, port);
    let listen = || -> std::io::Result<TcpListener> {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        // Thousands of agents reconnect at once to a restarted master: connections beyond
        // the queue are dropped and retried by TCP a second or more later (tokio's own
        // default queue is 1,024; the kernel caps it at net.core.somaxconn).
        socket.listen(LISTEN_BACKLOG)
    };
    let listener = listen().with_context(|| format!("cannot listen on {address}"))?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

fn master_config(
    options: &MasterOptions,
    network: &NetworkArgs,
    port: u16,
    data_dir: std::path::PathBuf,
    security: &security::Security,
) -> MasterConfig {
    MasterConfig {
        hostname: hostname(network),
        advertise_ip: network.ip,
        port,
        data_dir: Some(data_dir),
        agent_ping_timeout: options.agent_ping_timeout,
        max_agent_ping_timeouts: options.max_agent_ping_timeouts,
        agent_reregister_timeout: options.agent_reregister_timeout,
        heartbeat_interval: options.heartbeat_interval,
        allocation_interval: options.allocation_interval,
        weights: options.weights.clone().unwrap_or_default(),
        subscriber_queue_bytes: usize::try_from(options.subscriber_queue_size)
            .unwrap_or(usize::MAX),
        authentication: security.auth.required,
        acls: security.acls.clone(),
        require_agent_certificate: security.require_agent_cert,
        tls: security.tls.serves(),
        ..MasterConfig::default()
    }
}

fn agent_config(
    options: &AgentOptions,
    network: &NetworkArgs,
    master: String,
    port: u16,
    work_dir: std::path::PathBuf,
) -> anyhow::Result<AgentConfig> {
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create work dir {}", work_dir.display()))?;
    let overrides = match &options.resources {
        Some(text) => Resources::parse(text).context("invalid --resources")?,
        None => Resources::new(),
    };
    let attributes = match &options.attributes {
        Some(text) => Attribute::parse_list(text).context("invalid --attributes")?,
        None => Vec::new(),
    };
    let mut config = AgentConfig::new(master, work_dir.clone());
    config.hostname = hostname(network);
    config.advertise_ip = network.ip.to_string();
    config.port = port;
    config.resources = detect_resources(&work_dir, &overrides);
    config.attributes = attributes;
    config.status_update_retry = options.status_update_retry;
    config.executor_registration_timeout = options.executor_registration_timeout;
    config.default_kill_grace = options.kill_grace;
    config.kill_drain = options.kill_drain;
    config.isolation = options.isolation;
    config.cgroups_cfs_quota = options.cgroups_enable_cfs;
    config.cgroups_favor_dynmods = options.cgroups_favor_dynmods;
    config.warm_containers = options.warm_containers;
    config.switch_user = options.switch_user;
    config.fetcher_cache_bytes = options.fetcher_cache_size;
    config.fetcher_max_bytes = options.fetcher_max_size;
    config.authenticate_http_executors = options.authenticate_http_executors;
    Ok(config)
}

/// An agent held to the node's security, reaching its master as `to_master` says.
fn secure_agent(
    config: &mut AgentConfig,
    security: &security::Security,
    to_master: &agora_client::Access,
) {
    config.authentication = security.auth.required;
    config.acls = security.acls.clone();
    config.docker = security.docker.clone();
    config.secrets = security.secrets.clone();
    config.master_headers = to_master.headers();
    config.master_tls = to_master.tls.clone();
    config.executor_tls = security.tls.executors.clone();
}

/// A master's data dir is its own (0700); `agora up`'s holds the agent's work dir too, which
/// tasks' users pass through to reach their sandboxes (0711: no one else may list it).
fn prepare_data_dir(dir: &std::path::Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)))
        .with_context(|| format!("cannot prepare data dir {}", dir.display()))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// The user tasks of the built-in frameworks run as when they name none: `--default-task-user`,
/// else the user agora runs as.
fn default_task_user(options: &MasterOptions) -> String {
    if let Some(user) = &options.default_task_user {
        return user.clone();
    }
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => user.name,
        _ => uid.to_string(),
    }
}

/// The services scheduler (Marathon `/v2`), a framework of the master at `master`, writing
/// through `registrar`.
fn services(
    registrar: agora_store::Registrar,
    master: String,
    advertised: String,
    user: String,
    access: agora_client::Access,
    security: &security::Security,
    shutdown: CancellationToken,
) -> anyhow::Result<std::sync::Arc<agora_services::ServicesHandle>> {
    let config = agora_services::ServicesConfig {
        master,
        advertised,
        registrar,
        user,
        access,
        principal: Some(SERVICES_PRINCIPAL.to_owned()),
        acls: security.acls.clone(),
        docker: security.docker.clone(),
        secrets: security.secrets.clone(),
    };
    agora_services::start(config, shutdown)
        .map(std::sync::Arc::new)
        .context("cannot start the services scheduler")
}

/// The jobs scheduler (Chronos `/scheduler`), a framework of the master at `master`, writing
/// through `registrar`.
fn jobs(
    registrar: agora_store::Registrar,
    master: String,
    advertised: String,
    options: &MasterOptions,
    access: agora_client::Access,
    security: &security::Security,
    shutdown: CancellationToken,
) -> anyhow::Result<std::sync::Arc<agora_jobs::JobsHandle>> {
    let config = agora_jobs::JobsConfig {
        master,
        advertised,
        registrar,
        failure_retry: options.job_failure_retry,
        user: default_task_user(options),
        access,
        principal: Some(JOBS_PRINCIPAL.to_owned()),
        acls: security.acls.clone(),
        docker: security.docker.clone(),
        secrets: security.secrets.clone(),
    };
    agora_jobs::start(config, shutdown)
        .map(std::sync::Arc::new)
        .context("cannot start the jobs scheduler")
}

/// The services (Marathon `/v2`) and jobs (Chronos, Metronome) schedulers, frameworks of the
/// master on `port` that run next to it: their metrics join the master's; returns their routes.
fn schedulers(
    master: &agora_master::MasterHandle,
    stores: &crate::state::Stores,
    port: u16,
    network: &NetworkArgs,
    options: &MasterOptions,
    security: &security::Security,
    shutdown: CancellationToken,
) -> anyhow::Result<axum::Router> {
    let auth = &security.auth;
    let local = format!("127.0.0.1:{port}");
    let advertised = format!("{}:{port}", network.ip);
    let services = services(
        stores.services.clone(),
        local.clone(),
        advertised.clone(),
        default_task_user(options),
        security::internal_access(auth, SERVICES_PRINCIPAL).with_tls(security.tls.local.clone()),
        security,
        shutdown.clone(),
    )?;
    let jobs = jobs(
        stores.jobs.clone(),
        local,
        advertised,
        options,
        security::internal_access(auth, JOBS_PRINCIPAL).with_tls(security.tls.local.clone()),
        security,
        shutdown,
    )?;
    master.add_metrics(metrics_of(&services));
    master.add_metrics(job_metrics_of(&jobs));
    Ok(services.router.clone().merge(jobs.router.clone()))
}

/// The jobs scheduler's metrics, served with the master's.
fn job_metrics_of(jobs: &std::sync::Arc<agora_jobs::JobsHandle>) -> agora_master::MetricsSource {
    let jobs = jobs.clone();
    std::sync::Arc::new(move || jobs.metrics())
}

/// The services scheduler's metrics, served with the master's.
fn metrics_of(
    services: &std::sync::Arc<agora_services::ServicesHandle>,
) -> agora_master::MetricsSource {
    let services = services.clone();
    std::sync::Arc::new(move || services.metrics())
}

/// The node's discovery (service proxy, DNS), following the services API at `master` (or at
/// the `leader` of masters in ZooKeeper); its state and metrics join the agent's.
#[allow(clippy::too_many_arguments)] // the node's parts, each once
fn discovery(
    args: &DiscoveryArgs,
    network: &NetworkArgs,
    listening: IpAddr,
    master: String,
    leader: Option<tokio::sync::watch::Receiver<Option<String>>>,
    access: agora_client::Access,
    agent: &agora_agent::AgentHandle,
    shutdown: CancellationToken,
) -> std::sync::Arc<agora_discovery::DiscoveryHandle> {
    let config = agora_discovery::DiscoveryConfig {
        master,
        leader,
        // Service ports listen where the node's API does unless told otherwise.
        proxy_bind: args.proxy_bind.map_or(Some(listening), |bind| bind.0),
        balance: args.proxy_balance,
        proxy_threads: usize::from(args.proxy_threads),
        http_port: (args.proxy_http_port != 0).then_some(args.proxy_http_port),
        dns: (args.dns_port != 0).then(|| agora_discovery::DnsConfig {
            port: args.dns_port,
            domain: args.dns_domain.clone(),
        }),
        node_ip: std::net::IpAddr::V4(network.ip),
        access,
    };
    let discovery = std::sync::Arc::new(agora_discovery::start(config, shutdown));
    let (state, metrics) = (discovery.clone(), discovery.clone());
    agent.add_extension(agora_agent::Extension {
        key: "discovery".into(),
        state: std::sync::Arc::new(move || state.state()),
        metrics: std::sync::Arc::new(move || metrics.metrics()),
    });
    discovery
}

/// The web UI at `/`, reading this process's own APIs over loopback (its pages as whoever
/// signed in, its background work as the process's own principal).
fn ui(port: u16, security: &security::Security, shutdown: CancellationToken) -> axum::Router {
    let tls = &security.tls;
    let mut config = agora_ui::UiConfig::new(format!("127.0.0.1:{port}"));
    config.access =
        security::internal_access(&security.auth, SYSTEM_PRINCIPAL).with_tls(tls.local.clone());
    config.secure_cookies = tls.serves();
    // Agents serve TLS when this node does (a cluster is secured as a whole): the CA's, else
    // (`agora up`, its own agent) the node's own certificate.
    config.agent_tls = tls.remote.clone().or_else(|| tls.local.clone());
    config.acls = security.acls.clone();
    agora_ui::start(config, shutdown)
}

/// The principals the built-in frameworks register and authenticate as (as Marathon's and
/// Chronos' `--mesos_authentication_principal` name them); the process's own other components
/// (the UI's background work, discovery in `agora up`) are `SYSTEM_PRINCIPAL`.
const SERVICES_PRINCIPAL: &str = "marathon";
const JOBS_PRINCIPAL: &str = "chronos";

/// How this server meets its clients: the gate every request passes
/// (`agora_http::protect`; the names browsers may use for it are its addresses, `localhost`,
/// its hostname and `--allowed-hosts`) and the listener's limits.
pub(crate) struct Serving {
    gate: agora_http::GateConfig,
    limits: agora_http::Limits,
    refused: std::sync::Arc<agora_http::Refused>,
    tls: Option<agora_http::ListenerTls>,
}

pub(crate) fn serving(network: &NetworkArgs, security: &security::Security) -> Serving {
    let mut names = network.allowed_hosts.clone();
    names.push(hostname(network));
    raise_descriptor_limit(network.max_connections);
    Serving {
        gate: agora_http::GateConfig {
            hosts: agora_http::HostNames::new(names),
            body_read_timeout: network.body_read_timeout,
            auth: security.auth.clone(),
            acls: security.acls.clone(),
        },
        limits: agora_http::Limits {
            max_connections: network.max_connections,
            header_read_timeout: network.header_read_timeout,
        },
        refused: std::sync::Arc::default(),
        tls: security.tls.listener(),
    }
}

/// Lets the process open enough descriptors for `--max-connections` and its tasks' files,
/// as far as the hard limit allows (the soft one is often 1024).
pub(crate) fn raise_descriptor_limit(connections: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let wanted = (connections as u64).saturating_add(4096).min(hard);
    if wanted > soft && setrlimit(Resource::RLIMIT_NOFILE, wanted, hard).is_err() {
        tracing::warn!(soft, wanted, "cannot raise the open file limit");
    }
}

/// What the listener turned away, as metrics next to the node's own.
fn http_metrics(refused: &std::sync::Arc<agora_http::Refused>) -> agora_master::MetricsSource {
    let refused = refused.clone();
    std::sync::Arc::new(move || {
        vec![(
            "http/connections_refused_total".to_owned(),
            refused
                .connections
                .load(std::sync::atomic::Ordering::Relaxed) as f64,
        )]
    })
}

/// The agent's executor socket served, when it has one.
fn serve_executors(
    socket: Option<tokio::net::UnixListener>,
    agent: &agora_agent::AgentHandle,
    serving: &Serving,
    shutdown: &CancellationToken,
) {
    if let Some(listener) = socket {
        executor_socket::serve(
            listener,
            agent.executor_router.clone(),
            serving.gate.clone(),
            serving.limits.clone(),
            serving.refused.clone(),
            shutdown.clone(),
        );
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    serving: Serving,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let router = agora_http::protect(router, serving.gate);
    agora_http::serve(
        listener,
        router,
        serving.limits,
        serving.refused,
        serving.tls,
        shutdown,
    )
    .await
    .context("server failed")
}

pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (listener, port) = bind(&args.network, UP_BIND, args.port).await?;
    prepare_data_dir(&args.data_dir, 0o711)?;
    let stores = crate::state::Stores::embedded(&args.data_dir)?;
    stores.exit_on_failure();
    let security = security::of(
        &args.auth,
        &args.tls,
        Some(&args.master_auth),
        Some(&args.data_dir),
    )?;
    let auth = security.auth.clone();
    let shutdown = CancellationToken::new();
    let master = agora_master::start(
        master_config(
            &args.master,
            &args.network,
            port,
            args.data_dir.clone(),
            &security,
        ),
        stores.registry.clone(),
        shutdown.clone(),
    )
    .context("cannot start the master")?;
    let work_dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| args.data_dir.join("agent"));
    let mut config = agent_config(
        &args.agent,
        &args.network,
        format!("127.0.0.1:{port}"),
        port,
        work_dir,
    )?;
    config.standalone = false;
    let executor_socket = executor_socket::bind(&args.agent, &mut config)?;
    // The agent in the same process reaches its master as the process itself.
    let to_master =
        security::internal_access(&auth, SYSTEM_PRINCIPAL).with_tls(security.tls.local.clone());
    secure_agent(&mut config, &security, &to_master);
    let agent = agora_agent::start(config, shutdown.clone()).context("cannot start the agent")?;
    // The schedulers stop first on shutdown, so they do not replace the tasks being stopped.
    let services_shutdown = shutdown.child_token();
    let schedulers = schedulers(
        &master,
        &stores,
        port,
        &args.network,
        &args.master,
        &security,
        services_shutdown.clone(),
    )?;
    let discovery = discovery(
        &args.discovery,
        &args.network,
        bind_ip(&args.network, UP_BIND)?,
        format!("127.0.0.1:{port}"),
        None,
        security::internal_access(&auth, SYSTEM_PRINCIPAL).with_tls(security.tls.local.clone()),
        &agent,
        shutdown.clone(),
    );
    let metrics = discovery.clone();
    master.add_metrics(std::sync::Arc::new(move || metrics.metrics()));
    let containers = agent.clone();
    master.add_metrics_text(std::sync::Arc::new(move || containers.container_metrics()));
    let isolation = agent.clone();
    master.add_metrics(std::sync::Arc::new(move || isolation.isolation_metrics()));
    let router = master
        .router
        .clone()
        .merge(agent.router.clone())
        .merge(schedulers)
        .merge(ui(port, &security, shutdown.clone()))
        .merge(agora_http::auth::login::routes(auth.clone()));
    let listening = format!("{}:{port}", bind_ip(&args.network, UP_BIND)?);
    security::warn_of_openings("agora up", &security, &listening);
    let serving = serving(&args.network, &security);
    master.add_metrics(http_metrics(&serving.refused));
    serve_executors(executor_socket, &agent, &serving, &shutdown);
    let server = tokio::spawn(serve(listener, router, serving, shutdown.clone()));
    println!(
        "agora up: master and agent listening on {scheme}://{ip}:{port} (ready in {} ms), \
         web UI at {scheme}://{ip}:{port}/",
        started.elapsed().as_millis(),
        ip = args.network.ip,
        scheme = security.tls.scheme(),
    );
    stop_signal().await;
    tracing::info!("stopping: shutting down tasks");
    services_shutdown.cancel();
    agent
        .shutdown_executors(std::time::Duration::from_secs(5))
        .await;
    stores.flush().await;
    shutdown.cancel();
    finish(server).await
}

pub async fn master(args: MasterArgs) -> anyhow::Result<()> {
    let (listener, port) = bind(&args.network, SERVER_BIND, args.port).await?;
    prepare_data_dir(&args.data_dir, 0o700)?;
    let security = security::of(
        &args.auth,
        &args.tls,
        Some(&args.master_auth),
        Some(&args.data_dir),
    )?;
    let auth = security.auth.clone();
    let shutdown = CancellationToken::new();
    let mut config = master_config(
        &args.master,
        &args.network,
        port,
        args.data_dir.clone(),
        &security,
    );
    let listening = format!("{}:{port}", bind_ip(&args.network, SERVER_BIND)?);
    security::warn_of_openings("agora master", &security, &listening);
    let serving = serving(&args.network, &security);
    let http_refusals = http_metrics(&serving.refused);
    // A standby serves (its redirects) before it leads; the master's routes replace them.
    let (routes, router) = crate::ha::switchable(crate::ha::standby(None, None));
    let server = tokio::spawn(serve(listener, router, serving, shutdown.clone()));
    let (stores, elected) = match &args.ha.zk {
        None => (crate::state::Stores::embedded(&args.data_dir)?, None),
        Some(zk) => {
            let id = uuid::Uuid::new_v4().to_string();
            config.master_id = Some(id.clone());
            let info = agora_master::master_info(&config, &id);
            println!(
                "agora master: listening on {scheme}://{ip}:{port}, standing by in {zk}",
                ip = args.network.ip,
                scheme = security.tls.scheme(),
            );
            let forwarder = crate::ha::Forwarder::new(
                security.tls.remote.clone(),
                format!("{}:{port}", args.network.ip),
            )?;
            let elected = tokio::select! {
                elected = crate::ha::elect(&args.ha, zk, &info, security.tls.scheme(), &forwarder, &routes) => elected?,
                () = stop_signal() => {
                    shutdown.cancel();
                    return finish(server).await;
                }
            };
            (elected.stores.clone(), Some(elected))
        }
    };
    stores.exit_on_failure();
    if let Some(elected) = &elected {
        crate::ha::exit_when_deposed(&elected.contender);
    }
    let master = agora_master::start(config, stores.registry.clone(), shutdown.clone())
        .context("cannot start the master")?;
    let services_shutdown = shutdown.child_token();
    let schedulers = schedulers(
        &master,
        &stores,
        port,
        &args.network,
        &args.master,
        &security,
        services_shutdown.clone(),
    )?;
    let full = master
        .router
        .clone()
        .merge(schedulers)
        .merge(ui(port, &security, shutdown.clone()))
        .merge(agora_http::auth::login::routes(auth.clone()));
    routes.send_modify(|current| *current = full);
    master.add_metrics(http_refusals);
    println!(
        "agora master: listening on {scheme}://{ip}:{port}, web UI at {scheme}://{ip}:{port}/",
        ip = args.network.ip,
        scheme = security.tls.scheme(),
    );
    stop_signal().await;
    services_shutdown.cancel();
    stores.flush().await;
    shutdown.cancel();
    finish(server).await
}

/// A standalone agent leaves its executors running when it stops: restarted over the same work
/// dir, it re-adopts them.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let (listener, port) = bind(&args.network, SERVER_BIND, args.port).await?;
    let (security, access) =
        security::agent_node(&args.auth, &args.tls, args.credential.as_deref())?;
    let auth = security.auth.clone();
    let shutdown = CancellationToken::new();
    // Masters in ZooKeeper, or a list of masters: the agent and discovery follow the leader.
    let followed = crate::ha::follow_leader(&args.master, &access).await?;
    let leader = followed.as_ref().map(|(_, leader)| leader.clone());
    let mut config = agent_config(
        &args.agent,
        &args.network,
        args.master.clone(),
        port,
        args.work_dir.clone(),
    )?;
    config.leader = leader.clone();
    secure_agent(&mut config, &security, &access);
    let executor_socket = executor_socket::bind(&args.agent, &mut config)?;
    let agent = agora_agent::start(config, shutdown.clone()).context("cannot start the agent")?;
    discovery(
        &args.discovery,
        &args.network,
        bind_ip(&args.network, SERVER_BIND)?,
        args.master.clone(),
        leader,
        access,
        &agent,
        shutdown.clone(),
    );
    security::warn_if_open(
        "agora agent",
        &auth.required,
        &format!("{}:{port}", bind_ip(&args.network, SERVER_BIND)?),
    );
    let serving = serving(&args.network, &security);
    let metrics = http_metrics(&serving.refused);
    let (refused, max_connections) = (serving.refused.clone(), serving.limits.max_connections);
    agent.add_extension(agora_agent::Extension {
        key: "http".into(),
        state: std::sync::Arc::new(move || {
            serde_json::json!({
                "max_connections": max_connections,
                "connections_refused": refused
                    .connections
                    .load(std::sync::atomic::Ordering::Relaxed),
            })
        }),
        metrics,
    });
    serve_executors(executor_socket, &agent, &serving, &shutdown);
    let server = tokio::spawn(serve(
        listener,
        agent.router.clone(),
        serving,
        shutdown.clone(),
    ));
    println!(
        "agora agent: listening on {}://{}:{port}, master {}",
        security.tls.scheme(),
        args.network.ip,
        args.master
    );
    tokio::select! {
        () = stop_signal() => {}
        () = shutdown.cancelled() => {
            // Marked gone: its tasks are gone too.
            tracing::error!("the master refused this agent; stopping its tasks and exiting");
            agent.shutdown_executors(std::time::Duration::from_secs(5)).await;
        }
    }
    shutdown.cancel();
    finish(server).await
}

/// Waits for in-flight requests, but not for the endless event streams of schedulers and
/// executors: those end when the process does.
pub(crate) async fn finish(
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), server).await {
        Ok(result) => result.context("server task failed")?,
        Err(_) => Ok(()),
    }
}

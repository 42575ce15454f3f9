//! `agora hollow-agents`: many agents in one process (see `agora_agent::start_hollow`), with
//! their summary on `/state` and `/metrics` for whoever measures them.

use std::sync::Arc;

use anyhow::Context;
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;

use agora_agent::{AgentConfig, HollowAgents, HollowConfig, HollowTasks};
use agora_types::Resources;

use crate::cli::HollowArgs;
use crate::{security, serve};

/// Where the hollow agents' own listener is unless `--bind` says: it serves only their
/// summary, for the person running them.
const HOLLOW_BIND: &str = "127.0.0.1";

pub async fn run(args: HollowArgs) -> anyhow::Result<()> {
    let resources = Resources::parse(&args.resources).context("invalid --resources")?;
    let (security, access) =
        security::agent_node(&args.auth, &args.tls, args.credential.as_deref())?;
    let (listener, port) = serve::bind(&args.network, HOLLOW_BIND, args.port).await?;
    // One subscription (a connection) per agent, and the pool beside them.
    serve::raise_descriptor_limit(
        args.count
            .saturating_mul(2)
            .max(args.network.max_connections),
    );
    let followed = crate::ha::follow_leader(&args.master, &access).await?;
    let mut agent = AgentConfig::new(args.master.clone(), std::env::temp_dir());
    agent.leader = followed.as_ref().map(|(_, leader)| leader.clone());
    agent.advertise_ip = args.network.ip.to_string();
    agent.port = port;
    agent.resources = resources;
    agent.status_update_retry = args.status_update_retry;
    agent.master_headers = access.headers();
    agent.master_tls = access.tls.clone();
    let config = HollowConfig {
        agent,
        count: args.count,
        hostname_prefix: args.hostname_prefix.clone(),
        attributes: args.attributes.clone(),
        tasks: HollowTasks {
            startup: args.task_startup,
            runtime: args.task_runtime,
            failure_rate: args.failure_rate,
        },
    };
    let shutdown = CancellationToken::new();
    let agents = Arc::new(
        agora_agent::start_hollow(config, shutdown.clone())
            .context("cannot start hollow agents")?,
    );
    let serving = serve::serving(&args.network, &security);
    security::warn_if_open(
        "agora hollow-agents",
        &security.auth.required,
        &format!("{}:{port}", args.network.ip),
    );
    let server = tokio::spawn(serve::serve(
        listener,
        router(agents),
        serving,
        shutdown.clone(),
    ));
    println!(
        "agora hollow-agents: listening on {}://{}:{port} (/state, /metrics), {} agents of {} for master {}",
        security.tls.scheme(),
        args.network.ip,
        args.count,
        args.resources,
        args.master,
    );
    serve::stop_signal().await;
    shutdown.cancel();
    drop(followed);
    serve::finish(server).await
}

fn router(agents: Arc<HollowAgents>) -> axum::Router {
    let state = agents.clone();
    let storm = agents.clone();
    axum::Router::new()
        .route(
            "/state",
            get(move || {
                let agents = state.clone();
                async move {
                    let summary = agents.summary();
                    axum::Json(serde_json::json!({
                        "summary": summary,
                        "agent_ids": agents.agent_ids(),
                    }))
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let agents = agents.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        agents.metrics(),
                    )
                }
            }),
        )
        .route("/health", get(|| async { "" }))
        .route(
            "/storm",
            post(move || {
                let agents = storm.clone();
                async move { axum::Json(serde_json::json!({"updates": agents.storm()})) }
            }),
        )
}

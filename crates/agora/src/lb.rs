//! `agora lb haproxy`: the HAProxy bridge, run until Ctrl-C or SIGTERM.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::cli::HaproxyArgs;

fn unless_none(text: &str) -> Option<&str> {
    (!text.eq_ignore_ascii_case("none") && !text.is_empty()).then_some(text)
}

pub async fn haproxy(args: HaproxyArgs) -> anyhow::Result<()> {
    let stats = unless_none(&args.stats)
        .map(|s| {
            s.parse()
                .context("--stats is not an address like 127.0.0.1:9090")
        })
        .transpose()?;
    let access = args.credentials.access()?;
    // Masters in ZooKeeper, or a list: the bridge follows their leader.
    let followed = crate::ha::follow_leader(&args.master, &access).await?;
    let config = agora_discovery::haproxy::BridgeConfig {
        leader: followed.as_ref().map(|(_, leader)| leader.clone()),
        access,
        master: args.master,
        config_path: args.config,
        reload_command: args.reload_cmd,
        haproxy_binary: args.haproxy_bin,
        groups: agora_discovery::Groups::parse(&args.group),
        render: agora_discovery::haproxy::RenderOptions {
            bind: args.bind,
            http_port: args.http_port,
            admin_socket: unless_none(&args.admin_socket).map(Into::into),
            stats,
            default_balance: args.balance,
        },
        min_reload_interval: args.min_reload_interval,
        once: args.once,
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::serve::stop_signal().await;
        stop.cancel();
    });
    match agora_discovery::haproxy::run_bridge(config, shutdown.clone()).await {
        Ok(()) => Ok(()),
        Err(agora_discovery::haproxy::BridgeError::Stopped) if shutdown.is_cancelled() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

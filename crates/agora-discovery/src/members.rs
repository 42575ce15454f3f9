//! The cluster's members for DNS (the master, frameworks, agents), read from the master's
//! `/master/state-summary` (small: no tasks) now and then; they change rarely.

use std::net::IpAddr;
use std::time::Duration;

use agora_client::readings::{active_frameworks, agent_hostnames};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dns::Members;

/// A host (maybe with a port, as schedulers' hostnames sometimes are) as an address.
async fn address(host: &str) -> Option<IpAddr> {
    crate::resolve::lookup(agora_client::host_of(host))
        .await
        .ok()
        .flatten()
}

async fn read(master: &agora_client::MasterClient, node_ip: IpAddr) -> Option<Members> {
    let summary = tokio::time::timeout(Duration::from_secs(10), master.state_summary())
        .await
        .ok()?
        .ok()?;
    let url: hyper::Uri = master.base().parse().ok()?;
    let master_host = url.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let mut members = Members {
        master: Some((address(master_host).await?, port)),
        ns: Some(node_ip),
        ..Members::default()
    };
    for (name, hostname) in active_frameworks(&summary) {
        if let Some(ip) = address(hostname).await {
            members.frameworks.push((name.to_owned(), ip));
        }
    }
    for hostname in agent_hostnames(&summary) {
        if let Some(ip) = address(hostname).await {
            members.agents.push(ip);
        }
    }
    members.frameworks.sort();
    members.agents.sort();
    members.agents.dedup();
    Some(members)
}

/// Publishes the members (only when they change) until `shutdown`: read often at first, when
/// frameworks are still registering, then every `every`, and soon after each `poke` (a change
/// in the apps), at most once a second.
/// A new leader is read at once: `leader.<domain>` follows a failover within a second.
pub async fn follow(
    mut masters: crate::follow::Masters,
    access: agora_client::Access,
    node_ip: IpAddr,
    publish: watch::Sender<Members>,
    every: Duration,
    poke: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_millis(250);
    loop {
        let read_now = match masters.current() {
            Some(address) => {
                let master = agora_client::MasterClient::with_access(&address, &access);
                read(&master, node_ip).await
            }
            None => None,
        };
        if let Some(members) = read_now {
            publish.send_if_modified(|current| {
                let changed = *current != members;
                *current = members;
                changed
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => pause = (pause * 2).min(every),
            () = poke.notified() => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            () = masters.changed() => pause = Duration::from_millis(250),
        }
    }
}

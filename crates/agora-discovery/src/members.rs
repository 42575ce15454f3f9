//! The cluster's members for DNS (the master, frameworks, agents), read from the master's
//! `/master/state-summary` (small: no tasks) now and then; they change rarely.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::dns::Members;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Summary {
    frameworks: Vec<Named>,
    slaves: Vec<Named>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Named {
    name: String,
    hostname: String,
    active: Option<bool>,
}

/// A host (maybe with a port, as schedulers' hostnames sometimes are) as an address.
async fn address(host: &str) -> Option<IpAddr> {
    crate::resolve::lookup(agora_client::host_of(host))
        .await
        .ok()
        .flatten()
}

/// `master` is its base URL (`http(s)://host:port`).
async fn read(client: &reqwest::Client, master: &str, node_ip: IpAddr) -> Option<Members> {
    let summary: Summary = client
        .get(format!("{master}/master/state-summary"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let url = reqwest::Url::parse(master).ok()?;
    let master_host = url
        .host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']');
    let mut members = Members {
        master: Some((address(master_host).await?, url.port_or_known_default()?)),
        ns: Some(node_ip),
        ..Members::default()
    };
    for framework in summary
        .frameworks
        .iter()
        .filter(|f| f.active != Some(false))
    {
        if let Some(ip) = address(&framework.hostname).await {
            members.frameworks.push((framework.name.clone(), ip));
        }
    }
    for agent in &summary.slaves {
        if let Some(ip) = address(&agent.hostname).await {
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
pub async fn follow(
    master: String,
    access: agora_client::Access,
    node_ip: IpAddr,
    publish: watch::Sender<Members>,
    every: Duration,
    poke: std::sync::Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let Ok(client) = access.client_builder().build() else {
        tracing::error!("discovery cannot build an HTTP client for the master's members");
        return;
    };
    let master = access.base_url(&master);
    let mut pause = Duration::from_millis(250);
    loop {
        if let Some(members) = read(&client, &master, node_ip).await {
            publish.send_if_modified(|current| {
                let changed = *current != members;
                *current = members;
                changed
            });
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
            () = poke.notified() => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        pause = (pause * 2).min(every);
    }
}

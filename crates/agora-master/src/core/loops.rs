//! The master's background loops: allocation (event-triggered and periodic), failure detection
//! (agent ping timeouts, framework failover timeouts) and stream heartbeats.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agora_api::agent_protocol::AgentCommand;
use agora_api::recordio;
use agora_api::scheduler::Event;

use super::{AgentConnection, lock};
use crate::Shared;

pub(crate) fn spawn_loops(shared: Shared, shutdown: CancellationToken) {
    tokio::spawn(allocation_loop(shared.clone(), shutdown.clone()));
    tokio::spawn(detection_loop(shared.clone(), shutdown.clone()));
    tokio::spawn(heartbeat_loop(shared, shutdown));
}

/// Runs a round soon after anything changes (batched by `allocation_batch`), and at least
/// every `allocation_interval` so that expired decline filters are noticed.
async fn allocation_loop(shared: Shared, shutdown: CancellationToken) {
    let (notify, interval, batch) = {
        let master = lock(&shared);
        (
            master.allocation_wanted.clone(),
            master.config.allocation_interval,
            master.config.allocation_batch,
        )
    };
    // A round visiting every agent at least every interval, however busy the changes keep
    // the loop.
    let mut last_full = std::time::Instant::now();
    loop {
        let after_change = tokio::select! {
            () = shutdown.cancelled() => return,
            () = notify.notified() => {
                tokio::time::sleep(batch).await;
                true
            }
            () = tokio::time::sleep(interval) => false,
        };
        let changed_only = after_change && last_full.elapsed() < interval;
        if !changed_only {
            last_full = std::time::Instant::now();
        }
        let mut master = lock(&shared);
        if changed_only {
            master.allocate_changed();
        } else {
            master.allocate();
        }
    }
}

async fn detection_loop(shared: Shared, shutdown: CancellationToken) {
    let period = {
        let master = lock(&shared);
        (master.config.agent_ping_timeout / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1))
    };
    let mut ticker = tokio::time::interval(period);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut master = lock(&shared);
        master.check_agent_timeouts();
        master.check_failover_timeouts();
    }
}

/// Heartbeats keep idle streams alive through proxies and reveal dead connections.
async fn heartbeat_loop(shared: Shared, shutdown: CancellationToken) {
    // A zero period would panic in `interval`: the flag refuses it, and so does this.
    let period = lock(&shared)
        .config
        .heartbeat_interval
        .max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    let heartbeat = recordio::encode(&Event::Heartbeat.to_json());
    let operator_heartbeat = recordio::encode(br#"{"type":"HEARTBEAT"}"#);
    let agent_heartbeat = recordio::encode(&AgentCommand::Heartbeat.to_json());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let mut master = lock(&shared);
        for framework in master.frameworks.values() {
            if let Some(stream) = &framework.stream {
                let _ = stream.sender.send(heartbeat.clone());
            }
        }
        for agent in master.agents.values() {
            if let AgentConnection::Connected(link) = &agent.connection {
                let _ = link.sender.send(agent_heartbeat.clone());
            }
        }
        master
            .operator_streams
            .retain(|sender| sender.send(operator_heartbeat.clone()).is_ok());
    }
}

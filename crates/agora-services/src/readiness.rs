//! Readiness checks, run by the scheduler as Marathon runs them: only while a deployment waits
//! for new instances, against each new instance that is running (and healthy, if the app has a
//! health check) but not ready yet, at once and then every `intervalSeconds`. A ready instance
//! lets the deployment go on; results show in the deployment's `readinessCheckResults`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use agora_api::marathon::app::ReadinessCheck;
use agora_probe::HttpProber;

use crate::Shared;
use crate::core::Services;

/// The longest a check waits for its next probe, whatever its interval says.
const LONGEST_WAIT: Duration = Duration::from_secs(24 * 3600);

const TICK: Duration = Duration::from_millis(200);
/// Enough of a body for an operator to see why a task is not ready.
const BODY_LIMIT: usize = 16 * 1024;

/// One check to run now.
struct Target {
    task_id: String,
    check: ReadinessCheck,
    ip: IpAddr,
    port: u16,
}

pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let prober = match HttpProber::new() {
        Ok(prober) => prober,
        Err(error) => {
            tracing::error!(%error, "readiness checks disabled");
            return;
        }
    };
    let mut next_check: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        let now = Instant::now();
        let targets = {
            let services = shared.lock();
            let due = targets(&services);
            next_check.retain(|task, _| due.iter().any(|t| &t.task_id == task));
            due
        };
        let due: Vec<Target> = targets
            .into_iter()
            .filter(|t| next_check.get(&t.task_id).is_none_or(|at| *at <= now))
            .collect();
        if due.is_empty() {
            continue;
        }
        let probes = due.iter().map(|target| probe(&prober, target));
        let results = futures_util::future::join_all(probes).await;
        let mut any_ready = false;
        {
            let mut services = shared.lock();
            for (target, (ready, result)) in due.iter().zip(results) {
                let interval = Duration::from_secs(target.check.interval_seconds.max(1) as u64);
                // Validation keeps intervals within Marathon's int range; this never overflows.
                let next = Instant::now()
                    .checked_add(interval)
                    .unwrap_or_else(|| Instant::now() + LONGEST_WAIT);
                next_check.insert(target.task_id.clone(), next);
                if let Some(instance) = services.instances.get_mut(&target.task_id) {
                    instance.ready = ready;
                    instance.readiness = Some(result);
                    any_ready |= ready;
                    services.touch_instance(&target.task_id);
                }
            }
        }
        if any_ready {
            shared.wake.notify_one();
        }
    }
}

/// New instances of apps under a deployment that wait for their readiness check.
fn targets(services: &Services) -> Vec<Target> {
    let mut targets = Vec::new();
    for deployment in services.deployments.values() {
        for (app_id, _) in deployment.current_actions() {
            let Some(app) = services.apps.get(app_id) else {
                continue;
            };
            let Some(check) = app.definition.readiness_checks.first() else {
                continue;
            };
            let checked = !app.definition.health_checks.is_empty();
            let port_index = app
                .definition
                .port_definitions
                .iter()
                .flatten()
                .position(|p| p.name.as_deref() == Some(check.port_name.as_str()));
            for instance in services.instances.values() {
                if instance.app_id != *app_id
                    || instance.version != deployment.version
                    || instance.ready
                    || instance.kill_requested
                    || !instance.healthy(checked)
                {
                    continue;
                }
                let port = port_index
                    .and_then(|i| instance.ports.get(i))
                    .and_then(|p| u16::try_from(*p).ok());
                let ip = instance
                    .ip
                    .as_deref()
                    .and_then(|ip| ip.parse().ok())
                    .or_else(|| instance.host.parse().ok());
                if let (Some(port), Some(ip)) = (port, ip) {
                    targets.push(Target {
                        task_id: instance.task_id.clone(),
                        check: check.clone(),
                        ip,
                        port,
                    });
                }
            }
        }
    }
    targets
}

/// Runs one check: whether the task is ready, and Marathon's result JSON.
async fn probe(prober: &HttpProber, target: &Target) -> (bool, Value) {
    let check = &target.check;
    let timeout = Duration::from_secs(check.timeout_seconds.max(1) as u64);
    let https = check.protocol == "HTTPS";
    let limit = if check.preserve_last_response {
        BODY_LIMIT
    } else {
        0
    };
    let request = prober.get(https, target.ip, target.port, &check.path, limit);
    let (ready, last_response) = match tokio::time::timeout(timeout, request).await {
        Ok(Ok(response)) => {
            let ready = check.http_status_codes_for_ready.contains(&response.status);
            let last = json!({
                "status": response.status,
                "contentType": response.content_type.unwrap_or_default(),
                "body": response.body,
            });
            (ready, last)
        }
        Ok(Err(error)) => (
            false,
            json!({"status": 0, "contentType": "", "body": error}),
        ),
        Err(_) => (
            false,
            json!({"status": 0, "contentType": "", "body": "timed out"}),
        ),
    };
    let result = json!({
        "name": check.name,
        "taskId": target.task_id,
        "ready": ready,
        "lastResponse": if check.preserve_last_response { last_response } else { Value::Null },
    });
    (ready, result)
}

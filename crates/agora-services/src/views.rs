//! Marathon's response shapes for apps, tasks and deployments.

use serde_json::{Value, json};

use agora_api::marathon::path::safe_name;
use agora_types::TaskState;

use crate::core::{App, Instance, Services};
use crate::deploy::Deployment;

pub(crate) fn task(services: &Services, instance: &Instance) -> Value {
    let service_ports = services
        .apps
        .get(&instance.app_id)
        .map(App::service_ports)
        .unwrap_or_default();
    json!({
        "id": instance.task_id,
        "appId": instance.app_id,
        "host": instance.host,
        "ports": instance.ports,
        "servicePorts": service_ports,
        "slaveId": instance.agent_id,
        "state": instance.state,
        "stagedAt": instance.staged_at,
        "startedAt": instance.started_at,
        "version": instance.version,
        "ipAddresses": instance.ip_addresses(),
        "localVolumes": [],
        "healthCheckResults": instance.health.results(&instance.task_id),
    })
}

/// What `?embed=` asks to include in an app (`apps.*` on lists, `app.*` on one app). Counts
/// and deployments are always there.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Embed {
    pub tasks: bool,
    pub last_task_failure: bool,
    pub task_stats: bool,
    pub readiness: bool,
}

impl Embed {
    pub fn from_query(pairs: &[(String, String)]) -> Embed {
        let mut embed = Embed::default();
        for (key, value) in pairs {
            if key != "embed" {
                continue;
            }
            let what = value
                .strip_prefix("group.apps.")
                .or_else(|| value.strip_prefix("apps."))
                .or_else(|| value.strip_prefix("app."))
                .unwrap_or(value);
            match what {
                "tasks" => embed.tasks = true,
                "lastTaskFailure" | "failures" => embed.last_task_failure = true,
                "taskStats" => embed.task_stats = true,
                "readiness" => embed.readiness = true,
                _ => {}
            }
        }
        embed
    }
}

/// An app with its read-only counters and, when asked, its tasks.
pub(crate) fn app(services: &Services, app: &App, embed: Embed) -> Value {
    let mut value = serde_json::to_value(&app.definition).unwrap_or_else(|_| json!({}));
    let instances: Vec<&Instance> = services
        .instances
        .values()
        .filter(|i| i.app_id == app.definition.id)
        .collect();
    let count = |state: TaskState| instances.iter().filter(|i| i.state == state).count();
    let alive = |alive: bool| {
        instances
            .iter()
            .filter(|i| i.state == TaskState::Running && i.health.alive == Some(alive))
            .count()
    };
    if let Some(map) = value.as_object_mut() {
        map.insert("versionInfo".into(), json!(app.version_info));
        map.insert(
            "tasksStaged".into(),
            json!(count(TaskState::Staging) + count(TaskState::Starting)),
        );
        map.insert("tasksRunning".into(), json!(count(TaskState::Running)));
        map.insert("tasksHealthy".into(), json!(alive(true)));
        map.insert("tasksUnhealthy".into(), json!(alive(false)));
        if embed.last_task_failure
            && let Some(failure) = services.last_failures.get(&app.definition.id)
        {
            map.insert("lastTaskFailure".into(), failure.clone());
        }
        let deployments: Vec<Value> = services
            .deployments
            .values()
            .filter(|d| d.action_of(&app.definition.id).is_some())
            .map(|d| json!({"id": d.id}))
            .collect();
        map.insert("deployments".into(), json!(deployments));
        if embed.task_stats {
            map.insert(
                "taskStats".into(),
                task_stats(app, &instances, crate::core::now_millis()),
            );
        }
        if embed.readiness {
            let results: Vec<&Value> = instances
                .iter()
                .filter_map(|i| i.readiness.as_ref())
                .collect();
            map.insert("readinessCheckResults".into(), json!(results));
        }
        if embed.tasks {
            map.insert(
                "tasks".into(),
                json!(
                    instances
                        .iter()
                        .map(|i| task(services, i))
                        .collect::<Vec<_>>()
                ),
            );
        }
    }
    value
}

/// Marathon's `taskStats`: counts and life times of the app's tasks, overall and split by
/// whether they started after the last scaling and whether they run the latest configuration.
/// A category with no task is left out, as Marathon does.
fn task_stats(app: &App, instances: &[&Instance], now_millis: i64) -> Value {
    let stats = |members: Vec<&Instance>| -> Option<Value> {
        if members.is_empty() {
            return None;
        }
        let count = |f: &dyn Fn(&Instance) -> bool| members.iter().filter(|i| f(i)).count();
        let mut lifetimes: Vec<f64> = members
            .iter()
            .filter_map(|i| i.started_at.as_deref())
            .filter_map(agora_api::marathon::time::parse_millis)
            .map(|started| (now_millis - started).max(0) as f64 / 1000.0)
            .collect();
        lifetimes.sort_by(f64::total_cmp);
        let average = lifetimes.iter().sum::<f64>() / lifetimes.len().max(1) as f64;
        let median = match lifetimes.len() {
            0 => 0.0,
            n if n % 2 == 1 => lifetimes[n / 2],
            n => (lifetimes[n / 2 - 1] + lifetimes[n / 2]) / 2.0,
        };
        Some(json!({"stats": {
            "counts": {
                "staged": count(&|i| matches!(i.state, TaskState::Staging | TaskState::Starting)),
                "running": count(&|i| i.state == TaskState::Running),
                "healthy": count(&|i| i.state == TaskState::Running && i.health.alive == Some(true)),
                "unhealthy": count(&|i| i.state == TaskState::Running && i.health.alive == Some(false)),
            },
            "lifeTime": {"averageSeconds": average, "medianSeconds": median},
        }}))
    };
    let scaled_at = app.version_info.last_scaling_at.as_str();
    let mut value = serde_json::Map::new();
    let categories = [
        (
            "startedAfterLastScaling",
            instances
                .iter()
                .copied()
                .filter(|i| i.staged_at.as_str() >= scaled_at)
                .collect(),
        ),
        (
            "withLatestConfig",
            instances
                .iter()
                .copied()
                .filter(|i| app.is_current(&i.version))
                .collect(),
        ),
        (
            "withOutdatedConfig",
            instances
                .iter()
                .copied()
                .filter(|i| !app.is_current(&i.version))
                .collect(),
        ),
        ("totalSummary", instances.to_vec()),
    ];
    for (name, members) in categories {
        if let Some(stats) = stats(members) {
            value.insert(name.into(), stats);
        }
    }
    Value::Object(value)
}

pub(crate) fn deployment(services: &Services, deployment: &Deployment) -> Value {
    let current: Vec<Value> = deployment
        .current_actions()
        .iter()
        .map(|(app, action)| {
            let readiness: Vec<&Value> = services
                .instances
                .values()
                .filter(|i| i.app_id == *app && i.version == deployment.version)
                .filter_map(|i| i.readiness.as_ref())
                .collect();
            json!({"action": action.name(), "app": app, "readinessCheckResults": readiness})
        })
        .collect();
    json!({
        "id": deployment.id,
        "version": deployment.version,
        "affectedApps": deployment.affected_apps(),
        "affectedPods": [],
        "steps": deployment.steps_json(),
        "currentActions": current,
        "currentStep": deployment.current_step + 1,
        "totalSteps": deployment.steps.len(),
    })
}

/// `/v2/queue`: apps waiting for launches, with their delay and how offers went.
pub(crate) fn queue(services: &Services, now_millis: i64, unused_offers: bool) -> Value {
    let items: Vec<Value> = services
        .queued
        .iter()
        .filter_map(|(app_id, count)| {
            let app = services.apps.get(app_id)?;
            let left = services
                .backoffs
                .get(app_id)
                .map(|b| ((b.until_millis - now_millis).max(0) as f64 / 1000.0).ceil() as i64)
                .unwrap_or(0);
            let stats = services.offer_stats.get(app_id).cloned().unwrap_or_default();
            let reasons: Vec<Value> = stats
                .reasons
                .iter()
                .map(|(reason, declined)| json!({"reason": reason, "declined": declined, "processed": stats.processed}))
                .collect();
            let mut item = json!({
                "app": self::app(services, app, Embed::default()),
                "count": count,
                "delay": {"timeLeftSeconds": left, "overdue": left == 0},
                "since": services.waiting_since.get(app_id),
                "processedOffersSummary": {
                    "processedOffersCount": stats.processed,
                    "unusedOffersCount": stats.unused,
                    "lastUnusedOfferAt": stats.last_unused_at,
                    "lastUsedOfferAt": stats.last_used_at,
                    "rejectSummaryLastOffers": reasons,
                },
            });
            if unused_offers && let Some(map) = item.as_object_mut() {
                map.insert("lastUnusedOffers".into(), json!(stats.last_unused));
            }
            Some(item)
        })
        .collect();
    json!({"queue": items})
}

/// The haproxy-marathon-bridge text form: one line per (app, service port), running tasks
/// only, every field followed by a tab.
pub(crate) fn tasks_text(services: &Services) -> String {
    let mut text = String::new();
    for app in services.apps.values() {
        let running: Vec<&Instance> = services
            .instances
            .values()
            .filter(|i| i.app_id == app.definition.id && i.state == TaskState::Running)
            .collect();
        let name = safe_name(&app.definition.id);
        let service_ports = app.service_ports();
        if service_ports.is_empty() {
            let mut hosts: Vec<&str> = running.iter().map(|i| i.host.as_str()).collect();
            hosts.sort_unstable();
            text.push_str(&format!("{name}\t \t"));
            for host in hosts {
                text.push_str(&format!("{host}\t"));
            }
            text.push('\n');
            continue;
        }
        for (index, service_port) in service_ports.iter().enumerate() {
            let mut addresses: Vec<String> = running
                .iter()
                .map(|i| format!("{}:{}", i.host, i.ports.get(index).copied().unwrap_or(0)))
                .collect();
            addresses.sort();
            text.push_str(&format!("{name}\t{service_port}\t"));
            for address in addresses {
                text.push_str(&format!("{address}\t"));
            }
            text.push('\n');
        }
    }
    text
}

#[cfg(test)]
mod snapshot_tests;

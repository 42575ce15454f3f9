//! The cluster as discovery sees it: apps with their service ports and labels, and their tasks
//! with state and health, kept from a snapshot of `/v2/apps?embed=apps.tasks` and the events
//! of `/v2/events` applied one by one. Pure: no I/O.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Deserialize;
use serde_json::Value;

/// An app as far as discovery cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    pub id: String,
    pub service_ports: Vec<u16>,
    pub labels: BTreeMap<String, String>,
    /// Tasks of an app with health checks serve only once a check has passed.
    pub health_checked: bool,
}

/// A task of an app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    pub app_id: String,
    pub host: String,
    pub agent_id: String,
    pub ports: Vec<u16>,
    pub state: String,
    /// The last health verdict, if any.
    pub alive: Option<bool>,
}

impl Task {
    /// In rotation: running and, for an app with health checks, last seen healthy. Tasks being
    /// killed, lost or unreachable are out (marathon-lb keeps the last two; a proxy that retries
    /// elsewhere has no reason to).
    pub fn serves(&self, app: &App) -> bool {
        self.state == "TASK_RUNNING"
            && !self.host.is_empty()
            && (!app.health_checked || self.alive == Some(true))
    }
}

/// What applying an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Nothing discovery serves changed.
    Unchanged,
    Changed,
    /// The event is about apps (created, changed, removed) or a task of an unknown app: fetch
    /// the apps again.
    Resync,
}

/// How many ended task ids are remembered, so that a late event cannot bring one back.
const REMEMBERED_ENDS: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub apps: BTreeMap<String, App>,
    pub tasks: BTreeMap<String, Task>,
    ended: BTreeSet<String>,
    ended_order: VecDeque<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("unexpected apps document: {0}")]
pub struct SnapshotError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct AppsDoc {
    apps: Vec<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct AppDoc {
    id: String,
    labels: BTreeMap<String, String>,
    health_checks: Vec<Value>,
    tasks: Vec<TaskDoc>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TaskDoc {
    id: String,
    host: String,
    slave_id: String,
    ports: Vec<u16>,
    state: String,
    health_check_results: Vec<HealthDoc>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HealthDoc {
    alive: bool,
}

impl Cluster {
    /// Replaces apps and tasks with a snapshot (`/v2/apps?embed=apps.tasks`). Tasks that were
    /// known and are gone from it are remembered as ended.
    pub fn load_snapshot(&mut self, body: &[u8]) -> Result<(), SnapshotError> {
        self.load_apps(serde_json::from_slice(body)?)
    }

    /// [`Cluster::load_snapshot`] of a document already read.
    pub fn load_apps(&mut self, doc: Value) -> Result<(), SnapshotError> {
        let doc: AppsDoc = serde_json::from_value(doc)?;
        let mut apps = BTreeMap::new();
        let mut tasks = BTreeMap::new();
        for app in doc.apps {
            // Where marathon-lb reads them; a port beyond u16 is no service port.
            let service_ports = agora_client::readings::app_service_ports(&app)
                .into_iter()
                .map(|port| u16::try_from(port).unwrap_or(0))
                .collect();
            let app: AppDoc = serde_json::from_value(app)?;
            for task in &app.tasks {
                let alive = if task.health_check_results.is_empty() {
                    None
                } else {
                    Some(task.health_check_results.iter().all(|h| h.alive))
                };
                tasks.insert(
                    task.id.clone(),
                    Task {
                        id: task.id.clone(),
                        app_id: app.id.clone(),
                        host: task.host.clone(),
                        agent_id: task.slave_id.clone(),
                        ports: task.ports.clone(),
                        state: task.state.clone(),
                        alive,
                    },
                );
            }
            apps.insert(
                app.id.clone(),
                App {
                    id: app.id,
                    service_ports,
                    labels: app.labels,
                    health_checked: !app.health_checks.is_empty(),
                },
            );
        }
        let gone: Vec<String> = self
            .tasks
            .keys()
            .filter(|id| !tasks.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            self.remember_end(id);
        }
        self.apps = apps;
        self.tasks = tasks;
        Ok(())
    }

    fn remember_end(&mut self, id: String) {
        if self.ended.insert(id.clone()) {
            self.ended_order.push_back(id);
            while self.ended_order.len() > REMEMBERED_ENDS {
                if let Some(old) = self.ended_order.pop_front() {
                    self.ended.remove(&old);
                }
            }
        }
    }

    /// Applies one event of `/v2/events` (its `eventType` and JSON data).
    pub fn apply(&mut self, event_type: &str, data: &Value) -> Applied {
        let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or_default();
        match event_type {
            "status_update_event" => {
                let task_id = text("taskId");
                let app_id = text("appId");
                let state = text("taskStatus");
                if task_id.is_empty() || state.is_empty() {
                    return Applied::Unchanged;
                }
                if !self.apps.contains_key(app_id) {
                    return Applied::Resync;
                }
                if is_terminal(state) {
                    let before = self.tasks.remove(task_id);
                    self.remember_end(task_id.to_owned());
                    return changed_if(before.is_some());
                }
                if self.ended.contains(task_id) {
                    return Applied::Unchanged;
                }
                let ports = data
                    .get("ports")
                    .and_then(Value::as_array)
                    .map(|ports| {
                        ports
                            .iter()
                            .filter_map(|p| p.as_u64().and_then(|p| u16::try_from(p).ok()))
                            .collect()
                    })
                    .unwrap_or_default();
                let before = self.tasks.get(task_id).cloned();
                let task = Task {
                    id: task_id.to_owned(),
                    app_id: app_id.to_owned(),
                    host: text("host").to_owned(),
                    agent_id: text("slaveId").to_owned(),
                    ports,
                    state: state.to_owned(),
                    alive: before.as_ref().and_then(|t| t.alive),
                };
                let changed = before.as_ref() != Some(&task);
                self.tasks.insert(task_id.to_owned(), task);
                changed_if(changed)
            }
            "health_status_changed_event" => {
                let task_id = match text("taskId") {
                    "" => text("instanceId"),
                    id => id,
                };
                let alive = data.get("alive").and_then(Value::as_bool);
                let Some(task) = self.tasks.get_mut(task_id) else {
                    return Applied::Unchanged;
                };
                if task.alive == alive {
                    return Applied::Unchanged;
                }
                task.alive = alive;
                Applied::Changed
            }
            "api_post_event"
            | "app_terminated_event"
            | "deployment_success"
            | "deployment_failed"
            | "group_change_success" => Applied::Resync,
            _ => Applied::Unchanged,
        }
    }

    /// The tasks of `app_id` in rotation, in task id order.
    pub fn serving<'a>(&'a self, app: &'a App) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks
            .values()
            .filter(move |t| t.app_id == app.id && t.serves(app))
    }
}

fn changed_if(changed: bool) -> Applied {
    if changed {
        Applied::Changed
    } else {
        Applied::Unchanged
    }
}

fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "TASK_FINISHED"
            | "TASK_FAILED"
            | "TASK_KILLED"
            | "TASK_ERROR"
            | "TASK_LOST"
            | "TASK_DROPPED"
            | "TASK_GONE"
            | "TASK_GONE_BY_OPERATOR"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn snapshot() -> Cluster {
        let mut cluster = Cluster::default();
        let doc = json!({"apps": [
            {"id": "/web", "portDefinitions": [{"port": 10001}, {"port": 10002}],
             "labels": {"HAPROXY_GROUP": "external"}, "healthChecks": [],
             "tasks": [{"id": "web.1", "host": "h1", "ports": [31000, 31001], "state": "TASK_RUNNING"}]},
            {"id": "/db", "container": {"type": "DOCKER", "portMappings": [{"containerPort": 80, "servicePort": 10005}]},
             "healthChecks": [{"protocol": "TCP"}],
             "tasks": [
                {"id": "db.1", "host": "h2", "ports": [31002], "state": "TASK_RUNNING",
                 "healthCheckResults": [{"alive": true}]},
                {"id": "db.2", "host": "h2", "ports": [31003], "state": "TASK_RUNNING"}]},
        ]});
        cluster
            .load_snapshot(doc.to_string().as_bytes())
            .expect("snapshot");
        cluster
    }

    fn serving(cluster: &Cluster, app: &str) -> Vec<String> {
        let app = &cluster.apps[app];
        cluster.serving(app).map(|t| t.id.clone()).collect()
    }

    #[test]
    fn snapshot_reads_ports_and_health() {
        let cluster = snapshot();
        assert_eq!(cluster.apps["/web"].service_ports, vec![10001, 10002]);
        assert_eq!(cluster.apps["/db"].service_ports, vec![10005]);
        assert_eq!(serving(&cluster, "/web"), vec!["web.1"]);
        // An app with health checks: only the task that passed one.
        assert_eq!(serving(&cluster, "/db"), vec!["db.1"]);
    }

    #[test]
    fn events_move_tasks_in_and_out() {
        let mut cluster = snapshot();
        let running = json!({"taskId": "web.2", "appId": "/web", "host": "h3", "ports": [31005, 31006], "taskStatus": "TASK_RUNNING"});
        assert_eq!(
            cluster.apply("status_update_event", &running),
            Applied::Changed
        );
        assert_eq!(serving(&cluster, "/web"), vec!["web.1", "web.2"]);
        // The same update again changes nothing.
        assert_eq!(
            cluster.apply("status_update_event", &running),
            Applied::Unchanged
        );
        let killing = json!({"taskId": "web.1", "appId": "/web", "host": "h1", "ports": [31000, 31001], "taskStatus": "TASK_KILLING"});
        assert_eq!(
            cluster.apply("status_update_event", &killing),
            Applied::Changed
        );
        assert_eq!(serving(&cluster, "/web"), vec!["web.2"]);
        let killed = json!({"taskId": "web.1", "appId": "/web", "taskStatus": "TASK_KILLED"});
        assert_eq!(
            cluster.apply("status_update_event", &killed),
            Applied::Changed
        );
        assert!(!cluster.tasks.contains_key("web.1"));
        // A late RUNNING of an ended task does not bring it back.
        let late = json!({"taskId": "web.1", "appId": "/web", "host": "h1", "ports": [31000, 31001], "taskStatus": "TASK_RUNNING"});
        assert_eq!(
            cluster.apply("status_update_event", &late),
            Applied::Unchanged
        );
        assert_eq!(serving(&cluster, "/web"), vec!["web.2"]);
    }

    #[test]
    fn health_verdicts_move_tasks() {
        let mut cluster = snapshot();
        let healthy = json!({"appId": "/db", "taskId": "db.2", "alive": true});
        assert_eq!(
            cluster.apply("health_status_changed_event", &healthy),
            Applied::Changed
        );
        assert_eq!(serving(&cluster, "/db"), vec!["db.1", "db.2"]);
        let sick = json!({"appId": "/db", "instanceId": "db.1", "alive": false});
        assert_eq!(
            cluster.apply("health_status_changed_event", &sick),
            Applied::Changed
        );
        assert_eq!(serving(&cluster, "/db"), vec!["db.2"]);
    }

    #[test]
    fn app_changes_and_unknown_apps_ask_for_a_resync() {
        let mut cluster = snapshot();
        assert_eq!(cluster.apply("api_post_event", &json!({})), Applied::Resync);
        let stranger = json!({"taskId": "x.1", "appId": "/x", "taskStatus": "TASK_RUNNING"});
        assert_eq!(
            cluster.apply("status_update_event", &stranger),
            Applied::Resync
        );
        assert_eq!(
            cluster.apply("framework_message_event", &json!({})),
            Applied::Unchanged
        );
    }

    #[test]
    fn a_snapshot_without_a_task_ends_it() {
        let mut cluster = snapshot();
        cluster
            .load_snapshot(br#"{"apps": [{"id": "/web", "portDefinitions": [{"port": 10001}]}]}"#)
            .expect("snapshot");
        let late = json!({"taskId": "web.1", "appId": "/web", "host": "h1", "ports": [31000], "taskStatus": "TASK_RUNNING"});
        assert_eq!(
            cluster.apply("status_update_event", &late),
            Applied::Unchanged
        );
        assert!(cluster.tasks.is_empty());
    }

    #[test]
    fn bad_snapshots_are_errors() {
        let mut cluster = Cluster::default();
        assert!(cluster.load_snapshot(b"not json").is_err());
        assert!(cluster.load_snapshot(b"{\"apps\": 3}").is_err());
    }
}

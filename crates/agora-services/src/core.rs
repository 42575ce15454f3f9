//! The services scheduler's state and decisions: apps and their versions, instances, and
//! deployments, recomputed level-triggered after every change (what should run versus what
//! runs), using the pure planners of `agora-plan`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use agora_api::marathon::app::{AppDefinition, VersionInfo};
use agora_api::marathon::time::format_millis;
use agora_api::mesos::TaskStatus;
use agora_plan::rolling::{RollingRestart, UpgradeStrategy, next_step};
use agora_store::Store;
use agora_types::TaskState;

use crate::health::HealthRecord;

const APPS: &str = "services/apps/";
const MAX_VERSIONS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("store: {0}")]
    Store(#[from] agora_store::StoreError),
    #[error("stored app '{0}' is corrupt")]
    Corrupt(String),
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct App {
    /// Normalised; `portDefinitions[].port` are the assigned service ports.
    pub definition: AppDefinition,
    pub version_info: VersionInfo,
    /// Older versions, newest last, each with its definition.
    pub versions: Vec<AppDefinition>,
}

impl App {
    pub fn version(&self) -> &str {
        self.definition.version.as_deref().unwrap_or_default()
    }

    /// Whether an instance started at `version` runs the current configuration: scaling makes
    /// a new version without touching running instances.
    pub fn is_current(&self, version: &str) -> bool {
        version >= self.version_info.last_config_change_at.as_str()
    }

    pub fn service_ports(&self) -> Vec<u64> {
        self.definition
            .port_definitions
            .iter()
            .flatten()
            .map(|p| p.port.max(0) as u64)
            .collect()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Instance {
    pub task_id: String,
    pub app_id: String,
    pub version: String,
    pub agent_id: String,
    pub host: String,
    pub ports: Vec<u64>,
    pub state: TaskState,
    pub staged_at: String,
    pub started_at: Option<String>,
    pub kill_requested: bool,
    pub health: HealthRecord,
}

impl Instance {
    fn active(&self) -> bool {
        !self.state.is_terminal() && !self.kill_requested
    }

    /// Running and, when the app has health checks, reported alive.
    pub fn healthy(&self, checked: bool) -> bool {
        self.state == TaskState::Running && (!checked || self.health.alive == Some(true))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Scale,
    Restart { min_healthy: u32, max_capacity: u32 },
    Stop,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Scale => "ScaleApplication",
            Action::Restart { .. } => "RestartApplication",
            Action::Stop => "StopApplication",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Deployment {
    pub id: String,
    pub version: String,
    pub app_id: String,
    pub action: Action,
    /// The app as it was before, for a reverting cancel (`None`: it did not exist).
    pub previous: Option<AppDefinition>,
    /// The plan in Marathon's event shape (with `original` and `target` root groups).
    pub plan: Value,
}

/// An app's launch delay after failures.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Backoff {
    pub delay_seconds: f64,
    pub until_millis: i64,
}

/// How an app's recent offers went, for `/v2/queue`.
#[derive(Clone, Debug, Default)]
pub(crate) struct OfferStats {
    pub processed: u64,
    pub unused: u64,
    pub last_used_at: Option<String>,
    pub last_unused_at: Option<String>,
    /// Marathon's reason names → how many offers were declined for it.
    pub reasons: BTreeMap<String, u64>,
}

/// What the framework must do after a change.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Work {
    pub kills: Vec<String>,
    /// Instances to launch per app.
    pub launches: BTreeMap<String, u32>,
}

/// One event of Marathon's event bus (`/v2/events`).
#[derive(Clone, Debug)]
pub(crate) struct BusEvent {
    pub kind: &'static str,
    pub data: Value,
}

pub(crate) struct Services {
    store: Arc<dyn Store>,
    /// Marathon's event bus; SSE subscribers each hold a receiver.
    pub events: tokio::sync::broadcast::Sender<BusEvent>,
    pub apps: BTreeMap<String, App>,
    pub instances: BTreeMap<String, Instance>,
    pub deployments: BTreeMap<String, Deployment>,
    pub framework_id: Option<String>,
    /// Kills asked for through the API, for the framework to send.
    pub pending_kills: Vec<String>,
    /// Versions are timestamps; two changes in one millisecond still get distinct ones.
    last_version_millis: i64,
    pub backoffs: BTreeMap<String, Backoff>,
    pub offer_stats: BTreeMap<String, OfferStats>,
    /// When each app started waiting for launches (the queue's `since`).
    pub waiting_since: BTreeMap<String, String>,
    /// Instances each app waits to launch (delayed or not).
    pub queued: BTreeMap<String, u32>,
    /// Each app's last failed task, in Marathon's `lastTaskFailure` shape.
    pub last_failures: BTreeMap<String, Value>,
}

pub(crate) enum ChangeError {
    Locked(Vec<String>),
    NotFound,
}

impl Services {
    pub fn load(store: Arc<dyn Store>) -> Result<Services, ServicesError> {
        let mut apps = BTreeMap::new();
        for (key, value) in store.list(APPS)? {
            let app: App =
                serde_json::from_slice(&value).map_err(|_| ServicesError::Corrupt(key.clone()))?;
            apps.insert(app.definition.id.clone(), app);
        }
        Ok(Services {
            events: tokio::sync::broadcast::channel(1024).0,
            store,
            apps,
            instances: BTreeMap::new(),
            deployments: BTreeMap::new(),
            framework_id: None,
            pending_kills: Vec::new(),
            last_version_millis: 0,
            backoffs: BTreeMap::new(),
            offer_stats: BTreeMap::new(),
            waiting_since: BTreeMap::new(),
            queued: BTreeMap::new(),
            last_failures: BTreeMap::new(),
        })
    }

    fn next_version(&mut self) -> String {
        self.last_version_millis = now_millis().max(self.last_version_millis + 1);
        format_millis(self.last_version_millis)
    }

    fn persist(&self, app_id: &str) {
        let key = format!("{APPS}{}", app_id.trim_start_matches('/'));
        let result = match self.apps.get(app_id) {
            Some(app) => match serde_json::to_vec(app) {
                Ok(bytes) => self.store.put(&key, &bytes),
                Err(error) => {
                    tracing::error!(%error, app = app_id, "cannot encode app");
                    return;
                }
            },
            None => self.store.delete(&key),
        };
        if let Err(error) = result {
            tracing::error!(%error, app = app_id, "cannot persist app");
        }
    }

    /// Service ports of every app but `except`.
    pub fn service_ports_taken(&self, except: &str) -> BTreeMap<u64, String> {
        self.apps
            .values()
            .filter(|app| app.definition.id != except)
            .flat_map(|app| {
                app.service_ports()
                    .into_iter()
                    .filter(|p| *p != 0)
                    .map(|p| (p, app.definition.id.clone()))
            })
            .collect()
    }

    /// A change to an app under deployment is refused (409) unless forced, which cancels the
    /// running deployments.
    fn take_over(&mut self, app_id: &str, force: bool) -> Result<(), ChangeError> {
        let locked = self.deployments_of(app_id);
        if !locked.is_empty() && !force {
            return Err(ChangeError::Locked(locked));
        }
        for deployment in locked {
            self.deployments.remove(&deployment);
        }
        Ok(())
    }

    fn deployments_of(&self, app_id: &str) -> Vec<String> {
        self.deployments
            .values()
            .filter(|d| d.app_id == app_id)
            .map(|d| d.id.clone())
            .collect()
    }

    /// Stores a new definition of an app (created or changed) and starts its deployment.
    /// Returns (deployment id, version).
    pub fn put_app(
        &mut self,
        mut definition: AppDefinition,
        force: bool,
    ) -> Result<(String, String), ChangeError> {
        let id = definition.id.clone();
        self.take_over(&id, force)?;
        let version = self.next_version();
        definition.version = Some(version.clone());
        definition.version_info = None;
        let previous = self.apps.get(&id).cloned();
        let action = match &previous {
            None => Action::Scale,
            Some(old) if same_except_scale(&old.definition, &definition) => Action::Scale,
            Some(_) => restart_action(&definition, self.active_count(&id)),
        };
        let version_info = match (&previous, action) {
            (Some(old), Action::Scale) => VersionInfo {
                last_scaling_at: version.clone(),
                last_config_change_at: old.version_info.last_config_change_at.clone(),
            },
            _ => VersionInfo {
                last_scaling_at: version.clone(),
                last_config_change_at: version.clone(),
            },
        };
        let mut versions = previous
            .as_ref()
            .map(|old| old.versions.clone())
            .unwrap_or_default();
        if let Some(old) = &previous {
            versions.push(old.definition.clone());
        }
        if versions.len() > MAX_VERSIONS {
            versions.remove(0);
        }
        // Marathon announces the API change before the deployment it starts.
        self.emit(
            "api_post_event",
            serde_json::json!({
                "clientIp": "",
                "uri": format!("/v2/apps{id}"),
                "appDefinition": serde_json::to_value(&definition).unwrap_or_default(),
            }),
        );
        self.apps.insert(
            id.clone(),
            App {
                definition,
                version_info,
                versions,
            },
        );
        self.persist(&id);
        Ok(self.start_deployment(&id, &version, action, previous.map(|p| p.definition)))
    }

    /// A new version with the same definition: a rolling restart.
    pub fn restart_app(&mut self, id: &str, force: bool) -> Result<(String, String), ChangeError> {
        let previous = self
            .apps
            .get(id)
            .ok_or(ChangeError::NotFound)?
            .definition
            .clone();
        self.take_over(id, force)?;
        let mut definition = previous.clone();
        let version = self.next_version();
        definition.version = Some(version.clone());
        let action = restart_action(&definition, self.active_count(id));
        if let Some(app) = self.apps.get_mut(id) {
            app.versions.push(previous.clone());
            app.definition = definition;
            app.version_info = VersionInfo {
                last_scaling_at: version.clone(),
                last_config_change_at: version.clone(),
            };
        }
        self.persist(id);
        Ok(self.start_deployment(id, &version, action, Some(previous)))
    }

    pub fn delete_app(&mut self, id: &str, force: bool) -> Result<(String, String), ChangeError> {
        if !self.apps.contains_key(id) {
            return Err(ChangeError::NotFound);
        }
        self.take_over(id, force)?;
        let version = self.next_version();
        let previous = self.apps.get(id).map(|app| app.definition.clone());
        Ok(self.start_deployment(id, &version, Action::Stop, previous))
    }

    fn start_deployment(
        &mut self,
        app_id: &str,
        version: &str,
        action: Action,
        previous: Option<AppDefinition>,
    ) -> (String, String) {
        let id = uuid::Uuid::new_v4().to_string();
        let plan = self.plan_json(&id, version, app_id, action, previous.as_ref());
        self.emit(
            "deployment_info",
            serde_json::json!({
                "plan": plan,
                "currentStep": {"actions": [{"action": action.name(), "app": app_id}]},
            }),
        );
        self.deployments.insert(
            id.clone(),
            Deployment {
                id: id.clone(),
                version: version.to_owned(),
                app_id: app_id.to_owned(),
                action,
                previous,
                plan,
            },
        );
        (id, version.to_owned())
    }

    /// Cancels a deployment: with `force` it just stops; otherwise the app goes back to what it
    /// was (or away, if the deployment created it) in a new deployment.
    pub fn cancel_deployment(
        &mut self,
        id: &str,
        force: bool,
    ) -> Result<Option<(String, String)>, ChangeError> {
        let deployment = self.deployments.remove(id).ok_or(ChangeError::NotFound)?;
        if force {
            return Ok(None);
        }
        match deployment.previous {
            Some(previous)
                if deployment.action != Action::Stop
                    || self.apps.contains_key(&deployment.app_id) =>
            {
                self.put_app(previous, true).map(Some)
            }
            Some(_) => Ok(None),
            None => self.delete_app(&deployment.app_id, true).map(Some),
        }
    }

    fn active_count(&self, app_id: &str) -> u32 {
        self.instances
            .values()
            .filter(|i| i.app_id == app_id && i.active())
            .count() as u32
    }

    /// Recomputes what must happen for every app: kills to send (marked as requested) and
    /// launches wanted; finishes deployments that reached their target.
    pub fn plan(&mut self) -> Work {
        let mut work = Work {
            kills: std::mem::take(&mut self.pending_kills),
            ..Work::default()
        };
        let app_ids: Vec<String> = self.apps.keys().cloned().collect();
        for app_id in app_ids {
            self.plan_app(&app_id, &mut work);
        }
        work
    }

    fn plan_app(&mut self, app_id: &str, work: &mut Work) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let wanted = app.definition.instances.max(0) as u32;
        let checked = !app.definition.health_checks.is_empty();
        let kill_oldest = app.definition.kill_selection == "OLDEST_FIRST";
        let deployment = self
            .deployments
            .values()
            .find(|d| d.app_id == app_id)
            .cloned();
        let mut active: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| i.app_id == app_id && i.active())
            .collect();
        // Kill preference: not yet running first, then by age per killSelection.
        active.sort_by(|a, b| {
            let running = |i: &Instance| i.healthy(checked);
            running(a).cmp(&running(b)).then_with(|| {
                if kill_oldest {
                    a.staged_at.cmp(&b.staged_at)
                } else {
                    b.staged_at.cmp(&a.staged_at)
                }
            })
        });
        let (mut kills, launch): (Vec<String>, u32) = match deployment.map(|d| d.action) {
            Some(Action::Stop) => (active.iter().map(|i| i.task_id.clone()).collect(), 0),
            Some(Action::Restart {
                min_healthy,
                max_capacity,
            }) => {
                let old: Vec<&Instance> = active
                    .iter()
                    .copied()
                    .filter(|i| !app.is_current(&i.version))
                    .collect();
                let new: Vec<&Instance> = active
                    .iter()
                    .copied()
                    .filter(|i| app.is_current(&i.version))
                    .collect();
                let new_healthy = new.iter().filter(|i| i.healthy(checked)).count() as u32;
                let old_running = old.len() as u32;
                let step = next_step(
                    wanted,
                    min_healthy,
                    max_capacity,
                    old_running,
                    new_healthy,
                    new.len() as u32,
                );
                let kills = old
                    .iter()
                    .take(step.kill_old as usize)
                    .map(|i| i.task_id.clone())
                    .collect();
                (kills, step.start_new)
            }
            _ => {
                let count = active.len() as u32;
                if count > wanted {
                    (
                        active
                            .iter()
                            .take((count - wanted) as usize)
                            .map(|i| i.task_id.clone())
                            .collect(),
                        0,
                    )
                } else {
                    (Vec::new(), wanted - count)
                }
            }
        };
        for task_id in &kills {
            if let Some(instance) = self.instances.get_mut(task_id) {
                instance.kill_requested = true;
            }
        }
        work.kills.append(&mut kills);
        if launch > 0 {
            self.waiting_since
                .entry(app_id.to_owned())
                .or_insert_with(|| format_millis(now_millis()));
            self.queued.insert(app_id.to_owned(), launch);
            let delayed = self
                .backoffs
                .get(app_id)
                .is_some_and(|b| b.until_millis > now_millis());
            if !delayed {
                work.launches.insert(app_id.to_owned(), launch);
            }
        } else {
            self.waiting_since.remove(app_id);
            self.queued.remove(app_id);
            self.offer_stats.remove(app_id);
        }
        self.finish_deployments(app_id);
    }

    fn finish_deployments(&mut self, app_id: &str) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let wanted = app.definition.instances.max(0) as usize;
        let checked = !app.definition.health_checks.is_empty();
        let live: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| i.app_id == app_id && !i.state.is_terminal())
            .collect();
        let done: Vec<String> = self
            .deployments
            .values()
            .filter(|d| d.app_id == app_id)
            .filter(|d| match d.action {
                Action::Stop => live.is_empty(),
                Action::Scale | Action::Restart { .. } => {
                    live.len() == wanted
                        && live.iter().all(|i| {
                            app.is_current(&i.version) && i.healthy(checked) && !i.kill_requested
                        })
                }
            })
            .map(|d| d.id.clone())
            .collect();
        for id in done {
            if let Some(deployment) = self.deployments.remove(&id) {
                tracing::info!(deployment = %id, app = app_id, action = deployment.action.name(), "deployment finished");
                self.emit(
                    "deployment_step_success",
                    serde_json::json!({
                        "plan": deployment.plan,
                        "currentStep": {"actions": [{"action": deployment.action.name(), "app": app_id}]},
                    }),
                );
                self.emit(
                    "deployment_success",
                    serde_json::json!({"id": id, "plan": deployment.plan}),
                );
                if deployment.action == Action::Stop {
                    self.emit("app_terminated_event", serde_json::json!({"appId": app_id}));
                    self.apps.remove(app_id);
                    self.instances.retain(|_, i| i.app_id != app_id);
                    self.persist(app_id);
                }
            }
        }
    }

    /// Publishes an event; `data` gets `eventType` and `timestamp`.
    pub fn emit(&self, kind: &'static str, mut data: Value) {
        if self.events.receiver_count() == 0 {
            return;
        }
        if let Some(map) = data.as_object_mut() {
            map.insert("eventType".into(), Value::from(kind));
            map.insert("timestamp".into(), Value::from(format_millis(now_millis())));
        }
        let _ = self.events.send(BusEvent { kind, data });
    }

    /// The root group as it is now, with `app_id` replaced by `instead` (or left out).
    fn root_group(&self, app_id: &str, instead: Option<&AppDefinition>, version: &str) -> Value {
        let apps: Vec<Value> = self
            .apps
            .values()
            .filter(|app| app.definition.id != app_id)
            .map(|app| serde_json::to_value(&app.definition).unwrap_or_default())
            .chain(instead.map(|d| serde_json::to_value(d).unwrap_or_default()))
            .collect();
        serde_json::json!({"id": "/", "apps": apps, "groups": [], "dependencies": [], "version": version})
    }

    fn plan_json(
        &self,
        id: &str,
        version: &str,
        app_id: &str,
        action: Action,
        previous: Option<&AppDefinition>,
    ) -> Value {
        let current = self.apps.get(app_id).map(|app| app.definition.clone());
        let target = if action == Action::Stop {
            None
        } else {
            current.as_ref()
        };
        serde_json::json!({
            "id": id,
            "version": version,
            "original": self.root_group(app_id, previous, version),
            "target": self.root_group(app_id, target, version),
            "steps": [{"actions": [{"action": action.name(), "app": app_id}]}],
        })
    }

    /// A status update for one of our tasks.
    pub fn update(&mut self, status: &TaskStatus) {
        let task_id = status.task_id.value.as_str();
        let state = status.state;
        let agent_id = status.agent_id.as_ref().map(|a| a.value.as_str());
        let now = format_millis(now_millis());
        let Some(instance) = self.instances.get(task_id) else {
            if !state.is_terminal() {
                self.adopt(task_id, state, agent_id, &now);
            }
            return;
        };
        let instance = instance.clone();
        self.emit(
            "status_update_event",
            serde_json::json!({
                "slaveId": agent_id.unwrap_or(&instance.agent_id),
                "taskId": task_id,
                "taskStatus": state,
                "message": status.message.as_deref().unwrap_or_default(),
                "appId": instance.app_id,
                "host": instance.host,
                "ipAddresses": [],
                "ports": instance.ports,
                "version": instance.version,
            }),
        );
        if state != instance.state {
            self.emit(
                "instance_changed_event",
                serde_json::json!({
                    "instanceId": task_id,
                    "condition": condition(state),
                    "runSpecId": instance.app_id,
                    "agentId": instance.agent_id,
                    "slaveId": instance.agent_id,
                    "host": instance.host,
                    "runSpecVersion": instance.version,
                }),
            );
        }
        if let Some(healthy) = status.healthy
            && !state.is_terminal()
        {
            self.health_verdict(&instance, healthy, status.message.as_deref(), &now);
        }
        if state.is_terminal() {
            self.instances.remove(task_id);
            let killed_unhealthy = status.healthy == Some(false)
                && status.reason.as_deref() == Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
            if killed_unhealthy {
                self.emit(
                    "unhealthy_task_kill_event",
                    serde_json::json!({
                        "appId": instance.app_id,
                        "taskId": task_id,
                        "instanceId": task_id,
                        "version": instance.version,
                        "reason": status.message.as_deref().unwrap_or("health check failed"),
                        "host": instance.host,
                        "slaveId": instance.agent_id,
                    }),
                );
            }
            let failed = (killed_unhealthy
                || matches!(
                    state,
                    TaskState::Failed | TaskState::Finished | TaskState::Error
                ))
                && !instance.kill_requested;
            if failed {
                self.last_failures.insert(
                    instance.app_id.clone(),
                    serde_json::json!({
                        "appId": instance.app_id,
                        "host": instance.host,
                        "message": status.message.as_deref().unwrap_or_default(),
                        "state": state,
                        "taskId": task_id,
                        "timestamp": now,
                        "version": instance.version,
                        "slaveId": instance.agent_id,
                    }),
                );
                self.delay_launches(&instance.app_id);
            }
            return;
        }
        if let Some(live) = self.instances.get_mut(task_id) {
            live.state = state;
            if state == TaskState::Running && live.started_at.is_none() {
                live.started_at = Some(now);
            }
        }
    }

    /// The agent's verdict on an instance's health check.
    fn health_verdict(
        &mut self,
        instance: &Instance,
        healthy: bool,
        cause: Option<&str>,
        now: &str,
    ) {
        let task_id = instance.task_id.as_str();
        let Some(live) = self.instances.get_mut(task_id) else {
            return;
        };
        let changed = live.health.record(healthy, cause, now);
        let check = self
            .apps
            .get(&instance.app_id)
            .and_then(|app| app.definition.health_checks.first())
            .and_then(|c| serde_json::to_value(c).ok());
        if !healthy {
            self.emit(
                "failed_health_check_event",
                serde_json::json!({
                    "appId": instance.app_id,
                    "taskId": task_id,
                    "instanceId": task_id,
                    "healthCheck": check,
                }),
            );
        }
        if changed {
            self.emit(
                "health_status_changed_event",
                serde_json::json!({
                    "appId": instance.app_id,
                    "taskId": task_id,
                    "instanceId": task_id,
                    "version": instance.version,
                    "alive": healthy,
                }),
            );
            self.emit(
                "instance_health_changed_event",
                serde_json::json!({
                    "instanceId": task_id,
                    "runSpecId": instance.app_id,
                    "runSpecVersion": instance.version,
                    "healthy": healthy,
                }),
            );
        }
    }

    /// A task this process did not launch (it restarted): adopted if its app exists.
    fn adopt(&mut self, task_id: &str, state: TaskState, agent_id: Option<&str>, now: &str) {
        let Some(app) = self.apps.values().find(|app| {
            task_id.starts_with(&format!(
                "{}.",
                agora_api::marathon::path::safe_name(&app.definition.id)
            ))
        }) else {
            return;
        };
        let instance = Instance {
            task_id: task_id.to_owned(),
            app_id: app.definition.id.clone(),
            version: app.version().to_owned(),
            agent_id: agent_id.unwrap_or_default().to_owned(),
            host: String::new(),
            ports: Vec::new(),
            state,
            staged_at: now.to_owned(),
            started_at: (state == TaskState::Running).then(|| now.to_owned()),
            kill_requested: false,
            health: HealthRecord::default(),
        };
        self.instances.insert(task_id.to_owned(), instance);
    }

    /// A task of the app failed: its next launch waits (Marathon's backoff).
    fn delay_launches(&mut self, app_id: &str) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let definition = &app.definition;
        let previous = self.backoffs.get(app_id).map(|b| b.delay_seconds);
        let delay = agora_plan::rolling::next_backoff(
            previous,
            definition.backoff_seconds,
            definition.backoff_factor,
            definition.max_launch_delay_seconds,
        );
        let until_millis = now_millis() + (delay * 1000.0) as i64;
        self.backoffs.insert(
            app_id.to_owned(),
            Backoff {
                delay_seconds: delay,
                until_millis,
            },
        );
    }

    /// `DELETE /v2/queue/{id}/delay`.
    pub fn reset_delay(&mut self, app_id: &str) -> bool {
        if !self.apps.contains_key(app_id) {
            return false;
        }
        self.backoffs.remove(app_id);
        true
    }

    pub fn launched(&mut self, instance: Instance) {
        self.instances.insert(instance.task_id.clone(), instance);
    }

    /// Kills given instances of an app; with `scale`, the app's instance count drops too (a
    /// deployment), otherwise they are replaced.
    pub fn kill_tasks(
        &mut self,
        task_ids: &[String],
        scale: bool,
    ) -> (Vec<Instance>, Option<(String, String)>) {
        let mut killed = Vec::new();
        for task_id in task_ids {
            if let Some(instance) = self.instances.get(task_id) {
                killed.push(instance.clone());
            }
        }
        if !scale {
            return (killed, None);
        }
        let mut by_app: BTreeMap<String, i64> = BTreeMap::new();
        for instance in &killed {
            *by_app.entry(instance.app_id.clone()).or_default() += 1;
        }
        let mut last = None;
        for (app_id, count) in by_app {
            for instance in killed.iter().filter(|i| i.app_id == app_id) {
                if let Some(live) = self.instances.get_mut(&instance.task_id) {
                    live.kill_requested = true;
                }
            }
            if let Some(app) = self.apps.get(&app_id) {
                let mut definition = app.definition.clone();
                definition.instances = (definition.instances - count).max(0);
                if let Ok(result) = self.put_app(definition, true) {
                    last = Some(result);
                }
            }
        }
        (killed, last)
    }

    pub fn definition_json(&self, app_id: &str) -> Option<Value> {
        self.apps
            .get(app_id)
            .and_then(|app| serde_json::to_value(&app.definition).ok())
    }
}

/// Marathon's condition name for a task state.
fn condition(state: TaskState) -> &'static str {
    match state {
        TaskState::Staging => "Staging",
        TaskState::Starting => "Starting",
        TaskState::Running => "Running",
        TaskState::Killing => "Killing",
        TaskState::Killed => "Killed",
        TaskState::Failed => "Failed",
        TaskState::Finished => "Finished",
        TaskState::Error => "Error",
        TaskState::Dropped => "Dropped",
        TaskState::Gone | TaskState::GoneByOperator => "Gone",
        TaskState::Unreachable => "Unreachable",
        _ => "Unknown",
    }
}

/// Whether two definitions differ only in `instances` (and bookkeeping fields).
fn same_except_scale(old: &AppDefinition, new: &AppDefinition) -> bool {
    let mut old = old.clone();
    let mut new = new.clone();
    old.instances = 0;
    new.instances = 0;
    old.version = None;
    new.version = None;
    old.version_info = None;
    new.version_info = None;
    old == new
}

fn restart_action(definition: &AppDefinition, old_running: u32) -> Action {
    let strategy = UpgradeStrategy {
        minimum_health_capacity: definition.upgrade_strategy.minimum_health_capacity,
        maximum_over_capacity: definition.upgrade_strategy.maximum_over_capacity,
    };
    let (plan, _) = RollingRestart::begin(
        definition.instances.max(0) as u32,
        strategy,
        old_running,
        false,
    );
    Action::Restart {
        min_healthy: plan.min_healthy,
        max_capacity: plan.max_capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(body: Value) -> AppDefinition {
        let mut app = AppDefinition::parse(&body).unwrap();
        app.normalize("/").unwrap();
        app
    }

    fn services() -> Services {
        Services::load(Arc::new(agora_store::MemoryStore::new())).unwrap()
    }

    fn run(services: &mut Services, app_id: &str, count: u32) -> Vec<String> {
        let version = services.apps[app_id].version().to_owned();
        (0..count)
            .map(|_| {
                let task_id = format!(
                    "{}.{}",
                    agora_api::marathon::path::safe_name(app_id),
                    uuid::Uuid::new_v4()
                );
                services.launched(Instance {
                    task_id: task_id.clone(),
                    app_id: app_id.into(),
                    version: version.clone(),
                    agent_id: "a".into(),
                    host: "h".into(),
                    ports: vec![],
                    state: TaskState::Running,
                    staged_at: format_millis(now_millis()),
                    started_at: None,
                    kill_requested: false,
                    health: HealthRecord::default(),
                });
                task_id
            })
            .collect()
    }

    #[test]
    fn scale_up_down_and_finish() {
        let mut s = services();
        s.put_app(
            app(json!({"id": "/web", "cmd": "x", "instances": 3})),
            false,
        )
        .ok()
        .unwrap();
        assert_eq!(s.plan().launches.get("/web"), Some(&3));
        run(&mut s, "/web", 3);
        assert!(s.plan().launches.is_empty());
        assert!(s.deployments.is_empty(), "scale deployment finished");
        let mut smaller = s.apps["/web"].definition.clone();
        smaller.instances = 1;
        s.put_app(smaller, false).ok().unwrap();
        assert_eq!(s.plan().kills.len(), 2);
    }

    #[test]
    fn second_change_is_locked_unless_forced() {
        let mut s = services();
        s.put_app(
            app(json!({"id": "/web", "cmd": "x", "instances": 2})),
            false,
        )
        .ok()
        .unwrap();
        let again = s.put_app(
            app(json!({"id": "/web", "cmd": "y", "instances": 2})),
            false,
        );
        assert!(matches!(again, Err(ChangeError::Locked(ids)) if ids.len() == 1));
        assert!(
            s.put_app(app(json!({"id": "/web", "cmd": "y", "instances": 2})), true)
                .is_ok()
        );
    }

    #[test]
    fn restart_replaces_old_instances_within_the_strategy() {
        let mut s = services();
        s.put_app(app(json!({"id": "/web", "cmd": "x", "instances": 4, "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}})), false).ok().unwrap();
        run(&mut s, "/web", 4);
        s.plan();
        s.put_app(app(json!({"id": "/web", "cmd": "y", "instances": 4, "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0}})), false).ok().unwrap();
        // Marathon's example: kill down to the minimum at once and start what capacity allows.
        let work = s.plan();
        assert_eq!((work.kills.len(), work.launches.get("/web")), (2, Some(&2)));
        for task in &work.kills {
            s.update(&TaskStatus::new(task, TaskState::Killed));
        }
        run(&mut s, "/web", 2);
        // Two new ones run: the last old ones go and the last new ones start.
        let work = s.plan();
        assert_eq!((work.kills.len(), work.launches.get("/web")), (2, Some(&2)));
        for task in &work.kills {
            s.update(&TaskStatus::new(task, TaskState::Killed));
        }
        run(&mut s, "/web", 2);
        s.plan();
        assert!(s.deployments.is_empty(), "restart finished");
    }

    #[test]
    fn deleting_stops_everything_then_forgets_the_app() {
        let mut s = services();
        s.put_app(
            app(json!({"id": "/web", "cmd": "x", "instances": 2})),
            false,
        )
        .ok()
        .unwrap();
        let tasks = run(&mut s, "/web", 2);
        s.plan();
        s.delete_app("/web", false).ok().unwrap();
        assert_eq!(s.plan().kills.len(), 2);
        for task in &tasks {
            s.update(&TaskStatus::new(task, TaskState::Killed));
        }
        s.plan();
        assert!(!s.apps.contains_key("/web"));
    }
}

//! The services scheduler's state and decisions: apps and their versions, instances, and
//! deployments, recomputed level-triggered after every change (what should run versus what
//! runs), using the pure planners of `agora-plan`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use agora_api::marathon::app::{AppDefinition, VersionInfo};
use agora_api::marathon::time::format_millis;
use agora_api::mesos::TaskStatus;
use agora_store::{Registrar, Store};
use agora_types::TaskState;

use crate::deploy::Deployment;
use crate::groups::GroupRecord;
use crate::health::HealthRecord;

const APPS: &str = "services/apps/";
const GROUPS: &str = "services/groups/";
const DEPLOYMENTS: &str = "services/deployments/";
/// One record per kept version of a group: a whole group per record stays within a ZooKeeper
/// node's limit where all of a group's versions in one would not, at some thousands of apps.
const GROUP_VERSION: &str = "services/group_version/";
/// Where earlier releases kept all of a group's versions in one record; read once and moved.
const OLD_GROUP_VERSIONS: &str = "services/group_versions/";
const INSTANCES: &str = "services/instances/";
const SUBSCRIPTIONS: &str = "services/event_subscriptions";
const MAX_GROUP_VERSIONS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("store: {0}")]
    Store(#[from] agora_store::StoreError),
    #[error(transparent)]
    Registrar(#[from] agora_store::RegistrarFailed),
    #[error("stored record '{0}' is corrupt")]
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

    /// Its service ports: its port mappings' (BRIDGE, USER) or its port definitions'.
    pub fn service_ports(&self) -> Vec<u64> {
        self.definition.service_ports()
    }
}

/// One launched task of an app. Persisted when launched, when first running and when gone, so
/// a restarted scheduler knows each task's version, host and ports.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    #[serde(default)]
    pub kill_requested: bool,
    #[serde(default)]
    pub health: HealthRecord,
    /// Whether the master confirmed it since this process loaded it (explicit reconciliation
    /// asks about the others until it does).
    #[serde(skip)]
    pub confirmed: bool,
    /// The agent's address, where readiness checks reach the task.
    #[serde(default)]
    pub ip: Option<String>,
    /// The task's container's own addresses (a Docker container on a bridge), from its
    /// status updates' `container_status`.
    #[serde(default)]
    pub container_ips: Vec<String>,
    /// Passed its app's readiness check (checked only while a deployment waits for it).
    #[serde(default)]
    pub ready: bool,
    /// The last readiness result, in Marathon's `readinessCheckResults` shape.
    #[serde(skip)]
    pub readiness: Option<Value>,
    /// Since when (epoch millis) the task has been unreachable.
    #[serde(default)]
    pub unreachable_since: Option<i64>,
    /// Unreachable past `inactiveAfterSeconds`: replaced, though still listed.
    #[serde(default)]
    pub inactive: bool,
}

/// The addresses in a Mesos `ContainerStatus` (`network_infos[].ip_addresses[].ip_address`).
pub(crate) fn container_addresses(status: &Value) -> Vec<String> {
    status["network_infos"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|info| info["ip_addresses"].as_array().into_iter().flatten())
        .filter_map(|address| address["ip_address"].as_str())
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned)
        .collect()
}

impl Instance {
    /// Marathon's `ipAddresses`: the container's own addresses when it has any (a bridge),
    /// else its agent's.
    pub(crate) fn ip_addresses(&self) -> Value {
        let addresses: Vec<&String> = if self.container_ips.is_empty() {
            self.ip.iter().collect()
        } else {
            self.container_ips.iter().collect()
        };
        Value::Array(
            addresses
                .into_iter()
                .map(|ip| {
                    let protocol = if ip.contains(':') { "IPv6" } else { "IPv4" };
                    serde_json::json!({"ipAddress": ip, "protocol": protocol})
                })
                .collect(),
        )
    }

    /// A task of `app_id` at `version`, in `state` since `staged_at`, with no history yet.
    pub fn new(
        task_id: &str,
        app_id: &str,
        version: &str,
        state: TaskState,
        staged_at: &str,
    ) -> Instance {
        Instance {
            task_id: task_id.to_owned(),
            app_id: app_id.to_owned(),
            version: version.to_owned(),
            agent_id: String::new(),
            host: String::new(),
            ports: Vec::new(),
            state,
            staged_at: staged_at.to_owned(),
            started_at: None,
            kill_requested: false,
            health: HealthRecord::default(),
            confirmed: true,
            ip: None,
            container_ips: Vec::new(),
            ready: false,
            readiness: None,
            unreachable_since: None,
            inactive: false,
        }
    }

    pub fn active(&self) -> bool {
        !self.state.is_terminal() && !self.kill_requested && !self.inactive
    }

    /// Running and, when the app has health checks, reported alive.
    pub fn healthy(&self, checked: bool) -> bool {
        self.state == TaskState::Running && (!checked || self.health.alive == Some(true))
    }
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
    /// The last offers that did not fit, newest last, in Marathon's shape.
    pub last_unused: std::collections::VecDeque<Value>,
}

/// One event of Marathon's event bus (`/v2/events`).
#[derive(Clone, Debug)]
pub(crate) struct BusEvent {
    pub kind: &'static str,
    pub data: Value,
}

/// What an app may ask of the hosts it runs on, checked when it is defined.
#[derive(Clone, Debug, Default)]
pub(crate) struct Admission {
    /// What Docker apps may ask (`--docker-allow`).
    pub docker: agora_api::docker_policy::DockerPolicy,
    /// Where secrets are (`--secrets-dir`); without it an app naming one is refused.
    pub secrets: Option<Arc<agora_secrets::SecretsDir>>,
}

pub(crate) struct Services {
    /// Writes go to the registrar, off this lock; the HTTP layer answers a change once it is
    /// durable.
    registrar: Registrar,
    /// What apps may ask of their hosts: Docker's reach, secrets.
    pub admission: Admission,
    /// Marathon's event bus; SSE subscribers each hold a receiver.
    pub events: tokio::sync::broadcast::Sender<BusEvent>,
    pub apps: BTreeMap<String, App>,
    /// Groups created through the API (others exist implicitly above apps).
    pub groups: BTreeMap<String, GroupRecord>,
    /// Each group's versions (oldest first) as group bodies, for rollback.
    pub group_versions: BTreeMap<String, Vec<(String, Value)>>,
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
    /// HTTP callback URLs of `/v2/eventSubscriptions`.
    pub subscriptions: Vec<String>,
    /// Unreachable instances expunged by their app's unreachableStrategy: if one comes back,
    /// it is killed.
    pub expunged: BTreeSet<String>,
    /// Instances changed since the last [`Services::flush_instances`].
    dirty_instances: BTreeSet<String>,
    pub counters: Counters,
}

/// Totals since this process started.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters {
    pub launched: u64,
    pub kills: u64,
    pub failures: u64,
    pub health_kills: u64,
}

/// One kept version of a group, as `GET /v2/groups/<id>/versions/<version>` answers it.
#[derive(serde::Serialize, serde::Deserialize)]
struct GroupVersionRecord {
    id: String,
    version: String,
    group: Value,
}

fn group_version_key(id: &str, version: &str) -> String {
    // Versions never hold '@' or '/', so the last '@' splits a key unambiguously.
    format!("{GROUP_VERSION}{}@{version}", id.trim_start_matches('/'))
}

type LoadAll<T> = fn(&dyn Store, &str) -> Result<Vec<T>, ServicesError>;

/// Every group's kept versions, oldest first; versions kept in the earlier one-record-per-group
/// form are moved to one record each.
fn load_group_versions(
    registrar: &Registrar,
    load_group_version: LoadAll<GroupVersionRecord>,
    load_old: LoadAll<(String, Vec<(String, Value)>)>,
) -> Result<BTreeMap<String, Vec<(String, Value)>>, ServicesError> {
    let store = registrar.store();
    let mut versions: BTreeMap<String, Vec<(String, Value)>> = BTreeMap::new();
    for record in load_group_version(store, GROUP_VERSION)? {
        versions
            .entry(record.id)
            .or_default()
            .push((record.version, record.group));
    }
    let mut moves = Vec::new();
    for (id, old) in load_old(store, OLD_GROUP_VERSIONS)? {
        moves.push((
            format!("{OLD_GROUP_VERSIONS}{}", id.trim_start_matches('/')),
            None,
        ));
        let kept = versions.entry(id.clone()).or_default();
        for (version, group) in old {
            if kept.iter().any(|(v, _)| *v == version) {
                continue;
            }
            let record = GroupVersionRecord {
                id: id.clone(),
                version,
                group,
            };
            let bytes = serde_json::to_vec(&record)
                .map_err(|_| ServicesError::Corrupt(group_version_key(&id, &record.version)))?;
            moves.push((group_version_key(&id, &record.version), Some(bytes)));
            kept.push((record.version, record.group));
        }
    }
    for (id, kept) in versions.iter_mut() {
        // Marathon's version strings are fixed-width UTC timestamps: text order is time order.
        kept.sort_by(|a, b| a.0.cmp(&b.0));
        let excess = kept.len().saturating_sub(MAX_GROUP_VERSIONS);
        for (version, _) in kept.drain(..excess) {
            let key = group_version_key(id, &version);
            moves.retain(|(written, _)| *written != key);
            moves.push((key, None));
        }
    }
    if !moves.is_empty() {
        // New records first, then deletions: a crash between them (a store may split a large
        // batch) leaves versions in both forms, which the next load merges again.
        moves.sort_by_key(|(_, value)| value.is_none());
        registrar.write(moves).wait()?;
    }
    Ok(versions)
}

impl Services {
    pub fn load(registrar: Registrar) -> Result<Services, ServicesError> {
        let store = registrar.store();
        fn load_all<T: serde::de::DeserializeOwned>(
            store: &dyn Store,
            prefix: &str,
        ) -> Result<Vec<T>, ServicesError> {
            store
                .list(prefix)?
                .into_iter()
                .map(|(key, value)| {
                    serde_json::from_slice(&value).map_err(|_| ServicesError::Corrupt(key))
                })
                .collect()
        }
        let apps = load_all::<App>(store, APPS)?
            .into_iter()
            .map(|app| (app.definition.id.clone(), app))
            .collect();
        let groups = load_all::<GroupRecord>(store, GROUPS)?
            .into_iter()
            .map(|group| (group.id.clone(), group))
            .collect();
        let deployments = load_all::<Deployment>(store, DEPLOYMENTS)?
            .into_iter()
            .map(|deployment| (deployment.id.clone(), deployment))
            .collect();
        let instances = load_all::<Instance>(store, INSTANCES)?
            .into_iter()
            .map(|instance| (instance.task_id.clone(), instance))
            .collect();
        let subscriptions = match store.get(SUBSCRIPTIONS)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| ServicesError::Corrupt(SUBSCRIPTIONS.into()))?,
            None => Vec::new(),
        };
        let group_versions = load_group_versions(&registrar, load_all, load_all)?;
        Ok(Services {
            admission: Admission::default(),
            events: tokio::sync::broadcast::channel(1024).0,
            registrar,
            apps,
            groups,
            group_versions,
            instances,
            deployments,
            framework_id: None,
            pending_kills: Vec::new(),
            last_version_millis: 0,
            backoffs: BTreeMap::new(),
            offer_stats: BTreeMap::new(),
            waiting_since: BTreeMap::new(),
            queued: BTreeMap::new(),
            last_failures: BTreeMap::new(),
            subscriptions,
            expunged: BTreeSet::new(),
            dirty_instances: BTreeSet::new(),
            counters: Counters::default(),
        })
    }

    pub(crate) fn next_version(&mut self) -> String {
        self.last_version_millis = now_millis().max(self.last_version_millis + 1);
        format_millis(self.last_version_millis)
    }

    pub(crate) fn persist(&self, app_id: &str) {
        let key = format!("{APPS}{}", app_id.trim_start_matches('/'));
        self.save(&key, self.apps.get(app_id));
    }

    pub(crate) fn persist_group(&self, group_id: &str, record: Option<&GroupRecord>) {
        let key = format!("{GROUPS}{}", group_id.trim_start_matches('/'));
        self.save(&key, record);
    }

    pub(crate) fn persist_deployment(&self, id: &str) {
        self.save(&format!("{DEPLOYMENTS}{id}"), self.deployments.get(id));
    }

    /// Adds an HTTP callback subscriber; `false` if it was already subscribed.
    pub(crate) fn subscribe(&mut self, url: &str) -> bool {
        if self.subscriptions.iter().any(|u| u == url) {
            return false;
        }
        self.subscriptions.push(url.to_owned());
        self.save(SUBSCRIPTIONS, Some(&self.subscriptions));
        true
    }

    /// Removes an HTTP callback subscriber; `false` if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, url: &str) -> bool {
        let before = self.subscriptions.len();
        self.subscriptions.retain(|u| u != url);
        self.save(SUBSCRIPTIONS, Some(&self.subscriptions));
        self.subscriptions.len() != before
    }

    /// Marks an instance to be written (or deleted) by the next flush.
    pub(crate) fn touch_instance(&mut self, task_id: &str) {
        self.dirty_instances.insert(task_id.to_owned());
    }

    /// Writes every changed instance in one batch. Called before launches go out (so a
    /// restarted scheduler knows every task it launched) and otherwise once a second.
    pub(crate) fn flush_instances(&mut self) {
        if self.dirty_instances.is_empty() {
            return;
        }
        let mut writes = Vec::with_capacity(self.dirty_instances.len());
        for task_id in std::mem::take(&mut self.dirty_instances) {
            let key = format!("{INSTANCES}{task_id}");
            let value = self
                .instances
                .get(&task_id)
                .and_then(|instance| serde_json::to_vec(instance).ok());
            writes.push((key, value));
        }
        drop(self.registrar.write(writes));
    }

    /// Tasks loaded from the store that the master has not confirmed yet.
    pub(crate) fn unconfirmed(&self) -> Vec<(String, Option<String>)> {
        self.instances
            .values()
            .filter(|i| !i.confirmed)
            .map(|i| {
                (
                    i.task_id.clone(),
                    Some(i.agent_id.clone()).filter(|a| !a.is_empty()),
                )
            })
            .collect()
    }

    /// Keeps group `id` as it is now as its version `version`.
    pub(crate) fn record_group_version(&mut self, id: &str, version: &str) {
        let snapshot = self.group_json(id, version, |app| {
            serde_json::to_value(&app.definition).unwrap_or_default()
        });
        let versions = self.group_versions.entry(id.to_owned()).or_default();
        let mut writes = Vec::with_capacity(2);
        if versions.len() >= MAX_GROUP_VERSIONS {
            let (dropped, _) = versions.remove(0);
            writes.push((group_version_key(id, &dropped), None));
        }
        let record = GroupVersionRecord {
            id: id.to_owned(),
            version: version.to_owned(),
            group: snapshot,
        };
        match serde_json::to_vec(&record) {
            Ok(bytes) => writes.push((group_version_key(id, version), Some(bytes))),
            Err(error) => tracing::error!(%error, id, "cannot encode a group version"),
        }
        versions.push((record.version, record.group));
        drop(self.registrar.write(writes));
    }

    /// Queues the write (or, for `None`, the deletion) of one record; a store that fails stops
    /// the scheduler (its binary watches the registrar).
    fn save<T: serde::Serialize>(&self, key: &str, value: Option<&T>) {
        let write = match value {
            Some(value) => match serde_json::to_vec(value) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    tracing::error!(%error, key, "cannot encode a record");
                    return;
                }
            },
            None => None,
        };
        drop(self.registrar.write(vec![(key.to_owned(), write)]));
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

    /// A status update for one of our tasks.
    pub fn update(&mut self, status: &TaskStatus) {
        let task_id = status.task_id.value.as_str();
        let state = status.state;
        let agent_id = status.agent_id.as_ref().map(|a| a.value.as_str());
        let now = format_millis(now_millis());
        let Some(live) = self.instances.get_mut(task_id) else {
            if state.is_terminal() {
                self.expunged.remove(task_id);
            } else if self.expunged.contains(task_id) {
                // Given up on while unreachable and replaced: it must not run twice.
                self.pending_kills.push(task_id.to_owned());
                self.emit(
                    "unknown_instance_terminated_event",
                    serde_json::json!({"instanceId": task_id, "runSpecId": "", "condition": "Killing"}),
                );
            } else {
                self.adopt(task_id, state, agent_id, &now);
            }
            return;
        };
        live.confirmed = true;
        let addresses = status
            .container_status
            .as_ref()
            .map(container_addresses)
            .unwrap_or_default();
        if !addresses.is_empty() {
            live.container_ips = addresses;
        }
        let instance = live.clone();
        self.emit(
            "status_update_event",
            serde_json::json!({
                "slaveId": agent_id.unwrap_or(&instance.agent_id),
                "taskId": task_id,
                "taskStatus": state,
                "message": status.message.as_deref().unwrap_or_default(),
                "appId": instance.app_id,
                "host": instance.host,
                "ipAddresses": instance.ip_addresses(),
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
        // The master no longer knows it (a restart lost it, or it never arrived): gone too.
        let gone = state.is_terminal() || state == TaskState::Unknown;
        if let Some(healthy) = status.healthy
            && !gone
        {
            self.health_verdict(&instance, healthy, status.message.as_deref(), &now);
        }
        if gone {
            self.instances.remove(task_id);
            self.touch_instance(task_id);
            let killed_unhealthy = status.healthy == Some(false)
                && status.reason.as_deref() == Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED");
            if killed_unhealthy {
                self.counters.health_kills += 1;
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
                self.counters.failures += 1;
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
            if state == TaskState::Unreachable {
                if live.unreachable_since.is_none() {
                    live.unreachable_since = Some(now_millis());
                    self.dirty_instances.insert(task_id.to_owned());
                }
            } else if live.unreachable_since.is_some() {
                // Back (its agent re-registered): active again; a surplus is scaled away.
                live.unreachable_since = None;
                live.inactive = false;
                self.dirty_instances.insert(task_id.to_owned());
            }
            if state == TaskState::Running && live.started_at.is_none() {
                live.started_at = Some(now);
                self.touch_instance(task_id);
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
        if changed {
            // Durable at once (not with the next second's flush): a scheduler taking over
            // right after still knows which tasks the proxies may route to.
            self.touch_instance(task_id);
            self.flush_instances();
        }
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
        let mut instance = Instance::new(task_id, &app.definition.id, app.version(), state, now);
        instance.agent_id = agent_id.unwrap_or_default().to_owned();
        instance.started_at = (state == TaskState::Running).then(|| now.to_owned());
        self.instances.insert(task_id.to_owned(), instance);
        self.touch_instance(task_id);
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
        let until_millis = now_millis().saturating_add((delay * 1000.0) as i64);
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

    /// Gauges of the current state and the counters, for the master's `/metrics`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let count =
            |state: TaskState| self.instances.values().filter(|i| i.state == state).count() as f64;
        let groups = crate::groups::group_ids(
            self.apps.keys().map(String::as_str),
            self.groups.keys().map(String::as_str),
        );
        let unhealthy = self
            .instances
            .values()
            .filter(|i| i.health.alive == Some(false))
            .count();
        vec![
            ("services/apps".into(), self.apps.len() as f64),
            ("services/groups".into(), groups.len() as f64),
            ("services/deployments".into(), self.deployments.len() as f64),
            (
                "services/instances_running".into(),
                count(TaskState::Running),
            ),
            (
                "services/instances_staged".into(),
                count(TaskState::Staging) + count(TaskState::Starting),
            ),
            (
                "services/instances_unreachable".into(),
                count(TaskState::Unreachable),
            ),
            ("services/instances_unhealthy".into(), unhealthy as f64),
            (
                "services/queue_size".into(),
                self.queued.values().map(|c| f64::from(*c)).sum(),
            ),
            (
                "services/apps_delayed".into(),
                self.backoffs
                    .values()
                    .filter(|b| b.until_millis > now_millis())
                    .count() as f64,
            ),
            (
                "services/event_subscriptions".into(),
                self.subscriptions.len() as f64,
            ),
            (
                "services/launched_total".into(),
                self.counters.launched as f64,
            ),
            ("services/kills_total".into(), self.counters.kills as f64),
            (
                "services/failures_total".into(),
                self.counters.failures as f64,
            ),
            (
                "services/health_kills_total".into(),
                self.counters.health_kills as f64,
            ),
        ]
    }

    pub fn launched(&mut self, instance: Instance) {
        self.counters.launched += 1;
        self.touch_instance(&instance.task_id);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_the_container_status_else_the_agent() {
        let status = serde_json::json!({
            "container_id": {"value": "c"},
            "network_infos": [
                {"ip_addresses": [{"protocol": "IPv4", "ip_address": "172.17.0.3"}]},
                {"ip_addresses": [{"ip_address": "fd00::3"}, {"ip_address": ""}]},
                {"name": "no addresses"}
            ]
        });
        assert_eq!(container_addresses(&status), ["172.17.0.3", "fd00::3"]);
        assert!(container_addresses(&serde_json::json!({})).is_empty());

        let mut instance = Instance::new("t", "/a", "v", TaskState::Running, "now");
        assert_eq!(instance.ip_addresses(), serde_json::json!([]));
        instance.ip = Some("10.0.0.2".into());
        assert_eq!(
            instance.ip_addresses(),
            serde_json::json!([{"ipAddress": "10.0.0.2", "protocol": "IPv4"}])
        );
        instance.container_ips = container_addresses(&status);
        assert_eq!(
            instance.ip_addresses(),
            serde_json::json!([
                {"ipAddress": "172.17.0.3", "protocol": "IPv4"},
                {"ipAddress": "fd00::3", "protocol": "IPv6"}
            ])
        );
    }

    fn version(i: usize) -> String {
        format!("2026-12-07T13:{:02}:{:02}.000Z", i / 60, i % 60)
    }

    #[test]
    fn group_versions_kept_in_one_record_move_to_one_record_each() {
        let store = Arc::new(agora_store::MemoryStore::new());
        let old: Vec<(String, Value)> = (0..3)
            .map(|i| (version(i), serde_json::json!({"id": "/g", "n": i})))
            .collect();
        let record = serde_json::to_vec(&("/g".to_owned(), old)).unwrap();
        store.put("services/group_versions/g", &record).unwrap();

        let registrar = agora_store::Registrar::spawn(store.clone()).unwrap();
        let services = Services::load(registrar).unwrap();
        let kept: Vec<&String> = services.group_versions["/g"]
            .iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(kept, [&version(0), &version(1), &version(2)]);
        assert!(store.list("services/group_versions/").unwrap().is_empty());
        assert_eq!(store.list("services/group_version/").unwrap().len(), 3);

        // Loaded again from the moved records, it is the same.
        let again = Services::load(agora_store::Registrar::spawn(store.clone()).unwrap()).unwrap();
        assert_eq!(again.group_versions, services.group_versions);
    }

    #[test]
    fn a_group_keeps_its_last_versions_each_in_its_own_record() {
        let store = Arc::new(agora_store::MemoryStore::new());
        let registrar = agora_store::Registrar::spawn(store.clone()).unwrap();
        let mut services = Services::load(registrar.clone()).unwrap();
        for i in 0..MAX_GROUP_VERSIONS + 5 {
            services.record_group_version("/", &version(i));
        }
        registrar.barrier().wait().unwrap();
        let stored = store.list("services/group_version/").unwrap();
        assert_eq!(stored.len(), MAX_GROUP_VERSIONS);
        assert_eq!(
            stored[0].0,
            format!("services/group_version/@{}", version(5))
        );

        let again = Services::load(agora_store::Registrar::spawn(store).unwrap()).unwrap();
        let kept: Vec<&String> = again.group_versions["/"].iter().map(|(v, _)| v).collect();
        assert_eq!(kept.len(), MAX_GROUP_VERSIONS);
        assert_eq!(kept[0], &version(5));
        assert_eq!(
            kept[MAX_GROUP_VERSIONS - 1],
            &version(MAX_GROUP_VERSIONS + 4)
        );
    }

    #[test]
    fn versions_in_both_forms_past_the_limit_leave_only_the_kept_ones_stored() {
        let store = Arc::new(agora_store::MemoryStore::new());
        let registrar = agora_store::Registrar::spawn(store.clone()).unwrap();
        let mut services = Services::load(registrar.clone()).unwrap();
        for i in 0..MAX_GROUP_VERSIONS {
            services.record_group_version("/", &version(100 + i));
        }
        registrar.barrier().wait().unwrap();
        // Older versions in the earlier form, as a downgraded release would have left them.
        let old: Vec<(String, Value)> = (0..10)
            .map(|i| (version(i), serde_json::json!({"id": "/"})))
            .collect();
        store
            .put(
                "services/group_versions/",
                &serde_json::to_vec(&("/".to_owned(), old)).unwrap(),
            )
            .unwrap();

        let again = Services::load(agora_store::Registrar::spawn(store.clone()).unwrap()).unwrap();
        assert_eq!(again.group_versions["/"].len(), MAX_GROUP_VERSIONS);
        assert_eq!(again.group_versions["/"][0].0, version(100));
        let stored = store.list("services/group_version/").unwrap();
        assert_eq!(
            stored.len(),
            MAX_GROUP_VERSIONS,
            "no record of a dropped version stays"
        );
        assert!(store.list("services/group_versions/").unwrap().is_empty());
    }
}

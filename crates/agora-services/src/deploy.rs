//! Deployments: every change to apps or groups becomes one deployment with ordered steps
//! (stops first, dependants before their dependencies; then starts, scales and restarts,
//! dependencies before their dependants). `plan()` is level-triggered: after any event it
//! recomputes, for every app whose step has come, what to kill and how many instances to
//! launch, and advances steps whose apps reached their target.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use agora_api::marathon::app::{AppDefinition, UnreachableStrategy, VersionInfo};
use agora_api::marathon::time::format_millis;
use agora_plan::dependencies;
use agora_plan::rolling::{RollingRestart, UpgradeStrategy, next_step};

use crate::core::{App, Instance, Services, now_millis};
use crate::groups::{self, GroupRecord};

const MAX_VERSIONS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) enum Action {
    Start,
    Scale,
    Restart { min_healthy: u32, max_capacity: u32 },
    Stop,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "StartApplication",
            Action::Scale => "ScaleApplication",
            Action::Restart { .. } => "RestartApplication",
            Action::Stop => "StopApplication",
        }
    }
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct Deployment {
    pub id: String,
    pub version: String,
    /// In order; each step's actions run together.
    pub steps: Vec<Vec<(String, Action)>>,
    /// The step in progress (0-based).
    pub current_step: usize,
    /// Every affected app as it was before (`None`: the deployment created it), for a
    /// reverting cancel.
    pub previous: BTreeMap<String, Option<AppDefinition>>,
    /// The plan in Marathon's event shape (with `original` and `target` root groups). Stored
    /// without the two groups: they grow with every app there is, and a record in ZooKeeper
    /// must stay well under its node limit (events after a restart carry the rest).
    #[serde(serialize_with = "plan_without_groups")]
    pub plan: Value,
}

fn plan_without_groups<S: serde::Serializer>(
    plan: &Value,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match plan.as_object() {
        Some(fields) => {
            use serde::ser::SerializeMap;
            let kept: Vec<(&String, &Value)> = fields
                .iter()
                .filter(|(key, _)| key.as_str() != "original" && key.as_str() != "target")
                .collect();
            let mut map = serializer.serialize_map(Some(kept.len()))?;
            for (key, value) in kept {
                map.serialize_entry(key, value)?;
            }
            map.end()
        }
        None => serde::Serialize::serialize(plan, serializer),
    }
}

impl Deployment {
    pub fn affected_apps(&self) -> Vec<String> {
        let apps: BTreeSet<&String> = self.steps.iter().flatten().map(|(app, _)| app).collect();
        apps.into_iter().cloned().collect()
    }

    /// The step (index) and action of an app in this deployment.
    pub fn action_of(&self, app_id: &str) -> Option<(usize, Action)> {
        self.steps.iter().enumerate().find_map(|(index, step)| {
            step.iter()
                .find(|(app, _)| app == app_id)
                .map(|(_, action)| (index, *action))
        })
    }

    pub fn current_actions(&self) -> &[(String, Action)] {
        self.steps
            .get(self.current_step)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn steps_json(&self) -> Value {
        json!(
            self.steps
                .iter()
                .map(|step| json!({"actions": actions_json(step)}))
                .collect::<Vec<_>>()
        )
    }
}

pub(crate) fn actions_json(actions: &[(String, Action)]) -> Vec<Value> {
    actions
        .iter()
        .map(|(app, action)| json!({"action": action.name(), "app": app}))
        .collect()
}

/// One change a deployment makes.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// Create or replace an app's definition.
    Put(Box<AppDefinition>),
    /// A new version with the same definition.
    Restart(String),
    /// Stop an app's instances, then forget it.
    Delete(String),
    /// Create or update a group record (its dependencies).
    Group(GroupRecord),
    /// Forget a group record.
    RemoveGroup(String),
}

pub(crate) enum ChangeError {
    Locked(Vec<String>),
    NotFound,
    /// The change would make the dependency graph cyclic.
    Cycle(String),
}

/// What the framework must do after a change.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Work {
    pub kills: Vec<String>,
    /// Instances to launch per app.
    pub launches: BTreeMap<String, u32>,
}

impl Services {
    fn deployments_of(&self, app_id: &str) -> Vec<String> {
        self.deployments
            .values()
            .filter(|d| d.action_of(app_id).is_some())
            .map(|d| d.id.clone())
            .collect()
    }

    /// Stores a new definition of an app (created or changed) and starts its deployment.
    /// Returns (deployment id, version).
    pub fn put_app(
        &mut self,
        definition: AppDefinition,
        force: bool,
    ) -> Result<(String, String), ChangeError> {
        self.apply(vec![Change::Put(Box::new(definition))], force)
    }

    /// A new version with the same definition: a rolling restart.
    pub fn restart_app(&mut self, id: &str, force: bool) -> Result<(String, String), ChangeError> {
        if !self.apps.contains_key(id) {
            return Err(ChangeError::NotFound);
        }
        self.apply(vec![Change::Restart(id.to_owned())], force)
    }

    pub fn delete_app(&mut self, id: &str, force: bool) -> Result<(String, String), ChangeError> {
        if !self.apps.contains_key(id) {
            return Err(ChangeError::NotFound);
        }
        self.apply(vec![Change::Delete(id.to_owned())], force)
    }

    /// Applies changes as one deployment: refused while an affected app is under another
    /// deployment (unless `force`, which cancels those) or when the dependencies would form a
    /// cycle; nothing is changed when refused. Returns (deployment id, version).
    pub fn apply(
        &mut self,
        changes: Vec<Change>,
        force: bool,
    ) -> Result<(String, String), ChangeError> {
        let affected: BTreeSet<String> = changes
            .iter()
            .filter_map(|change| match change {
                Change::Put(definition) => Some(definition.id.clone()),
                Change::Restart(id) | Change::Delete(id) => Some(id.clone()),
                Change::Group(_) | Change::RemoveGroup(_) => None,
            })
            .collect();
        let locked: BTreeSet<String> = affected
            .iter()
            .flat_map(|app| self.deployments_of(app))
            .collect();
        if !locked.is_empty() && !force {
            return Err(ChangeError::Locked(locked.into_iter().collect()));
        }
        let graph = self.target_graph(&changes)?;

        for id in locked {
            self.abandon(&id, "superseded by a forced change");
        }
        let version = self.next_version();
        let original = self.root_json(&version);
        let mut previous = BTreeMap::new();
        let mut stops = BTreeSet::new();
        let mut others: BTreeMap<String, Action> = BTreeMap::new();
        for change in changes {
            match change {
                Change::Put(definition) => {
                    let id = definition.id.clone();
                    previous
                        .entry(id.clone())
                        .or_insert_with(|| self.apps.get(&id).map(|a| a.definition.clone()));
                    let action = self.put_action(&definition);
                    self.store_definition(*definition, &version, action);
                    others.insert(id, action);
                }
                Change::Restart(id) => {
                    let Some(app) = self.apps.get(&id) else {
                        continue;
                    };
                    let definition = app.definition.clone();
                    previous
                        .entry(id.clone())
                        .or_insert_with(|| Some(definition.clone()));
                    let action = restart_action(&definition, self.active_count(&id));
                    self.store_version(&id, definition, &version, true);
                    others.insert(id, action);
                }
                Change::Delete(id) => {
                    if let Some(app) = self.apps.get(&id) {
                        previous
                            .entry(id.clone())
                            .or_insert_with(|| Some(app.definition.clone()));
                        stops.insert(id);
                    }
                }
                Change::Group(record) => {
                    let mut record = record;
                    record.version = version.clone();
                    self.persist_group(&record.id, Some(&record));
                    self.groups.insert(record.id.clone(), record);
                }
                Change::RemoveGroup(id) => {
                    self.persist_group(&id, None);
                    self.groups.remove(&id);
                }
            }
        }
        let steps = order(&graph, &stops, &others);
        let id = uuid::Uuid::new_v4().to_string();
        let mut deployment = Deployment {
            id: id.clone(),
            version: version.clone(),
            steps,
            current_step: 0,
            previous,
            plan: Value::Null,
        };
        let mut target = self.root_json(&version);
        // Apps being stopped are gone from the target.
        remove_apps(&mut target, &stops);
        deployment.plan = json!({
            "id": id,
            "version": version,
            "original": original,
            "target": target,
            "steps": deployment.steps_json(),
        });
        self.emit(
            "deployment_info",
            json!({
                "plan": deployment.plan,
                "currentStep": {"actions": actions_json(deployment.current_actions())},
            }),
        );
        self.deployments.insert(id.clone(), deployment);
        self.persist_deployment(&id);
        Ok((id, version))
    }

    /// The dependency graph after `changes`; refused if it has a cycle.
    fn target_graph(&self, changes: &[Change]) -> Result<dependencies::Graph, ChangeError> {
        let mut target: BTreeMap<String, AppDefinition> = self
            .apps
            .iter()
            .map(|(id, app)| (id.clone(), app.definition.clone()))
            .collect();
        let mut target_groups = self.groups.clone();
        for change in changes {
            match change {
                Change::Put(definition) => {
                    target.insert(definition.id.clone(), (**definition).clone());
                }
                Change::Group(record) => {
                    target_groups.insert(record.id.clone(), record.clone());
                }
                Change::RemoveGroup(id) => {
                    target_groups.remove(id);
                }
                Change::Restart(_) | Change::Delete(_) => {}
            }
        }
        let graph = groups::dependency_graph(&target, &target_groups);
        dependencies::levels(&graph).map_err(|cycle| ChangeError::Cycle(cycle.to_string()))?;
        Ok(graph)
    }

    /// The deployment action a new definition of an app needs.
    fn put_action(&self, definition: &AppDefinition) -> Action {
        match self.apps.get(&definition.id) {
            None => Action::Start,
            Some(old) if same_except_scale(&old.definition, definition) => Action::Scale,
            Some(_) => restart_action(definition, self.active_count(&definition.id)),
        }
    }

    /// The steps `changes` would deploy, without making them (`dryRun`).
    pub fn preview(&self, changes: &[Change]) -> Result<Vec<Vec<(String, Action)>>, ChangeError> {
        let graph = self.target_graph(changes)?;
        let mut stops = BTreeSet::new();
        let mut others = BTreeMap::new();
        for change in changes {
            match change {
                Change::Put(definition) => {
                    others.insert(definition.id.clone(), self.put_action(definition));
                }
                Change::Restart(id) => {
                    if let Some(app) = self.apps.get(id) {
                        let action = restart_action(&app.definition, self.active_count(id));
                        others.insert(id.clone(), action);
                    }
                }
                Change::Delete(id) if self.apps.contains_key(id) => {
                    stops.insert(id.clone());
                }
                _ => {}
            }
        }
        Ok(order(&graph, &stops, &others))
    }

    /// Stores a definition as the app's new version.
    fn store_definition(&mut self, mut definition: AppDefinition, version: &str, action: Action) {
        let id = definition.id.clone();
        definition.version = Some(version.to_owned());
        definition.version_info = None;
        // Marathon announces the API change before the deployment it starts.
        self.emit(
            "api_post_event",
            json!({
                "clientIp": "",
                "uri": format!("/v2/apps{id}"),
                "appDefinition": serde_json::to_value(&definition).unwrap_or_default(),
            }),
        );
        self.store_version(&id, definition, version, action != Action::Scale);
    }

    fn store_version(
        &mut self,
        id: &str,
        mut definition: AppDefinition,
        version: &str,
        config_change: bool,
    ) {
        definition.version = Some(version.to_owned());
        let previous = self.apps.remove(id);
        let version_info = VersionInfo {
            last_scaling_at: version.to_owned(),
            last_config_change_at: match &previous {
                Some(old) if !config_change => old.version_info.last_config_change_at.clone(),
                _ => version.to_owned(),
            },
        };
        let mut versions = Vec::new();
        if let Some(old) = previous {
            versions = old.versions;
            versions.push(old.definition);
        }
        if versions.len() > MAX_VERSIONS {
            versions.remove(0);
        }
        self.apps.insert(
            id.to_owned(),
            App {
                definition,
                version_info,
                versions,
            },
        );
        self.persist(id);
        // A new configuration deserves a fresh start.
        if config_change {
            self.backoffs.remove(id);
        }
    }

    /// Cancels a deployment: with `force` it just stops; otherwise every affected app goes back
    /// to what it was (or away, if the deployment created it) in a new deployment.
    pub fn cancel_deployment(
        &mut self,
        id: &str,
        force: bool,
    ) -> Result<Option<(String, String)>, ChangeError> {
        let deployment = self.abandon(id, "cancelled").ok_or(ChangeError::NotFound)?;
        if force {
            return Ok(None);
        }
        let changes: Vec<Change> = deployment
            .previous
            .into_iter()
            .filter_map(|(app, previous)| match previous {
                Some(definition) => Some(Change::Put(Box::new(definition))),
                None if self.apps.contains_key(&app) => Some(Change::Delete(app)),
                None => None,
            })
            .collect();
        if changes.is_empty() {
            return Ok(None);
        }
        self.apply(changes, true).map(Some)
    }

    /// Ends a deployment that will not finish, with its one terminal event.
    fn abandon(&mut self, id: &str, reason: &str) -> Option<Deployment> {
        let deployment = self.deployments.remove(id)?;
        self.persist_deployment(id);
        self.emit(
            "deployment_failed",
            json!({"id": id, "plan": deployment.plan, "reason": reason}),
        );
        Some(deployment)
    }

    fn active_count(&self, app_id: &str) -> u32 {
        self.instances
            .values()
            .filter(|i| i.app_id == app_id && i.active())
            .count() as u32
    }

    /// Recomputes what must happen for every app: kills to send (marked as requested) and
    /// launches wanted; advances deployments whose current step reached its target.
    pub fn plan(&mut self) -> Work {
        let mut work = Work {
            kills: std::mem::take(&mut self.pending_kills),
            ..Work::default()
        };
        self.expire_unreachable(now_millis());
        // Steps first: a finished step lets the next one act in this same round.
        self.advance_deployments();
        let app_ids: Vec<String> = self.apps.keys().cloned().collect();
        for app_id in app_ids {
            self.plan_app(&app_id, &mut work);
        }
        self.advance_deployments();
        self.counters.kills += work.kills.len() as u64;
        work
    }

    /// The action an app is under, or `None` when its step has not come yet (it waits as it
    /// is). Apps outside any deployment heal towards their definition (a scale).
    /// Applies each app's unreachableStrategy: an instance unreachable for
    /// `inactiveAfterSeconds` is replaced (while still listed), and after
    /// `expungeAfterSeconds` forgotten (killed if it ever comes back). `"disabled"` waits forever.
    fn expire_unreachable(&mut self, now: i64) {
        let mut inactive = Vec::new();
        let mut expunge = Vec::new();
        for instance in self.instances.values() {
            let Some(since) = instance.unreachable_since else {
                continue;
            };
            let Some(app) = self.apps.get(&instance.app_id) else {
                continue;
            };
            let UnreachableStrategy::Policy {
                inactive_after_seconds,
                expunge_after_seconds,
            } = app.definition.unreachable_strategy
            else {
                continue;
            };
            let elapsed = now - since;
            if elapsed >= expunge_after_seconds.max(0) * 1000 {
                expunge.push(instance.clone());
            } else if !instance.inactive && elapsed >= inactive_after_seconds.max(0) * 1000 {
                inactive.push(instance.clone());
            }
        }
        for instance in inactive {
            if let Some(live) = self.instances.get_mut(&instance.task_id) {
                live.inactive = true;
            }
            self.touch_instance(&instance.task_id);
            self.emit_condition(&instance, "UnreachableInactive");
        }
        for instance in expunge {
            tracing::info!(task = %instance.task_id, app = %instance.app_id, "unreachable instance expunged");
            self.instances.remove(&instance.task_id);
            self.touch_instance(&instance.task_id);
            self.expunged.insert(instance.task_id.clone());
            self.emit_condition(&instance, "Gone");
        }
    }

    fn emit_condition(&self, instance: &Instance, condition: &str) {
        self.emit(
            "instance_changed_event",
            json!({
                "instanceId": instance.task_id,
                "condition": condition,
                "runSpecId": instance.app_id,
                "agentId": instance.agent_id,
                "slaveId": instance.agent_id,
                "host": instance.host,
                "runSpecVersion": instance.version,
            }),
        );
    }

    /// With the action, the version of the deployment it belongs to (its new instances are
    /// the ones readiness checks hold back).
    fn current_action(&self, app_id: &str) -> Option<(Action, Option<String>)> {
        for deployment in self.deployments.values() {
            if let Some((step, action)) = deployment.action_of(app_id) {
                return (step <= deployment.current_step)
                    .then(|| (action, Some(deployment.version.clone())));
            }
        }
        Some((Action::Scale, None))
    }

    fn plan_app(&mut self, app_id: &str, work: &mut Work) {
        let Some((action, deployment_version)) = self.current_action(app_id) else {
            self.queued.remove(app_id);
            return;
        };
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let wanted = app.definition.instances.max(0) as u32;
        let checked = !app.definition.health_checks.is_empty();
        let kill_oldest = app.definition.kill_selection == "OLDEST_FIRST";
        let mut active: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| i.app_id == app_id && i.active())
            .collect();
        // Kill preference: not yet healthy first, then by age per killSelection. Sorted only
        // when something is to be killed: planning runs after every burst of updates.
        let kill_order = |instances: &mut Vec<&Instance>| {
            instances.sort_by(|a, b| {
                let healthy = |i: &Instance| i.healthy(checked);
                healthy(a).cmp(&healthy(b)).then_with(|| {
                    if kill_oldest {
                        a.staged_at.cmp(&b.staged_at)
                    } else {
                        b.staged_at.cmp(&a.staged_at)
                    }
                })
            })
        };
        let (mut kills, launch): (Vec<String>, u32) = match action {
            Action::Stop => (active.iter().map(|i| i.task_id.clone()).collect(), 0),
            Action::Restart {
                min_healthy,
                max_capacity,
            } => {
                let (mut old, new): (Vec<&Instance>, Vec<&Instance>) =
                    active.iter().partition(|i| !app.is_current(&i.version));
                let new_healthy = new
                    .iter()
                    .filter(|i| progressed(app, i, deployment_version.as_deref()))
                    .count() as u32;
                // Old instances asked to die still hold their place until they are gone.
                let old_dying = self
                    .instances
                    .values()
                    .filter(|i| {
                        i.app_id == app_id
                            && i.kill_requested
                            && !i.state.is_terminal()
                            && !app.is_current(&i.version)
                    })
                    .count() as u32;
                let step = next_step(
                    wanted,
                    min_healthy,
                    max_capacity,
                    old.len() as u32,
                    old_dying,
                    new_healthy,
                    new.len() as u32,
                );
                if step.kill_old > 0 {
                    kill_order(&mut old);
                }
                let kills = old
                    .iter()
                    .take(step.kill_old as usize)
                    .map(|i| i.task_id.clone())
                    .collect();
                (kills, step.start_new)
            }
            Action::Start | Action::Scale => {
                let count = active.len() as u32;
                if count > wanted {
                    kill_order(&mut active);
                    let kills = active
                        .iter()
                        .take((count - wanted) as usize)
                        .map(|i| i.task_id.clone())
                        .collect();
                    (kills, 0)
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
    }

    /// Whether an app reached what its action asks for.
    fn action_done(&self, app_id: &str, action: Action, deployment_version: &str) -> bool {
        let live: Vec<&Instance> = self
            .instances
            .values()
            .filter(|i| i.app_id == app_id && !i.state.is_terminal())
            .collect();
        let Some(app) = self.apps.get(app_id) else {
            return live.is_empty();
        };
        if action == Action::Stop {
            return live.is_empty();
        }
        live.len() == app.definition.instances.max(0) as usize
            && live.iter().all(|i| {
                app.is_current(&i.version)
                    && progressed(app, i, Some(deployment_version))
                    && !i.kill_requested
            })
    }

    fn advance_deployments(&mut self) {
        let ids: Vec<String> = self.deployments.keys().cloned().collect();
        for id in ids {
            while let Some(deployment) = self.deployments.get(&id) {
                let actions = deployment.current_actions().to_vec();
                let version = deployment.version.clone();
                if !actions
                    .iter()
                    .all(|(app, action)| self.action_done(app, *action, &version))
                {
                    break;
                }
                let plan = deployment.plan.clone();
                self.emit(
                    "deployment_step_success",
                    json!({"plan": plan, "currentStep": {"actions": actions_json(&actions)}}),
                );
                for (app, action) in &actions {
                    if *action == Action::Stop {
                        self.forget_app(app);
                    }
                }
                let Some(deployment) = self.deployments.get_mut(&id) else {
                    break;
                };
                deployment.current_step += 1;
                if deployment.current_step >= deployment.steps.len() {
                    tracing::info!(deployment = %id, "deployment finished");
                    self.deployments.remove(&id);
                    self.emit("deployment_success", json!({"id": id, "plan": plan}));
                    self.persist_deployment(&id);
                    break;
                }
                self.persist_deployment(&id);
                let next = self
                    .deployments
                    .get(&id)
                    .map(|d| actions_json(d.current_actions()))
                    .unwrap_or_default();
                self.emit(
                    "deployment_info",
                    json!({"plan": plan, "currentStep": {"actions": next}}),
                );
            }
        }
    }

    fn forget_app(&mut self, app_id: &str) {
        self.emit("app_terminated_event", json!({"appId": app_id}));
        self.apps.remove(app_id);
        let tasks: Vec<String> = self
            .instances
            .values()
            .filter(|i| i.app_id == app_id)
            .map(|i| i.task_id.clone())
            .collect();
        for task_id in tasks {
            self.instances.remove(&task_id);
            self.touch_instance(&task_id);
        }
        self.backoffs.remove(app_id);
        self.last_failures.remove(app_id);
        self.queued.remove(app_id);
        self.persist(app_id);
    }

    /// The root group as it is now.
    pub fn root_json(&self, default_version: &str) -> Value {
        self.group_json("/", default_version, |app| {
            serde_json::to_value(&app.definition).unwrap_or_default()
        })
    }

    /// Group `id` as Marathon shows it, apps rendered by `render`.
    pub fn group_json(
        &self,
        id: &str,
        default_version: &str,
        render: impl Fn(&App) -> Value,
    ) -> Value {
        let apps: BTreeMap<String, Value> = self
            .apps
            .iter()
            .map(|(id, app)| (id.clone(), render(app)))
            .collect();
        let versions: BTreeMap<String, String> = self
            .apps
            .iter()
            .map(|(id, app)| (id.clone(), app.version().to_owned()))
            .collect();
        groups::tree(id, &apps, &versions, &self.groups, default_version)
    }
}

/// Deployment steps: stops first (dependants before their dependencies), then the other
/// actions (dependencies first).
fn order(
    graph: &dependencies::Graph,
    stops: &BTreeSet<String>,
    others: &BTreeMap<String, Action>,
) -> Vec<Vec<(String, Action)>> {
    // The graph was checked for cycles: these cannot fail.
    let stop_steps = dependencies::steps(graph, stops, true).unwrap_or_default();
    let other_ids: BTreeSet<String> = others.keys().cloned().collect();
    let other_steps = dependencies::steps(graph, &other_ids, false).unwrap_or_default();
    let with = |steps: Vec<Vec<String>>, action: &dyn Fn(&str) -> Action| {
        steps
            .into_iter()
            .map(|step| {
                step.into_iter()
                    .map(|app| {
                        let action = action(&app);
                        (app, action)
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let mut steps = with(stop_steps, &|_| Action::Stop);
    steps.extend(with(other_steps, &|app| {
        others.get(app).copied().unwrap_or(Action::Scale)
    }));
    steps
}

/// Whether an instance counts toward a deployment: running and healthy (when the app has a
/// health check) and, if the deployment started it and the app has a readiness check, ready.
fn progressed(app: &App, instance: &Instance, deployment_version: Option<&str>) -> bool {
    let checked = !app.definition.health_checks.is_empty();
    let held_back = !app.definition.readiness_checks.is_empty()
        && deployment_version == Some(instance.version.as_str())
        && !instance.ready;
    instance.healthy(checked) && !held_back
}

fn remove_apps(group: &mut Value, stops: &BTreeSet<String>) {
    if let Some(apps) = group.get_mut("apps").and_then(Value::as_array_mut) {
        apps.retain(|app| {
            app.get("id")
                .and_then(Value::as_str)
                .is_none_or(|id| !stops.contains(id))
        });
    }
    if let Some(subgroups) = group.get_mut("groups").and_then(Value::as_array_mut) {
        for subgroup in subgroups {
            remove_apps(subgroup, stops);
        }
    }
}

/// Whether two definitions differ only in `instances` (and bookkeeping fields).
fn same_except_scale(old: &AppDefinition, new: &AppDefinition) -> bool {
    let mut new = new.clone();
    new.instances = old.instances;
    same_definition(old, &new)
}

/// Whether two definitions are the same but for their version.
pub(crate) fn same_definition(old: &AppDefinition, new: &AppDefinition) -> bool {
    let mut old = old.clone();
    let mut new = new.clone();
    // An app stored before its port mappings were given service ports has 0s where the new
    // definition has the ports just assigned: that is no change to deploy.
    let (old_ports, new_ports) = (old.service_ports(), new.service_ports());
    if old_ports != new_ports
        && old_ports.len() == new_ports.len()
        && old_ports
            .iter()
            .zip(&new_ports)
            .all(|(o, n)| o == n || *o == 0)
    {
        old.set_service_ports(&new_ports);
    }
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
    use agora_types::TaskState;
    use std::sync::Arc;

    fn app(body: Value) -> AppDefinition {
        let mut app = AppDefinition::parse(&body).unwrap();
        app.normalize("/").unwrap();
        app
    }

    #[test]
    fn service_ports_assigned_to_an_older_apps_mappings_are_no_change() {
        let body = json!({"id": "/web", "instances": 1, "container": {"type": "DOCKER",
            "docker": {"image": "x", "network": "BRIDGE", "portMappings": [{"containerPort": 80}]}}});
        let stored = app(body);
        let mut assigned = stored.clone();
        assigned.set_service_ports(&[10000]);
        assert!(
            same_definition(&stored, &assigned),
            "0 became the assigned port"
        );
        let mut moved = assigned.clone();
        moved.set_service_ports(&[10001]);
        assert!(
            !same_definition(&assigned, &moved),
            "a port that changes is a change"
        );
        let mut scaled = assigned.clone();
        scaled.instances = 3;
        assert!(same_except_scale(&stored, &scaled));
    }

    /// Puts an app (as the API would) and expects a deployment.
    fn deploy(s: &mut Services, body: Value) {
        s.put_app(app(body), false).ok().unwrap();
    }

    fn put(body: Value) -> Change {
        Change::Put(Box::new(app(body)))
    }

    fn services() -> Services {
        Services::load(
            agora_store::Registrar::spawn(Arc::new(agora_store::MemoryStore::new())).unwrap(),
        )
        .unwrap()
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
                let staged_at = format_millis(now_millis());
                services.launched(Instance::new(
                    &task_id,
                    app_id,
                    &version,
                    TaskState::Running,
                    &staged_at,
                ));
                task_id
            })
            .collect()
    }

    fn killed(services: &mut Services, tasks: &[String]) {
        for task in tasks {
            services.update(&agora_api::mesos::TaskStatus::new(task, TaskState::Killed));
        }
    }

    #[test]
    fn scale_up_down_and_finish() {
        let mut s = services();
        deploy(&mut s, json!({"id": "/web", "cmd": "x", "instances": 3}));
        assert_eq!(s.plan().launches.get("/web"), Some(&3));
        let deployment = s.deployments.values().next().expect("a deployment");
        assert!(
            deployment.plan["target"].is_object(),
            "the event's plan has the groups"
        );
        let stored = serde_json::to_value(deployment).expect("a record");
        assert!(stored["plan"].get("target").is_none() && stored["plan"].get("original").is_none());
        assert!(stored["plan"]["steps"].is_array());
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
        deploy(&mut s, json!({"id": "/web", "cmd": "x", "instances": 2}));
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
        let strategy = json!({"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.0});
        deploy(
            &mut s,
            json!({"id": "/web", "cmd": "x", "instances": 4, "upgradeStrategy": strategy}),
        );
        run(&mut s, "/web", 4);
        s.plan();
        deploy(
            &mut s,
            json!({"id": "/web", "cmd": "y", "instances": 4, "upgradeStrategy": strategy}),
        );
        // Marathon's example: kill down to the minimum at once; start what capacity allows
        // once the killed ones are gone (never more than four at any moment).
        let work = s.plan();
        assert_eq!((work.kills.len(), work.launches.get("/web")), (2, None));
        assert_eq!(s.plan(), Work::default(), "the dying still count");
        killed(&mut s, &work.kills);
        assert_eq!(s.plan().launches.get("/web"), Some(&2));
        run(&mut s, "/web", 2);
        // Two new ones run: the last old ones go, then the last new ones start.
        let work = s.plan();
        assert_eq!((work.kills.len(), work.launches.get("/web")), (2, None));
        killed(&mut s, &work.kills);
        assert_eq!(s.plan().launches.get("/web"), Some(&2));
        run(&mut s, "/web", 2);
        s.plan();
        assert!(s.deployments.is_empty(), "restart finished");
    }

    #[test]
    fn deleting_stops_everything_then_forgets_the_app() {
        let mut s = services();
        deploy(&mut s, json!({"id": "/web", "cmd": "x", "instances": 2}));
        let tasks = run(&mut s, "/web", 2);
        s.plan();
        s.delete_app("/web", false).ok().unwrap();
        assert_eq!(s.plan().kills.len(), 2);
        killed(&mut s, &tasks);
        s.plan();
        assert!(!s.apps.contains_key("/web"));
    }

    #[test]
    fn dependencies_deploy_in_order() {
        let mut s = services();
        let changes = vec![
            put(
                json!({"id": "/shop/web", "cmd": "x", "instances": 1, "dependencies": ["/shop/db"]}),
            ),
            put(json!({"id": "/shop/db", "cmd": "x", "instances": 1})),
        ];
        s.apply(changes, false).ok().unwrap();
        // Only the dependency launches; the web app waits for it to run.
        let work = s.plan();
        assert_eq!(work.launches.keys().collect::<Vec<_>>(), vec!["/shop/db"]);
        run(&mut s, "/shop/db", 1);
        let work = s.plan();
        assert_eq!(work.launches.keys().collect::<Vec<_>>(), vec!["/shop/web"]);
        run(&mut s, "/shop/web", 1);
        s.plan();
        assert!(s.deployments.is_empty());

        // Deleting both stops the dependant first.
        s.apply(
            vec![
                Change::Delete("/shop/db".into()),
                Change::Delete("/shop/web".into()),
            ],
            false,
        )
        .ok()
        .unwrap();
        let work = s.plan();
        assert_eq!(work.kills.len(), 1);
        assert!(work.kills[0].starts_with("shop_web."));
    }

    #[test]
    fn unreachable_instances_are_replaced_then_expunged_as_the_strategy_says() {
        let mut s = services();
        let strategy = json!({"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20});
        deploy(
            &mut s,
            json!({"id": "/web", "cmd": "x", "instances": 1, "unreachableStrategy": strategy}),
        );
        let task = run(&mut s, "/web", 1).remove(0);
        s.plan();
        let unreachable = agora_api::mesos::TaskStatus::new(&task, TaskState::Unreachable);
        s.update(&unreachable);
        assert!(
            s.plan().launches.is_empty(),
            "within inactiveAfterSeconds: waits"
        );
        let ago = |seconds: i64| Some(now_millis() - seconds * 1000);
        s.instances.get_mut(&task).unwrap().unreachable_since = ago(11);
        assert_eq!(
            s.plan().launches.get("/web"),
            Some(&1),
            "inactive: replaced"
        );
        assert!(s.instances.contains_key(&task), "still listed");
        s.instances.get_mut(&task).unwrap().unreachable_since = ago(21);
        s.plan();
        assert!(!s.instances.contains_key(&task), "expunged");
        // Back from the dead: killed, not adopted.
        s.update(&agora_api::mesos::TaskStatus::new(
            &task,
            TaskState::Running,
        ));
        assert_eq!(s.plan().kills, vec![task.clone()]);
        assert!(!s.instances.contains_key(&task));
    }

    #[test]
    fn a_returning_instance_is_active_again_and_disabled_never_replaces() {
        let mut s = services();
        deploy(
            &mut s,
            json!({"id": "/web", "cmd": "x", "instances": 1, "unreachableStrategy": "disabled"}),
        );
        let task = run(&mut s, "/web", 1).remove(0);
        s.plan();
        s.update(&agora_api::mesos::TaskStatus::new(
            &task,
            TaskState::Unreachable,
        ));
        s.instances.get_mut(&task).unwrap().unreachable_since = Some(now_millis() - 3_600_000);
        assert!(s.plan().launches.is_empty(), "disabled: never replaced");
        s.update(&agora_api::mesos::TaskStatus::new(
            &task,
            TaskState::Running,
        ));
        let instance = &s.instances[&task];
        assert!(instance.active() && instance.unreachable_since.is_none());
    }

    #[test]
    fn a_cycle_is_refused_and_changes_nothing() {
        let mut s = services();
        deploy(
            &mut s,
            json!({"id": "/a", "cmd": "x", "dependencies": ["/b"]}),
        );
        let result = s.apply(
            vec![put(json!({"id": "/b", "cmd": "x", "dependencies": ["/a"]}))],
            false,
        );
        assert!(matches!(result, Err(ChangeError::Cycle(_))));
        assert!(!s.apps.contains_key("/b"));
    }

    #[test]
    fn cancelling_reverts_every_app() {
        let mut s = services();
        deploy(&mut s, json!({"id": "/a", "cmd": "x", "instances": 1}));
        run(&mut s, "/a", 1);
        s.plan();
        let (id, _) = s
            .apply(
                vec![
                    put(json!({"id": "/a", "cmd": "y", "instances": 1})),
                    put(json!({"id": "/b", "cmd": "x", "instances": 1})),
                ],
                false,
            )
            .ok()
            .unwrap();
        let mut events = s.events.subscribe();
        s.cancel_deployment(&id, false).ok().unwrap();
        let first = events.try_recv().unwrap();
        assert_eq!(first.kind, "deployment_failed", "one terminal event");
        assert_eq!(first.data["id"], id.as_str());
        assert_eq!(s.apps["/a"].definition.cmd.as_deref(), Some("x"));
        // The new app is being stopped.
        let deployment = s.deployments.values().next().unwrap();
        assert_eq!(deployment.action_of("/b"), Some((0, Action::Stop)));
    }
}

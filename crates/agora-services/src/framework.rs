//! The services scheduler as a framework: subscribes through the SDK, turns offers into
//! launches for apps that want instances, relays kills, follows status updates, and suppresses
//! offers while nothing waits.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use agora_api::marathon::container;
use agora_api::marathon::path::safe_name;
use agora_api::marathon::time::format_millis;
use agora_api::mesos::{
    Capability, CommandInfo, Environment, EnvironmentVariable, FrameworkInfo, Id, KILL_DRAIN_LABEL,
    ResourceFormat, TaskInfo, from_resources,
};
use agora_api::scheduler::{Event, Offer};
use agora_client::Scheduler;
use agora_plan::constraints::{AgentFacts, Constraint, all_allow};
use agora_plan::offer_match::{InstanceNeeds, Mismatch, match_offer};
use agora_store::StoredText;
use agora_types::{Scalar, TaskState};

use crate::Shared;
use crate::core::{App, Instance, now_millis};
use crate::health::mesos_check;

const FRAMEWORK_ID_KEY: &str = "services/framework_id";
const RECONCILE_UNCONFIRMED_EVERY: Duration = Duration::from_secs(3);
const INSTANCE_FLUSH_EVERY: Duration = Duration::from_secs(1);
/// At most this many already-arrived events are taken in before planning once.
const MAX_EVENTS_PER_PLAN: usize = 1024;
/// Unused offers kept per app for `/v2/queue?embed=lastUnusedOffers`.
const LAST_UNUSED_OFFERS: usize = 10;

pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut agents: HashMap<String, AgentFacts> = HashMap::new();
    // Unreachable tasks are reported as such (not lost), so unreachableStrategy decides when
    // they are replaced; tasks that come back report again. TASK_KILLING lets discovery take
    // an instance out of rotation as its kill starts, while it finishes what it serves.
    let info = FrameworkInfo {
        capabilities: vec![
            Capability {
                kind: "PARTITION_AWARE".into(),
            },
            Capability {
                kind: "TASK_KILLING_STATE".into(),
            },
        ],
        ..agora_client::long_lived_framework(
            "marathon",
            &shared.config.user,
            shared.config.principal.clone(),
            &shared.config.advertised,
            &shared.config.access,
        )
    };
    while !shutdown.is_cancelled() {
        let stored = StoredText::new(&shared.config.registrar, FRAMEWORK_ID_KEY);
        let ids = agora_client::KeptId {
            load: || stored.load(),
            forget: || stored.forget(),
            // Committed behind the subscription; a store that fails stops the scheduler.
            save: |id: &str| {
                drop(stored.save(id));
                Ok::<(), agora_store::RegistrarFailed>(())
            },
        };
        let options = agora_client::SchedulerOptions::with_access(shared.config.access.clone());
        let mut scheduler = tokio::select! {
            () = shutdown.cancelled() => return,
            scheduler = Scheduler::subscribe_resuming(&shared.config.master, &ids, &info, options) => scheduler,
        };
        shared.lock().framework_id = scheduler.framework_id();
        let _ = scheduler.reconcile(Vec::new()).await;
        reconcile_unconfirmed(&shared, &scheduler).await;
        session(&shared, &mut scheduler, &mut agents, &shutdown).await;
    }
}

/// One subscription: returns when the event stream ends.
async fn session(
    shared: &Arc<Shared>,
    scheduler: &mut Scheduler,
    agents: &mut HashMap<String, AgentFacts>,
    shutdown: &CancellationToken,
) {
    let mut suppressed = false;
    let mut last_reconcile = std::time::Instant::now();
    let mut last_flush = std::time::Instant::now();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => {
                shared.lock().flush_instances();
                return;
            }
            event = scheduler.next_event() => match event {
                Some(event) => Some(event),
                None => return,
            },
            () = shared.wake.notified() => None,
            () = tokio::time::sleep(Duration::from_secs(1)) => None,
        };
        let mut offers = Vec::new();
        // Events that have already arrived are taken in together, so that a burst of updates
        // (a thousand tasks starting) costs one plan instead of one each.
        let mut next = event;
        let mut taken = 0;
        while let Some(event) = next {
            match event {
                Event::Offers { offers: event } => {
                    for offer in &event.offers {
                        agents.insert(offer.agent_id.value.clone(), facts(offer));
                    }
                    offers.extend(event.offers);
                }
                Event::Update { update } => {
                    shared.lock().update(&update.status);
                }
                Event::Subscribed { .. } => {
                    let _ = scheduler.reconcile(Vec::new()).await;
                    last_reconcile = std::time::Instant::now();
                    reconcile_unconfirmed(shared, scheduler).await;
                }
                Event::Error { error } => {
                    tracing::warn!(message = %error.message, "master error")
                }
                _ => {}
            }
            taken += 1;
            next = if taken < MAX_EVENTS_PER_PLAN {
                scheduler.try_next_event()
            } else {
                None
            };
        }
        // Tasks loaded from the store that the master has not answered for yet (its agents may
        // not have re-registered) are asked about again, until it knows.
        if last_reconcile.elapsed() >= RECONCILE_UNCONFIRMED_EVERY {
            last_reconcile = std::time::Instant::now();
            reconcile_unconfirmed(shared, scheduler).await;
        }
        // Level-triggered: after anything, recompute kills, launches and whether offers are
        // wanted. One plan per event: planning marks its kills as sent, so none may be dropped.
        let work = shared.lock().plan();
        // Launches are written before they go out (in handle_offers); other changes (a task
        // started, gone) are written at most once a second: a restart recovers them from the
        // master anyway.
        if last_flush.elapsed() >= INSTANCE_FLUSH_EVERY {
            last_flush = std::time::Instant::now();
            shared.lock().flush_instances();
        }
        if !offers.is_empty() {
            handle_offers(shared, scheduler, agents, offers, work.launches.clone()).await;
        }
        for task_id in &work.kills {
            if let Err(error) = scheduler.kill(task_id, None).await {
                tracing::warn!(%error, task = %task_id, "kill failed");
            }
        }
        let wants_offers = !work.launches.is_empty();
        if wants_offers && suppressed {
            suppressed = scheduler.revive(Vec::new()).await.is_err();
        } else if !wants_offers && !suppressed {
            suppressed = scheduler.suppress(Vec::new()).await.is_ok();
        }
    }
}

async fn reconcile_unconfirmed(shared: &Shared, scheduler: &Scheduler) {
    let unconfirmed = shared.lock().unconfirmed();
    if !unconfirmed.is_empty()
        && let Err(error) = scheduler.reconcile(unconfirmed).await
    {
        tracing::debug!(%error, "explicit reconciliation failed");
    }
}

/// An offer that did not fit an app, in Marathon's `lastUnusedOffers` shape.
fn unused_offer(offer: &Offer, reason: &str, now: &str) -> serde_json::Value {
    let resources: Vec<serde_json::Value> = offer
        .resources
        .iter()
        .map(|r| {
            let ranges: Vec<serde_json::Value> = r
                .ranges
                .iter()
                .flat_map(|ranges| &ranges.range)
                .map(|range| serde_json::json!({"begin": range.begin, "end": range.end}))
                .collect();
            serde_json::json!({
                "name": r.name,
                "scalar": r.scalar.as_ref().map_or(0.0, |s| s.value),
                "ranges": ranges,
                "set": r.set.as_ref().map(|s| s.item.clone()).unwrap_or_default(),
                "role": r.role.as_deref().unwrap_or("*"),
            })
        })
        .collect();
    let attributes: Vec<serde_json::Value> = offer
        .attributes
        .iter()
        .map(|a| serde_json::json!({"name": a.name, "value": a.v0_value()}))
        .collect();
    serde_json::json!({
        "offer": {
            "id": offer.id.value,
            "agentId": offer.agent_id.value,
            "hostname": offer.hostname,
            "resources": resources,
            "attributes": attributes,
        },
        "timestamp": now,
        "reason": [reason],
    })
}

fn facts(offer: &Offer) -> AgentFacts {
    let attributes: BTreeMap<String, String> = offer
        .attributes
        .iter()
        .map(|a| {
            let value = match a.v0_value() {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            (a.name.clone(), value)
        })
        .collect();
    AgentFacts {
        hostname: offer.hostname.clone(),
        attributes,
    }
}

fn needs(app: &App) -> InstanceNeeds {
    let definition = &app.definition;
    let mut ports: Vec<u64> = definition
        .port_definitions
        .iter()
        .flatten()
        .map(|p| {
            if definition.require_ports {
                p.port.max(0) as u64
            } else {
                0
            }
        })
        .collect();
    // A bridged container gets its host ports through its port mappings.
    if ports.is_empty()
        && let Some(container) = &definition.container
    {
        ports = container::requested_host_ports(container);
    }
    InstanceNeeds {
        cpus: Scalar::from_f64(definition.cpus),
        mem: Scalar::from_f64(definition.mem),
        disk: Scalar::from_f64(definition.disk),
        gpus: Scalar::from_f64(definition.gpus as f64),
        ports,
    }
}

async fn handle_offers(
    shared: &Arc<Shared>,
    scheduler: &Scheduler,
    agents: &HashMap<String, AgentFacts>,
    offers: Vec<Offer>,
    mut wanted: BTreeMap<String, u32>,
) {
    let mut launches: Vec<(Offer, Vec<TaskInfo>)> = Vec::new();
    {
        let mut services = shared.lock();
        for offer in offers {
            let mut remaining =
                agora_api::mesos::to_resources(&offer.resources).unwrap_or_default();
            let candidate = facts(&offer);
            let mut tasks = Vec::new();
            for (app_id, count) in wanted.iter_mut() {
                let Some(app) = services.apps.get(app_id).cloned() else {
                    continue;
                };
                let constraints: Vec<Constraint> = app
                    .definition
                    .constraints
                    .iter()
                    .filter_map(|c| Constraint::parse(c).ok())
                    .collect();
                let app_needs = needs(&app);
                let mut launched_here = 0;
                let mut declined: Option<&'static str> = None;
                // Where the app's instances run, for its constraints: gathered once per offer
                // and grown with each launch (not rebuilt per instance).
                let mut placed: Vec<AgentFacts> = if constraints.is_empty() {
                    Vec::new()
                } else {
                    services
                        .instances
                        .values()
                        .filter(|i| i.app_id == *app_id && !i.state.is_terminal())
                        .map(|i| {
                            agents
                                .get(&i.agent_id)
                                .cloned()
                                .unwrap_or_else(|| AgentFacts {
                                    hostname: i.host.clone(),
                                    ..AgentFacts::default()
                                })
                        })
                        .collect()
                };
                while *count > 0 {
                    let placed_refs: Vec<&AgentFacts> = placed.iter().collect();
                    if !all_allow(&constraints, &candidate, &placed_refs) {
                        declined = Some(Mismatch::UnfulfilledConstraint.as_str());
                        break;
                    }
                    let matched = match match_offer(&app_needs, &remaining) {
                        Ok(matched) => matched,
                        Err(mismatch) => {
                            declined = Some(mismatch.as_str());
                            break;
                        }
                    };
                    remaining.subtract(&matched.resources);
                    let task = task_info(&app, &offer, &matched);
                    let mut instance = Instance::new(
                        &task.task_id.value,
                        app_id,
                        app.version(),
                        TaskState::Staging,
                        &format_millis(now_millis()),
                    );
                    instance.agent_id = offer.agent_id.value.clone();
                    instance.host = offer.hostname.clone();
                    instance.ports = matched.host_ports.clone();
                    instance.ip = offer.url.as_ref().map(|u| u.address.ip.clone());
                    services.launched(instance);
                    tasks.push(task);
                    if !constraints.is_empty() {
                        placed.push(candidate.clone());
                    }
                    *count -= 1;
                    launched_here += 1;
                }
                let now = format_millis(now_millis());
                let stats = services.offer_stats.entry(app_id.clone()).or_default();
                stats.processed += 1;
                if launched_here > 0 {
                    stats.last_used_at = Some(now);
                } else if let Some(reason) = declined {
                    stats.unused += 1;
                    stats.last_unused_at = Some(now.clone());
                    *stats.reasons.entry(reason.to_owned()).or_default() += 1;
                    stats
                        .last_unused
                        .push_back(unused_offer(&offer, reason, &now));
                    if stats.last_unused.len() > LAST_UNUSED_OFFERS {
                        stats.last_unused.pop_front();
                    }
                }
            }
            launches.push((offer, tasks));
        }
        // Known before launched: a scheduler taking over (a restart, a failover) finds them
        // and asks the master.
        services.flush_instances();
    }
    if shared.config.registrar.barrier().committed().await.is_err() {
        // The store failed: the process stops; nothing is launched that it would not know.
        return;
    }
    for (offer, tasks) in launches {
        let result = if tasks.is_empty() {
            scheduler.decline(vec![offer.id.clone()], Some(5.0)).await
        } else {
            scheduler
                .launch(vec![offer.id.clone()], tasks, Some(1.0))
                .await
        };
        if let Err(error) = result {
            tracing::warn!(%error, "answering an offer failed");
        }
    }
}

/// The TaskInfo of one instance, with Marathon's environment.
/// The TaskInfo's labels: the app's version, and what the executor reads of the app's labels.
fn task_labels(app: &App) -> serde_json::Value {
    let mut labels =
        vec![serde_json::json!({"key": "MARATHON_APP_VERSION", "value": app.version()})];
    if let Some(drain) = app.definition.labels.get(KILL_DRAIN_LABEL) {
        labels.push(serde_json::json!({"key": KILL_DRAIN_LABEL, "value": drain}));
    }
    serde_json::json!({ "labels": labels })
}

fn task_info(app: &App, offer: &Offer, matched: &agora_plan::offer_match::Matched) -> TaskInfo {
    let definition = &app.definition;
    let task_id = format!("{}.{}", safe_name(&definition.id), uuid::Uuid::new_v4());
    let mut env: BTreeMap<String, String> = definition
        .env
        .iter()
        .filter_map(|(key, value)| value.as_str().map(|v| (key.clone(), v.to_owned())))
        .collect();
    for (index, port) in matched.host_ports.iter().enumerate() {
        env.insert(format!("PORT{index}"), port.to_string());
        if let Some(name) = definition
            .port_definitions
            .as_ref()
            .and_then(|d| d.get(index))
            .and_then(|d| d.name.as_ref())
        {
            env.insert(
                format!("PORT_{}", name.to_ascii_uppercase().replace('-', "_")),
                port.to_string(),
            );
        }
    }
    if let Some(first) = matched.host_ports.first() {
        env.insert("PORT".into(), first.to_string());
    }
    env.insert(
        "PORTS".into(),
        matched
            .host_ports
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    env.insert("HOST".into(), offer.hostname.clone());
    env.insert("MARATHON_APP_ID".into(), definition.id.clone());
    env.insert("MARATHON_APP_VERSION".into(), app.version().to_owned());
    env.insert(
        "MARATHON_APP_RESOURCE_CPUS".into(),
        definition.cpus.to_string(),
    );
    env.insert(
        "MARATHON_APP_RESOURCE_MEM".into(),
        definition.mem.to_string(),
    );
    env.insert(
        "MARATHON_APP_RESOURCE_DISK".into(),
        definition.disk.to_string(),
    );
    env.insert(
        "MARATHON_APP_RESOURCE_GPUS".into(),
        definition.gpus.to_string(),
    );
    let mut label_keys = Vec::new();
    for (key, value) in &definition.labels {
        if key.len() > 512 || value.len() > 512 {
            continue;
        }
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        env.insert(format!("MARATHON_APP_LABEL_{safe}"), value.clone());
        label_keys.push(safe);
    }
    env.insert("MARATHON_APP_LABELS".into(), label_keys.join(" "));
    // Secrets travel as references: the agent reads them for the executor alone.
    let secrets = definition.secret_env();
    let variables = env
        .into_iter()
        .filter(|(name, _)| !secrets.iter().any(|used| &used.variable == name))
        .map(|(name, value)| EnvironmentVariable {
            name,
            value: Some(value),
            ..EnvironmentVariable::default()
        })
        .chain(
            secrets
                .iter()
                .map(|used| EnvironmentVariable::secret_reference(&used.variable, &used.source)),
        )
        .collect();
    let command = match (&definition.cmd, &definition.args) {
        (Some(cmd), _) => CommandInfo {
            value: Some(cmd.clone()),
            shell: true,
            ..CommandInfo::default()
        },
        (None, Some(args)) => CommandInfo {
            value: args.first().cloned(),
            arguments: args.clone(),
            shell: false,
            ..CommandInfo::default()
        },
        (None, None) => CommandInfo {
            value: Some("true".into()),
            ..CommandInfo::default()
        },
    };
    TaskInfo {
        name: safe_name(&definition.id),
        task_id: Id::new(task_id),
        agent_id: offer.agent_id.clone(),
        resources: from_resources(&matched.resources, ResourceFormat::default(), None),
        command: Some(CommandInfo {
            environment: Some(Environment { variables }),
            // The app's user; none: the framework's (`--default-task-user`).
            user: definition.user.clone(),
            uris: container::to_mesos_uris(&definition.fetch, &definition.uris),
            ..command
        }),
        container: definition
            .container
            .as_ref()
            .map(|c| container::to_mesos(c, &matched.host_ports)),
        labels: Some(task_labels(app)),
        health_check: definition
            .health_checks
            .first()
            .and_then(|check| mesos_check(check, &matched.host_ports)),
        ..TaskInfo::default()
    }
}

//! The jobs scheduler as a framework: subscribes through the SDK as `chronos`, applies the
//! schedules on time, turns offers into runs, relays kills, follows each run's task to its end,
//! and suppresses offers while nothing waits.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use agora_api::chronos::Job;
use agora_api::mesos::{
    CommandInfo, Environment, EnvironmentVariable, Id, ResourceFormat, TaskInfo, from_resources,
    to_resources,
};
use agora_api::scheduler::{Event, Offer};
use agora_client::Scheduler;
use agora_store::StoredText;
use agora_types::{Resource, Resources};

use crate::Shared;
use crate::core::Pending;

const FRAMEWORK_ID_KEY: &str = "jobs/framework_id";
/// The longest wait between looks at the schedules (the next due slot usually comes first).
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How often runs in flight are reconciled with the master.
const RECONCILE_EVERY: Duration = Duration::from_secs(30);

pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let info = agora_client::long_lived_framework(
        "chronos",
        &shared.config.user,
        shared.config.principal.clone(),
        &shared.config.advertised,
        &shared.config.access,
    );
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
        // An update is acknowledged once what it changed is committed: the agent sends it again
        // until then, so a crash between the two loses no run's end.
        let options = agora_client::SchedulerOptions {
            implicit_acknowledgements: false,
            ..agora_client::SchedulerOptions::with_access(shared.config.access.clone())
        };
        let mut scheduler = tokio::select! {
            () = shutdown.cancelled() => return,
            scheduler = Scheduler::subscribe_resuming(&shared.config.master, &ids, &info, options) => scheduler,
        };
        reconcile(&shared, &scheduler).await;
        session(&shared, &mut scheduler, &shutdown).await;
    }
}

/// Asks about every run in flight: one that ended while the scheduler was away is reported
/// again with its final state.
async fn reconcile(shared: &Shared, scheduler: &Scheduler) {
    let runs: Vec<(String, Option<String>)> = shared
        .lock()
        .runs
        .values()
        .map(|run| (run.task_id.clone(), Some(run.agent_id.clone())))
        .collect();
    if !runs.is_empty()
        && let Err(error) = scheduler.reconcile(runs).await
    {
        tracing::debug!(%error, "job run reconciliation failed");
    }
}

/// One subscription: returns when the event stream ends.
async fn session(shared: &Arc<Shared>, scheduler: &mut Scheduler, shutdown: &CancellationToken) {
    let mut suppressed = false;
    let mut last_reconcile = std::time::Instant::now();
    loop {
        // Runs in flight are asked about now and then: one whose end was missed is reported.
        if last_reconcile.elapsed() >= RECONCILE_EVERY {
            last_reconcile = std::time::Instant::now();
            reconcile(shared, scheduler).await;
        }
        let now = Timestamp::now();
        let wake = shared.lock().tick(now);
        let sleep = wake
            .map(|at| at.duration_since(now).unsigned_abs())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = scheduler.next_event() => match event {
                Some(event) => Some(event),
                None => return,
            },
            () = shared.wake.notified() => None,
            () = tokio::time::sleep(sleep) => None,
        };
        let now = Timestamp::now();
        match event {
            Some(Event::Offers { offers }) => {
                shared.lock().tick(now);
                handle_offers(shared, scheduler, offers.offers, now).await;
            }
            Some(Event::Update { update }) => {
                let status = &update.status;
                if status.state.is_terminal() {
                    let message = status.message.clone().unwrap_or_default();
                    let state = status.state.as_str();
                    let outcome = shared
                        .lock()
                        .ended(&status.task_id.value, state, &message, now);
                    if !outcome.queued.is_empty() {
                        tracing::info!(queued = ?outcome.queued, "job runs queued");
                    }
                    if shared.config.registrar.barrier().committed().await.is_err() {
                        // The store failed: the process stops; the update stays unacknowledged.
                        return;
                    }
                }
                if let Err(error) = scheduler.acknowledge(status).await {
                    tracing::warn!(%error, task = %status.task_id.value, "acknowledgement failed");
                }
            }
            Some(Event::Subscribed { .. }) => reconcile(shared, scheduler).await,
            Some(Event::Error { error }) => {
                tracing::warn!(message = %error.message, "master error")
            }
            _ => {}
        }
        let kills = std::mem::take(&mut *shared.kills());
        for task_id in kills {
            if let Err(error) = scheduler.kill(&task_id, None).await {
                tracing::warn!(%error, task = %task_id, "kill failed");
            }
        }
        let wants_offers = !shared.lock().launchable(now).is_empty();
        if wants_offers && suppressed {
            suppressed = scheduler.revive(Vec::new()).await.is_err();
        } else if !wants_offers && !suppressed {
            suppressed = scheduler.suppress(Vec::new()).await.is_ok();
        }
    }
}

/// Starts what can start on these offers; declines the rest.
async fn handle_offers(
    shared: &Arc<Shared>,
    scheduler: &Scheduler,
    offers: Vec<Offer>,
    now: Timestamp,
) {
    let mut launches: Vec<(Offer, Vec<TaskInfo>)> = Vec::new();
    {
        let mut jobs = shared.lock();
        let mut waiting = jobs.launchable(now);
        for offer in offers {
            let mut remaining = to_resources(&offer.resources).unwrap_or_default();
            let mut tasks = Vec::new();
            let mut index = 0;
            while index < waiting.len() {
                let pending = &waiting[index];
                let Some(entry) = jobs.jobs.get(&pending.job) else {
                    index += 1;
                    continue;
                };
                let needs = needs(&entry.definition);
                if !remaining.contains(&needs) || !placement_allows(&entry.definition, &offer) {
                    index += 1;
                    continue;
                }
                remaining.subtract(&needs);
                let pending = waiting.remove(index);
                let task = task_info(&entry.definition, &pending, &offer, &needs, now);
                jobs.launched(
                    &pending,
                    &task.task_id.value,
                    &offer.agent_id.value,
                    &offer.hostname,
                    now,
                );
                tasks.push(task);
            }
            launches.push((offer, tasks));
        }
    }
    // A run is durable before its task is launched: a scheduler taking over (a restart, a
    // failover) knows it and never runs its slot again.
    if shared.config.registrar.barrier().committed().await.is_err() {
        // The store failed: the process stops; nothing is launched that it would not know.
        return;
    }
    for (offer, tasks) in launches {
        let task_ids: Vec<String> = tasks.iter().map(|t| t.task_id.value.clone()).collect();
        let result = if tasks.is_empty() {
            scheduler.decline(vec![offer.id.clone()], Some(5.0)).await
        } else {
            scheduler.launch(vec![offer.id.clone()], tasks, None).await
        };
        if let Err(error) = result {
            tracing::warn!(%error, "accepting or declining an offer failed");
            // No update will come for runs that never reached the master: they end here (and
            // are retried as failures are).
            let message = format!("the launch did not reach the master: {error}");
            let mut jobs = shared.lock();
            for task_id in task_ids {
                jobs.ended(&task_id, "TASK_ERROR", &message, Timestamp::now());
            }
        }
    }
}

fn needs(job: &Job) -> Resources {
    let (cpus, mem, disk) = job.resources();
    let mut needs = Resources::new();
    needs.push(Resource::scalar("cpus", cpus));
    needs.push(Resource::scalar("mem", mem));
    needs.push(Resource::scalar("disk", disk));
    needs
}

/// Chronos' constraints: `[attribute, EQUALS | LIKE | UNLIKE, value]`, on an agent attribute
/// or `hostname`; LIKE and UNLIKE take an anchored regular expression.
fn placement_allows(job: &Job, offer: &Offer) -> bool {
    job.constraints.iter().all(|constraint| {
        let [attribute, operator, value] = constraint.as_slice() else {
            return true;
        };
        let actual = if attribute == "hostname" {
            Some(offer.hostname.clone())
        } else {
            offer
                .attributes
                .iter()
                .find(|a| &a.name == attribute)
                .map(|a| match a.v0_value() {
                    serde_json::Value::String(text) => text,
                    other => other.to_string(),
                })
        };
        let matches = |pattern: &str, text: &str| {
            regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|re| re.is_match(text))
        };
        match (operator.as_str(), actual) {
            ("EQUALS", Some(actual)) => &actual == value,
            ("LIKE", Some(actual)) => matches(value, &actual),
            ("UNLIKE", Some(actual)) => !matches(value, &actual),
            ("UNLIKE", None) => true,
            _ => false,
        }
    })
}

/// A run's task, with Chronos' task id (`ct:<millis>:<attempt>:<job>:<run id>`: the run id keeps
/// apart two runs of one job started in the same millisecond) and its environment.
fn task_info(
    job: &Job,
    pending: &Pending,
    offer: &Offer,
    needs: &Resources,
    now: Timestamp,
) -> TaskInfo {
    let task_id = format!(
        "ct:{}:{}:{}:{}",
        now.as_millisecond(),
        pending.attempt,
        job.name,
        pending.id
    );
    // A secret travels as a reference (its source's name): the agent reads it for the
    // executor alone.
    let mut env: BTreeMap<String, (String, Option<String>)> = job
        .environment_variables
        .iter()
        .chain(&pending.environment)
        .map(|v| (v.name.clone(), (v.value.clone(), v.secret.clone())))
        .collect();
    let (cpus, mem, disk) = job.resources();
    for (name, value) in [
        ("CHRONOS_JOB_NAME", job.name.clone()),
        ("CHRONOS_JOB_OWNER", job.owner.clone()),
        ("CHRONOS_RESOURCE_CPU", cpus.to_string()),
        ("CHRONOS_RESOURCE_MEM", mem.to_string()),
        ("CHRONOS_RESOURCE_DISK", disk.to_string()),
        ("HOST", offer.hostname.clone()),
    ] {
        env.insert(name.to_owned(), (value, None));
    }
    let variables = env
        .into_iter()
        .map(|(name, value)| match value {
            (_, Some(source)) => EnvironmentVariable::secret_reference(&name, &source),
            (value, None) => EnvironmentVariable {
                name,
                value: Some(value),
                ..EnvironmentVariable::default()
            },
        })
        .collect();
    let command = if job.shell {
        let mut value = job.command.clone();
        for argument in &pending.arguments {
            value.push(' ');
            value.push_str(argument);
        }
        CommandInfo {
            value: Some(value),
            shell: true,
            ..CommandInfo::default()
        }
    } else {
        let mut arguments = vec![job.command.clone()];
        arguments.extend(job.arguments.iter().cloned());
        arguments.extend(pending.arguments.iter().cloned());
        CommandInfo {
            value: Some(job.command.clone()),
            arguments,
            shell: false,
            ..CommandInfo::default()
        }
    };
    let uris = job
        .all_fetches()
        .into_iter()
        .map(|f| {
            serde_json::json!({"value": f.uri, "extract": f.extract, "executable": f.executable, "cache": f.cache})
        })
        .collect();
    TaskInfo {
        name: format!("ChronosTask:{}", job.name),
        task_id: Id::new(task_id),
        agent_id: offer.agent_id.clone(),
        resources: from_resources(needs, ResourceFormat::default(), None),
        command: Some(CommandInfo {
            environment: Some(Environment { variables }),
            uris,
            user: (!job.run_as_user.is_empty()).then(|| job.run_as_user.clone()),
            ..command
        }),
        container: job.mesos_container(),
        ..TaskInfo::default()
    }
}

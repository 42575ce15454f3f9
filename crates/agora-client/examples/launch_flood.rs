//! A framework that launches as many tasks as it is told, as fast as offers allow, and says how
//! fast that was: the placement rate of a master through its real HTTP APIs (with hollow
//! agents, `agora hollow-agents`, for thousands of them). Prints one JSON line:
//! `{"tasks", "launched_s", "running_s", "tasks_per_s"}`, times from the first offer.
//!
//! ```text
//! cargo run --release -p agora-client --example launch_flood -- 127.0.0.1:5050 100000 \
//!     [--per-offer 10] [--cpus 0.1] [--mem 32] [--teardown]
//! ```
//! Without `--teardown` the framework leaves its tasks running (failover timeout one hour)
//! and declines what it is offered from then on, so that the cluster can be looked at full.

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use agora_api::mesos::{CommandInfo, FrameworkInfo, Id, ScalarValue, TaskInfo, WireResource};
use agora_api::scheduler::{Event, Offer};
use agora_client::{Scheduler, SchedulerOptions};
use agora_types::TaskState;

/// ACCEPT calls in flight at once.
const CONCURRENT_CALLS: usize = 32;

struct Settings {
    master: String,
    tasks: usize,
    per_offer: usize,
    cpus: f64,
    mem: f64,
    teardown: bool,
}

fn settings() -> Result<Settings, String> {
    let mut args = std::env::args().skip(1);
    let master = args.next().ok_or("no master")?;
    let tasks = args
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or("no task count")?;
    let mut settings = Settings {
        master,
        tasks,
        per_offer: 10,
        cpus: 0.1,
        mem: 32.0,
        teardown: false,
    };
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--per-offer" => settings.per_offer = value()?.parse().map_err(|_| "--per-offer")?,
            "--cpus" => settings.cpus = value()?.parse().map_err(|_| "--cpus")?,
            "--mem" => settings.mem = value()?.parse().map_err(|_| "--mem")?,
            "--teardown" => settings.teardown = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(settings)
}

fn scalar(name: &str, value: f64) -> WireResource {
    WireResource {
        name: name.into(),
        kind: "SCALAR".into(),
        scalar: Some(ScalarValue { value }),
        role: Some("*".into()),
        ..WireResource::default()
    }
}

fn offered(offer: &Offer, name: &str) -> f64 {
    offer
        .resources
        .iter()
        .filter(|r| r.name == name)
        .filter_map(|r| r.scalar.as_ref())
        .map(|s| s.value)
        .sum()
}

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match settings() {
        Ok(settings) => settings,
        Err(why) => {
            eprintln!(
                "launch_flood: {why}\nusage: launch_flood MASTER TASKS [--per-offer N] [--cpus C] [--mem MB] [--teardown]"
            );
            return ExitCode::from(2);
        }
    };
    let info = FrameworkInfo {
        user: "root".into(),
        name: "launch-flood".into(),
        failover_timeout: 3600.0,
        ..FrameworkInfo::default()
    };
    let mut scheduler =
        match Scheduler::subscribe(&settings.master, info, SchedulerOptions::default()).await {
            Ok(scheduler) => scheduler,
            Err(error) => {
                eprintln!("launch_flood: cannot subscribe: {error}");
                return ExitCode::FAILURE;
            }
        };
    let mut next_task = 0usize;
    let mut running: HashSet<String> = HashSet::new();
    let mut failed = 0usize;
    let mut first_offer: Option<Instant> = None;
    let mut launched_at: Option<Duration> = None;
    while running.len() + failed < settings.tasks {
        let Some(event) = scheduler.next_event().await else {
            eprintln!("launch_flood: the event stream ended");
            return ExitCode::FAILURE;
        };
        match event {
            Event::Offers { offers } => {
                let started = *first_offer.get_or_insert_with(Instant::now);
                let mut accepts = Vec::new();
                let mut declines = Vec::new();
                for offer in offers.offers {
                    let fit = (offered(&offer, "cpus") / settings.cpus)
                        .min(offered(&offer, "mem") / settings.mem)
                        .floor() as usize;
                    let count = fit.min(settings.per_offer).min(settings.tasks - next_task);
                    if count == 0 {
                        declines.push(offer.id);
                        continue;
                    }
                    let tasks: Vec<TaskInfo> = (next_task..next_task + count)
                        .map(|n| TaskInfo {
                            name: format!("flood-{n}"),
                            task_id: Id::new(format!("flood-{n}")),
                            agent_id: offer.agent_id.clone(),
                            resources: vec![
                                scalar("cpus", settings.cpus),
                                scalar("mem", settings.mem),
                            ],
                            command: Some(CommandInfo {
                                value: Some("sleep 1000".into()),
                                ..CommandInfo::default()
                            }),
                            ..TaskInfo::default()
                        })
                        .collect();
                    next_task += count;
                    accepts.push((offer.id, tasks));
                }
                let scheduler = &scheduler;
                let launches = futures_util::stream::iter(accepts)
                    .map(|(offer, tasks)| async move {
                        scheduler.launch(vec![offer], tasks, None).await
                    })
                    .buffer_unordered(CONCURRENT_CALLS)
                    .filter_map(|result| async move { result.err() })
                    .collect::<Vec<_>>()
                    .await;
                if let Some(error) = launches.first() {
                    eprintln!("launch_flood: {} launches failed: {error}", launches.len());
                    return ExitCode::FAILURE;
                }
                if !declines.is_empty() {
                    // Everything is placed: keep the rest of the cluster's offers away.
                    let _ = scheduler.decline(declines, Some(3600.0)).await;
                }
                if next_task == settings.tasks && launched_at.is_none() {
                    launched_at = Some(started.elapsed());
                }
            }
            Event::Update { update } => match update.status.state {
                TaskState::Running => {
                    running.insert(update.status.task_id.value);
                }
                state if state.is_terminal() => failed += 1,
                _ => {}
            },
            _ => {}
        }
    }
    let running_s = first_offer.map(|t| t.elapsed()).unwrap_or_default();
    println!(
        "{}",
        serde_json::json!({
            "tasks": settings.tasks,
            "running": running.len(),
            "failed": failed,
            "launched_s": launched_at.unwrap_or_default().as_secs_f64(),
            "running_s": running_s.as_secs_f64(),
            "tasks_per_s": running.len() as f64 / running_s.as_secs_f64().max(1e-9),
        })
    );
    if settings.teardown {
        if let Err(error) = scheduler.teardown().await {
            eprintln!("launch_flood: teardown failed: {error}");
        }
        return ExitCode::SUCCESS;
    }
    // Stay subscribed, declining offers, until killed.
    while let Some(event) = scheduler.next_event().await {
        if let Event::Offers { offers } = event {
            let ids = offers.offers.into_iter().map(|o| o.id).collect();
            let _ = scheduler.decline(ids, Some(3600.0)).await;
        }
    }
    ExitCode::SUCCESS
}

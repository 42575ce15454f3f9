//! `agora deployment list|watch|rollback|stop`, and following a deployment to its end with
//! progress (tasks healthy / target) — what `app add`, `update`, `scale`, `restart` and
//! `rollback` do unless `--no-wait`. Ctrl-C stops the waiting, never the deployment.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use agora_client::{Answer, ClientError, ServiceEvent, ServicesClient};

use super::Context;
use super::output::say;
use super::output::{cell, cells, joined, render_or, table};
use crate::cli::{DeploymentCommand, Output};

pub async fn run(context: &Context, command: DeploymentCommand) -> anyhow::Result<()> {
    match command {
        DeploymentCommand::List => {
            let deployments = context.services.deployments().await?;
            context.print(&deployments, list_table);
        }
        DeploymentCommand::Watch { id } => {
            let events = Events::subscribe(&context.services).await?;
            let listed = context.services.deployments().await?;
            if !listed
                .as_array()
                .into_iter()
                .flatten()
                .any(|d| d["id"] == id.as_str())
            {
                anyhow::bail!(
                    "no deployment {id} is in progress (it may have finished; \
                     agora deployment list shows those that are)"
                );
            }
            follow(context, &id, events).await?;
        }
        DeploymentCommand::Rollback { id } => {
            let answer = context
                .services
                .cancel_deployment(&id, false)
                .await
                .with_context(|| format!("cannot roll deployment {id} back"))?;
            if context.output == Output::Table {
                match deployment_id(&answer) {
                    Some(rollback) => say!(
                        "deployment {id} is cancelled; deployment {rollback} rolls its apps back"
                    ),
                    None => say!("deployment {id} is cancelled"),
                }
            } else {
                context.print(&answer.body, |_| String::new());
            }
        }
        DeploymentCommand::Stop { id } => {
            context
                .services
                .cancel_deployment(&id, true)
                .await
                .with_context(|| format!("cannot stop deployment {id}"))?;
            if context.output == Output::Table {
                say!("deployment {id} is stopped; its apps stay as they are");
            }
        }
    }
    Ok(())
}

fn list_table(deployments: &Value) -> String {
    let mut rows = table(&["ID", "APPS", "STEP", "ACTIONS", "STARTED"]);
    for deployment in deployments.as_array().into_iter().flatten() {
        rows.add_row(vec![
            cell(&deployment["id"]),
            joined(&cells(deployment, "affectedApps"), ","),
            format!(
                "{}/{}",
                cell(&deployment["currentStep"]),
                cell(&deployment["totalSteps"])
            ),
            current_actions(deployment),
            cell(&deployment["version"]),
        ]);
    }
    render_or(&rows, "No deployments in progress.")
}

/// `ScaleApplication /web, RestartApplication /db`: what a deployment's step is doing.
fn current_actions(deployment: &Value) -> String {
    let actions: Vec<String> = deployment["currentActions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| format!("{} {}", cell(&a["action"]), cell(&a["app"])))
        .collect();
    actions.join(", ")
}

/// The deployment a change started: Marathon's header, else the answer's `deploymentId` or its
/// app's `deployments`.
pub fn deployment_id(answer: &Answer) -> Option<String> {
    answer
        .deployment_id
        .clone()
        .or_else(|| answer.body["deploymentId"].as_str().map(str::to_owned))
        .or_else(|| {
            answer.body["deployments"][0]["id"]
                .as_str()
                .map(str::to_owned)
        })
}

type EventStream = std::pin::Pin<Box<dyn Stream<Item = Result<ServiceEvent, ClientError>>>>;

/// The event stream, opened before a change is made so that its end cannot be missed, and
/// the Ctrl-C listener, made as early: once one exists Ctrl-C no longer ends the process, so
/// it must exist for the whole wait or a Ctrl-C between two polls would be lost.
pub struct Events {
    stream: Option<EventStream>,
    interrupt: tokio::signal::unix::Signal,
}

impl Events {
    pub async fn subscribe(services: &ServicesClient) -> anyhow::Result<Events> {
        let interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot listen for Ctrl-C")?;
        let stream = services
            .events(&["deployment_success", "deployment_failed"])
            .await?;
        Ok(Events {
            stream: Some(Box::pin(stream)),
            interrupt,
        })
    }
}

/// The next event, or never once the stream has ended (the caller then relies on polling).
async fn next_event(stream: &mut Option<EventStream>) -> Option<ServiceEvent> {
    let Some(events) = stream.as_mut() else {
        return std::future::pending().await;
    };
    match events.next().await {
        Some(Ok(event)) => Some(event),
        _ => {
            *stream = None;
            std::future::pending().await
        }
    }
}

/// After a change: prints what it started (or its answer with `-o json|yaml`) and follows the
/// deployment unless `no_wait`.
pub async fn started(
    context: &Context,
    answer: &Answer,
    what: &str,
    events: Option<Events>,
) -> anyhow::Result<()> {
    let deployment = deployment_id(answer);
    if context.output == Output::Table {
        match &deployment {
            Some(id) => say!("{what}: deployment {id}"),
            None => say!("{what}"),
        }
    } else {
        context.print(&answer.body, |_| String::new());
    }
    match (deployment, events) {
        (Some(id), Some(events)) => follow(context, &id, events).await,
        _ => Ok(()),
    }
}

/// The end of waiting that is not a success of the deployment.
#[derive(Debug)]
pub struct StoppedWaiting(String);

impl std::fmt::Display for StoppedWaiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = &self.0;
        write!(
            f,
            "stopped waiting; deployment {id} goes on (agora deployment watch {id} follows it)"
        )
    }
}

impl std::error::Error for StoppedWaiting {}

/// Follows a deployment until its success (Ok), its failure (an error naming why) or Ctrl-C.
async fn follow(context: &Context, id: &str, events: Events) -> anyhow::Result<()> {
    let Events {
        mut stream,
        mut interrupt,
    } = events;
    let mut progress = Progress::new(id);
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    let mut gone_since: Option<tokio::time::Instant> = None;
    let mut apps: Vec<String> = Vec::new();
    let outcome = loop {
        tokio::select! {
            event = next_event(&mut stream) => {
                let Some(event) = event else { continue };
                if event.data["id"] != id {
                    continue;
                }
                if event.kind == "deployment_success" {
                    break Ok(());
                }
                let reason = event.data["reason"].as_str().unwrap_or("it was cancelled or replaced");
                break Err(anyhow::anyhow!("deployment {id} failed: {reason}"));
            }
            _ = poll.tick() => {
                let Ok(deployments) = context.services.deployments().await else { continue };
                let current = deployments
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|d| d["id"] == id)
                    .cloned();
                match current {
                    Some(deployment) => {
                        gone_since = None;
                        apps = deployment["affectedApps"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a.as_str().map(str::to_owned))
                            .collect();
                        progress.show(&context.services, &deployment).await;
                    }
                    // Its event is on its way. Without one (the stream failed, or dropped it),
                    // the apps say whether it got where it was going.
                    None => {
                        let since = *gone_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() > Duration::from_secs(2) {
                            break reached(&context.services, id, &apps).await;
                        }
                    }
                }
            }
            _ = interrupt.recv() => {
                progress.finish();
                return Err(StoppedWaiting(id.to_owned()).into());
            }
        }
    };
    progress.finish();
    if outcome.is_ok() && context.output == Output::Table {
        say!("deployment {id} finished");
    }
    outcome
}

/// For a deployment that ended unseen: whether each of its apps has what it wants ready.
async fn reached(services: &ServicesClient, id: &str, apps: &[String]) -> anyhow::Result<()> {
    for app_id in apps {
        let app = match services.app(app_id, &[]).await {
            Ok(answer) => answer,
            // A removed app is where a removal goes.
            Err(error) if error.status() == Some(404) => continue,
            Err(error) => return Err(error.into()),
        };
        let (ready, wanted) = app_progress(&app["app"]);
        if ready < wanted {
            anyhow::bail!(
                "deployment {id} ended with {app_id} at {ready} of {wanted} instances ready \
                 (agora app show {app_id} says why)"
            );
        }
    }
    Ok(())
}

/// Tasks healthy (running, for apps without health checks) against the target, on a bar when
/// stderr is a terminal, else as a line whenever it changes.
struct Progress {
    id: String,
    bar: Option<indicatif::ProgressBar>,
    last: Option<(u64, u64, String)>,
}

impl Progress {
    fn new(id: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} healthy",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            id: id.to_owned(),
            bar,
            last: None,
        }
    }

    async fn show(&mut self, services: &ServicesClient, deployment: &Value) {
        let (mut healthy, mut target) = (0, 0);
        for app in deployment["affectedApps"].as_array().into_iter().flatten() {
            let Some(app_id) = app.as_str() else { continue };
            let Ok(answer) = services.app(app_id, &[]).await else {
                continue;
            };
            let (ready, wanted) = app_progress(&answer["app"]);
            healthy += ready;
            target += wanted;
        }
        let step = format!(
            "step {}/{}: {}",
            cell(&deployment["currentStep"]),
            cell(&deployment["totalSteps"]),
            current_actions(deployment)
        );
        match &self.bar {
            Some(bar) => {
                bar.set_length(target);
                bar.set_position(healthy.min(target));
                bar.set_message(step);
            }
            None => {
                let now = (healthy, target, step);
                if self.last.as_ref() != Some(&now) {
                    eprintln!(
                        "deployment {}: {}/{} tasks healthy ({})",
                        self.id, now.0, now.1, now.2
                    );
                    self.last = Some(now);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// (tasks ready, instances wanted) of one app: healthy ones when it has health checks.
pub fn app_progress(app: &Value) -> (u64, u64) {
    let ready = if agora_client::readings::app_is_checked(app) {
        app["tasksHealthy"].as_u64().unwrap_or(0)
    } else {
        app["tasksRunning"].as_u64().unwrap_or(0)
    };
    (ready, app["instances"].as_u64().unwrap_or(0))
}

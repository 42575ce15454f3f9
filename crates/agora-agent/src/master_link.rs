//! The agent's connection to the master: subscribe (registering with everything it runs), obey
//! the command stream, ping, and deliver status updates with retries. Reconnects with backoff
//! whenever the stream ends, so a restarted master gets the agent back within seconds.
//!
//! The link is the same for the real agent and for hollow agents ([`crate::hollow`]): both are
//! an [`AgentEnd`], the state and the rules at the agent's end of the link.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use agora_api::agent_protocol::{
    AGENT_TOKEN_HEADER, AgentCommand, ExecutorExited, ExecutorMessage, FrameworkStatus, Ping,
    StatusUpdates,
};
use agora_api::mesos::{ExecutorInfo, FrameworkInfo, KillPolicy, TaskInfo};
use agora_api::recordio;
use agora_types::{ExecutorId, FrameworkId, TaskId};

use crate::config::AgentConfig;
use crate::core::Agent;

/// What sits at the agent's end of the master link.
pub(crate) trait AgentEnd: Send + Sync + 'static {
    /// Where the master is and how to reach it (`master`, `leader`, `master_headers`, TLS).
    fn config(&self) -> &AgentConfig;
    fn client(&self) -> &reqwest::Client;
    /// The client the subscription is sent with: its connection carries the command stream
    /// for as long as the link lasts and never returns to a pool.
    fn subscription_client(&self) -> &reqwest::Client {
        self.client()
    }
    /// Cancelled when the agent stops (or the master told it to).
    fn shutdown(&self) -> &tokio_util::sync::CancellationToken;
    /// Wakes the status sender: a new update, or the master link came back.
    fn updates_wanted(&self) -> &tokio::sync::Notify;
    /// What the agent tells the master when it (re-)registers, everything it runs: a
    /// [`agora_api::agent_protocol::RegisterAgent`] as JSON.
    fn registration(&self) -> serde_json::Result<Vec<u8>>;
    /// The secret the master gave this agent, for the requests it sends there.
    fn agent_token(&self) -> Option<String>;
    fn agent_id(&self) -> Option<String>;
    /// Registered: every pending update is due at once.
    fn set_registered(&self, agent_id: String, token: Option<String>);
    fn set_disconnected(&self);
    /// Why the master could not be reached.
    fn set_master_error(&self, error: String);
    /// The agent id, the heads of the update queues now due, and when the next one is due.
    fn due_updates(&self) -> crate::status_queue::Due;
    /// Requests (other than the subscription) this agent may have in flight, when it shares a
    /// bound with others: hollow agents of one process share a pool of connections.
    fn request_slots(&self) -> Option<Arc<tokio::sync::Semaphore>> {
        None
    }
    // The master's commands, one method each (see `obey`).
    fn run_tasks(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
        group: bool,
    );
    fn kill_task(&self, framework_id: &FrameworkId, task_id: &TaskId, policy: Option<KillPolicy>);
    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str);
    fn shutdown_executor(self: &Arc<Self>, framework_id: &FrameworkId, executor_id: &ExecutorId);
    fn shutdown_framework(self: &Arc<Self>, framework_id: &FrameworkId);
    fn framework_message(&self, framework_id: &FrameworkId, executor_id: &ExecutorId, data: String);
    fn update_framework(&self, info: FrameworkInfo);
}

impl AgentEnd for Agent {
    fn config(&self) -> &AgentConfig {
        &self.config
    }
    fn client(&self) -> &reqwest::Client {
        &self.client
    }
    fn shutdown(&self) -> &tokio_util::sync::CancellationToken {
        &self.shutdown
    }
    fn updates_wanted(&self) -> &tokio::sync::Notify {
        &self.updates_wanted
    }
    fn registration(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(&Agent::registration(self))
    }
    fn agent_token(&self) -> Option<String> {
        Agent::agent_token(self)
    }
    fn agent_id(&self) -> Option<String> {
        Agent::agent_id(self)
    }
    fn set_registered(&self, agent_id: String, token: Option<String>) {
        Agent::set_registered(self, agent_id, token)
    }
    fn set_disconnected(&self) {
        Agent::set_disconnected(self)
    }
    fn set_master_error(&self, error: String) {
        Agent::set_master_error(self, error)
    }
    fn due_updates(&self) -> crate::status_queue::Due {
        Agent::due_updates(self)
    }
    fn run_tasks(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
        group: bool,
    ) {
        Agent::run_tasks(self, framework, executor, tasks, group)
    }
    fn kill_task(&self, framework_id: &FrameworkId, task_id: &TaskId, policy: Option<KillPolicy>) {
        Agent::kill_task(self, framework_id, task_id, policy)
    }
    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) {
        Agent::acknowledge(self, framework_id, task_id, uuid)
    }
    fn shutdown_executor(self: &Arc<Self>, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        Agent::shutdown_executor(self, framework_id, executor_id)
    }
    fn shutdown_framework(self: &Arc<Self>, framework_id: &FrameworkId) {
        Agent::shutdown_framework(self, framework_id)
    }
    fn framework_message(
        &self,
        framework_id: &FrameworkId,
        executor_id: &ExecutorId,
        data: String,
    ) {
        Agent::framework_message(self, framework_id, executor_id, data)
    }
    fn update_framework(&self, info: FrameworkInfo) {
        Agent::update_framework(self, info)
    }
}

/// Status updates sent to the master in one request at most.
const STATUS_BATCH: usize = 256;

/// The longest wait between subscription attempts: a restarted master has every agent back
/// within about this long of listening again.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// The wait after the master refused the agent outright.
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);

pub(crate) fn spawn(agent: Arc<Agent>) {
    spawn_link(agent.clone());
    tokio::spawn(executor_heartbeats(agent));
}

/// Registers and stays registered with the master, obeying its commands and delivering the
/// agent's status updates, until the agent's shutdown.
pub(crate) fn spawn_link<A: AgentEnd>(agent: Arc<A>) {
    tokio::spawn(subscription_loop(agent.clone()));
    tokio::spawn(status_loop(agent));
}

/// HEARTBEAT events keep executor streams alive through idle periods (Mesos sends them to HTTP
/// executors too, every 30 minutes; a shorter period suits proxies with idle timeouts).
async fn executor_heartbeats(agent: Arc<Agent>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(30));
    ticker.tick().await;
    loop {
        tokio::select! {
            () = agent.shutdown.cancelled() => return,
            _ = ticker.tick() => agent.heartbeat_executors(),
        }
    }
}

/// A request to the master, carrying this agent's secret once it has one.
fn request<A: AgentEnd + ?Sized>(agent: &A, path: &str) -> reqwest::RequestBuilder {
    with_token(agent, agent.client().post(agent.config().master_url(path)))
}

fn with_token<A: AgentEnd + ?Sized>(
    agent: &A,
    request: reqwest::RequestBuilder,
) -> reqwest::RequestBuilder {
    match agent.agent_token() {
        Some(token) => request.header(AGENT_TOKEN_HEADER, token),
        None => request,
    }
}

/// Whether a request waits for a slot of a shared bound ([`AgentEnd::request_slots`]).
#[derive(Clone, Copy, PartialEq)]
enum Slot {
    Wait,
    /// Not sent when no slot is free (a ping: the next one comes soon, and a ping queued
    /// behind a backlog of reports would arrive too late to count).
    IfFree,
}

/// A slot of the agent's shared bound, if it has one; `None` in the `Err` when `IfFree` finds
/// none free.
async fn slot<A: AgentEnd + ?Sized>(
    agent: &A,
    how: Slot,
) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ()> {
    let Some(slots) = agent.request_slots() else {
        return Ok(None);
    };
    match how {
        // Never closed: a permit always comes.
        Slot::Wait => Ok(slots.acquire_owned().await.ok()),
        Slot::IfFree => slots.try_acquire_owned().map(Some).map_err(|_| ()),
    }
}

async fn post<A: AgentEnd, T: Serialize>(
    agent: &A,
    path: &str,
    body: &T,
    how: Slot,
) -> Result<Option<reqwest::StatusCode>, reqwest::Error> {
    let Ok(_slot) = slot(agent, how).await else {
        // Not sent: no slot was free.
        return Ok(None);
    };
    let response = request(agent, path)
        .timeout(Duration::from_secs(10))
        .json(body)
        .send()
        .await?;
    Ok(Some(response.status()))
}

/// Resolves when the leading master changes (never, for an agent with one master).
async fn leader_changed(leader: &mut Option<tokio::sync::watch::Receiver<Option<String>>>) {
    match leader {
        Some(leader) => {
            if leader.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn subscription_loop<A: AgentEnd>(agent: Arc<A>) {
    let mut backoff = Duration::from_millis(100);
    let mut leader = agent.config().leader.clone();
    loop {
        if agent.shutdown().is_cancelled() {
            return;
        }
        if let Some(watch) = &mut leader {
            // No leader (an election under way): wait for one rather than knock on nothing.
            watch.mark_unchanged();
            while watch.borrow().is_none() {
                tokio::select! {
                    () = agent.shutdown().cancelled() => return,
                    changed = watch.changed() => if changed.is_err() { return },
                }
            }
            tracing::info!(master = ?watch.borrow().as_deref(), "the leading master");
        }
        match subscribe_once(&agent, &mut leader).await {
            Ok(Outcome::Registered) => backoff = Duration::from_millis(100),
            Ok(Outcome::Stop) => return,
            Ok(Outcome::Refused) => {}
            Err(error) => {
                tracing::debug!(%error, master = %agent.config().master, "master link down");
                if let LinkError::Refused { status, .. } = &error
                    && status.is_client_error()
                {
                    // Refused (a wrong credential, say): asking again soon changes nothing.
                    backoff = backoff.max(REFUSED_BACKOFF);
                }
                agent.set_master_error(error.to_string());
            }
        }
        agent.set_disconnected();
        // Between half the backoff and all of it, at a point of this agent's own: agents that
        // lost their master together do not all knock at the same instants.
        let spread = crate::fnv::fnv1a(
            (Arc::as_ptr(&agent) as usize)
                .to_le_bytes()
                .into_iter()
                .chain(now_nanos().to_le_bytes()),
        );
        let wait = backoff.mul_f64(0.5 + (spread % 1000) as f64 / 2000.0);
        tokio::select! {
            () = agent.shutdown().cancelled() => return,
            () = tokio::time::sleep(wait) => backoff = (backoff * 2).min(MAX_BACKOFF.max(backoff)),
            // A new leader: go to it at once.
            () = leader_changed(&mut leader) => backoff = Duration::from_millis(100),
        }
    }
}

enum Outcome {
    /// Was registered; the stream then ended.
    Registered,
    Refused,
    /// The master told the agent to shut down.
    Stop,
}

/// Why a subscription to the master failed or broke off.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Http(#[from] reqwest::Error),
    #[error("subscribe answered {status}: {why}")]
    Refused {
        status: reqwest::StatusCode,
        why: String,
    },
    #[error(transparent)]
    RecordIo(#[from] agora_api::ApiError),
    #[error("the registration does not serialise: {0}")]
    Encode(serde_json::Error),
}

async fn subscribe_once<A: AgentEnd>(
    agent: &Arc<A>,
    leader: &mut Option<tokio::sync::watch::Receiver<Option<String>>>,
) -> Result<Outcome, LinkError> {
    // Moved into the request, not kept for the stream's life: it lists every task the agent runs.
    let registration = agent.registration().map_err(LinkError::Encode)?;
    let url = agent.config().master_url("/internal/agent/subscribe");
    let subscribe = with_token(agent.as_ref(), agent.subscription_client().post(url))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(registration);
    let response = tokio::select! {
        response = subscribe.send() => response?,
        // A new leader while this one is asked: ask the new one.
        () = leader_changed(leader) => return Ok(Outcome::Registered),
    };
    if !response.status().is_success() {
        let status = response.status();
        let why = response.text().await.unwrap_or_default();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            tracing::warn!(master = %agent.config().master, %why, "the master refused this agent's credential (--credential)");
        }
        return Err(LinkError::Refused { status, why });
    }
    let mut body = response.bytes_stream();
    let mut decoder = recordio::Decoder::new();
    let mut registered = false;
    let (ping_stop, ping_task) = {
        let token = tokio_util::sync::CancellationToken::new();
        (token.clone(), token)
    };
    let _stop_pings = ping_stop.drop_guard();
    loop {
        let chunk = tokio::select! {
            () = agent.shutdown().cancelled() => return Ok(Outcome::Stop),
            () = ping_task.cancelled() => return Ok(Outcome::Registered),
            // Failover: re-register with the new leader, keeping every task.
            () = leader_changed(leader) => return Ok(Outcome::Registered),
            chunk = body.next() => chunk,
        };
        let Some(chunk) = chunk else {
            return Ok(if registered {
                Outcome::Registered
            } else {
                Outcome::Refused
            });
        };
        let chunk = chunk?;
        decoder.feed(&chunk);
        while let Some(record) = decoder.next_record()? {
            let command: AgentCommand = match serde_json::from_slice(&record) {
                Ok(command) => command,
                Err(error) => {
                    tracing::warn!(%error, "unreadable command from the master");
                    continue;
                }
            };
            if let AgentCommand::Registered {
                agent_id,
                ping_interval_ms,
                token,
                ..
            } = &command
            {
                registered = true;
                tracing::info!(agent = %agent_id, master = %agent.config().master, "registered with the master");
                agent.set_registered(agent_id.clone(), token.clone());
                tokio::spawn(ping_loop(
                    agent.clone(),
                    agent_id.clone(),
                    Duration::from_millis(*ping_interval_ms),
                    ping_task.clone(),
                ));
                continue;
            }
            if let AgentCommand::Shutdown { message } = &command {
                tracing::error!(%message, "the master refused this agent");
                agent.shutdown().cancel();
                return Ok(Outcome::Stop);
            }
            obey(agent, command);
        }
    }
}

/// Carries out one command of the master's stream.
fn obey<A: AgentEnd>(agent: &Arc<A>, command: AgentCommand) {
    match command {
        AgentCommand::RunTasks {
            framework,
            executor,
            tasks,
            group,
        } => agent.run_tasks(framework, executor, tasks, group),
        AgentCommand::KillTask {
            framework_id,
            task_id,
            kill_policy,
        } => agent.kill_task(
            &FrameworkId::new(framework_id),
            &TaskId::new(task_id),
            kill_policy,
        ),
        AgentCommand::Acknowledge {
            framework_id,
            task_id,
            uuid,
        } => agent.acknowledge(
            &FrameworkId::new(framework_id),
            &TaskId::new(task_id),
            &uuid,
        ),
        AgentCommand::ShutdownExecutor {
            framework_id,
            executor_id,
        } => agent.shutdown_executor(
            &FrameworkId::new(framework_id),
            &ExecutorId::new(executor_id),
        ),
        AgentCommand::ShutdownFramework { framework_id } => {
            agent.shutdown_framework(&FrameworkId::new(framework_id))
        }
        AgentCommand::FrameworkMessage {
            framework_id,
            executor_id,
            data,
        } => agent.framework_message(
            &FrameworkId::new(framework_id),
            &ExecutorId::new(executor_id),
            data,
        ),
        AgentCommand::UpdateFramework { framework } => agent.update_framework(framework),
        AgentCommand::Registered { .. }
        | AgentCommand::Shutdown { .. }
        | AgentCommand::Heartbeat => {}
    }
}

/// Pings until the master stops knowing us (404 → re-subscribe) or the link ends.
async fn ping_loop<A: AgentEnd>(
    agent: Arc<A>,
    agent_id: String,
    interval: Duration,
    link: tokio_util::sync::CancellationToken,
) {
    // Several pings per master timeout period, so one lost ping is harmless.
    let period = (interval / 3).max(Duration::from_millis(20));
    // The first one at a point of the period of this agent's own: agents that registered
    // together (all of them, after a master restart) do not ping together ever after.
    let offset = crate::fnv::fnv1a(agent_id.bytes().chain(now_nanos().to_le_bytes()));
    let first = period.mul_f64((offset % 1000) as f64 / 1000.0);
    tokio::select! {
        () = link.cancelled() => return,
        () = tokio::time::sleep(first) => {}
    }
    loop {
        tokio::select! {
            () = link.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        match post(
            agent.as_ref(),
            "/internal/agent/ping",
            &Ping {
                agent_id: agent_id.clone(),
            },
            Slot::IfFree,
        )
        .await
        {
            Ok(Some(reqwest::StatusCode::NOT_FOUND)) => {
                tracing::info!("the master no longer knows this agent; re-registering");
                link.cancel();
                return;
            }
            Ok(Some(_)) => {}
            Ok(None) => tracing::debug!("ping skipped: every connection to the master is busy"),
            Err(error) => tracing::debug!(%error, "ping failed"),
        }
    }
}

fn now_nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Delivers due status updates; woken by new updates, otherwise sleeps until the next retry.
async fn status_loop<A: AgentEnd>(agent: Arc<A>) {
    loop {
        let (agent_id, due, next) = agent.due_updates();
        if let Some(agent_id) = agent_id {
            let mut due = due.into_iter().peekable();
            while due.peek().is_some() {
                let batch = StatusUpdates {
                    agent_id: agent_id.clone(),
                    updates: due
                        .by_ref()
                        .take(STATUS_BATCH)
                        .map(|(framework_id, status)| FrameworkStatus {
                            framework_id: framework_id.to_string(),
                            status,
                        })
                        .collect(),
                };
                if let Err(error) = post(
                    agent.as_ref(),
                    "/internal/agent/statuses",
                    &batch,
                    Slot::Wait,
                )
                .await
                {
                    tracing::debug!(%error, "status updates not delivered; will retry");
                }
            }
        }
        let sleep = next
            .map(|at| at.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(5));
        tokio::select! {
            () = agent.shutdown().cancelled() => return,
            () = agent.updates_wanted().notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

pub(crate) fn report_executor_exit<A: AgentEnd + ?Sized>(
    agent: &A,
    framework_id: &FrameworkId,
    executor_id: &ExecutorId,
    status: Option<i32>,
) {
    let Some(agent_id) = agent.agent_id() else {
        return;
    };
    let body = ExecutorExited {
        agent_id,
        framework_id: framework_id.to_string(),
        executor_id: executor_id.to_string(),
        status,
    };
    let report = request(agent, "/internal/agent/executor-exited").json(&body);
    let slots = agent.request_slots();
    tokio::spawn(async move {
        // Within the shared bound, when there is one.
        let _slot = match slots {
            Some(slots) => slots.acquire_owned().await.ok(),
            None => None,
        };
        let _ = report.send().await;
    });
}

pub(crate) fn forward_executor_message(
    agent: &Agent,
    framework_id: &str,
    executor_id: &str,
    data: String,
) {
    let Some(agent_id) = agent.agent_id() else {
        return;
    };
    let body = ExecutorMessage {
        agent_id,
        framework_id: framework_id.to_owned(),
        executor_id: executor_id.to_owned(),
        data,
    };
    let report = request(agent, "/internal/agent/message").json(&body);
    tokio::spawn(async move {
        let _ = report.send().await;
    });
}

//! The scheduler SDK: subscribes to a master, keeps the subscription alive (re-subscribing
//! with the framework id, with backoff, following redirects to the leader), hands out events
//! in order, and sends calls with the current stream id.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;

use agora_api::mesos::{FrameworkInfo, Id, KillPolicy, TaskInfo, TaskStatus};
use agora_api::recordio;
use agora_api::scheduler::{
    Accept, Acknowledge, Call, Decline, Event, Filters, Kill, Launch, Message, Operation,
    Reconcile, ReconcileTask, Roles, Subscribe,
};

use crate::ClientError;

/// Implicit acknowledgements sent at once, at most.
const ACKS_IN_FLIGHT: usize = 256;

#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// Acknowledge every update carrying a uuid as soon as it is received.
    pub implicit_acknowledgements: bool,
    /// Longest pause between re-subscription attempts.
    pub max_backoff: Duration,
    /// Who the framework is to the master (its `principal`, when the master authenticates
    /// frameworks).
    pub access: crate::Access,
}

impl Default for SchedulerOptions {
    fn default() -> SchedulerOptions {
        SchedulerOptions {
            implicit_acknowledgements: true,
            max_backoff: Duration::from_secs(5),
            access: crate::Access::default(),
        }
    }
}

impl SchedulerOptions {
    /// The defaults, calling as `access` says.
    pub fn with_access(access: crate::Access) -> SchedulerOptions {
        SchedulerOptions {
            access,
            ..SchedulerOptions::default()
        }
    }
}

#[derive(Default)]
struct Session {
    base: String,
    framework_id: Option<String>,
    stream_id: Option<String>,
    /// The masters given (`h1:5050,h2:5050`), as base URLs: a subscription that fails or ends
    /// goes on with the next one, whose standby redirects to the leader.
    masters: Vec<String>,
    next_master: usize,
    /// The leader of masters in ZooKeeper (`zk://…`), when the scheduler was given them.
    leader: Option<tokio::sync::watch::Receiver<Option<String>>>,
    tls: bool,
}

impl Session {
    /// After a failed or ended subscription: the leader now (masters in ZooKeeper), or the
    /// next master given, if there are several.
    fn next_master(&mut self) {
        if let Some(leader) = &mut self.leader {
            // Seen: a wait on a copy of it wakes only for the next leader.
            if let Some(address) = leader.borrow_and_update().clone() {
                self.base = crate::base_url(&address, self.tls);
            }
            return;
        }
        if self.masters.len() > 1 {
            self.next_master = (self.next_master + 1) % self.masters.len();
            self.base = self.masters[self.next_master].clone();
        }
    }
}

/// The base URLs of `master`: one address, or several separated by commas (Mesos'
/// `host1:5050,host2:5050`).
fn master_bases(master: &str, access: &crate::Access) -> Vec<String> {
    let bases: Vec<String> = master
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| access.base_url(m))
        .collect();
    if bases.is_empty() {
        vec![access.base_url(master)]
    } else {
        bases
    }
}

/// A subscribed framework. Events arrive through [`Scheduler::next_event`]; after a
/// reconnection a fresh `SUBSCRIBED` event shows up in the same sequence.
pub struct Scheduler {
    session: Arc<Mutex<Session>>,
    http: reqwest::Client,
    events: mpsc::UnboundedReceiver<Event>,
    stop: stop_flag::Stop,
    /// The subscription task: aborting it closes the connection at once, so the master sees
    /// the framework go (and starts its failover timeout) without waiting for a heartbeat.
    task: tokio::task::AbortHandle,
    /// What keeps the leader of masters in ZooKeeper current, when given them.
    _leader: Option<crate::leader::Leader>,
}

mod stop_flag {
    //! A tiny stop flag shared with the background task (avoids another dependency).
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[derive(Clone, Default)]
    pub struct Stop(Arc<AtomicBool>);

    impl Stop {
        pub fn set(&self) {
            self.0.store(true, Ordering::SeqCst);
        }
        pub fn is_set(&self) -> bool {
            self.0.load(Ordering::SeqCst)
        }
    }
}

/// Where a scheduler that outlives its process keeps its framework id between runs: what
/// reads it, drops it (the master removed that framework) and keeps a new one (a failure to
/// keep it is logged: the framework runs on, and subscribes anew after a restart).
pub struct KeptId<Load, Forget, Save> {
    pub load: Load,
    pub forget: Forget,
    pub save: Save,
}

/// The FrameworkInfo of one of agora's own schedulers, as Marathon and Chronos register:
/// checkpointing, a week's failover timeout (tasks survive a long scheduler outage), its host
/// (the advertised address without its port, as Mesos shows a hostname) and its web UI.
pub fn long_lived_framework(
    name: &str,
    user: &str,
    principal: Option<String>,
    advertised: &str,
    access: &crate::Access,
) -> FrameworkInfo {
    FrameworkInfo {
        user: user.to_owned(),
        principal,
        name: name.to_owned(),
        failover_timeout: 604_800.0,
        checkpoint: true,
        hostname: Some(crate::host_of(advertised).to_owned()),
        webui_url: Some(access.base_url(advertised)),
        ..FrameworkInfo::default()
    }
}

impl Scheduler {
    /// Subscribes and waits for `SUBSCRIBED` (or the first failure). `master` is `host:port`,
    /// a URL, several masters separated by commas (`h1:5050,h2:5050`: a standby redirects to
    /// the leader, and when the leader goes the scheduler re-subscribes through the next one),
    /// or, with the `zk` feature, the masters in ZooKeeper (`zk://host:2181/agora`: their
    /// leader is followed) — the framework keeping its id either way.
    pub async fn subscribe(
        master: &str,
        info: FrameworkInfo,
        options: SchedulerOptions,
    ) -> Result<Scheduler, ClientError> {
        let leader = crate::leader::follow(master).await?;
        let masters = match &leader {
            Some((_, first)) => vec![options.access.base_url(first)],
            None => master_bases(master, &options.access),
        };
        let session = Arc::new(Mutex::new(Session {
            base: masters[0].clone(),
            framework_id: info.id.as_ref().map(|id| id.value.clone()),
            stream_id: None,
            masters,
            next_master: 0,
            leader: leader.as_ref().map(|(leader, _)| leader.address.clone()),
            tls: options.access.uses_tls(),
        }));
        let http = options
            .access
            .client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ClientError::Connect {
                url: master.to_owned(),
                message: e.to_string(),
            })?;
        let (sender, events) = mpsc::unbounded_channel();
        let stop = stop_flag::Stop::default();
        let (ready_sender, ready) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(run(
            session.clone(),
            http.clone(),
            info,
            options,
            sender,
            stop.clone(),
            ready_sender,
        ))
        .abort_handle();
        match ready.await {
            Ok(Ok(())) => Ok(Scheduler {
                session,
                http,
                events,
                stop,
                task,
                _leader: leader.map(|(leader, _)| leader),
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ClientError::NotSubscribed),
        }
    }

    /// Subscribes a scheduler that outlives its process, as `info` with the id `ids` keeps
    /// (the framework resumes its tasks), or afresh once the master says it removed that
    /// framework (the id is forgotten). Retries every 300 ms until the master accepts, then
    /// keeps the id it was given. Cancelled by dropping the future.
    pub async fn subscribe_resuming<Load, Forget, Save, E>(
        master: &str,
        ids: &KeptId<Load, Forget, Save>,
        info: &FrameworkInfo,
        options: SchedulerOptions,
    ) -> Scheduler
    where
        Load: Fn() -> Option<String>,
        Forget: Fn(),
        Save: Fn(&str) -> Result<(), E>,
        E: std::fmt::Display,
    {
        loop {
            let info = FrameworkInfo {
                id: (ids.load)().map(Id::new),
                ..info.clone()
            };
            let name = info.name.clone();
            match Scheduler::subscribe(master, info, options.clone()).await {
                Ok(scheduler) => {
                    if let Some(id) = scheduler.framework_id()
                        && let Err(error) = (ids.save)(&id)
                    {
                        tracing::error!(%error, framework = %name, "cannot keep the framework id");
                    }
                    return scheduler;
                }
                Err(error) => {
                    tracing::debug!(%error, framework = %name, "cannot subscribe yet");
                    if error.to_string().contains("Framework has been removed") {
                        (ids.forget)();
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    pub fn framework_id(&self) -> Option<String> {
        self.lock().framework_id.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next event, `None` once the scheduler is dropped or torn down.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// The next event if one has already arrived, without waiting: lets a scheduler take in a
    /// burst of updates before deciding what to do about them.
    pub fn try_next_event(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Sends a call with the framework id and stream id filled in.
    pub async fn call(&self, mut call: Call) -> Result<(), ClientError> {
        let (base, framework_id, stream_id) = {
            let session = self.lock();
            (
                session.base.clone(),
                session.framework_id.clone(),
                session.stream_id.clone(),
            )
        };
        let (Some(framework_id), Some(stream_id)) = (framework_id, stream_id) else {
            return Err(ClientError::NotSubscribed);
        };
        call.framework_id = Some(Id::new(framework_id));
        send_call(&self.http, &base, &stream_id, &call).await
    }

    fn call_of(kind: &str) -> Call {
        Call {
            kind: kind.to_owned(),
            ..Call::default()
        }
    }

    pub async fn launch(
        &self,
        offer_ids: Vec<Id>,
        tasks: Vec<TaskInfo>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("ACCEPT");
        call.accept = Some(Accept {
            offer_ids,
            operations: vec![Operation {
                kind: "LAUNCH".into(),
                launch: Some(Launch { task_infos: tasks }),
                ..Operation::default()
            }],
            filters: refuse_seconds.map(|s| Filters {
                refuse_seconds: Some(s),
            }),
        });
        self.call(call).await
    }

    pub async fn accept(
        &self,
        offer_ids: Vec<Id>,
        operations: Vec<Operation>,
        filters: Option<Filters>,
    ) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("ACCEPT");
        call.accept = Some(Accept {
            offer_ids,
            operations,
            filters,
        });
        self.call(call).await
    }

    pub async fn decline(
        &self,
        offer_ids: Vec<Id>,
        refuse_seconds: Option<f64>,
    ) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("DECLINE");
        call.decline = Some(Decline {
            offer_ids,
            filters: refuse_seconds.map(|s| Filters {
                refuse_seconds: Some(s),
            }),
        });
        self.call(call).await
    }

    pub async fn kill(&self, task_id: &str, grace: Option<Duration>) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("KILL");
        call.kill = Some(Kill {
            task_id: Id::new(task_id),
            agent_id: None,
            kill_policy: grace.map(|g| KillPolicy {
                grace_period: Some(agora_api::mesos::DurationInfo {
                    nanoseconds: g.as_nanos() as i64,
                }),
            }),
        });
        self.call(call).await
    }

    /// Acknowledges an update that carries a uuid; others need no acknowledgement.
    pub async fn acknowledge(&self, status: &TaskStatus) -> Result<(), ClientError> {
        let (Some(uuid), Some(agent_id)) = (&status.uuid, &status.agent_id) else {
            return Ok(());
        };
        let mut call = Scheduler::call_of("ACKNOWLEDGE");
        call.acknowledge = Some(Acknowledge {
            agent_id: agent_id.clone(),
            task_id: status.task_id.clone(),
            uuid: uuid.clone(),
        });
        self.call(call).await
    }

    /// Explicit reconciliation of the given (task, agent) pairs; empty = implicit.
    pub async fn reconcile(&self, tasks: Vec<(String, Option<String>)>) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("RECONCILE");
        call.reconcile = Some(Reconcile {
            tasks: tasks
                .into_iter()
                .map(|(task, agent)| ReconcileTask {
                    task_id: Id::new(task),
                    agent_id: agent.map(Id::new),
                })
                .collect(),
        });
        self.call(call).await
    }

    pub async fn revive(&self, roles: Vec<String>) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("REVIVE");
        call.revive = Some(Roles { roles });
        self.call(call).await
    }

    pub async fn suppress(&self, roles: Vec<String>) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("SUPPRESS");
        call.suppress = Some(Roles { roles });
        self.call(call).await
    }

    /// Asks an agent to shut an executor down (its tasks are killed).
    pub async fn shutdown(&self, executor_id: &str, agent_id: &str) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("SHUTDOWN");
        call.shutdown = Some(agora_api::scheduler::Shutdown {
            executor_id: Id::new(executor_id),
            agent_id: Id::new(agent_id),
        });
        self.call(call).await
    }

    pub async fn message(
        &self,
        agent_id: &str,
        executor_id: &str,
        data: &[u8],
    ) -> Result<(), ClientError> {
        let mut call = Scheduler::call_of("MESSAGE");
        call.message = Some(Message {
            agent_id: Id::new(agent_id),
            executor_id: Id::new(executor_id),
            data: agora_api::mesos::encode_bytes(data),
        });
        self.call(call).await
    }

    /// Removes the framework: every task is killed.
    pub async fn teardown(self) -> Result<(), ClientError> {
        self.call(Scheduler::call_of("TEARDOWN")).await
    }

    /// Disconnects without tearing down: the master keeps the tasks for the failover timeout.
    pub fn disconnect(self) {}
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop.set();
        self.task.abort();
    }
}

async fn send_call(
    http: &reqwest::Client,
    base: &str,
    stream_id: &str,
    call: &Call,
) -> Result<(), ClientError> {
    let url = format!("{base}/api/v1/scheduler");
    let response = http
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Mesos-Stream-Id", stream_id)
        .json(call)
        .send()
        .await
        .map_err(|e| ClientError::Connect {
            url: url.clone(),
            message: e.to_string(),
        })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(ClientError::Status {
        url,
        status: status.as_u16(),
        body,
    })
}

/// The subscription loop: subscribe, pump events, re-subscribe with backoff.
async fn run(
    session: Arc<Mutex<Session>>,
    http: reqwest::Client,
    mut info: FrameworkInfo,
    options: SchedulerOptions,
    events: mpsc::UnboundedSender<Event>,
    stop: stop_flag::Stop,
    ready: tokio::sync::oneshot::Sender<Result<(), ClientError>>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::from_millis(100);
    // The first subscription tries each master given once before it fails.
    let mut untried = session
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .masters
        .len()
        .saturating_sub(1);
    while !stop.is_set() && !events.is_closed() {
        let outcome = subscribe_once(
            &session, &http, &mut info, &options, &events, &stop, &mut ready,
        )
        .await;
        match outcome {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(error) => {
                tracing::debug!(%error, "scheduler subscription failed");
                if ready.is_some() && untried > 0 {
                    untried -= 1;
                    session
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .next_master();
                    continue;
                }
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(error));
                    return;
                }
            }
        }
        // The master may be gone: with several given, the next one (a standby redirects).
        let leader = {
            let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
            session.next_master();
            session.leader.clone()
        };
        match leader {
            // Masters in ZooKeeper: a new leader is gone to at once.
            Some(mut leader) => {
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    changed = leader.changed() => if changed.is_ok() {
                        session.lock().unwrap_or_else(|p| p.into_inner()).next_master();
                        backoff = Duration::from_millis(100);
                        continue;
                    },
                }
            }
            None => tokio::time::sleep(backoff).await,
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

async fn subscribe_once(
    session: &Arc<Mutex<Session>>,
    http: &reqwest::Client,
    info: &mut FrameworkInfo,
    options: &SchedulerOptions,
    events: &mpsc::UnboundedSender<Event>,
    stop: &stop_flag::Stop,
    ready: &mut Option<tokio::sync::oneshot::Sender<Result<(), ClientError>>>,
) -> Result<(), ClientError> {
    let lock = |s: &Arc<Mutex<Session>>| -> (String, Option<String>) {
        let s = s.lock().unwrap_or_else(|p| p.into_inner());
        (s.base.clone(), s.framework_id.clone())
    };
    let mut redirects = 0;
    let response = loop {
        let (base, framework_id) = lock(session);
        info.id = framework_id.clone().map(Id::new);
        let call = Call {
            kind: "SUBSCRIBE".into(),
            framework_id: framework_id.map(Id::new),
            subscribe: Some(Subscribe {
                framework_info: info.clone(),
                suppressed_roles: Vec::new(),
            }),
            ..Call::default()
        };
        let url = format!("{base}/api/v1/scheduler");
        let response = http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .json(&call)
            .send()
            .await
            .map_err(|e| ClientError::Connect {
                url: url.clone(),
                message: e.to_string(),
            })?;
        if response.status() == reqwest::StatusCode::TEMPORARY_REDIRECT && redirects < 5 {
            redirects += 1;
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            // Mesos' `//host:port/...` is reached as the master that answered was.
            let mut session = session.lock().unwrap_or_else(|p| p.into_inner());
            session.base = crate::base_url(&location, session.base.starts_with("https:"));
            drop(session);
            continue;
        }
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            return Err(ClientError::Status { url, status, body });
        }
        break response;
    };
    let stream_id = response
        .headers()
        .get("mesos-stream-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let base = lock(session).0;
    // Acknowledgements in flight at once: each is its own request, and an unbounded burst
    // (a status storm, thousands of tasks starting) would open a connection each.
    let acks = Arc::new(tokio::sync::Semaphore::new(ACKS_IN_FLIGHT));
    let mut body = response.bytes_stream();
    let mut decoder = recordio::Decoder::new();
    // Mesos' advice: a subscription that misses about five heartbeats is dead; reconnect.
    let mut silence_limit = Duration::from_secs(75);
    loop {
        let chunk = match tokio::time::timeout(silence_limit, body.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                return Err(ClientError::Connect {
                    url: base.clone(),
                    message: "no heartbeat from the master".into(),
                });
            }
        };
        if stop.is_set() {
            return Ok(());
        }
        let chunk = chunk.map_err(|e| ClientError::Connect {
            url: base.clone(),
            message: e.to_string(),
        })?;
        decoder.feed(&chunk);
        while let Some(record) = decoder.next_record().map_err(|e| ClientError::Invalid {
            url: base.clone(),
            message: e.to_string(),
        })? {
            let event: Event = match serde_json::from_slice(&record) {
                Ok(event) => event,
                Err(error) => {
                    tracing::warn!(%error, "unreadable scheduler event");
                    continue;
                }
            };
            match &event {
                Event::Subscribed { subscribed } => {
                    if subscribed.heartbeat_interval_seconds > 0.0
                        && let Ok(limit) =
                            Duration::try_from_secs_f64(subscribed.heartbeat_interval_seconds * 5.0)
                    {
                        silence_limit = limit;
                    }
                    let mut s = session.lock().unwrap_or_else(|p| p.into_inner());
                    s.framework_id = Some(subscribed.framework_id.value.clone());
                    s.stream_id = stream_id.clone();
                    drop(s);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
                Event::Error { error } => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(ClientError::Status {
                            url: base.clone(),
                            status: 200,
                            body: error.message.clone(),
                        }));
                        return Ok(());
                    }
                }
                Event::Update { update } if options.implicit_acknowledgements => {
                    if let (Some(uuid), Some(agent_id), Some(stream_id)) =
                        (&update.status.uuid, &update.status.agent_id, &stream_id)
                    {
                        let framework_id = session
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .framework_id
                            .clone();
                        let call = Call {
                            kind: "ACKNOWLEDGE".into(),
                            framework_id: framework_id.map(Id::new),
                            acknowledge: Some(Acknowledge {
                                agent_id: agent_id.clone(),
                                task_id: update.status.task_id.clone(),
                                uuid: uuid.clone(),
                            }),
                            ..Call::default()
                        };
                        // Sent without waiting: the events behind this one need not queue
                        // behind its round trip (each task has one update in flight at most).
                        let (http, base, stream_id) =
                            (http.clone(), base.clone(), stream_id.clone());
                        let acks = acks.clone();
                        tokio::spawn(async move {
                            // Never closed: a permit always comes.
                            let _slot = acks.acquire_owned().await.ok();
                            if let Err(error) = send_call(&http, &base, &stream_id, &call).await {
                                tracing::warn!(%error, "implicit acknowledgement failed");
                            }
                        });
                    }
                }
                _ => {}
            }
            if events.send(event).is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

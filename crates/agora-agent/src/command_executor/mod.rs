//! The built-in executor (`agora executor`): what Mesos calls the command executor (one command
//! task) and the default executor (a task group). It is a separate process speaking the v1
//! executor API to its agent, exactly like a framework's custom executor, so an agent restart
//! does not touch it: it keeps its tasks running, re-subscribes, and re-sends every update the
//! agent had not acknowledged.

mod docker_task;
mod duration;
mod health;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use tokio::sync::mpsc;

use agora_api::executor::{Call, Event, Message, Subscribe, UnacknowledgedUpdate, Update};
use agora_api::health::HealthCheck;
use agora_api::mesos::{FrameworkInfo, Id, KILL_DRAIN_LABEL, TaskInfo, TaskStatus, encode_bytes};
use agora_api::recordio;
use agora_types::TaskState;

use crate::spawn::signal_group;

const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(3);
/// The agent's `--kill-grace`: SIGTERM to SIGKILL, for a task whose kill names none.
pub(crate) const KILL_GRACE_ENV: &str = "AGORA_KILL_GRACE";
/// The agent's `--kill-drain`: TASK_KILLING to SIGTERM, for a task that may be in a proxy.
pub(crate) const KILL_DRAIN_ENV: &str = "AGORA_KILL_DRAIN";
/// Set when the agent serves TLS: its certificate (PEM), which the executor trusts alone.
pub(crate) const AGENT_CERT_ENV: &str = "AGORA_AGENT_TLS_CERT";

/// Set when the agent serves the executor API on a Unix socket too (Mesos' name): its path.
pub(crate) const DOMAIN_SOCKET_ENV: &str = "MESOS_DOMAIN_SOCKET";

/// The agent's id for the executor's container, in the executor's environment.
pub(crate) const CONTAINER_ID_ENV: &str = "AGORA_CONTAINER_ID";
const HEALTH_REASON: &str = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED";

struct Settings {
    endpoint: String,
    framework_id: String,
    executor_id: String,
    sandbox: PathBuf,
    recovery_timeout: Duration,
    /// The agent's id for this executor's container (names and labels Docker containers).
    container_id: String,
    /// The agent's certificate when it serves TLS (it is then reached over https, trusting
    /// exactly that certificate).
    agent_cert: Option<String>,
    /// The agent's Unix socket for executors, when it serves one.
    socket: Option<PathBuf>,
    /// The executor's secret, sent with every call so that nothing else can speak for it.
    token: Option<String>,
    kill_grace: Duration,
    kill_drain: Duration,
}

/// Why the built-in executor cannot run, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{0} is not set: run by an agent")]
    NotSet(&'static str),
    #[error("the agent's certificate: {0}")]
    AgentCert(#[source] agora_tls::TlsError),
    #[error("cannot make an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot handle SIGTERM: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot subscribe to the agent: {0}")]
    Subscribe(#[source] Box<ExecutorError>),
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("agent answered {0}")]
    Refused(reqwest::StatusCode),
    #[error("terminated by SIGTERM; tasks killed")]
    Terminated,
    #[error("the agent did not come back within the recovery timeout")]
    AgentGone,
}

impl Settings {
    fn from_env() -> Result<Settings, ExecutorError> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| ExecutorError::NotSet(name));
        Ok(Settings {
            endpoint: var("MESOS_AGENT_ENDPOINT")?,
            framework_id: var("MESOS_FRAMEWORK_ID")?,
            executor_id: var("MESOS_EXECUTOR_ID")?,
            sandbox: PathBuf::from(var("MESOS_SANDBOX").or_else(|_| var("MESOS_DIRECTORY"))?),
            recovery_timeout: std::env::var("MESOS_RECOVERY_TIMEOUT")
                .ok()
                .and_then(|text| duration::parse(&text))
                .unwrap_or(Duration::from_secs(15 * 60)),
            container_id: std::env::var(CONTAINER_ID_ENV)
                .unwrap_or_else(|_| uuid::Uuid::new_v4().to_string()),
            agent_cert: std::env::var(AGENT_CERT_ENV).ok(),
            socket: std::env::var_os(DOMAIN_SOCKET_ENV).map(PathBuf::from),
            token: std::env::var(crate::executor_auth::TOKEN_ENV).ok(),
            kill_grace: std::env::var(KILL_GRACE_ENV)
                .ok()
                .and_then(|text| duration::parse(&text))
                .unwrap_or(DEFAULT_KILL_GRACE),
            kill_drain: std::env::var(KILL_DRAIN_ENV)
                .ok()
                .and_then(|text| duration::parse(&text))
                .unwrap_or(Duration::ZERO),
        })
    }
}

struct RunningTask {
    info: TaskInfo,
    pid: Option<i32>,
    /// Its Docker container, when it runs in one.
    docker: Option<docker_task::DockerTask>,
    state: TaskState,
    killing: bool,
    /// The task's directory (the sandbox, or its own under a task group's).
    directory: PathBuf,
    /// The last health its checks reported (`None`: no check, or no verdict yet).
    healthy: Option<bool>,
    /// Killed because its health check failed too often.
    killed_unhealthy: bool,
    health: Option<health::HealthTracker>,
    checker: Option<tokio::task::AbortHandle>,
    /// Mesos' `ContainerStatus` of its Docker container, sent with each update once known.
    container_status: Option<serde_json::Value>,
    /// Its Docker container's first process (host pid), labelled on each update once known.
    docker_pid: Option<i32>,
}

impl RunningTask {
    fn new(info: TaskInfo, directory: PathBuf) -> RunningTask {
        RunningTask {
            info,
            pid: None,
            docker: None,
            state: TaskState::Staging,
            killing: false,
            directory,
            healthy: None,
            killed_unhealthy: false,
            health: None,
            checker: None,
            container_status: None,
            docker_pid: None,
        }
    }

    fn stop_checking(&mut self) {
        if let Some(checker) = self.checker.take() {
            checker.abort();
        }
    }
}

enum Input {
    Event(Box<Event>),
    StreamEnded,
    Exited {
        task_id: String,
        code: Option<i32>,
        signal: Option<i32>,
    },
    KillTimeout {
        task_id: String,
    },
    /// A killed task's drain delay is over: it gets its signal now.
    Drained {
        task_id: String,
        grace: Duration,
    },
    ContainerStarted {
        task_id: String,
        started: Result<docker_task::DockerTask, crate::docker::DockerError>,
    },
    ContainerEnded {
        task_id: String,
        ended: docker_task::Ended,
    },
    Health {
        task_id: String,
        result: Result<(), health::Unhealthy>,
    },
}

/// How the executor reaches its agent.
struct AgentLink {
    client: reqwest::Client,
    url: String,
    local: bool,
}

impl AgentLink {
    /// Over the agent's Unix socket (`local`): no TCP and no TLS handshake — the kernel
    /// carries the bytes between two processes of this machine, and only the agent's user
    /// can make a socket at its path (the directory is the agent's). Else over the agent's
    /// address, https when it serves TLS.
    fn new(settings: &Settings, local: bool) -> Result<AgentLink, ExecutorError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = &settings.token
            && let Ok(value) = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        {
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let socket = settings.socket.as_ref().filter(|_| local);
        let (client, url) = match socket {
            // Access's builder: a bare reqwest one would read the machine's certificate
            // store as it is built, which costs each executor milliseconds.
            Some(socket) => (
                agora_client::Access::default()
                    .client_builder()
                    .unix_socket(socket.as_path())
                    // A call's connection closes when it is answered: an executor calls a
                    // few times in its life, and an idle connection kept open costs the
                    // agent hyper's buffers (16 KB) for each of 1,000 tasks, which the
                    // launch burst then leaves fragmented.
                    .pool_max_idle_per_host(0)
                    .default_headers(headers)
                    .build(),
                "http://localhost/slave(1)/api/v1/executor".to_owned(),
            ),
            None => {
                let tls = match &settings.agent_cert {
                    Some(pem) => {
                        Some(agora_tls::pinned_pem(pem).map_err(ExecutorError::AgentCert)?)
                    }
                    None => None,
                };
                let scheme = if tls.is_some() { "https" } else { "http" };
                (
                    agora_client::Access::default()
                        .with_tls(tls.map(agora_client::Tls::new))
                        .client_builder()
                        .default_headers(headers)
                        .build(),
                    format!("{scheme}://{}/api/v1/executor", settings.endpoint),
                )
            }
        };
        Ok(AgentLink {
            client: client.map_err(ExecutorError::Client)?,
            url,
            local: socket.is_some(),
        })
    }
}

/// Whether a Unix socket is at `path` (in this process's view of the filesystem: a
/// container whose `/tmp` hides it reaches the agent by its address instead).
fn socket_at(path: &std::path::Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

struct Executor {
    settings: Settings,
    link: AgentLink,
    probe_client: Option<agora_probe::HttpProber>,
    framework: Option<FrameworkInfo>,
    tasks: BTreeMap<String, RunningTask>,
    /// Updates sent but not acknowledged by the agent, by uuid.
    unacknowledged: HashMap<String, TaskStatus>,
    inputs: mpsc::UnboundedSender<Input>,
    shutting_down: bool,
    launched_any: bool,
}

/// Runs the executor until its tasks are done; returns the process exit code.
pub async fn run() -> Result<i32, ExecutorError> {
    let settings = Settings::from_env()?;
    let local = settings.socket.as_deref().is_some_and(socket_at);
    let link = AgentLink::new(&settings, local)?;
    let (inputs, mut receiver) = mpsc::unbounded_channel();
    let mut executor = Executor {
        settings,
        link,
        probe_client: None,
        framework: None,
        tasks: BTreeMap::new(),
        unacknowledged: HashMap::new(),
        inputs,
        shutting_down: false,
        launched_any: false,
    };
    let mut disconnected_since: Option<Instant> = None;
    // SIGTERM (the agent destroying an executor that cannot hear SHUTDOWN) takes the tasks
    // with it: they live in process groups of their own.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ExecutorError::Signals)?;
    executor
        .connect()
        .await
        .map_err(|e| ExecutorError::Subscribe(Box::new(e)))?;
    loop {
        if executor.finished() {
            return Ok(0);
        }
        let input = tokio::select! {
            _ = terminate.recv() => {
                executor.kill_everything().await;
                return Err(ExecutorError::Terminated);
            }
            input = receiver.recv() => input,
            () = tokio::time::sleep(Duration::from_millis(200)), if disconnected_since.is_some() => None,
        };
        match input {
            Some(Input::Event(event)) => executor.handle_event(*event).await,
            Some(Input::Exited {
                task_id,
                code,
                signal,
            }) => executor.task_exited(&task_id, code, signal).await,
            Some(Input::KillTimeout { task_id }) => executor.kill_timeout(&task_id),
            Some(Input::Drained { task_id, grace }) => executor.signal_kill(&task_id, grace),
            Some(Input::ContainerStarted { task_id, started }) => {
                executor.container_started(&task_id, started).await
            }
            Some(Input::ContainerEnded { task_id, ended }) => {
                executor.container_ended(&task_id, ended).await
            }
            Some(Input::Health { task_id, result }) => {
                executor.health_result(&task_id, result).await
            }
            Some(Input::StreamEnded) => {
                disconnected_since.get_or_insert_with(Instant::now);
            }
            None => {}
        }
        if let Some(since) = disconnected_since {
            if since.elapsed() > executor.settings.recovery_timeout {
                executor.kill_everything().await;
                return Err(ExecutorError::AgentGone);
            }
            if executor.connect().await.is_ok() {
                disconnected_since = None;
            }
        }
    }
}

impl Executor {
    fn call(&self, kind: &str) -> Call {
        Call {
            kind: kind.to_owned(),
            executor_id: Id::new(self.settings.executor_id.clone()),
            framework_id: Id::new(self.settings.framework_id.clone()),
            subscribe: None,
            update: None,
            message: None,
        }
    }

    fn finished(&self) -> bool {
        let all_done = self.tasks.values().all(|t| t.state.is_terminal());
        (self.launched_any || self.shutting_down) && all_done && self.unacknowledged.is_empty()
    }

    /// Subscribes (re-sending what the agent has not acknowledged) and pumps events into the
    /// input channel: over the agent's socket when there is one, else — or when the socket
    /// does not answer (an agent restarted without it) — over its address.
    async fn connect(&mut self) -> Result<(), ExecutorError> {
        let local = self.settings.socket.as_deref().is_some_and(socket_at);
        if local != self.link.local {
            self.link = AgentLink::new(&self.settings, local)?;
        }
        match self.subscribe().await {
            Err(_) if self.link.local => {
                self.link = AgentLink::new(&self.settings, false)?;
                self.subscribe().await
            }
            result => result,
        }
    }

    async fn subscribe(&mut self) -> Result<(), ExecutorError> {
        let mut call = self.call("SUBSCRIBE");
        call.subscribe = Some(Subscribe {
            unacknowledged_tasks: self
                .tasks
                .values()
                .filter(|t| !t.state.is_terminal())
                .map(|t| t.info.clone())
                .collect(),
            unacknowledged_updates: self
                .unacknowledged
                .values()
                .map(|s| UnacknowledgedUpdate { status: s.clone() })
                .collect(),
        });
        let response = self
            .link
            .client
            .post(&self.link.url)
            .header("Accept", "application/json")
            .json(&call)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(ExecutorError::Refused(response.status()));
        }
        let inputs = self.inputs.clone();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut decoder = recordio::Decoder::new();
            while let Some(Ok(chunk)) = body.next().await {
                decoder.feed(&chunk);
                while let Ok(Some(record)) = decoder.next_record() {
                    match serde_json::from_slice::<Event>(&record) {
                        Ok(event) => {
                            let _ = inputs.send(Input::Event(Box::new(event)));
                        }
                        Err(error) => eprintln!("agora executor: unreadable event: {error}"),
                    }
                }
            }
            let _ = inputs.send(Input::StreamEnded);
        });
        Ok(())
    }

    async fn handle_event(&mut self, event: Event) {
        match event {
            Event::Subscribed { subscribed } => self.framework = Some(subscribed.framework_info),
            Event::Launch { launch } => self.launch(launch.task, false).await,
            Event::LaunchGroup { launch_group } => {
                for task in launch_group.task_group.tasks {
                    self.launch(task, true).await;
                }
            }
            Event::Kill { kill } => {
                let grace = kill
                    .kill_policy
                    .and_then(|p| p.grace_period)
                    .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64));
                self.kill(&kill.task_id.value, grace).await;
            }
            Event::Acknowledged { acknowledged } => {
                self.unacknowledged.remove(&acknowledged.uuid);
            }
            Event::Shutdown => {
                self.shutting_down = true;
                let ids: Vec<String> = self.tasks.keys().cloned().collect();
                for id in ids {
                    self.kill(&id, None).await;
                }
            }
            Event::Message {
                message: Message { .. },
            }
            | Event::Heartbeat => {}
            Event::Error { error } => eprintln!("agora executor: agent error: {}", error.message),
        }
    }

    async fn launch(&mut self, task: TaskInfo, in_group: bool) {
        let task_id = task.task_id.value.clone();
        self.launched_any = true;
        let directory = if in_group {
            self.settings.sandbox.join("tasks").join(&task_id)
        } else {
            self.settings.sandbox.clone()
        };
        let Some(command) = task.command.clone() else {
            self.tasks
                .insert(task_id.clone(), RunningTask::new(task, directory));
            self.update(
                &task_id,
                TaskState::Failed,
                Some("Task has no command".into()),
                Some("REASON_TASK_INVALID"),
            )
            .await;
            return;
        };
        if let Some(message) = crate::secrets::unresolved(&command) {
            self.tasks
                .insert(task_id.clone(), RunningTask::new(task, directory));
            self.update(
                &task_id,
                TaskState::Failed,
                Some(message),
                Some("REASON_CONTAINER_LAUNCH_FAILED"),
            )
            .await;
            return;
        }
        let docker = crate::docker::spec::is_docker(&task);
        self.tasks.insert(
            task_id.clone(),
            RunningTask::new(task.clone(), directory.clone()),
        );
        // The command does not wait for the agent to answer TASK_STARTING: both updates are
        // stamped when their state began and sent in order once the command runs.
        let starting = self.status_call(&task_id, TaskState::Starting, None, None);
        let starting = self.post(starting);
        if docker {
            starting.await;
            self.launch_in_docker(&task, directory, in_group).await;
            return;
        }
        let spawned = spawn_task(&task_id, &command, &directory, in_group);
        match spawned {
            Ok(mut child) => {
                let pid = child.id().map(|p| p as i32);
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    task.pid = pid;
                }
                let inputs = self.inputs.clone();
                let exited_id = task_id.clone();
                tokio::spawn(async move {
                    use std::os::unix::process::ExitStatusExt;
                    let status = child.wait().await.ok();
                    let _ = inputs.send(Input::Exited {
                        task_id: exited_id,
                        code: status.and_then(|s| s.code()),
                        signal: status.and_then(|s| s.signal()),
                    });
                });
                let running = self.status_call(&task_id, TaskState::Running, None, None);
                starting.await;
                self.post(running).await;
                self.start_checking(&task_id);
            }
            Err(error) => {
                starting.await;
                self.update(
                    &task_id,
                    TaskState::Failed,
                    Some(format!("Failed to launch the command: {error}")),
                    Some("REASON_COMMAND_EXECUTOR_FAILED"),
                )
                .await;
            }
        }
    }

    /// Runs a task with a DOCKER container through the Docker Engine.
    async fn launch_in_docker(&mut self, task: &TaskInfo, directory: PathBuf, in_group: bool) {
        let task_id = task.task_id.value.clone();
        let owner = crate::docker::spec::Owner {
            agent_id: std::env::var("MESOS_SLAVE_ID").unwrap_or_default(),
            framework_id: self.settings.framework_id.clone(),
            executor_id: self.settings.executor_id.clone(),
            container_id: self.settings.container_id.clone(),
        };
        let mut name = format!("mesos-{}", self.settings.container_id);
        if in_group {
            let safe: String = task_id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            name = format!("{name}.{safe}");
        }
        // Pulling can take minutes: the executor goes on hearing kills, acknowledgements and
        // its agent meanwhile, and learns of the start as an input.
        let inputs = self.inputs.clone();
        let (task, sandbox) = (task.clone(), self.settings.sandbox.clone());
        tokio::spawn(async move {
            let ended_inputs = inputs.clone();
            let ended_id = task_id.clone();
            let started =
                docker_task::start(&task, &sandbox, directory, &owner, &name, move |ended| {
                    let _ = ended_inputs.send(Input::ContainerEnded {
                        task_id: ended_id,
                        ended,
                    });
                })
                .await;
            let _ = inputs.send(Input::ContainerStarted { task_id, started });
        });
    }

    /// A task's Docker container has started, or could not.
    async fn container_started(
        &mut self,
        task_id: &str,
        started: Result<docker_task::DockerTask, crate::docker::DockerError>,
    ) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        match started {
            Ok(container) => {
                if task.state.is_terminal() {
                    // Killed while it was starting: it goes at once.
                    container.destroy().await;
                    return;
                }
                task.container_status =
                    Some(container_status(&self.settings.container_id, &container));
                task.docker_pid = container.pid;
                task.docker = Some(container);
                self.update(task_id, TaskState::Running, None, None).await;
                self.start_checking(task_id);
            }
            Err(error) if !task.state.is_terminal() => {
                self.update(
                    task_id,
                    TaskState::Failed,
                    Some(format!("Failed to launch container: {error}")),
                    Some("REASON_CONTAINER_LAUNCH_FAILED"),
                )
                .await;
            }
            Err(_) => {}
        }
    }

    /// A task's Docker container has ended (and is removed).
    async fn container_ended(&mut self, task_id: &str, ended: docker_task::Ended) {
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.docker = None;
            if task.state.is_terminal() {
                return;
            }
            if ended.oom_killed && !task.killing {
                task.stop_checking();
                let limit = agora_api::mesos::to_resources(&task.info.resources)
                    .map(|r| r.scalar("mem").to_f64())
                    .unwrap_or_default();
                self.update(
                    task_id,
                    TaskState::Failed,
                    Some(format!("Memory limit exceeded: Requested: {limit}MB")),
                    Some("REASON_CONTAINER_LIMITATION_MEMORY"),
                )
                .await;
                return;
            }
        }
        match (ended.code, ended.error) {
            (Some(code), _) => {
                let code = i32::try_from(code).unwrap_or(i32::MAX);
                self.task_exited(task_id, Some(code), None).await;
            }
            (None, error) => {
                let message = error.unwrap_or_else(|| "The container ended".into());
                self.update(
                    task_id,
                    TaskState::Failed,
                    Some(message),
                    Some("REASON_EXECUTOR_TERMINATED"),
                )
                .await;
            }
        }
    }

    /// A planned kill. As Mesos' command executor, TASK_KILLING goes out first (to a framework
    /// that understands it); then, for a task with ports, the signal waits out a drain delay
    /// so that the route change reaches every service proxy before the task stops serving.
    async fn kill(&mut self, task_id: &str, grace: Option<Duration>) {
        let killing_state = self
            .framework
            .as_ref()
            .is_some_and(|f| f.has_capability("TASK_KILLING_STATE"));
        let default_grace = self.settings.kill_grace;
        let default_drain = self.settings.kill_drain;
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.state.is_terminal() || task.killing {
            return;
        }
        task.killing = true;
        task.stop_checking();
        let grace = grace
            .or_else(|| {
                task.info
                    .kill_policy
                    .as_ref()
                    .and_then(|p| p.grace_period.as_ref())
                    .map(|d| Duration::from_nanos(d.nanoseconds.max(0) as u64))
            })
            .unwrap_or(default_grace);
        if task.docker.is_none() && task.pid.is_none() {
            self.update(
                task_id,
                TaskState::Killed,
                Some("Killed before it started".into()),
                None,
            )
            .await;
            return;
        }
        let drain = if killing_state {
            drain_delay(&task.info, default_drain)
        } else {
            Duration::ZERO
        };
        if killing_state {
            self.update(task_id, TaskState::Killing, None, None).await;
        }
        if drain.is_zero() {
            self.signal_kill(task_id, grace);
            return;
        }
        let inputs = self.inputs.clone();
        let task_id = task_id.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            let _ = inputs.send(Input::Drained { task_id, grace });
        });
    }

    /// SIGTERM (or `docker stop`) to a task being killed, then SIGKILL after `grace`.
    fn signal_kill(&mut self, task_id: &str, grace: Duration) {
        let Some(task) = self.tasks.get(task_id).filter(|t| !t.state.is_terminal()) else {
            return;
        };
        if let Some(container) = &task.docker {
            container.stop(grace);
            return;
        }
        if let Some(pid) = task.pid {
            signal_group(pid, Signal::SIGTERM);
            let inputs = self.inputs.clone();
            let id = task_id.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                let _ = inputs.send(Input::KillTimeout { task_id: id });
            });
        }
    }

    /// Starts the task's health checks, if it has any: a probe loop that reports each result.
    fn start_checking(&mut self, task_id: &str) {
        let checked = self
            .tasks
            .get(task_id)
            .is_some_and(|task| task.info.health_check.is_some());
        if !checked {
            return;
        }
        // Made on first use: most tasks have no check, and an executor starts once per task.
        let probe_client = match &self.probe_client {
            Some(client) => client.clone(),
            None => match agora_probe::HttpProber::new() {
                Ok(client) => self.probe_client.insert(client).clone(),
                Err(error) => {
                    eprintln!("agora executor: task {task_id}: {error}");
                    return;
                }
            },
        };
        let inputs = self.inputs.clone();
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        let Some(value) = &task.info.health_check else {
            return;
        };
        // The master validated the check; one that is still unreadable is not run.
        let (check, probe) = match HealthCheck::parse(value).and_then(|c| {
            let probe = c.probe()?;
            Ok((c, probe))
        }) {
            Ok(parsed) => parsed,
            Err(error) => {
                eprintln!("agora executor: task {task_id}: {error}");
                return;
            }
        };
        task.health = Some(health::HealthTracker::new(&check, Instant::now()));
        let context = health::TaskContext {
            task_id: task_id.to_owned(),
            directory: task.directory.clone(),
            command: task.info.command.clone(),
        };
        let id = task_id.to_owned();
        let checker = tokio::spawn(async move {
            tokio::time::sleep(health::seconds(check.delay_seconds)).await;
            let timeout = health::seconds(check.timeout_seconds);
            // A zero interval would spin; Mesos' default stands in.
            let interval = Some(health::seconds(check.interval_seconds))
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(10));
            loop {
                let result = health::run_probe(&probe, timeout, &probe_client, &context).await;
                let input = Input::Health {
                    task_id: id.clone(),
                    result,
                };
                if inputs.send(input).is_err() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        task.checker = Some(checker.abort_handle());
    }

    /// One probe's result: a change of health is reported in a TASK_RUNNING update (as Mesos
    /// does, with the failure as message); too many failures kill the task.
    async fn health_result(&mut self, task_id: &str, result: Result<(), health::Unhealthy>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.state != TaskState::Running || task.killing {
            return;
        }
        let Some(tracker) = task.health.as_mut() else {
            return;
        };
        let health::Verdict::Report { healthy, kill } =
            tracker.record(result.is_ok(), Instant::now())
        else {
            return;
        };
        task.healthy = Some(healthy);
        self.update(
            task_id,
            TaskState::Running,
            result.err().map(|unhealthy| unhealthy.to_string()),
            Some(HEALTH_REASON),
        )
        .await;
        if kill {
            if let Some(task) = self.tasks.get_mut(task_id) {
                task.killed_unhealthy = true;
            }
            self.kill(task_id, None).await;
        }
    }

    fn kill_timeout(&mut self, task_id: &str) {
        if let Some(task) = self.tasks.get(task_id)
            && !task.state.is_terminal()
            && let Some(pid) = task.pid
        {
            signal_group(pid, Signal::SIGKILL);
        }
    }

    async fn kill_everything(&mut self) {
        for task in self.tasks.values() {
            if let Some(pid) = task.pid {
                signal_group(pid, Signal::SIGKILL);
            }
            if let Some(container) = &task.docker {
                container.destroy().await;
            }
        }
    }

    async fn task_exited(&mut self, task_id: &str, code: Option<i32>, signal: Option<i32>) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.stop_checking();
        // Whatever the task left behind in its group goes with it.
        if let Some(pid) = task.pid {
            signal_group(pid, Signal::SIGKILL);
        }
        let killing = task.killing;
        let (state, message) = match (code, signal) {
            _ if task.killed_unhealthy => (
                TaskState::Killed,
                "Task was killed since health check failed".to_owned(),
            ),
            _ if killing => (TaskState::Killed, describe(code, signal)),
            (Some(0), _) => (
                TaskState::Finished,
                "Command exited with status 0".to_owned(),
            ),
            _ => (TaskState::Failed, describe(code, signal)),
        };
        let reason = if state == TaskState::Failed {
            Some("REASON_COMMAND_EXECUTOR_FAILED")
        } else if task.killed_unhealthy {
            Some(HEALTH_REASON)
        } else {
            None
        };
        self.update(task_id, state, Some(message), reason).await;
        // In a task group, one failed task takes the others down (Mesos' default executor).
        let group = self.tasks.len() > 1;
        if group && state != TaskState::Finished {
            let others: Vec<String> = self
                .tasks
                .iter()
                .filter(|(id, t)| id.as_str() != task_id && !t.state.is_terminal())
                .map(|(id, _)| id.clone())
                .collect();
            for id in others {
                self.kill(&id, None).await;
            }
        }
    }

    async fn update(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
    ) {
        let call = self.status_call(task_id, state, message, reason);
        self.post(call).await;
    }

    /// The UPDATE call for a task's new state, stamped now and kept until the agent
    /// acknowledges it.
    fn status_call(
        &mut self,
        task_id: &str,
        state: TaskState,
        message: Option<String>,
        reason: Option<&str>,
    ) -> Call {
        let mut healthy = None;
        let mut container = None;
        let mut docker_pid = None;
        if let Some(task) = self.tasks.get_mut(task_id) {
            task.state = state;
            healthy = task.healthy;
            container = task.container_status.clone();
            docker_pid = task.docker_pid;
        }
        let mut status = TaskStatus::new(task_id, state).with_source("SOURCE_EXECUTOR");
        status.healthy = healthy;
        status.container_status = container;
        status.labels = docker_pid.map(|pid| {
            serde_json::json!({"labels": [{"key": DOCKER_PID_LABEL, "value": pid.to_string()}]})
        });
        status.message = message;
        status.reason = reason.map(str::to_owned);
        status.executor_id = Some(Id::new(self.settings.executor_id.clone()));
        status.uuid = Some(encode_bytes(uuid::Uuid::new_v4().as_bytes()));
        status.timestamp = Some(crate::core::epoch_secs());
        if let Some(uuid) = &status.uuid {
            self.unacknowledged.insert(uuid.clone(), status.clone());
        }
        let mut call = self.call("UPDATE");
        call.update = Some(Update { status });
        call
    }

    /// Sends a call to the agent; the future holds nothing of the executor, so the executor
    /// can go on while it is under way. A call that could not connect (each call opens its
    /// connection) is tried again a few times; if the agent is away the update stays
    /// unacknowledged and is re-sent on re-subscribe.
    fn post(&self, call: Call) -> impl std::future::Future<Output = ()> + use<> {
        let client = self.link.client.clone();
        let url = self.link.url.clone();
        let body = serde_json::to_vec(&call).map(bytes::Bytes::from);
        async move {
            let Ok(body) = body else { return };
            for attempt in 1..=CALL_ATTEMPTS {
                let sent = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    // Not connected: the agent never saw it, so sending it again repeats
                    // nothing.
                    Err(error) if error.is_connect() && attempt < CALL_ATTEMPTS => {
                        tokio::time::sleep(Duration::from_millis(200) * attempt).await;
                    }
                    _ => return,
                }
            }
        }
    }
}

/// Attempts at a call that finds no connection to the agent.
const CALL_ATTEMPTS: u32 = 4;

/// The label of a Docker task's updates that gives the host pid of its container's first
/// process: the agent reads the container's usage through it. (Mesos' `executor_pid` is the
/// executor's own, so it is not used for this.)
pub(crate) const DOCKER_PID_LABEL: &str = "agora.docker.pid";

/// A Docker task's `ContainerStatus` (Mesos' shape): the executor's container id and the
/// container's network addresses.
fn container_status(container_id: &str, container: &docker_task::DockerTask) -> serde_json::Value {
    let addresses: Vec<serde_json::Value> = container
        .ip_addresses
        .iter()
        .map(|ip| {
            let protocol = if ip.contains(':') { "IPv6" } else { "IPv4" };
            serde_json::json!({"protocol": protocol, "ip_address": ip})
        })
        .collect();
    serde_json::json!({
        "container_id": {"value": container_id},
        "network_infos": [{"ip_addresses": addresses}],
    })
}

fn describe(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(code), _) => format!("Command exited with status {code}"),
        (None, Some(signal)) => {
            let name = Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| signal.to_string());
            format!("Command terminated with signal {name}")
        }
        (None, None) => "Command terminated".to_owned(),
    }
}

/// A process of a task's (its command, its health check's): the executor's environment
/// without the executor's secret, which is not the task's.
pub(super) fn task_process(command: &agora_api::mesos::CommandInfo) -> tokio::process::Command {
    let mut process = tokio::process::Command::from(crate::spawn::command_of(command));
    process.env_remove(crate::executor_auth::TOKEN_ENV);
    process
}

/// Starts a task in its own process group, in its sandbox, with its environment on top of the
/// executor's (which carries the MESOS_* variables).
fn spawn_task(
    task_id: &str,
    command: &agora_api::mesos::CommandInfo,
    directory: &std::path::Path,
    own_files: bool,
) -> std::io::Result<tokio::process::Child> {
    std::fs::create_dir_all(directory)?;
    let mut process = task_process(command);
    if let Some(environment) = &command.environment {
        for variable in &environment.variables {
            process.env(&variable.name, variable.value.clone().unwrap_or_default());
        }
    }
    process
        .env("MESOS_SANDBOX", directory)
        .env("MESOS_TASK_ID", task_id)
        .current_dir(directory)
        .stdin(Stdio::null())
        .process_group(0);
    if own_files {
        let (stdout, stderr) = crate::spawn::sandbox_output(directory)?;
        process
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
    }
    process.spawn()
}
/// How long a killed task keeps serving after TASK_KILLING: its `AGORA_KILL_DRAIN_SECONDS`
/// label, else the agent's `--kill-drain`; none for a task without ports (no proxy routes to
/// it).
fn drain_delay(info: &TaskInfo, default: Duration) -> Duration {
    let has_ports = info
        .resources
        .iter()
        .any(|r| r.name == "ports" && r.ranges.as_ref().is_some_and(|r| !r.range.is_empty()));
    if !has_ports {
        return Duration::ZERO;
    }
    let own = info
        .labels
        .as_ref()
        .and_then(|labels| labels.get("labels"))
        .and_then(|labels| labels.as_array())
        .and_then(|labels| {
            labels
                .iter()
                .find(|label| label.get("key").and_then(|k| k.as_str()) == Some(KILL_DRAIN_LABEL))
        })
        .and_then(|label| label.get("value").and_then(|v| v.as_str()))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok());
    own.unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn task(resources: serde_json::Value, labels: serde_json::Value) -> TaskInfo {
        serde_json::from_value(json!({"name": "t", "task_id": {"value": "t"},
            "agent_id": {"value": "a"}, "resources": resources, "labels": labels}))
        .expect("task info")
    }

    #[test]
    fn a_task_with_ports_drains_by_its_label_or_the_agents_default() {
        let ports = json!([{"name": "ports", "type": "RANGES",
            "ranges": {"range": [{"begin": 31000, "end": 31000}]}}]);
        let cpus = json!([{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}}]);
        let label = |value: &str| json!({"labels": [{"key": KILL_DRAIN_LABEL, "value": value}]});
        let default = Duration::from_secs(1);
        assert_eq!(
            drain_delay(&task(ports.clone(), json!(null)), default),
            default
        );
        assert_eq!(
            drain_delay(&task(ports.clone(), label("2.5")), default),
            Duration::from_millis(2500)
        );
        assert_eq!(
            drain_delay(&task(ports.clone(), label("0")), default),
            Duration::ZERO
        );
        // Unreadable: the agent's default (the API refused it already; a framework's own
        // TaskInfo may carry anything).
        assert_eq!(drain_delay(&task(ports, label("-3")), default), default);
        // No ports: no proxy routes to it, nothing to wait for.
        assert_eq!(
            drain_delay(&task(cpus, label("5")), default),
            Duration::ZERO
        );
    }
}

//! Hollow agents, as Kubernetes' kubemark has hollow nodes: many agents in one process that
//! speak the real master↔agent protocol — the real agent's [`crate::master_link`] and its
//! status update rules ([`crate::status_queue`]) — for tasks that are no processes. They
//! register, ping, take launches, kills and acknowledgements, report each task's states as an
//! executor would, and re-register with their tasks when the master restarts or fails over.
//! For capacity planning and scale tests of a master and its frameworks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use agora_api::agent_protocol::{RegisterAgent, RunningExecutor};
use agora_api::mesos::{
    AgentInfo, Attribute, ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskInfo, TaskStatus,
};
use agora_types::{ExecutorId, FrameworkId, TaskId, TaskState};

use crate::AgentError;
use crate::config::AgentConfig;
use crate::master_link::{self, AgentEnd};
use crate::status_queue::{self, Queues};

/// What hollow tasks do: each starts (TASK_STARTING at once, then TASK_RUNNING after
/// `startup`), runs until killed or for `runtime`, and a share of them fails instead. A task
/// whose command's environment has [`RUNTIME_ENV`] runs for that many seconds instead.
#[derive(Clone, Debug, Default)]
pub struct HollowTasks {
    /// From TASK_STARTING to TASK_RUNNING (or TASK_FAILED).
    pub startup: Duration,
    /// From TASK_RUNNING to TASK_FINISHED; `None`: until killed.
    pub runtime: Option<Duration>,
    /// The share of tasks, 0 to 1, that fail at start (TASK_FAILED); which ones is decided by
    /// the task id, so a run is repeatable.
    pub failure_rate: f64,
}

/// A task's own runtime on a hollow agent, in seconds (its command's environment): services
/// and jobs can share hollow agents, the jobs' tasks finishing and the services' running on.
pub const RUNTIME_ENV: &str = "AGORA_HOLLOW_RUNTIME_SECONDS";

/// The runtime a task asks for in its environment, if it names a valid one.
fn own_runtime(task: &TaskInfo) -> Option<Duration> {
    let variables = &task.command.as_ref()?.environment.as_ref()?.variables;
    let value = variables
        .iter()
        .find(|v| v.name == RUNTIME_ENV)?
        .value
        .as_deref()?;
    let seconds: f64 = value.trim().parse().ok()?;
    // Longer than a year is "until killed": the timer's deadline could not be reckoned.
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|runtime| *runtime <= LONGEST_RUNTIME)
}

/// Connections to the master for the agents' pings and reports, at most (each agent's
/// subscription holds one more of its own).
const CONNECTIONS: usize = 256;

/// The longest runtime a task may name.
const LONGEST_RUNTIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// How to run hollow agents.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    /// The master (or masters) and how to reach them, the resources each agent offers, its
    /// `status_update_retry`, and the address and port the agents name as their endpoint.
    pub agent: AgentConfig,
    pub count: usize,
    /// Agent `i` is `<hostname_prefix><i>`.
    pub hostname_prefix: String,
    /// Each agent's attributes in `--attributes`' form, where `{i}` is the agent's index and
    /// `{i%N}` that index modulo N (`rack:r{i%40};zone:z{i%3}`).
    pub attributes: String,
    pub tasks: HollowTasks,
}

/// Counters of every hollow agent of the process.
#[derive(Default)]
struct Counters {
    launched: AtomicU64,
    killed: AtomicU64,
    updates_sent: AtomicU64,
}

/// What the agents share: the link's settings and two HTTP clients.
struct Shared {
    config: AgentConfig,
    /// Pings and reports, over a bounded pool of connections.
    client: reqwest::Client,
    /// Subscriptions, a connection each and no pool: a pool has every request it is asked
    /// for wait on it, and each request done scans all the waiting ones, which 10,000 agents
    /// re-subscribing at once made quadratic.
    subscriber: reqwest::Client,
    tasks: HollowTasks,
    counters: Counters,
    /// The bound on requests in flight: [`CONNECTIONS`].
    slots: Arc<tokio::sync::Semaphore>,
}

struct HollowTask {
    /// The TaskInfo as JSON: a registration writes it as it is (serialising 100,000 of them
    /// was most of the hollow agents' work when a master restarted), and it takes less
    /// memory than the struct.
    info: Box<RawValue>,
    health_checked: bool,
    executor_id: ExecutorId,
    /// The latest status, whose state is the task's.
    status: TaskStatus,
}

/// A hollow task in a registration: an [`agora_api::agent_protocol::AgentTask`] on the wire.
#[derive(Serialize)]
struct TaskReport<'a> {
    framework_id: &'a str,
    task: &'a RawValue,
    status: &'a TaskStatus,
}

struct HollowFramework {
    info: FrameworkInfo,
    tasks: BTreeMap<TaskId, HollowTask>,
    /// Executors other than the command executor, which the master accounts for.
    executors: BTreeMap<ExecutorId, ExecutorInfo>,
}

#[derive(Default)]
struct HollowState {
    agent_id: Option<String>,
    token: Option<String>,
    connected: bool,
    master_error: Option<String>,
    frameworks: BTreeMap<FrameworkId, HollowFramework>,
    updates: Queues,
}

/// One hollow agent.
struct HollowAgent {
    shared: Arc<Shared>,
    hostname: String,
    attributes: Vec<Attribute>,
    shutdown: CancellationToken,
    updates_wanted: Notify,
    state: Mutex<HollowState>,
}

/// The hollow agents of this process.
pub struct HollowAgents {
    agents: Vec<Arc<HollowAgent>>,
    shared: Arc<Shared>,
}

/// Where the hollow agents are, for `/state` and `/metrics`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct HollowSummary {
    pub agents: usize,
    pub registered: usize,
    pub connected: usize,
    /// Tasks in a non-terminal state.
    pub tasks_active: usize,
    pub tasks_running: usize,
    /// Updates not yet acknowledged.
    pub updates_pending: usize,
    pub launched: u64,
    pub killed: u64,
    pub updates_sent: u64,
    /// Why an agent could not reach its master, for one agent that could not (a refused
    /// credential, say, is every agent's).
    pub link_error: Option<String>,
}

/// `{i}` and `{i%N}` of `template` filled in for agent `index`.
fn expand(template: &str, index: usize) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in '{template}'"))?;
        let value = match after[..close].trim() {
            "i" => index,
            modulo => {
                let divisor = modulo
                    .strip_prefix("i%")
                    .and_then(|n| n.trim().parse::<usize>().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        format!("'{{{modulo}}}' in '{template}': expected {{i}} or {{i%N}}, N > 0")
                    })?;
                index % divisor
            }
        };
        out.push_str(&value.to_string());
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Whether the task fails at start, for a failure rate: decided by its id alone.
fn fails(task_id: &str, rate: f64) -> bool {
    if rate <= 0.0 {
        return false;
    }
    let draw = crate::fnv::fnv1a(task_id.bytes()) as f64 / u64::MAX as f64;
    draw < rate || rate >= 1.0
}

/// Starts `config.count` hollow agents; they stop with `shutdown`.
pub fn start_hollow(
    config: HollowConfig,
    shutdown: CancellationToken,
) -> Result<HollowAgents, AgentError> {
    if !(0.0..=1.0).contains(&config.tasks.failure_rate) {
        return Err(AgentError::Hollow(format!(
            "failure rate {} is not between 0 and 1",
            config.tasks.failure_rate
        )));
    }
    // Pings and reports of thousands of agents share a bounded pool: connections would
    // otherwise pile up to one per agent on both ends, past the descriptors of either.
    let client = crate::core::master_client_builder(&config.agent)
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))?;
    let subscriber = crate::core::master_client_builder(&config.agent)
        .pool_max_idle_per_host(0)
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))?;
    let shared = Arc::new(Shared {
        config: config.agent,
        client,
        subscriber,
        tasks: config.tasks,
        counters: Counters::default(),
        slots: Arc::new(tokio::sync::Semaphore::new(CONNECTIONS)),
    });
    let mut agents = Vec::with_capacity(config.count);
    for index in 0..config.count {
        let attributes = expand(&config.attributes, index)
            .and_then(|text| Attribute::parse_list(&text).map_err(|e| e.to_string()))
            .map_err(|why| AgentError::Hollow(format!("invalid attributes: {why}")))?;
        let agent = Arc::new(HollowAgent {
            shared: shared.clone(),
            hostname: format!("{}{index}", config.hostname_prefix),
            attributes,
            shutdown: shutdown.child_token(),
            updates_wanted: Notify::new(),
            state: Mutex::new(HollowState::default()),
        });
        master_link::spawn_link(agent.clone());
        agents.push(agent);
    }
    Ok(HollowAgents { agents, shared })
}

impl HollowAgents {
    pub fn summary(&self) -> HollowSummary {
        let mut summary = HollowSummary {
            agents: self.agents.len(),
            launched: self.shared.counters.launched.load(Ordering::Relaxed),
            killed: self.shared.counters.killed.load(Ordering::Relaxed),
            updates_sent: self.shared.counters.updates_sent.load(Ordering::Relaxed),
            ..HollowSummary::default()
        };
        for agent in &self.agents {
            let state = agent.lock();
            summary.registered += usize::from(state.agent_id.is_some());
            if summary.link_error.is_none() {
                summary.link_error.clone_from(&state.master_error);
            }
            summary.connected += usize::from(state.connected);
            for framework in state.frameworks.values() {
                for task in framework.tasks.values() {
                    summary.tasks_active += usize::from(!task.status.state.is_terminal());
                    summary.tasks_running += usize::from(task.status.state == TaskState::Running);
                }
            }
            summary.updates_pending += state
                .updates
                .values()
                .map(|q| q.pending.len())
                .sum::<usize>();
        }
        summary
    }

    /// A status update storm: every running task reports TASK_RUNNING again at once, as a
    /// health check's verdict would (`REASON_TASK_HEALTH_CHECK_STATUS_UPDATED`). Returns how
    /// many updates were made; each is delivered and retried as any other. A task whose
    /// earlier update is not yet acknowledged is left out: storms asked faster than the
    /// master absorbs them do not pile up in the queues.
    pub fn storm(&self) -> usize {
        let mut made = 0;
        for agent in &self.agents {
            let mut state = agent.lock();
            let running: Vec<(FrameworkId, TaskId)> = state
                .frameworks
                .iter()
                .flat_map(|(framework_id, framework)| {
                    framework
                        .tasks
                        .iter()
                        .filter(|(_, task)| task.status.state == TaskState::Running)
                        .map(move |(task_id, _)| (framework_id.clone(), task_id.clone()))
                })
                .filter(|key| !state.updates.contains_key(key))
                .collect();
            for (framework_id, task_id) in &running {
                agent.report(
                    &mut state,
                    framework_id,
                    task_id,
                    TaskState::Running,
                    Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"),
                    Some("hollow status storm"),
                );
            }
            made += running.len();
            drop(state);
            agent.updates_wanted.notify_one();
        }
        made
    }

    /// The agents' ids, in index order (`None` for one not registered yet).
    pub fn agent_ids(&self) -> Vec<Option<String>> {
        self.agents
            .iter()
            .map(|agent| agent.lock().agent_id.clone())
            .collect()
    }

    /// The summary in Prometheus' text format (`agora_hollow_*`).
    pub fn metrics(&self) -> String {
        let summary = self.summary();
        let metrics: Vec<(String, f64)> = [
            ("agents", summary.agents as f64),
            ("agents_registered", summary.registered as f64),
            ("agents_connected", summary.connected as f64),
            ("tasks_active", summary.tasks_active as f64),
            ("tasks_running", summary.tasks_running as f64),
            ("updates_pending", summary.updates_pending as f64),
            ("tasks_launched_total", summary.launched as f64),
            ("tasks_killed_total", summary.killed as f64),
            ("updates_total", summary.updates_sent as f64),
        ]
        .into_iter()
        .map(|(name, value)| (format!("hollow/{name}"), value))
        .collect();
        agora_api::prometheus::render(&metrics, |name| name.ends_with("_total"))
    }
}

impl HollowAgent {
    fn lock(&self) -> MutexGuard<'_, HollowState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn info(&self, state: &HollowState) -> AgentInfo {
        let config = &self.shared.config;
        AgentInfo {
            hostname: self.hostname.clone(),
            port: config.port,
            resources: agora_api::mesos::from_resources(
                &config.resources,
                agora_api::mesos::ResourceFormat::default(),
                None,
            ),
            attributes: self.attributes.clone(),
            id: state.agent_id.as_ref().map(|id| Id::new(id.clone())),
        }
    }

    /// Records a task's new state and queues its update, as an executor's would be.
    fn report(
        &self,
        state: &mut HollowState,
        framework_id: &FrameworkId,
        task_id: &TaskId,
        new: TaskState,
        reason: Option<&str>,
        message: Option<&str>,
    ) {
        let agent_id = state.agent_id.clone();
        let Some(task) = state
            .frameworks
            .get_mut(framework_id)
            .and_then(|framework| framework.tasks.get_mut(task_id))
        else {
            return;
        };
        let mut status = TaskStatus::new(task_id.as_str(), new).with_source("SOURCE_EXECUTOR");
        status.executor_id = Some(Id::new(task.executor_id.as_str()));
        status.reason = reason.map(str::to_owned);
        status.message = message.map(str::to_owned);
        if new == TaskState::Running && task.health_checked {
            // A hollow task is as healthy as its checks could wish.
            status.healthy = Some(true);
        }
        status_queue::stamp(&mut status, agent_id.as_deref());
        task.status = status.clone();
        let retry = self.shared.config.status_update_retry;
        status_queue::push(&mut state.updates, framework_id, status, retry);
        self.shared
            .counters
            .updates_sent
            .fetch_add(1, Ordering::Relaxed);
    }

    fn run_tasks(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
    ) {
        let Some(framework_id) = framework.framework_id() else {
            return;
        };
        let mut state = self.lock();
        let entry = state
            .frameworks
            .entry(framework_id.clone())
            .or_insert_with(|| HollowFramework {
                info: framework.clone(),
                tasks: BTreeMap::new(),
                executors: BTreeMap::new(),
            });
        entry.info = framework;
        if let Some(executor) = &executor {
            entry.executors.insert(
                ExecutorId::new(&executor.executor_id.value),
                executor.clone(),
            );
        }
        let mut started = Vec::with_capacity(tasks.len());
        let mut timed = Vec::new();
        for info in tasks {
            let task_id = TaskId::new(&info.task_id.value);
            if entry.tasks.contains_key(&task_id) {
                tracing::warn!(framework = %framework_id, task = %task_id, "launch of a task this agent already has; ignored");
                continue;
            }
            let executor_id = match &executor {
                Some(executor) => ExecutorId::new(&executor.executor_id.value),
                // The command executor's id is its task's.
                None => ExecutorId::new(task_id.as_str()),
            };
            if let Some(runtime) = own_runtime(&info).or(self.shared.tasks.runtime) {
                timed.push((runtime, task_id.clone()));
            }
            let json = match serde_json::value::to_raw_value(&info) {
                Ok(json) => json,
                Err(error) => {
                    tracing::error!(%error, task = %task_id, "a TaskInfo does not serialise; launch ignored");
                    continue;
                }
            };
            let status = TaskStatus::new(task_id.as_str(), TaskState::Staging);
            entry.tasks.insert(
                task_id.clone(),
                HollowTask {
                    info: json,
                    health_checked: info.health_check.is_some(),
                    executor_id,
                    status,
                },
            );
            started.push(task_id);
        }
        self.shared
            .counters
            .launched
            .fetch_add(started.len() as u64, Ordering::Relaxed);
        for task_id in &started {
            self.report(
                &mut state,
                &framework_id,
                task_id,
                TaskState::Starting,
                None,
                None,
            );
        }
        let startup = self.shared.tasks.startup;
        if startup.is_zero() {
            self.start(&mut state, &framework_id, &started);
        }
        drop(state);
        self.updates_wanted.notify_one();
        if !startup.is_zero() || !timed.is_empty() {
            let agent = self.clone();
            timed.sort();
            tokio::spawn(async move { agent.live(framework_id, started, timed).await });
        }
    }

    /// TASK_RUNNING, or TASK_FAILED for the share that fails, for tasks still starting.
    fn start(&self, state: &mut HollowState, framework_id: &FrameworkId, tasks: &[TaskId]) {
        let rate = self.shared.tasks.failure_rate;
        for task_id in tasks {
            let starting = state
                .frameworks
                .get(framework_id)
                .and_then(|framework| framework.tasks.get(task_id))
                .is_some_and(|task| task.status.state == TaskState::Starting);
            if !starting {
                continue;
            }
            if fails(task_id.as_str(), rate) {
                let why = "hollow task failed at start (--failure-rate)";
                self.report(
                    state,
                    framework_id,
                    task_id,
                    TaskState::Failed,
                    Some("REASON_COMMAND_EXECUTOR_FAILED"),
                    Some(why),
                );
            } else {
                self.report(state, framework_id, task_id, TaskState::Running, None, None);
            }
        }
    }

    /// The timed part of the tasks' lives: started after the start-up latency, finished after
    /// their runtimes (`timed`, shortest first).
    async fn live(
        self: Arc<Self>,
        framework_id: FrameworkId,
        tasks: Vec<TaskId>,
        timed: Vec<(Duration, TaskId)>,
    ) {
        let startup = self.shared.tasks.startup;
        if !startup.is_zero() {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep(startup) => {}
            }
            self.start(&mut self.lock(), &framework_id, &tasks);
            self.updates_wanted.notify_one();
        }
        let running_since = tokio::time::Instant::now();
        for (runtime, task_id) in timed {
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = tokio::time::sleep_until(running_since + runtime.min(LONGEST_RUNTIME)) => {}
            }
            let mut state = self.lock();
            let running = state
                .frameworks
                .get(&framework_id)
                .and_then(|framework| framework.tasks.get(&task_id))
                .is_some_and(|task| task.status.state == TaskState::Running);
            if running {
                let why = "hollow task finished its runtime";
                self.report(
                    &mut state,
                    &framework_id,
                    &task_id,
                    TaskState::Finished,
                    None,
                    Some(why),
                );
            }
            drop(state);
            self.updates_wanted.notify_one();
        }
    }

    /// A kill, as the command executor carries it out: TASK_KILLING first for a framework that
    /// knows the state, then TASK_KILLED.
    fn kill_task(&self, framework_id: &FrameworkId, task_id: &TaskId) {
        let mut state = self.lock();
        let Some(framework) = state.frameworks.get(framework_id) else {
            return;
        };
        let killing_state = framework.info.has_capability("TASK_KILLING_STATE");
        let live = framework
            .tasks
            .get(task_id)
            .is_some_and(|task| !task.status.state.is_terminal());
        if !live {
            return;
        }
        if killing_state {
            self.report(
                &mut state,
                framework_id,
                task_id,
                TaskState::Killing,
                None,
                None,
            );
        }
        self.report(
            &mut state,
            framework_id,
            task_id,
            TaskState::Killed,
            None,
            Some("Command terminated with signal Terminated"),
        );
        self.shared.counters.killed.fetch_add(1, Ordering::Relaxed);
        drop(state);
        self.updates_wanted.notify_one();
    }

    fn kill_executor(&self, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        let tasks: Vec<TaskId> = self
            .lock()
            .frameworks
            .get(framework_id)
            .map(|framework| {
                framework
                    .tasks
                    .iter()
                    .filter(|(_, task)| task.executor_id == *executor_id)
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default();
        for task_id in tasks {
            self.kill_task(framework_id, &task_id);
        }
    }

    /// The framework is gone: its tasks go, and their updates with them (nobody can
    /// acknowledge them now).
    fn shutdown_framework(&self, framework_id: &FrameworkId) {
        let mut state = self.lock();
        if let Some(framework) = state.frameworks.remove(framework_id) {
            let live = framework
                .tasks
                .values()
                .filter(|task| !task.status.state.is_terminal())
                .count();
            self.shared
                .counters
                .killed
                .fetch_add(live as u64, Ordering::Relaxed);
        }
        state.updates.retain(|(id, _), _| id != framework_id);
    }

    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) {
        let mut state = self.lock();
        let retry = self.shared.config.status_update_retry;
        let Some(acked) =
            status_queue::acknowledge(&mut state.updates, framework_id, task_id, uuid, retry)
        else {
            return;
        };
        let pending = state
            .updates
            .contains_key(&(framework_id.clone(), task_id.clone()));
        let mut exited = None;
        if acked.state.is_terminal()
            && !pending
            && let Some(framework) = state.frameworks.get_mut(framework_id)
            && let Some(task) = framework.tasks.remove(task_id)
        {
            // A custom executor with no task left exits, as the default executor does.
            let executor_id = task.executor_id;
            let idle = !framework
                .tasks
                .values()
                .any(|t| t.executor_id == executor_id);
            if idle && framework.executors.remove(&executor_id).is_some() {
                exited = Some(executor_id);
            }
            if framework.tasks.is_empty() {
                state.frameworks.remove(framework_id);
            }
        }
        drop(state);
        self.updates_wanted.notify_one();
        if let Some(executor_id) = exited {
            master_link::report_executor_exit(self, framework_id, &executor_id, Some(0));
        }
    }
}

impl AgentEnd for HollowAgent {
    fn config(&self) -> &AgentConfig {
        &self.shared.config
    }
    fn client(&self) -> &reqwest::Client {
        &self.shared.client
    }
    fn subscription_client(&self) -> &reqwest::Client {
        &self.shared.subscriber
    }
    fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }
    fn updates_wanted(&self) -> &Notify {
        &self.updates_wanted
    }

    fn registration(&self) -> serde_json::Result<Vec<u8>> {
        let state = self.lock();
        let mut tasks = Vec::new();
        let mut executors = Vec::new();
        // Written once into a buffer of about its size.
        let mut size = 1024;
        for (framework_id, framework) in &state.frameworks {
            for executor in framework.executors.values() {
                executors.push(RunningExecutor {
                    framework_id: framework_id.to_string(),
                    executor: executor.clone(),
                });
            }
            for task in framework.tasks.values() {
                size += task.info.get().len() + 512;
                tasks.push(TaskReport {
                    framework_id: framework_id.as_str(),
                    task: &task.info,
                    status: &task.status,
                });
            }
        }
        let registration = RegisterAgent {
            agent_id: state.agent_id.clone(),
            info: self.info(&state),
            endpoint: self.shared.config.endpoint(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            tasks,
            frameworks: state.frameworks.values().map(|f| f.info.clone()).collect(),
            executors,
        };
        let mut body = Vec::with_capacity(size);
        serde_json::to_writer(&mut body, &registration)?;
        Ok(body)
    }

    fn agent_token(&self) -> Option<String> {
        self.lock().token.clone()
    }

    fn agent_id(&self) -> Option<String> {
        self.lock().agent_id.clone()
    }

    fn set_registered(&self, agent_id: String, token: Option<String>) {
        let mut state = self.lock();
        state.agent_id = Some(agent_id);
        if token.is_some() {
            state.token = token;
        }
        state.connected = true;
        state.master_error = None;
        status_queue::retry_now(&mut state.updates, self.shared.config.status_update_retry);
        drop(state);
        self.updates_wanted.notify_one();
    }

    fn set_disconnected(&self) {
        self.lock().connected = false;
    }

    fn set_master_error(&self, error: String) {
        self.lock().master_error = Some(error);
    }

    fn due_updates(&self) -> status_queue::Due {
        let state = &mut *self.lock();
        status_queue::due_for(state.connected, state.agent_id.as_ref(), &mut state.updates)
    }

    fn request_slots(&self) -> Option<Arc<tokio::sync::Semaphore>> {
        Some(self.shared.slots.clone())
    }

    fn run_tasks(
        self: &Arc<Self>,
        framework: FrameworkInfo,
        executor: Option<ExecutorInfo>,
        tasks: Vec<TaskInfo>,
        _group: bool,
    ) {
        HollowAgent::run_tasks(self, framework, executor, tasks)
    }

    /// A hollow task ends at once, whatever its kill policy's grace.
    fn kill_task(&self, framework_id: &FrameworkId, task_id: &TaskId, _: Option<KillPolicy>) {
        HollowAgent::kill_task(self, framework_id, task_id)
    }

    fn acknowledge(&self, framework_id: &FrameworkId, task_id: &TaskId, uuid: &str) {
        HollowAgent::acknowledge(self, framework_id, task_id, uuid)
    }

    fn shutdown_executor(self: &Arc<Self>, framework_id: &FrameworkId, executor_id: &ExecutorId) {
        self.kill_executor(framework_id, executor_id)
    }

    fn shutdown_framework(self: &Arc<Self>, framework_id: &FrameworkId) {
        HollowAgent::shutdown_framework(self, framework_id)
    }

    /// A hollow executor has no code to hand a message to.
    fn framework_message(&self, _: &FrameworkId, _: &ExecutorId, _: String) {}

    fn update_framework(&self, info: FrameworkInfo) {
        let Some(id) = info.framework_id() else {
            return;
        };
        if let Some(entry) = self.lock().frameworks.get_mut(&id) {
            entry.info = info;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_filled_in_per_agent() {
        assert_eq!(
            expand("rack:r{i%4};host:{i}", 6).as_deref(),
            Ok("rack:r2;host:6")
        );
        assert_eq!(expand("plain:yes", 3).as_deref(), Ok("plain:yes"));
        assert!(expand("rack:{i%0}", 1).is_err());
        assert!(expand("rack:{j}", 1).is_err());
        assert!(expand("rack:{i", 1).is_err());
    }

    #[test]
    fn the_failing_share_is_near_the_rate_and_repeatable() {
        let failed = (0..10_000)
            .filter(|i| fails(&format!("task-{i}"), 0.1))
            .count();
        assert!(
            (800..1200).contains(&failed),
            "{failed} of 10000 failed at a rate of 0.1"
        );
        assert_eq!(fails("task-7", 0.1), fails("task-7", 0.1));
        assert!((0..1000).all(|i| !fails(&format!("t{i}"), 0.0)));
        assert!((0..1000).all(|i| fails(&format!("t{i}"), 1.0)));
    }

    #[test]
    fn a_task_may_name_its_own_runtime() {
        let task = |value: &str| TaskInfo {
            command: Some(agora_api::mesos::CommandInfo {
                environment: Some(agora_api::mesos::Environment {
                    variables: vec![agora_api::mesos::EnvironmentVariable {
                        name: RUNTIME_ENV.into(),
                        kind: None,
                        value: Some(value.into()),
                        secret: None,
                    }],
                }),
                ..agora_api::mesos::CommandInfo::default()
            }),
            ..TaskInfo::default()
        };
        assert_eq!(own_runtime(&task("0.25")), Some(Duration::from_millis(250)));
        assert_eq!(own_runtime(&task("-1")), None);
        assert_eq!(own_runtime(&task("1e19")), None);
        assert_eq!(own_runtime(&task("soon")), None);
        assert_eq!(own_runtime(&TaskInfo::default()), None);
    }
}

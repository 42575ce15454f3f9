//! The master's state and every rule that changes it. One `Master` value sits behind a mutex;
//! HTTP handlers and the background loops call its methods, which never block on I/O except the
//! registry's durable writes. Messages to frameworks, agents and operator subscribers go into
//! unbounded per-connection channels drained by the HTTP streams.

mod agents;
mod frameworks;
mod history;
mod launch;
mod loops;
mod roles;
mod status;
mod task_info;
mod task_map;

pub(crate) use task_map::{SCALARS, Tally};

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use agora_alloc::{Allocator, AllocatorConfig};
use agora_api::agent_protocol::AgentCommand;
use agora_api::mesos::{
    AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, MasterInfo, TaskStatus,
};
use agora_api::recordio;
use agora_api::scheduler::Event;
use agora_types::{AgentId, ExecutorId, FrameworkId, OfferId, Resources, TaskId, TaskState};

use crate::Shared;
use crate::config::MasterConfig;
use crate::metrics::Counters;
use crate::registry::Registry;

pub(crate) use agents::UnknownAgent;
pub(crate) use frameworks::validate_role;
pub(crate) use loops::spawn_loops;

/// Frames already RecordIO-encoded, ready to write to a stream.
pub(crate) type StreamSender = agora_http::events::EventSender;

#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    #[error("registry: {0}")]
    Registry(#[from] agora_store::StoreError),
    #[error("registry holds corrupt data at '{0}'")]
    CorruptRegistry(String),
}

pub(crate) fn lock(shared: &Shared) -> MutexGuard<'_, Master> {
    // A panic while holding the lock would be a bug; recover the state rather than wedging the
    // whole master.
    shared
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn epoch_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub(crate) struct FrameworkStream {
    pub id: String,
    pub sender: StreamSender,
}

pub(crate) struct Framework {
    pub id: FrameworkId,
    pub info: FrameworkInfo,
    pub roles: Vec<String>,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub unregistered_time: Option<f64>,
    pub stream: Option<FrameworkStream>,
    /// Set while disconnected: the failover timeout counts from here.
    pub disconnected_since: Option<Instant>,
    /// Known from the registry or an agent's report, not yet re-subscribed to this master.
    pub recovered: bool,
    pub tasks: task_map::TaskMap,
    pub completed_tasks: VecDeque<Arc<Task>>,
    pub offers: HashSet<OfferId>,
    pub executors: HashMap<(AgentId, ExecutorId), ExecutorInfo>,
    /// The roles its tasks are accounted to, one string each however many tasks.
    pub task_roles: Vec<Arc<str>>,
}

impl Framework {
    /// `role`, as the string its tasks share.
    pub fn task_role(&mut self, role: &str) -> Arc<str> {
        if let Some(shared) = self.task_roles.iter().find(|r| &***r == role) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(role);
        self.task_roles.push(shared.clone());
        shared
    }

    pub fn partition_aware(&self) -> bool {
        self.info.has_capability("PARTITION_AWARE")
    }

    pub fn connected(&self) -> bool {
        self.stream.is_some()
    }
}

#[derive(Clone)]
pub(crate) struct Task {
    pub info: task_info::StoredTaskInfo,
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub executor_id: Option<ExecutorId>,
    pub state: TaskState,
    pub statuses: history::StatusHistory,
    pub resources: Resources,
    pub role: Arc<str>,
    /// The task's resources went back to the allocator (it reached a terminal state).
    pub released: bool,
    pub unreachable_since: Option<f64>,
}

impl Task {
    /// The latest status, whole (made anew: the history keeps it compact).
    pub fn latest_status(&self) -> TaskStatus {
        self.statuses.latest()
    }
}

pub(crate) struct AgentLink {
    pub generation: u64,
    pub sender: StreamSender,
}

pub(crate) enum AgentConnection {
    Connected(AgentLink),
    /// Stream closed (or recovered from the registry): still counted as alive until its ping
    /// timeout passes.
    Disconnected,
    Unreachable {
        since: f64,
    },
}

pub(crate) struct Agent {
    pub id: AgentId,
    /// Shared with state views' captures (10,000 agents copied under the lock otherwise).
    pub info: Arc<AgentInfo>,
    pub endpoint: String,
    pub version: String,
    pub total: Arc<Resources>,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub connection: AgentConnection,
    /// Deactivated by an operator (or draining): no offers.
    pub deactivated: bool,
    pub drain: Option<DrainState>,
    /// DRAIN_AGENT with `mark_gone`: once its tasks are gone, so is the agent.
    pub mark_gone_when_drained: bool,
    pub last_seen: Instant,
    /// Registered with this master process (not only known from the registry).
    pub registered: bool,
    pub tasks: HashSet<(FrameworkId, TaskId)>,
    /// Outstanding offers of this agent's resources (kept so state views need not scan all).
    pub offers: HashSet<OfferId>,
    /// SHA-256 (hex) of the secret this agent proves itself with.
    pub token_sha256: Option<String>,
    /// Kills asked for while the agent was disconnected, sent when it re-registers (Mesos:
    /// "Kill will be retried if the agent re-registers").
    pub pending_kills: Vec<(FrameworkId, TaskId, Option<KillPolicy>)>,
}

impl Agent {
    /// What the registry keeps of this agent.
    pub(crate) fn record(&self, gone: bool) -> crate::registry::AgentRecord {
        crate::registry::AgentRecord {
            id: self.id.to_string(),
            info: (*self.info).clone(),
            endpoint: self.endpoint.clone(),
            registered_time: self.registered_time,
            gone,
            deactivated: self.deactivated || gone,
            token_sha256: self.token_sha256.clone(),
            drain: self.drain.map(|drain| drain.as_str().to_owned()),
            mark_gone_when_drained: self.mark_gone_when_drained,
        }
    }

    /// Whether `token` is this agent's secret.
    pub fn holds(&self, token: Option<&str>) -> bool {
        match (&self.token_sha256, token) {
            (Some(expected), Some(token)) => *expected == token_sha256(token),
            _ => false,
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.connection, AgentConnection::Connected(_)) && !self.deactivated
    }

    pub fn is_reachable(&self) -> bool {
        !matches!(self.connection, AgentConnection::Unreachable { .. })
    }
}

/// Maintenance drain progress, shown as `drain_info.state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DrainState {
    Draining,
    Drained,
}

impl DrainState {
    pub fn parse(text: &str) -> Option<DrainState> {
        match text {
            "DRAINING" => Some(DrainState::Draining),
            "DRAINED" => Some(DrainState::Drained),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DrainState::Draining => "DRAINING",
            DrainState::Drained => "DRAINED",
        }
    }
}

#[derive(Clone)]
pub(crate) struct OutstandingOffer {
    pub framework_id: FrameworkId,
    pub agent_id: AgentId,
    pub role: String,
    pub resources: Resources,
}

pub struct Master {
    pub(crate) config: MasterConfig,
    pub(crate) id: String,
    pub(crate) info: MasterInfo,
    pub(crate) start_time: f64,
    pub(crate) clock: Instant,
    pub(crate) registry: Registry,
    pub(crate) allocator: Allocator,
    pub(crate) agents: HashMap<AgentId, Agent>,
    pub(crate) gone_agents: HashSet<AgentId>,
    pub(crate) frameworks: HashMap<FrameworkId, Framework>,
    pub(crate) completed_frameworks: VecDeque<Framework>,
    pub(crate) offers: HashMap<OfferId, OutstandingOffer>,
    pub(crate) operator_streams: Vec<StreamSender>,
    /// Subscribers cut off for falling behind their event streams.
    pub(crate) stream_overflows: Arc<std::sync::atomic::AtomicU64>,
    pub(crate) metrics: Counters,
    pub(crate) allocation_wanted: Arc<Notify>,
    pub(crate) weights: std::collections::BTreeMap<String, f64>,
    pub(crate) quotas: std::collections::BTreeMap<String, crate::registry::QuotaRecord>,
    /// Metrics of components served next to the master (the services scheduler).
    pub(crate) extra_metrics: Vec<crate::MetricsSource>,
    /// Prometheus text appended to `/metrics` (labelled families of other components).
    pub(crate) extra_metrics_text: Vec<crate::MetricsText>,
    next_framework: u64,
    next_agent: u64,
    next_offer: u64,
    next_link: u64,
}

/// The MasterInfo a master with `config` and `id` shows (and writes into its ZooKeeper group).
pub fn master_info(config: &MasterConfig, id: &str) -> MasterInfo {
    MasterInfo {
        id: id.to_owned(),
        // Mesos keeps the address as `in_addr.s_addr` (network order) and writes that
        // integer as the machine reads it: 127.0.0.1 is 16777343. Clients decode it so.
        ip: u32::from_le_bytes(config.advertise_ip.octets()),
        port: config.port,
        pid: format!("master@{}:{}", config.advertise_ip, config.port),
        hostname: config.hostname.clone(),
        version: crate::views::MESOS_VERSION.to_owned(),
        address: agora_api::mesos::Address {
            hostname: config.hostname.clone(),
            ip: config.advertise_ip.to_string(),
            port: config.port,
        },
    }
}

impl Master {
    /// Creates the master over its registry: admitted agents come back as disconnected (they get
    /// one agent timeout to re-register), frameworks as recovered (their failover timeout starts
    /// now), weights and quota as they were.
    pub fn recover(
        config: MasterConfig,
        registrar: agora_store::Registrar,
    ) -> Result<Master, MasterError> {
        let registry = Registry::new(registrar);
        let id = config
            .master_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let info = master_info(&config, &id);
        let mut master = Master {
            // Mesos: a decline filter is never shorter than one allocation interval.
            allocator: Allocator::new(AllocatorConfig {
                min_refuse_ms: config.allocation_interval.as_millis() as u64,
                ..AllocatorConfig::default()
            }),
            id,
            info,
            start_time: epoch_secs(),
            clock: Instant::now(),
            registry,
            agents: HashMap::new(),
            gone_agents: HashSet::new(),
            frameworks: HashMap::new(),
            completed_frameworks: VecDeque::new(),
            offers: HashMap::new(),
            operator_streams: Vec::new(),
            stream_overflows: Arc::default(),
            metrics: Counters::default(),
            allocation_wanted: Arc::new(Notify::new()),
            weights: std::collections::BTreeMap::new(),
            quotas: std::collections::BTreeMap::new(),
            extra_metrics: Vec::new(),
            extra_metrics_text: Vec::new(),
            next_framework: 0,
            next_agent: 0,
            next_offer: 0,
            next_link: 0,
            config,
        };
        master.load_registry()?;
        Ok(master)
    }

    fn load_registry(&mut self) -> Result<(), MasterError> {
        for (role, weight) in self.config.weights.clone() {
            self.allocator.set_weight(&role, weight);
            self.weights.insert(role, weight);
        }
        let snapshot = self.registry.load()?;
        for (role, weight) in snapshot.weights {
            self.allocator.set_weight(&role, weight);
            self.weights.insert(role, weight);
        }
        for quota in snapshot.quotas {
            self.allocator
                .set_quota(&quota.role, quota.guarantees.clone(), quota.limits.clone());
            self.quotas.insert(quota.role.clone(), quota);
        }
        let now = epoch_secs();
        for record in snapshot.agents {
            if record.gone {
                self.gone_agents.insert(AgentId::new(record.id));
                continue;
            }
            let id = AgentId::new(&record.id);
            let total = agora_api::mesos::to_resources(&record.info.resources).unwrap_or_default();
            self.agents.insert(
                id.clone(),
                Agent {
                    id,
                    info: Arc::new(record.info),
                    endpoint: record.endpoint,
                    version: String::new(),
                    total: Arc::new(total),
                    registered_time: record.registered_time,
                    reregistered_time: None,
                    connection: AgentConnection::Disconnected,
                    deactivated: record.deactivated,
                    drain: record.drain.as_deref().and_then(DrainState::parse),
                    mark_gone_when_drained: record.mark_gone_when_drained,
                    last_seen: Instant::now(),
                    registered: false,
                    tasks: HashSet::new(),
                    offers: HashSet::new(),
                    token_sha256: record.token_sha256,
                    pending_kills: Vec::new(),
                },
            );
        }
        for info in snapshot.frameworks {
            let Some(id) = info.framework_id() else {
                continue;
            };
            self.add_recovered_framework(id, info, now);
        }
        Ok(())
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub(crate) fn next_framework_id(&mut self) -> FrameworkId {
        let id = FrameworkId::new(format!("{}-{:04}", self.id, self.next_framework));
        self.next_framework += 1;
        id
    }

    pub(crate) fn next_agent_id(&mut self) -> AgentId {
        let id = AgentId::new(format!("{}-S{}", self.id, self.next_agent));
        self.next_agent += 1;
        id
    }

    pub(crate) fn next_offer_id(&mut self) -> OfferId {
        let id = OfferId::new(format!("{}-O{}", self.id, self.next_offer));
        self.next_offer += 1;
        id
    }

    pub(crate) fn next_link_generation(&mut self) -> u64 {
        self.next_link += 1;
        self.next_link
    }

    pub(crate) fn want_allocation(&self) {
        self.allocation_wanted.notify_one();
    }

    pub fn active_agent_count(&self) -> usize {
        self.agents
            .values()
            .filter(|agent| agent.is_active())
            .count()
    }

    /// Sends a scheduler event to a framework if it is connected.
    pub(crate) fn send_event(&self, framework_id: &FrameworkId, event: &Event) {
        if let Some(stream) = self
            .frameworks
            .get(framework_id)
            .and_then(|f| f.stream.as_ref())
        {
            let _ = stream.sender.send(recordio::encode(&event.to_json()));
        }
    }

    /// Sends a command to an agent if it is connected; returns whether it was sent.
    pub(crate) fn send_agent(&self, agent_id: &AgentId, command: &AgentCommand) -> bool {
        match self.agents.get(agent_id).map(|agent| &agent.connection) {
            Some(AgentConnection::Connected(link)) => link
                .sender
                .send(recordio::encode(&command.to_json()))
                .is_ok(),
            _ => false,
        }
    }

    /// Publishes an operator-API event to every operator subscriber.
    pub(crate) fn publish(&mut self, event: serde_json::Value) {
        if self.operator_streams.is_empty() {
            return;
        }
        let frame = recordio::encode(&agora_api::scheduler::ascii_json(&event));
        self.operator_streams
            .retain(|sender| sender.send(frame.clone()).is_ok());
    }
}

/// SHA-256 of an agent's secret, in hex: what the registry keeps instead of the secret.
pub(crate) fn token_sha256(token: &str) -> String {
    // Every request of every agent passes here: one allocation, not one a byte.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut text = String::with_capacity(64);
    for byte in digest.as_ref() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
pub(crate) mod tests;

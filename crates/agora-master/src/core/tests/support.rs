//! Fixtures for the master's decision tests: a master over the in-memory registry with fixed
//! ids, agents and schedulers whose streams the tests read back, and builders for tasks, offers
//! and status updates. Nothing here talks HTTP; each helper calls the method the HTTP handler
//! would.

use futures_util::{FutureExt, StreamExt};

use agora_api::agent_protocol::{
    AgentCommand, AgentTask, RegisterAgent, ReportedTask, StatusUpdate,
};
use agora_api::mesos::{
    AgentInfo, CommandInfo, FrameworkInfo, Id, ResourceFormat, TaskInfo, TaskStatus, from_resources,
};
use agora_api::recordio::Decoder;
use agora_api::scheduler::{Accept, Event, Filters, Launch, Offer, Operation};
use agora_http::events::{EventSender, EventStream};
use agora_types::{AgentId, FrameworkId, Resources, TaskState};

use crate::config::MasterConfig;
use crate::core::Master;

/// The master id every fixture master has, so agent, framework and offer ids are known.
pub(crate) const MASTER_ID: &str = "master-1";

/// The resources every fixture agent has unless a test says otherwise.
pub(crate) const AGENT_RESOURCES: &str = "cpus:4;mem:4096;disk:10240;ports:[31000-31009]";

pub(crate) fn resources(text: &str) -> Resources {
    Resources::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"))
}

/// A master with the default configuration over an in-memory registry.
pub(crate) fn master() -> Master {
    master_with(MasterConfig::default())
}

pub(crate) fn master_with(config: MasterConfig) -> Master {
    master_over(std::sync::Arc::new(agora_store::MemoryStore::new()), config)
}

/// A master recovering what `store` holds, as after a restart or a failover.
pub(crate) fn master_over(
    store: std::sync::Arc<agora_store::MemoryStore>,
    config: MasterConfig,
) -> Master {
    let registrar = agora_store::Registrar::spawn(store).expect("a registrar");
    let mut master =
        Master::recover(config, registrar).expect("a master over the in-memory registry");
    master.id = MASTER_ID.to_owned();
    master.info.id = MASTER_ID.to_owned();
    master
}

/// What the registry holds once everything the master queued is committed.
pub(crate) fn persisted(master: &Master) -> crate::registry::Snapshot {
    master.registry.barrier().wait().expect("committed");
    master.registry.load().expect("the registry loads")
}

/// Moves the master's clock (decline filters, offer timing) forward by `seconds`.
pub(crate) fn advance_clock(master: &mut Master, seconds: u64) {
    master.clock -= std::time::Duration::from_secs(seconds);
}

/// The reading end of a stream the master writes RecordIO frames to.
pub(crate) struct Inbox {
    stream: EventStream,
    decoder: Decoder,
}

impl Inbox {
    pub fn new() -> (EventSender, Inbox) {
        let (sender, stream) =
            agora_http::events::bounded(64 << 20, bytes::Bytes::new(), Default::default());
        let inbox = Inbox {
            stream,
            decoder: Decoder::new(),
        };
        (sender, inbox)
    }

    /// Every record queued so far, as JSON.
    pub fn records(&mut self) -> Vec<serde_json::Value> {
        while let Some(Some(Ok(frame))) = self.stream.next().now_or_never() {
            self.decoder.feed(&frame);
        }
        let mut records = Vec::new();
        while let Some(record) = self.decoder.next_record().expect("a RecordIO frame") {
            records.push(serde_json::from_slice(&record).expect("a JSON record"));
        }
        records
    }

    /// Every record queued so far, decoded as `T` (agent commands, scheduler events).
    pub fn decoded<T: serde::de::DeserializeOwned>(&mut self) -> Vec<T> {
        self.records()
            .into_iter()
            .map(|record| {
                serde_json::from_value(record.clone())
                    .unwrap_or_else(|error| panic!("{record}: {error}"))
            })
            .collect()
    }
}

pub(crate) struct TestAgent {
    pub id: AgentId,
    pub token: String,
    pub generation: u64,
    pub inbox: Inbox,
    /// What the agent registered with, to re-register with.
    pub request: RegisterAgent,
}

impl TestAgent {
    /// Commands the master sent since the last call.
    pub fn commands(&mut self) -> Vec<AgentCommand> {
        self.inbox.decoded()
    }

    /// A registration under this agent's id, reporting `tasks`.
    pub fn reregistration(&self, tasks: Vec<AgentTask>) -> RegisterAgent {
        RegisterAgent {
            agent_id: Some(self.id.to_string()),
            tasks,
            ..self.request.clone()
        }
    }

    /// A status update from this agent, with a uuid as agents send them.
    pub fn update(
        &self,
        scheduler: &TestScheduler,
        task_id: &str,
        state: TaskState,
        uuid: &str,
    ) -> StatusUpdate {
        let mut status = TaskStatus::new(task_id, state).with_source("SOURCE_EXECUTOR");
        status.uuid = Some(uuid.to_owned());
        StatusUpdate {
            agent_id: self.id.to_string(),
            framework_id: scheduler.id.to_string(),
            status,
        }
    }
}

pub(crate) fn agent_request(hostname: &str, resources_text: &str) -> RegisterAgent {
    RegisterAgent {
        agent_id: None,
        info: AgentInfo {
            hostname: hostname.to_owned(),
            port: 5051,
            resources: wire(&resources(resources_text)),
            ..AgentInfo::default()
        },
        endpoint: format!("{hostname}:5051"),
        version: "test".to_owned(),
        tasks: Vec::new(),
        frameworks: Vec::new(),
        executors: Vec::new(),
    }
}

/// `request` as the master reads it off the wire.
pub(crate) fn as_read(request: &RegisterAgent) -> RegisterAgent<ReportedTask> {
    let json = serde_json::to_vec(request).expect("a registration serialises");
    serde_json::from_slice(&json).expect("a registration reads back")
}

/// Registers a new agent and reads its REGISTERED command (which carries its secret).
pub(crate) fn add_agent(master: &mut Master, hostname: &str, resources_text: &str) -> TestAgent {
    let request = agent_request(hostname, resources_text);
    let (sender, mut inbox) = Inbox::new();
    let (id, generation) = master
        .register_agent(as_read(&request), None, sender)
        .expect("a new agent registers");
    let token = match inbox.records().first().cloned().map(serde_json::from_value) {
        Some(Ok(AgentCommand::Registered {
            token: Some(token), ..
        })) => token,
        other => panic!("expected REGISTERED with a secret first, got {other:?}"),
    };
    TestAgent {
        id,
        token,
        generation,
        inbox,
        request,
    }
}

/// Registers `request` with `token` on a new stream; the agent's id and generation on success.
pub(crate) fn reregister(
    master: &mut Master,
    agent: &mut TestAgent,
    request: RegisterAgent,
) -> Result<u64, String> {
    let (sender, inbox) = Inbox::new();
    let (id, generation) = master
        .register_agent(as_read(&request), Some(&agent.token), sender)
        .map_err(|refused| refused.to_string())?;
    assert_eq!(id, agent.id, "a re-registration keeps the agent's id");
    agent.inbox = inbox;
    agent.generation = generation;
    Ok(generation)
}

pub(crate) struct TestScheduler {
    pub id: FrameworkId,
    pub stream_id: String,
    pub inbox: Inbox,
}

impl TestScheduler {
    /// Events the master sent since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        self.inbox.decoded()
    }

    /// The status updates among the events since the last call (others are dropped).
    pub fn updates(&mut self) -> Vec<TaskStatus> {
        self.events()
            .into_iter()
            .filter_map(|event| match event {
                Event::Update { update } => Some(update.status),
                _ => None,
            })
            .collect()
    }

    /// The one status update sent since the last call.
    pub fn only_update(&mut self) -> TaskStatus {
        let mut updates = self.updates();
        assert_eq!(updates.len(), 1, "expected one update, got {updates:?}");
        updates.remove(0)
    }
}

pub(crate) fn framework_info(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        user: "root".to_owned(),
        name: name.to_owned(),
        failover_timeout: 60.0,
        ..FrameworkInfo::default()
    }
}

/// Subscribes a framework and reads its SUBSCRIBED event.
pub(crate) fn add_framework(master: &mut Master, info: FrameworkInfo) -> TestScheduler {
    let (sender, mut inbox) = Inbox::new();
    let (id, stream_id) = match master.subscribe(info, Vec::new(), sender) {
        Ok(subscribed) => subscribed,
        Err(refused) => panic!("subscription refused: {}", refused.0),
    };
    let first = inbox.records().first().cloned().map(serde_json::from_value);
    assert!(
        matches!(first, Some(Ok(Event::Subscribed { .. }))),
        "expected SUBSCRIBED first, got {first:?}"
    );
    TestScheduler {
        id,
        stream_id,
        inbox,
    }
}

/// Runs an allocation round and returns the offers `scheduler` got from it.
pub(crate) fn next_offers(master: &mut Master, scheduler: &mut TestScheduler) -> Vec<Offer> {
    master.allocate();
    scheduler
        .events()
        .into_iter()
        .flat_map(|event| match event {
            Event::Offers { offers } => offers.offers,
            _ => Vec::new(),
        })
        .collect()
}

/// Runs an allocation round and returns the one offer `scheduler` got from it.
pub(crate) fn next_offer(master: &mut Master, scheduler: &mut TestScheduler) -> Offer {
    let mut offers = next_offers(master, scheduler);
    assert_eq!(offers.len(), 1, "expected one offer, got {offers:?}");
    offers.remove(0)
}

pub(crate) fn wire(resources: &Resources) -> Vec<agora_api::mesos::WireResource> {
    from_resources(resources, ResourceFormat::default(), None)
}

/// The resources an offer holds, parsed back.
pub(crate) fn offered(offer: &Offer) -> Resources {
    agora_api::mesos::to_resources(&offer.resources).expect("an offer's resources parse")
}

/// A command task for the offer's agent using `resources_text`.
pub(crate) fn command_task(id: &str, offer: &Offer, resources_text: &str) -> TaskInfo {
    TaskInfo {
        name: id.to_owned(),
        task_id: Id::new(id),
        agent_id: offer.agent_id.clone(),
        resources: wire(&resources(resources_text)),
        command: Some(CommandInfo {
            value: Some("sleep 1000".to_owned()),
            ..CommandInfo::default()
        }),
        ..TaskInfo::default()
    }
}

/// ACCEPT of `offer_ids` with one LAUNCH of `tasks`, the unused rest refused for `refuse`
/// seconds.
pub(crate) fn launch_call(offer_ids: &[&Id], tasks: Vec<TaskInfo>, refuse: f64) -> Accept {
    Accept {
        offer_ids: offer_ids.iter().map(|&id| id.clone()).collect(),
        operations: vec![Operation {
            kind: "LAUNCH".to_owned(),
            launch: Some(Launch { task_infos: tasks }),
            ..Operation::default()
        }],
        filters: Some(Filters {
            refuse_seconds: Some(refuse),
        }),
    }
}

/// Launches `tasks` on `offer` (the rest refused for the default 5 s).
pub(crate) fn launch(
    master: &mut Master,
    scheduler: &TestScheduler,
    offer: &Offer,
    tasks: Vec<TaskInfo>,
) {
    master.accept(&scheduler.id, launch_call(&[&offer.id], tasks, 5.0));
}

/// A master with one agent ([`AGENT_RESOURCES`]) and one framework running task `t1`
/// (`cpus:1;mem:128`), reported RUNNING by the agent; every stream read to its end.
pub(crate) struct Cluster {
    pub master: Master,
    pub agent: TestAgent,
    pub scheduler: TestScheduler,
}

pub(crate) const TASK_RESOURCES: &str = "cpus:1;mem:128";

pub(crate) fn cluster_with(info: FrameworkInfo) -> Cluster {
    let mut master = master();
    let mut agent = add_agent(&mut master, "host-1", AGENT_RESOURCES);
    let mut scheduler = add_framework(&mut master, info);
    let offer = next_offer(&mut master, &mut scheduler);
    launch(
        &mut master,
        &scheduler,
        &offer,
        vec![command_task("t1", &offer, TASK_RESOURCES)],
    );
    master.agent_status_update(agent.update(&scheduler, "t1", TaskState::Running, "u-running"));
    agent.commands();
    scheduler.events();
    Cluster {
        master,
        agent,
        scheduler,
    }
}

pub(crate) fn cluster() -> Cluster {
    cluster_with(framework_info("web"))
}

impl Cluster {
    pub fn task(&self, task_id: &str) -> Option<&crate::core::Task> {
        self.master
            .frameworks
            .get(&self.scheduler.id)?
            .tasks
            .get(&agora_types::TaskId::new(task_id))
            .map(|task| &**task)
    }

    pub fn completed_task_states(&self) -> Vec<(String, TaskState)> {
        self.master.frameworks[&self.scheduler.id]
            .completed_tasks
            .iter()
            .map(|task| (task.statuses.task_id().to_owned(), task.state))
            .collect()
    }

    /// What the allocator holds neither offered nor used on the cluster's agent.
    pub fn available(&self) -> Resources {
        self.master
            .allocator
            .available(&self.agent.id)
            .expect("the agent is known to the allocator")
    }

    /// The report of task `t1` an agent makes when it re-registers.
    pub fn reported_task(&self, state: TaskState) -> AgentTask {
        let task = self.task("t1").expect("t1 is known");
        AgentTask {
            framework_id: self.scheduler.id.to_string(),
            task: task.info.get().into(),
            status: TaskStatus::new("t1", state),
        }
    }
}

pub(crate) fn partition_aware(name: &str) -> FrameworkInfo {
    FrameworkInfo {
        capabilities: vec![agora_api::mesos::Capability {
            kind: "PARTITION_AWARE".to_owned(),
        }],
        ..framework_info(name)
    }
}

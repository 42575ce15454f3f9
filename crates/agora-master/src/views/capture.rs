//! What a state view reads of the master, taken under its lock in one pass of cheap copies
//! (tasks are shared, not copied) so that the document is rendered — and streamed — after the
//! lock is released, and is still one consistent moment of the master.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use agora_api::mesos::{AgentInfo, ExecutorInfo, FrameworkInfo, MasterInfo};
use agora_http::auth::acl::Acls;
use agora_types::{AgentId, ExecutorId, FrameworkId, OfferId, Resources};

use crate::core::{Agent, AgentConnection, DrainState, Framework, Master, OutstandingOffer, Task};

/// The master-wide fields of a view.
pub(crate) struct Head {
    pub id: String,
    pub info: MasterInfo,
    pub start_time: f64,
    pub flags: Value,
    pub security: Value,
}

/// An agent as views show it.
pub(crate) struct AgentCopy {
    pub id: AgentId,
    pub info: Arc<AgentInfo>,
    pub endpoint: String,
    pub version: String,
    pub total: Arc<Resources>,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub active: bool,
    pub deactivated: bool,
    /// Registered with this master process (not only recovered from the registry).
    pub registered: bool,
    pub unreachable: bool,
    pub drain: Option<DrainState>,
}

impl AgentCopy {
    pub fn of(agent: &Agent) -> AgentCopy {
        AgentCopy {
            id: agent.id.clone(),
            info: agent.info.clone(),
            endpoint: agent.endpoint.clone(),
            version: agent.version.clone(),
            total: agent.total.clone(),
            registered_time: agent.registered_time,
            reregistered_time: agent.reregistered_time,
            active: agent.is_active(),
            deactivated: agent.deactivated,
            registered: agent.registered,
            unreachable: matches!(agent.connection, AgentConnection::Unreachable { .. }),
            drain: agent.drain,
        }
    }

    /// Registered and reachable: what Mesos lists as its agents.
    pub fn listed(&self) -> bool {
        self.registered && !self.unreachable
    }

    /// Known from the registry, reachable, not re-registered yet.
    pub fn recovered(&self) -> bool {
        !self.registered && !self.unreachable
    }
}

/// A framework as views show it, with its tasks.
pub(crate) struct FrameworkCopy {
    pub id: FrameworkId,
    pub info: FrameworkInfo,
    pub roles: Vec<String>,
    pub registered_time: f64,
    pub reregistered_time: Option<f64>,
    pub unregistered_time: Option<f64>,
    pub connected: bool,
    pub recovered: bool,
    pub offers: Vec<OfferId>,
    pub executors: Vec<(AgentId, ExecutorId, ExecutorInfo)>,
    pub tasks: Vec<Arc<Task>>,
    pub completed_tasks: Vec<Arc<Task>>,
}

impl FrameworkCopy {
    /// The framework without its tasks (for an event about the framework itself).
    pub fn head(framework: &Framework) -> FrameworkCopy {
        FrameworkCopy {
            id: framework.id.clone(),
            info: framework.info.clone(),
            roles: framework.roles.clone(),
            registered_time: framework.registered_time,
            reregistered_time: framework.reregistered_time,
            unregistered_time: framework.unregistered_time,
            connected: framework.connected(),
            recovered: framework.recovered,
            offers: framework.offers.iter().cloned().collect(),
            executors: framework
                .executors
                .iter()
                .map(|((agent, executor), info)| (agent.clone(), executor.clone(), info.clone()))
                .collect(),
            tasks: Vec::new(),
            completed_tasks: Vec::new(),
        }
    }

    pub fn of(framework: &Framework) -> FrameworkCopy {
        FrameworkCopy {
            tasks: framework.tasks.values().cloned().collect(),
            completed_tasks: framework.completed_tasks.iter().cloned().collect(),
            ..FrameworkCopy::head(framework)
        }
    }
}

/// What a document reads beyond the frameworks (and offers): agents, tasks. Each is a pass
/// over 10,000 or 100,000 items under the lock; a document takes only what it shows.
#[derive(Clone, Copy)]
pub(crate) struct Scope {
    pub agents: bool,
    pub tasks: bool,
}

impl Scope {
    pub const ALL: Scope = Scope {
        agents: true,
        tasks: true,
    };
    /// Frameworks with their tasks (and what they use), no agents.
    pub const TASKS: Scope = Scope {
        agents: false,
        tasks: true,
    };
    /// Frameworks alone (executors, offers, no tasks: nothing they use).
    pub const FRAMEWORKS: Scope = Scope {
        agents: false,
        tasks: false,
    };
}

/// One moment of the master, as views need it.
pub(crate) struct Capture {
    pub acls: Arc<Acls>,
    pub head: Head,
    pub agents: Vec<AgentCopy>,
    pub offers: HashMap<OfferId, OutstandingOffer>,
    pub frameworks: Vec<FrameworkCopy>,
    pub completed_frameworks: Vec<FrameworkCopy>,
    usage: std::sync::OnceLock<Usage>,
}

impl Capture {
    /// Taken under the master's lock: copies of the small parts, the tasks shared.
    pub fn take(master: &Master, scope: Scope) -> Capture {
        let framework = |framework: &Framework| {
            if scope.tasks {
                FrameworkCopy::of(framework)
            } else {
                FrameworkCopy::head(framework)
            }
        };
        Capture {
            acls: master.config.acls.clone(),
            head: Head {
                id: master.id.clone(),
                info: master.info.clone(),
                start_time: master.start_time,
                flags: super::flags(master),
                security: super::security(master),
            },
            agents: if scope.agents {
                master.agents.values().map(AgentCopy::of).collect()
            } else {
                Vec::new()
            },
            offers: master.offers.clone(),
            frameworks: master.frameworks.values().map(framework).collect(),
            completed_frameworks: master.completed_frameworks.iter().map(framework).collect(),
            usage: std::sync::OnceLock::new(),
        }
    }

    /// Resources used (by running tasks) and offered, by agent and by framework; worked out
    /// after the lock is released, once.
    pub fn usage(&self) -> &Usage {
        self.usage.get_or_init(|| self.work_out_usage())
    }

    fn work_out_usage(&self) -> Usage {
        let mut usage = Usage::default();
        for framework in &self.frameworks {
            for task in framework.tasks.iter().filter(|task| !task.released) {
                usage.agents.entry(task.agent_id.clone()).or_default().used += &task.resources;
                usage
                    .frameworks
                    .entry(framework.id.clone())
                    .or_default()
                    .used += &task.resources;
            }
        }
        for offer in self.offers.values() {
            usage
                .agents
                .entry(offer.agent_id.clone())
                .or_default()
                .offered += &offer.resources;
            usage
                .frameworks
                .entry(offer.framework_id.clone())
                .or_default()
                .offered += &offer.resources;
        }
        usage
    }
}

#[derive(Default)]
pub(crate) struct Used {
    pub used: Resources,
    pub offered: Resources,
}

/// What [`Capture::usage`] works out.
#[derive(Default)]
pub(crate) struct Usage {
    agents: HashMap<AgentId, Used>,
    frameworks: HashMap<FrameworkId, Used>,
}

static NOTHING: std::sync::LazyLock<Used> = std::sync::LazyLock::new(Used::default);

impl Usage {
    pub fn agent(&self, id: &AgentId) -> &Used {
        self.agents.get(id).unwrap_or(&NOTHING)
    }

    pub fn framework(&self, id: &FrameworkId) -> &Used {
        self.frameworks.get(id).unwrap_or(&NOTHING)
    }
}

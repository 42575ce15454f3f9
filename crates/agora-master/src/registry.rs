//! What the master persists, through its registrar: admitted agents, frameworks with their
//! failover timeouts, role weights and quota. Running tasks are not persisted: agents are the
//! source of truth and report them when they re-register. Writes are queued under the
//! master's lock and committed by the registrar thread; whoever answers for a change awaits
//! [`Registry::barrier`] first.

use serde::{Deserialize, Serialize};

use agora_api::mesos::{AgentInfo, FrameworkInfo};
use agora_store::{Commit, Registrar};
use agora_types::Resources;

use crate::core::MasterError;

const AGENTS: &str = "registry/agents/";
const FRAMEWORKS: &str = "registry/frameworks/";
const WEIGHTS: &str = "registry/weights/";
const QUOTAS: &str = "registry/quotas/";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct AgentRecord {
    pub id: String,
    pub info: AgentInfo,
    pub endpoint: String,
    pub registered_time: f64,
    #[serde(default)]
    pub gone: bool,
    #[serde(default)]
    pub deactivated: bool,
    /// SHA-256 (hex) of the agent's secret: its id is taken only by whoever holds it.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Maintenance: `DRAINING` or `DRAINED` (a failover keeps a drain going).
    #[serde(default)]
    pub drain: Option<String>,
    #[serde(default)]
    pub mark_gone_when_drained: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct QuotaRecord {
    pub role: String,
    pub guarantees: Resources,
    pub limits: Option<Resources>,
}

#[derive(Serialize, Deserialize)]
struct StoredQuota {
    role: String,
    guarantees: String,
    limits: Option<String>,
}

#[derive(Default)]
pub(crate) struct Snapshot {
    pub agents: Vec<AgentRecord>,
    pub frameworks: Vec<FrameworkInfo>,
    pub weights: Vec<(String, f64)>,
    pub quotas: Vec<QuotaRecord>,
}

pub(crate) struct Registry {
    registrar: Registrar,
}

fn corrupt(key: &str) -> MasterError {
    MasterError::CorruptRegistry(key.to_owned())
}

impl Registry {
    pub fn new(registrar: Registrar) -> Registry {
        Registry { registrar }
    }

    /// Resolves once every change made so far is durable.
    pub fn barrier(&self) -> Commit {
        self.registrar.barrier()
    }

    pub fn load(&self) -> Result<Snapshot, MasterError> {
        let mut snapshot = Snapshot::default();
        for (key, value) in self.registrar.store().list(AGENTS)? {
            snapshot
                .agents
                .push(serde_json::from_slice(&value).map_err(|_| corrupt(&key))?);
        }
        for (key, value) in self.registrar.store().list(FRAMEWORKS)? {
            snapshot
                .frameworks
                .push(serde_json::from_slice(&value).map_err(|_| corrupt(&key))?);
        }
        for (key, value) in self.registrar.store().list(WEIGHTS)? {
            let weight: f64 = serde_json::from_slice(&value).map_err(|_| corrupt(&key))?;
            snapshot
                .weights
                .push((key[WEIGHTS.len()..].to_owned(), weight));
        }
        for (key, value) in self.registrar.store().list(QUOTAS)? {
            let stored: StoredQuota = serde_json::from_slice(&value).map_err(|_| corrupt(&key))?;
            let guarantees = Resources::parse(&stored.guarantees).map_err(|_| corrupt(&key))?;
            let limits = match stored.limits {
                Some(text) => Some(Resources::parse(&text).map_err(|_| corrupt(&key))?),
                None => None,
            };
            snapshot.quotas.push(QuotaRecord {
                role: stored.role,
                guarantees,
                limits,
            });
        }
        Ok(snapshot)
    }

    /// Queues a write; a store that fails stops the master (the binary watches the registrar).
    fn put_json<T: Serialize>(&self, key: String, value: &T) {
        match serde_json::to_vec(value) {
            Ok(bytes) => drop(self.registrar.put(key, bytes)),
            Err(error) => tracing::error!(%key, %error, "registry encode failed"),
        }
    }

    fn delete(&self, key: String) {
        drop(self.registrar.delete(key));
    }

    pub fn put_agent(&self, record: &AgentRecord) {
        self.put_json(format!("{AGENTS}{}", record.id), record);
    }

    pub fn put_framework(&self, info: &FrameworkInfo) {
        if let Some(id) = &info.id {
            self.put_json(format!("{FRAMEWORKS}{}", id.value), info);
        }
    }

    pub fn remove_framework(&self, id: &str) {
        self.delete(format!("{FRAMEWORKS}{id}"));
    }

    pub fn put_weight(&self, role: &str, weight: f64) {
        self.put_json(format!("{WEIGHTS}{role}"), &weight);
    }

    pub fn put_quota(&self, quota: &QuotaRecord) {
        let stored = StoredQuota {
            role: quota.role.clone(),
            guarantees: quota.guarantees.to_string(),
            limits: quota.limits.as_ref().map(ToString::to_string),
        };
        self.put_json(format!("{QUOTAS}{}", quota.role), &stored);
    }

    pub fn remove_quota(&self, role: &str) {
        self.delete(format!("{QUOTAS}{role}"));
    }
}

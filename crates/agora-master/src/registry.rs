//! What the master persists, through the `Store` trait: admitted agents, frameworks with their
//! failover timeouts, role weights and quota. Running tasks are not persisted: agents are the
//! source of truth and report them when they re-register.

use std::path::Path;

use serde::{Deserialize, Serialize};

use agora_api::mesos::{AgentInfo, FrameworkInfo};
use agora_store::{MemoryStore, RedbStore, Store};
use agora_types::Resources;

use crate::core::MasterError;

const AGENTS: &str = "registry/agents/";
const FRAMEWORKS: &str = "registry/frameworks/";
const WEIGHTS: &str = "registry/weights/";
const QUOTAS: &str = "registry/quotas/";

#[derive(Clone, Debug, Serialize, Deserialize)]
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
    store: Box<dyn Store>,
}

fn corrupt(key: &str) -> MasterError {
    MasterError::CorruptRegistry(key.to_owned())
}

impl Registry {
    pub fn open(data_dir: Option<&Path>) -> Result<Registry, MasterError> {
        let store: Box<dyn Store> = match data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    MasterError::Registry(agora_store::StoreError::Backend(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )))
                })?;
                Box::new(RedbStore::open(&dir.join("registry.redb"))?)
            }
            None => Box::new(MemoryStore::new()),
        };
        Ok(Registry { store })
    }

    pub fn load(&self) -> Result<Snapshot, MasterError> {
        let mut snapshot = Snapshot::default();
        for (key, value) in self.store.list(AGENTS)? {
            snapshot
                .agents
                .push(serde_json::from_slice(&value).map_err(|_| corrupt(&key))?);
        }
        for (key, value) in self.store.list(FRAMEWORKS)? {
            snapshot
                .frameworks
                .push(serde_json::from_slice(&value).map_err(|_| corrupt(&key))?);
        }
        for (key, value) in self.store.list(WEIGHTS)? {
            let weight: f64 = serde_json::from_slice(&value).map_err(|_| corrupt(&key))?;
            snapshot
                .weights
                .push((key[WEIGHTS.len()..].to_owned(), weight));
        }
        for (key, value) in self.store.list(QUOTAS)? {
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

    fn put_json<T: Serialize>(&self, key: String, value: &T) {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                if let Err(error) = self.store.put(&key, &bytes) {
                    tracing::error!(%key, %error, "registry write failed");
                }
            }
            Err(error) => tracing::error!(%key, %error, "registry encode failed"),
        }
    }

    fn delete(&self, key: String) {
        if let Err(error) = self.store.delete(&key) {
            tracing::error!(%key, %error, "registry delete failed");
        }
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

//! Roles: weights and quota set by operators (persisted), and the GET_ROLES view.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use agora_api::mesos::{ResourceFormat, from_resources};
use agora_types::Resources;

use super::Master;
use crate::registry::QuotaRecord;

impl Master {
    pub(crate) fn set_weight(&mut self, role: &str, weight: f64) {
        self.allocator.set_weight(role, weight);
        self.weights.insert(role.to_owned(), weight);
        self.registry.put_weight(role, weight);
        self.want_allocation();
    }

    /// Sets a role's quota; empty guarantees and no limits remove it.
    pub(crate) fn set_quota(
        &mut self,
        role: &str,
        guarantees: Resources,
        limits: Option<Resources>,
    ) {
        self.allocator
            .set_quota(role, guarantees.clone(), limits.clone());
        if guarantees.is_empty() && limits.is_none() {
            self.quotas.remove(role);
            self.registry.remove_quota(role);
        } else {
            let record = QuotaRecord {
                role: role.to_owned(),
                guarantees,
                limits,
            };
            self.registry.put_quota(&record);
            self.quotas.insert(role.to_owned(), record);
        }
        self.want_allocation();
    }

    pub(crate) fn roles_json(&self) -> Vec<Value> {
        let mut roles: BTreeMap<String, (Vec<String>, Resources)> = BTreeMap::new();
        for (role, _share, allocated) in self.allocator.role_shares() {
            roles.entry(role).or_default().1 = allocated;
        }
        for framework in self.frameworks.values() {
            for role in &framework.roles {
                roles
                    .entry(role.clone())
                    .or_default()
                    .0
                    .push(framework.id.to_string());
            }
        }
        for role in self.weights.keys().chain(self.quotas.keys()) {
            roles.entry(role.clone()).or_default();
        }
        roles
            .into_iter()
            .map(|(name, (frameworks, allocated))| {
                let frameworks: Vec<Value> = frameworks
                    .into_iter()
                    .map(|id| json!({"value": id}))
                    .collect();
                json!({
                    "name": name,
                    "weight": self.allocator.weight(&name),
                    "frameworks": frameworks,
                    "resources": from_resources(&allocated, ResourceFormat::default(), None),
                    "allocated": from_resources(&allocated, ResourceFormat::default(), None),
                })
            })
            .collect()
    }
}

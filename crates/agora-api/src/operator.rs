//! The Mesos v1 operator API's calls (`POST /api/v1`), decoded into one variant per call with
//! Mesos' messages for what is missing or malformed. Role names are the master's to check.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::ApiError;

/// One operator call.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    Subscribe,
    GetHealth,
    GetVersion,
    GetState,
    GetAgents,
    GetFrameworks,
    GetTasks,
    GetExecutors,
    GetMaster,
    GetMetrics,
    GetFlags,
    GetRoles,
    GetWeights,
    UpdateWeights(Vec<WeightInfo>),
    GetQuota,
    UpdateQuota(Vec<QuotaConfig>),
    Teardown {
        framework_id: String,
    },
    MarkAgentGone {
        agent_id: String,
    },
    DeactivateAgent {
        agent_id: String,
    },
    ReactivateAgent {
        agent_id: String,
    },
    DrainAgent {
        agent_id: String,
        /// `max_grace_period`, in nanoseconds.
        max_grace_period_ns: Option<i64>,
        mark_gone: bool,
    },
    /// `UNKNOWN`, Mesos' placeholder type.
    Unknown,
    /// A call Mesos has and agora does not.
    Unsupported(String),
}

/// A role's weight (`UPDATE_WEIGHTS`).
#[derive(Clone, Debug, PartialEq)]
pub struct WeightInfo {
    pub role: String,
    pub weight: f64,
}

/// A role's quota (`UPDATE_QUOTA`): scalar guarantees and, when given, limits.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaConfig {
    pub role: String,
    pub guarantees: BTreeMap<String, f64>,
    pub limits: Option<BTreeMap<String, f64>>,
}

impl Call {
    /// Decodes a call body, with Mesos' messages on failure.
    pub fn parse(body: &[u8]) -> Result<Call, ApiError> {
        let call: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("Failed to parse body into JSON: {e}")))?;
        let kind = call
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("Expecting 'type' to be present"))?;
        let payload = call.get(kind.to_lowercase()).unwrap_or(&Value::Null);
        let agent_id = || {
            id_field(payload, "agent_id").ok_or_else(|| {
                ApiError::invalid(format!(
                    "Expecting '{}.agent_id' to be present",
                    kind.to_lowercase()
                ))
            })
        };
        Ok(match kind {
            "SUBSCRIBE" => Call::Subscribe,
            "GET_HEALTH" => Call::GetHealth,
            "GET_VERSION" => Call::GetVersion,
            "GET_STATE" => Call::GetState,
            "GET_AGENTS" => Call::GetAgents,
            "GET_FRAMEWORKS" => Call::GetFrameworks,
            "GET_TASKS" => Call::GetTasks,
            "GET_EXECUTORS" => Call::GetExecutors,
            "GET_MASTER" => Call::GetMaster,
            "GET_METRICS" => Call::GetMetrics,
            "GET_FLAGS" => Call::GetFlags,
            "GET_ROLES" => Call::GetRoles,
            "GET_WEIGHTS" => Call::GetWeights,
            "UPDATE_WEIGHTS" => Call::UpdateWeights(weights(payload)?),
            "GET_QUOTA" => Call::GetQuota,
            "UPDATE_QUOTA" => Call::UpdateQuota(quotas(payload)?),
            "TEARDOWN" => Call::Teardown {
                framework_id: id_field(payload, "framework_id").ok_or_else(|| {
                    ApiError::invalid("Expecting 'teardown.framework_id' to be present")
                })?,
            },
            "MARK_AGENT_GONE" => Call::MarkAgentGone {
                agent_id: agent_id()?,
            },
            "DEACTIVATE_AGENT" => Call::DeactivateAgent {
                agent_id: agent_id()?,
            },
            "REACTIVATE_AGENT" => Call::ReactivateAgent {
                agent_id: agent_id()?,
            },
            "DRAIN_AGENT" => Call::DrainAgent {
                agent_id: agent_id()?,
                max_grace_period_ns: payload.get("max_grace_period").and_then(nanoseconds),
                mark_gone: payload.get("mark_gone").and_then(Value::as_bool) == Some(true),
            },
            "UNKNOWN" => Call::Unknown,
            other => Call::Unsupported(other.to_owned()),
        })
    }

    /// The call's `type`, as Mesos spells it.
    pub fn kind(&self) -> &str {
        match self {
            Call::Subscribe => "SUBSCRIBE",
            Call::GetHealth => "GET_HEALTH",
            Call::GetVersion => "GET_VERSION",
            Call::GetState => "GET_STATE",
            Call::GetAgents => "GET_AGENTS",
            Call::GetFrameworks => "GET_FRAMEWORKS",
            Call::GetTasks => "GET_TASKS",
            Call::GetExecutors => "GET_EXECUTORS",
            Call::GetMaster => "GET_MASTER",
            Call::GetMetrics => "GET_METRICS",
            Call::GetFlags => "GET_FLAGS",
            Call::GetRoles => "GET_ROLES",
            Call::GetWeights => "GET_WEIGHTS",
            Call::UpdateWeights(_) => "UPDATE_WEIGHTS",
            Call::GetQuota => "GET_QUOTA",
            Call::UpdateQuota(_) => "UPDATE_QUOTA",
            Call::Teardown { .. } => "TEARDOWN",
            Call::MarkAgentGone { .. } => "MARK_AGENT_GONE",
            Call::DeactivateAgent { .. } => "DEACTIVATE_AGENT",
            Call::ReactivateAgent { .. } => "REACTIVATE_AGENT",
            Call::DrainAgent { .. } => "DRAIN_AGENT",
            Call::Unknown => "UNKNOWN",
            Call::Unsupported(kind) => kind,
        }
    }
}

fn id_field(payload: &Value, key: &str) -> Option<String> {
    payload.get(key)?.get("value")?.as_str().map(str::to_owned)
}

/// A `DurationInfo` in nanoseconds (`nanoseconds`, or whole `seconds`).
fn nanoseconds(duration: &Value) -> Option<i64> {
    duration
        .get("nanoseconds")
        .and_then(Value::as_i64)
        .or_else(|| {
            duration
                .get("seconds")
                .and_then(Value::as_i64)
                .map(|secs| secs.saturating_mul(1_000_000_000))
        })
}

fn weights(payload: &Value) -> Result<Vec<WeightInfo>, ApiError> {
    let infos = payload
        .get("weight_infos")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::invalid("Expecting 'update_weights.weight_infos' to be present")
        })?;
    let mut weights = Vec::new();
    for info in infos {
        let role = info
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("Every weight_info needs a 'role'"))?;
        let weight = info
            .get("weight")
            .and_then(Value::as_f64)
            .ok_or_else(|| ApiError::invalid("Every weight_info needs a numeric 'weight'"))?;
        if !(weight > 0.0 && weight.is_finite()) {
            return Err(ApiError::invalid(format!(
                "Weight of role '{role}' must be a positive number, got {weight}"
            )));
        }
        weights.push(WeightInfo {
            role: role.to_owned(),
            weight,
        });
    }
    Ok(weights)
}

fn quotas(payload: &Value) -> Result<Vec<QuotaConfig>, ApiError> {
    let configs = payload
        .get("quota_configs")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("Expecting 'update_quota.quota_configs' to be present"))?;
    let mut quotas = Vec::new();
    for config in configs {
        let role = config
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("Every quota config needs a 'role'"))?;
        if role == "*" {
            return Err(ApiError::invalid(
                "Quota cannot be set for the default role '*'",
            ));
        }
        let guarantees = quantities(config.get("guarantees"), "guarantee")?;
        let limits = match config.get("limits") {
            Some(limits) if limits.as_object().is_some_and(|m| !m.is_empty()) => {
                Some(quantities(Some(limits), "limit")?)
            }
            _ => None,
        };
        if let Some(limits) = &limits {
            for (name, guarantee) in &guarantees {
                if limits.get(name).is_some_and(|limit| guarantee > limit) {
                    return Err(ApiError::invalid(format!(
                        "Role '{role}': guarantee of '{name}' exceeds its limit"
                    )));
                }
            }
        }
        quotas.push(QuotaConfig {
            role: role.to_owned(),
            guarantees,
            limits,
        });
    }
    Ok(quotas)
}

/// `{"cpus": {"value": 1}, "mem": {"value": 256}}` → amounts by resource name.
fn quantities(value: Option<&Value>, what: &str) -> Result<BTreeMap<String, f64>, ApiError> {
    let mut amounts = BTreeMap::new();
    let Some(map) = value.and_then(Value::as_object) else {
        return Ok(amounts);
    };
    for (name, quantity) in map {
        let amount = quantity
            .get("value")
            .and_then(Value::as_f64)
            .ok_or_else(|| ApiError::invalid(format!("{what} '{name}' needs a numeric 'value'")))?;
        if !(amount >= 0.0 && amount.is_finite()) {
            return Err(ApiError::invalid(format!(
                "{what} '{name}' must be a non-negative number"
            )));
        }
        amounts.insert(name.clone(), amount);
    }
    Ok(amounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Call, String> {
        Call::parse(body.as_bytes()).map_err(|e| e.to_string())
    }

    #[test]
    fn calls_decode_with_their_payloads() {
        assert_eq!(parse(r#"{"type":"GET_STATE"}"#), Ok(Call::GetState));
        assert_eq!(
            parse(
                r#"{"type":"DRAIN_AGENT","drain_agent":{"agent_id":{"value":"S1"},"max_grace_period":{"seconds":2},"mark_gone":true}}"#
            ),
            Ok(Call::DrainAgent {
                agent_id: "S1".into(),
                max_grace_period_ns: Some(2_000_000_000),
                mark_gone: true
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"a","weight":2.5}]}}"#
            ),
            Ok(Call::UpdateWeights(vec![WeightInfo {
                role: "a".into(),
                weight: 2.5
            }]))
        );
        assert_eq!(
            parse(
                r#"{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"a","guarantees":{"cpus":{"value":1}},"limits":{}}]}}"#
            ),
            Ok(Call::UpdateQuota(vec![QuotaConfig {
                role: "a".into(),
                guarantees: BTreeMap::from([("cpus".to_owned(), 1.0)]),
                limits: None
            }]))
        );
        assert_eq!(parse(r#"{"type":"UNKNOWN"}"#), Ok(Call::Unknown));
        assert_eq!(
            parse(r#"{"type":"GET_MAINTENANCE_STATUS"}"#),
            Ok(Call::Unsupported("GET_MAINTENANCE_STATUS".into()))
        );
        assert_eq!(
            Call::Unsupported("X".into()).kind(),
            "X",
            "an unsupported call keeps its name"
        );
    }

    #[test]
    fn bad_calls_get_mesos_messages() {
        assert!(
            parse("{")
                .unwrap_err()
                .starts_with("Failed to parse body into JSON")
        );
        assert_eq!(
            parse(r#"{"typo":"GET_STATE"}"#),
            Err("Expecting 'type' to be present".into())
        );
        assert_eq!(
            parse(r#"{"type":"DEACTIVATE_AGENT","deactivate_agent":{}}"#),
            Err("Expecting 'deactivate_agent.agent_id' to be present".into())
        );
        assert_eq!(
            parse(r#"{"type":"TEARDOWN"}"#),
            Err("Expecting 'teardown.framework_id' to be present".into())
        );
        assert_eq!(
            parse(
                r#"{"type":"UPDATE_WEIGHTS","update_weights":{"weight_infos":[{"role":"a","weight":0}]}}"#
            ),
            Err("Weight of role 'a' must be a positive number, got 0".into())
        );
        assert_eq!(
            parse(r#"{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"*"}]}}"#),
            Err("Quota cannot be set for the default role '*'".into())
        );
        assert_eq!(
            parse(
                r#"{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"a","guarantees":{"cpus":{"value":2}},"limits":{"cpus":{"value":1}}}]}}"#
            ),
            Err("Role 'a': guarantee of 'cpus' exceeds its limit".into())
        );
        assert_eq!(
            parse(
                r#"{"type":"UPDATE_QUOTA","update_quota":{"quota_configs":[{"role":"a","limits":{"mem":{"value":-1}}}]}}"#
            ),
            Err("limit 'mem' must be a non-negative number".into())
        );
    }
}

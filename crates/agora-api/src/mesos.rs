//! Core Mesos v1 message shapes shared by the scheduler, executor and operator APIs, in stout's
//! JSON mapping: snake_case proto names, unknown fields ignored, `null` meaning unset. Fields
//! agora does not interpret (containers, health checks, labels, discovery) are carried as raw
//! JSON so they reach the agent and executor untouched.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use agora_types::{
    Range, Reservation, ReservationKind, Resource, ResourceValue, Resources, Scalar,
};

use crate::ApiError;

/// `{"value": "..."}`, the shape of every Mesos id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Id {
    pub value: String,
}

impl Id {
    pub fn new(value: impl Into<String>) -> Id {
        Id {
            value: value.into(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationInfo {
    pub nanoseconds: i64,
}

impl DurationInfo {
    pub fn from_secs_f64(secs: f64) -> DurationInfo {
        DurationInfo {
            nanoseconds: (secs * 1e9) as i64,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameworkInfo {
    pub user: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(default = "zero", deserialize_with = "lenient_f64")]
    pub failover_timeout: f64,
    #[serde(default)]
    pub checkpoint: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webui_url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub capabilities: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
}

fn zero() -> f64 {
    0.0
}

impl FrameworkInfo {
    /// The framework's id, once it has one.
    pub fn framework_id(&self) -> Option<agora_types::FrameworkId> {
        self.id
            .as_ref()
            .map(|id| agora_types::FrameworkId::new(&id.value))
    }

    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities
            .iter()
            .any(|capability| capability.kind == name)
    }

    /// The roles the framework subscribes with: `roles` with MULTI_ROLE, else `role` or `*`.
    pub fn effective_roles(&self) -> Vec<String> {
        if self.has_capability("MULTI_ROLE") && !self.roles.is_empty() {
            return self.roles.clone();
        }
        vec![self.role.clone().unwrap_or_else(|| "*".to_owned())]
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScalarValue {
    #[serde(deserialize_with = "lenient_f64")]
    pub value: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RangeValue {
    pub begin: u64,
    pub end: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RangesValue {
    #[serde(default, deserialize_with = "null_vec")]
    pub range: Vec<RangeValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SetValue {
    #[serde(default, deserialize_with = "null_vec")]
    pub item: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TextValue {
    pub value: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservationInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationInfo {
    pub role: String,
}

/// `Resource` on the wire.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WireResource {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<ScalarValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<RangesValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<ReservationInfo>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub reservations: Vec<ReservationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<AllocationInfo>,
}

/// How offers render reservations for a framework (see `Offer` in the reference notes).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResourceFormat {
    /// RESERVATION_REFINEMENT: `reservations` array instead of `role`.
    pub refinement: bool,
    /// MULTI_ROLE: `allocation_info` on every resource.
    pub allocation_role: bool,
}

impl WireResource {
    pub fn from_resource(
        resource: &Resource,
        format: ResourceFormat,
        allocation_role: Option<&str>,
    ) -> WireResource {
        let mut wire = WireResource {
            name: resource.name.clone(),
            ..WireResource::default()
        };
        match &resource.value {
            ResourceValue::Scalar(value) => {
                wire.kind = "SCALAR".into();
                wire.scalar = Some(ScalarValue {
                    value: value.to_f64(),
                });
            }
            ResourceValue::Ranges(ranges) => {
                wire.kind = "RANGES".into();
                wire.ranges = Some(RangesValue {
                    range: ranges
                        .iter()
                        .map(|r| RangeValue {
                            begin: r.begin,
                            end: r.end,
                        })
                        .collect(),
                });
            }
            ResourceValue::Set(items) => {
                wire.kind = "SET".into();
                wire.set = Some(SetValue {
                    item: items.iter().cloned().collect(),
                });
            }
        }
        if format.refinement {
            if let Some(reservation) = &resource.reservation {
                wire.reservations = vec![ReservationInfo {
                    kind: Some(
                        match reservation.kind {
                            ReservationKind::Static => "STATIC",
                            ReservationKind::Dynamic => "DYNAMIC",
                        }
                        .into(),
                    ),
                    role: Some(reservation.role.clone()),
                    principal: reservation.principal.clone(),
                }];
            }
        } else {
            wire.role = Some(resource.role().to_owned());
            if let Some(reservation) = &resource.reservation
                && reservation.kind == ReservationKind::Dynamic
            {
                wire.reservation = Some(ReservationInfo {
                    principal: reservation.principal.clone(),
                    ..Default::default()
                });
            }
        }
        if format.allocation_role {
            wire.allocation_info = allocation_role.map(|role| AllocationInfo {
                role: role.to_owned(),
            });
        }
        wire
    }

    /// Converts to the domain type, checking that the value matches the declared type.
    pub fn to_resource(&self) -> Result<Resource, ApiError> {
        if self.name.is_empty() {
            return Err(ApiError::invalid("resource without a name"));
        }
        let value = match self.kind.as_str() {
            "SCALAR" => {
                let scalar = self.scalar.as_ref().ok_or_else(|| {
                    ApiError::invalid(format!(
                        "resource '{}' is SCALAR without 'scalar'",
                        self.name
                    ))
                })?;
                if !scalar.value.is_finite() || scalar.value < 0.0 {
                    return Err(ApiError::invalid(format!(
                        "resource '{}' has an invalid scalar value {}",
                        self.name, scalar.value
                    )));
                }
                ResourceValue::Scalar(Scalar::from_f64(scalar.value))
            }
            "RANGES" => {
                let ranges = self.ranges.as_ref().ok_or_else(|| {
                    ApiError::invalid(format!(
                        "resource '{}' is RANGES without 'ranges'",
                        self.name
                    ))
                })?;
                for range in &ranges.range {
                    if range.begin > range.end {
                        return Err(ApiError::invalid(format!(
                            "resource '{}' has range {}-{} with begin after end",
                            self.name, range.begin, range.end
                        )));
                    }
                }
                ResourceValue::ranges(ranges.range.iter().map(|r| Range::new(r.begin, r.end)))
            }
            "SET" => {
                let set = self.set.as_ref().ok_or_else(|| {
                    ApiError::invalid(format!("resource '{}' is SET without 'set'", self.name))
                })?;
                ResourceValue::Set(set.item.iter().cloned().collect())
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "resource '{}' has unknown type '{other}'",
                    self.name
                )));
            }
        };
        let role = self
            .reservations
            .last()
            .and_then(|r| r.role.clone())
            .or_else(|| self.role.clone())
            .filter(|role| role != "*");
        let reservation = role.map(|role| {
            let dynamic = self.reservation.is_some()
                || self.reservations.last().and_then(|r| r.kind.as_deref()) == Some("DYNAMIC");
            Box::new(Reservation {
                role,
                kind: if dynamic {
                    ReservationKind::Dynamic
                } else {
                    ReservationKind::Static
                },
                principal: self.reservation.as_ref().and_then(|r| r.principal.clone()),
            })
        });
        Ok(Resource {
            name: self.name.clone(),
            value,
            reservation,
        })
    }
}

pub fn to_resources(wire: &[WireResource]) -> Result<Resources, ApiError> {
    let mut resources = Resources::new();
    for entry in wire {
        resources.push(entry.to_resource()?);
    }
    Ok(resources)
}

pub fn from_resources(
    resources: &Resources,
    format: ResourceFormat,
    allocation_role: Option<&str>,
) -> Vec<WireResource> {
    resources
        .iter()
        .map(|r| WireResource::from_resource(r, format, allocation_role))
        .collect()
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalar: Option<ScalarValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<RangesValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<SetValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<TextValue>,
}

impl Attribute {
    /// Parses `rack:a;zone:1;ports:[1-2];tags:{x,y}` (Mesos `--attributes`); numbers become
    /// SCALAR, everything else TEXT.
    pub fn parse_list(text: &str) -> Result<Vec<Attribute>, ApiError> {
        let mut attributes = Vec::new();
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once(':').ok_or_else(|| {
                ApiError::invalid(format!("invalid attribute '{part}': expected name:value"))
            })?;
            let (name, value) = (name.trim(), value.trim());
            if name.is_empty() {
                return Err(ApiError::invalid(format!(
                    "invalid attribute '{part}': empty name"
                )));
            }
            let mut attribute = Attribute {
                name: name.to_owned(),
                ..Attribute::default()
            };
            if let Ok(number) = value.parse::<f64>() {
                attribute.kind = "SCALAR".into();
                attribute.scalar = Some(ScalarValue { value: number });
            } else if value.starts_with('[') || value.starts_with('{') {
                let parsed = Resources::parse(&format!("x:{value}")).map_err(|e| {
                    ApiError::invalid(format!("invalid attribute '{part}': {}", e.reason))
                })?;
                let resource = parsed.iter().next().cloned();
                match resource.map(|r| r.value) {
                    Some(ResourceValue::Ranges(ranges)) => {
                        attribute.kind = "RANGES".into();
                        attribute.ranges = Some(RangesValue {
                            range: ranges
                                .iter()
                                .map(|r| RangeValue {
                                    begin: r.begin,
                                    end: r.end,
                                })
                                .collect(),
                        });
                    }
                    Some(ResourceValue::Set(items)) => {
                        attribute.kind = "SET".into();
                        attribute.set = Some(SetValue {
                            item: items.into_iter().collect(),
                        });
                    }
                    _ => {
                        attribute.kind = "TEXT".into();
                        attribute.text = Some(TextValue {
                            value: value.to_owned(),
                        });
                    }
                }
            } else {
                attribute.kind = "TEXT".into();
                attribute.text = Some(TextValue {
                    value: value.to_owned(),
                });
            }
            attributes.push(attribute);
        }
        Ok(attributes)
    }

    /// The v0 rendering: a number, `[a-b]`, `{a, b}` or the text.
    pub fn v0_value(&self) -> Value {
        if let Some(scalar) = &self.scalar {
            return serde_json::json!(scalar.value);
        }
        if let Some(ranges) = &self.ranges {
            let parts: Vec<String> = ranges
                .range
                .iter()
                .map(|r| format!("{}-{}", r.begin, r.end))
                .collect();
            return Value::String(format!("[{}]", parts.join(", ")));
        }
        if let Some(set) = &self.set {
            return Value::String(format!("{{{}}}", set.item.join(", ")));
        }
        Value::String(
            self.text
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    pub name: String,
    /// `VALUE` (the default) or `SECRET`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
}

impl EnvironmentVariable {
    /// A variable whose value is the secret `name` (Mesos' `SECRET` of type `REFERENCE`),
    /// read by the agent that runs the task.
    pub fn secret_reference(variable: &str, name: &str) -> EnvironmentVariable {
        EnvironmentVariable {
            name: variable.to_owned(),
            kind: Some("SECRET".into()),
            value: None,
            secret: Some(Secret {
                kind: Some("REFERENCE".into()),
                reference: Some(SecretReference {
                    name: name.to_owned(),
                    key: None,
                }),
                value: None,
            }),
        }
    }

    /// Whether its value is a secret (to be resolved by the agent).
    pub fn is_secret(&self) -> bool {
        self.kind.as_deref() == Some("SECRET")
    }
}

/// Mesos' `Secret`: a reference to a secret store's entry, or the value itself (base64).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Secret {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<SecretReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<SecretValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretValue {
    /// The value, base64 as protobuf's JSON mapping writes bytes.
    pub data: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default, deserialize_with = "null_vec")]
    pub variables: Vec<EnvironmentVariable>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandInfo {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub uris: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<Environment>,
    #[serde(default = "default_true")]
    pub shell: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub arguments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Default for CommandInfo {
    fn default() -> CommandInfo {
        CommandInfo {
            uris: Vec::new(),
            environment: None,
            shell: true,
            value: None,
            arguments: Vec::new(),
            user: None,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KillPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExecutorInfo {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub executor_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub resources: Vec<WireResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_grace_period: Option<DurationInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
}

/// A task's drain delay in seconds, as a label of its TaskInfo: between TASK_KILLING and its
/// signal, agora's executor lets the route change reach the service proxies. The services
/// framework copies it from an app's labels.
pub const KILL_DRAIN_LABEL: &str = "AGORA_KILL_DRAIN_SECONDS";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub name: String,
    pub task_id: Id,
    pub agent_id: Id,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub resources: Vec<WireResource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_time: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Value>,
}

/// The user a command names, if it names one.
fn user_of(command: Option<&CommandInfo>) -> Option<&str> {
    named_user(command.and_then(|c| c.user.as_deref()))
}

/// A command's `user` field as a user: an empty one names none.
pub(crate) fn named_user(user: Option<&str>) -> Option<&str> {
    user.filter(|user| !user.is_empty())
}

impl TaskInfo {
    /// The user the task runs as (Mesos' rule): its command's, else its executor's, else its
    /// framework's (`framework_user`).
    pub fn run_as<'a>(
        &'a self,
        executor: Option<&'a ExecutorInfo>,
        framework_user: &'a str,
    ) -> &'a str {
        user_of(self.command.as_ref())
            .unwrap_or_else(|| executor.map_or(framework_user, |e| e.run_as(framework_user)))
    }
}

impl ExecutorInfo {
    /// The user the executor runs as: its command's, else its framework's.
    pub fn run_as<'a>(&'a self, framework_user: &'a str) -> &'a str {
        user_of(self.command.as_ref()).unwrap_or(framework_user)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskGroupInfo {
    #[serde(default, deserialize_with = "null_vec")]
    pub tasks: Vec<TaskInfo>,
}

/// Checks an id the way Mesos does for task and executor ids.
pub fn validate_id(kind: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::invalid(format!("{kind} id must not be empty")));
    }
    if value == "." || value == ".." {
        return Err(ApiError::invalid(format!(
            "{kind} id '{value}' is not allowed"
        )));
    }
    if value.len() > 255 {
        return Err(ApiError::invalid(format!(
            "{kind} id is longer than 255 bytes"
        )));
    }
    if value
        .chars()
        .any(|c| c == '/' || c == '\\' || c.is_control())
    {
        return Err(ApiError::invalid(format!(
            "{kind} id '{}' contains '/', '\\' or a control character",
            value.escape_debug()
        )));
    }
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    pub task_id: Id,
    pub state: agora_types::TaskState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_f64"
    )]
    pub timestamp: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreachable_time: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitation: Option<Value>,
}

impl TaskStatus {
    pub fn new(task_id: &str, state: agora_types::TaskState) -> TaskStatus {
        TaskStatus {
            task_id: Id::new(task_id),
            state,
            message: None,
            source: None,
            reason: None,
            data: None,
            agent_id: None,
            executor_id: None,
            timestamp: None,
            uuid: None,
            healthy: None,
            check_status: None,
            labels: None,
            container_status: None,
            unreachable_time: None,
            limitation: None,
        }
    }

    pub fn with_message(mut self, message: impl Into<String>) -> TaskStatus {
        self.message = Some(message.into());
        self
    }

    pub fn with_reason(mut self, reason: &str) -> TaskStatus {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn with_source(mut self, source: &str) -> TaskStatus {
        self.source = Some(source.to_owned());
        self
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Address {
    pub hostname: String,
    pub ip: String,
    pub port: u16,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MasterInfo {
    pub id: String,
    pub ip: u32,
    pub port: u16,
    pub pid: String,
    pub hostname: String,
    pub version: String,
    pub address: Address,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentInfo {
    pub hostname: String,
    pub port: u16,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub resources: Vec<WireResource>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub attributes: Vec<Attribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
}

/// Standard base64 with padding, as Mesos encodes `bytes` fields.
pub fn encode_bytes(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_bytes(text: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| ApiError::invalid("bytes field is not valid base64"))
}

/// Accepts `null` for a repeated field.
pub(crate) fn null_vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A double given as a number or as a string holding one, as stout accepts.
pub(crate) fn lenient_f64<'de, D>(deserializer: D) -> Result<f64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(lenient_opt_f64(deserializer)?.unwrap_or(0.0))
}

pub(crate) fn lenient_opt_f64<'de, D>(deserializer: D) -> Result<Option<f64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => Ok(number.as_f64()),
        Some(Value::String(text)) => match text.as_str() {
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            _ => text
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("'{text}' is not a number"))),
        },
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_refinement_format_carries_role() {
        let resources = Resources::parse("cpus:2;cpus(web):1;ports:[31000-31001]").unwrap();
        let wire = from_resources(&resources, ResourceFormat::default(), Some("web"));
        let json = serde_json::to_string(&wire).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"cpus","type":"SCALAR","scalar":{"value":2.0},"role":"*"},{"name":"cpus","type":"SCALAR","scalar":{"value":1.0},"role":"web"},{"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]},"role":"*"}]"#
        );
        assert_eq!(to_resources(&wire).unwrap(), resources);
    }

    #[test]
    fn refinement_format_round_trips() {
        let resources = Resources::parse("cpus(web):1;mem:64").unwrap();
        let format = ResourceFormat {
            refinement: true,
            allocation_role: true,
        };
        let wire = from_resources(&resources, format, Some("web"));
        assert_eq!(wire[0].reservations[0].role.as_deref(), Some("web"));
        assert_eq!(
            wire[1].allocation_info,
            Some(AllocationInfo { role: "web".into() })
        );
        assert_eq!(to_resources(&wire).unwrap(), resources);
    }

    #[test]
    fn rejects_malformed_resources() {
        let bad: WireResource = serde_json::from_str(r#"{"name":"cpus","type":"SCALAR"}"#).unwrap();
        assert!(bad.to_resource().is_err());
        let negative: WireResource =
            serde_json::from_str(r#"{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}"#)
                .unwrap();
        assert!(negative.to_resource().is_err());
    }

    #[test]
    fn lenient_numbers_and_defaults() {
        let info: FrameworkInfo = serde_json::from_str(
            r#"{"user":"u","name":"n","failover_timeout":"100","roles":null}"#,
        )
        .unwrap();
        assert_eq!(info.failover_timeout, 100.0);
        assert_eq!(info.effective_roles(), vec!["*".to_owned()]);
        let command: CommandInfo = serde_json::from_str(r#"{"value":"ls"}"#).unwrap();
        assert!(command.shell);
    }

    #[test]
    fn attributes_parse() {
        let attributes = Attribute::parse_list("rack:a;zone:1;ports:[1-2]").unwrap();
        assert_eq!(attributes[0].v0_value(), serde_json::json!("a"));
        assert_eq!(attributes[1].v0_value(), serde_json::json!(1.0));
        assert_eq!(attributes[2].v0_value(), serde_json::json!("[1-2]"));
        assert!(Attribute::parse_list("rack").is_err());
    }

    #[test]
    fn ids_are_validated() {
        assert!(validate_id("task", "web.1").is_ok());
        for bad in ["", ".", "..", "a/b", "a\nb"] {
            assert!(validate_id("task", bad).is_err());
        }
    }
}

//! The scheduler API (`POST /api/v1/scheduler`): calls a framework sends and the events it gets.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ApiError;
use crate::mesos::{
    Attribute, ExecutorInfo, FrameworkInfo, Id, KillPolicy, MasterInfo, TaskGroupInfo, TaskInfo,
    TaskStatus, WireResource, lenient_opt_f64, null_vec,
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_f64"
    )]
    pub refuse_seconds: Option<f64>,
}

impl Filters {
    /// Mesos' rule: default 5 s, negative means default, capped at 365 days.
    pub fn refuse_ms(filters: Option<&Filters>) -> u64 {
        const DEFAULT_SECS: f64 = 5.0;
        const MAX_SECS: f64 = 365.0 * 24.0 * 3600.0;
        let secs = filters
            .and_then(|f| f.refuse_seconds)
            .unwrap_or(DEFAULT_SECS);
        let secs = if secs.is_nan() || secs < 0.0 {
            DEFAULT_SECS
        } else {
            secs.min(MAX_SECS)
        };
        (secs * 1000.0) as u64
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub suppressed_roles: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    #[serde(default, deserialize_with = "null_vec")]
    pub task_infos: Vec<TaskInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    pub executor: ExecutorInfo,
    pub task_group: TaskGroupInfo,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<Launch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_group: Option<LaunchGroup>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    #[serde(default, deserialize_with = "null_vec")]
    pub offer_ids: Vec<Id>,
    #[serde(default, deserialize_with = "null_vec")]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    #[serde(default, deserialize_with = "null_vec")]
    pub offer_ids: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Roles {
    #[serde(default, deserialize_with = "null_vec")]
    pub roles: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    pub task_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shutdown {
    pub executor_id: Id,
    pub agent_id: Id,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub agent_id: Id,
    pub task_id: Id,
    pub uuid: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileTask {
    pub task_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reconcile {
    #[serde(default, deserialize_with = "null_vec")]
    pub tasks: Vec<ReconcileTask>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub agent_id: Id,
    pub executor_id: Id,
    pub data: String,
}

/// A scheduler call as received. Payload keys not matching `type` are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress: Option<Roles>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<Acknowledge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Value>,
}

/// Call types the master understands; anything else is answered 501.
pub const KNOWN_CALLS: &[&str] = &[
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "SUPPRESS",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "UPDATE_FRAMEWORK",
];

impl Call {
    /// Decodes and validates a call body, with Mesos' messages on failure.
    pub fn parse(body: &[u8]) -> Result<Call, ApiError> {
        let call: Call = serde_json::from_slice(body).map_err(|e| ApiError::Json(e.to_string()))?;
        call.validate()?;
        Ok(call)
    }

    fn validate(&self) -> Result<(), ApiError> {
        let missing = |key: &str| ApiError::invalid(format!("Expecting '{key}' to be present"));
        match self.kind.as_str() {
            "SUBSCRIBE" => {
                let subscribe = self
                    .subscribe
                    .as_ref()
                    .ok_or_else(|| missing("subscribe"))?;
                let info = &subscribe.framework_info;
                if let (Some(top), Some(inner)) = (&self.framework_id, &info.id)
                    && top != inner
                {
                    return Err(ApiError::invalid(
                        "'framework_id' differs from 'subscribe.framework_info.id'",
                    ));
                }
                if self.framework_id.is_some() && info.id.is_none() {
                    return Err(ApiError::invalid(
                        "'framework_id' is set but 'subscribe.framework_info.id' is not",
                    ));
                }
                return Ok(());
            }
            "ACCEPT" => drop(self.accept.as_ref().ok_or_else(|| missing("accept"))?),
            "DECLINE" => drop(self.decline.as_ref().ok_or_else(|| missing("decline"))?),
            "KILL" => drop(self.kill.as_ref().ok_or_else(|| missing("kill"))?),
            "SHUTDOWN" => drop(self.shutdown.as_ref().ok_or_else(|| missing("shutdown"))?),
            "ACKNOWLEDGE" => {
                let ack = self
                    .acknowledge
                    .as_ref()
                    .ok_or_else(|| missing("acknowledge"))?;
                let raw = crate::mesos::decode_bytes(&ack.uuid)?;
                if raw.len() != 16 {
                    return Err(ApiError::invalid("'acknowledge.uuid' is not a valid UUID"));
                }
            }
            "RECONCILE" => drop(
                self.reconcile
                    .as_ref()
                    .ok_or_else(|| missing("reconcile"))?,
            ),
            "MESSAGE" => drop(self.message.as_ref().ok_or_else(|| missing("message"))?),
            "REQUEST" => drop(self.request.as_ref().ok_or_else(|| missing("request"))?),
            _ => {}
        }
        if self.framework_id.is_none() {
            return Err(ApiError::invalid("Expecting 'framework_id' to be present"));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Url {
    pub scheme: String,
    pub address: crate::mesos::Address,
    pub path: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub id: Id,
    pub framework_id: Id,
    pub agent_id: Id,
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Url>,
    #[serde(default, deserialize_with = "null_vec")]
    pub resources: Vec<WireResource>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub attributes: Vec<Attribute>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub executor_ids: Vec<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_info: Option<crate::mesos::AllocationInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub framework_id: Id,
    pub heartbeat_interval_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offers {
    #[serde(default, deserialize_with = "null_vec")]
    pub offers: Vec<Offer>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rescind {
    pub offer_id: Id,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub status: TaskStatus,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor_id: Option<Id>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

/// An event on the scheduler stream: `{"type":"X","x":{...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    Subscribed { subscribed: Subscribed },
    Offers { offers: Offers },
    Rescind { rescind: Rescind },
    Update { update: Update },
    Message { message: Message },
    Failure { failure: Failure },
    Error { error: ErrorEvent },
    Heartbeat,
}

impl Event {
    pub fn error(message: impl Into<String>) -> Event {
        Event::Error {
            error: ErrorEvent {
                message: message.into(),
            },
        }
    }

    pub fn update(status: TaskStatus) -> Event {
        Event::Update {
            update: Update { status },
        }
    }

    /// Compact JSON with non-ASCII escaped, so byte and character counts agree for clients
    /// that slice decoded text (mesoshttp).
    pub fn to_json(&self) -> Vec<u8> {
        ascii_json(self)
    }
}

/// Serialises compactly and escapes non-ASCII characters as `\uXXXX`.
pub fn ascii_json<T: Serialize>(value: &T) -> Vec<u8> {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    if text.is_ascii() {
        return text.into_bytes();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_pymesos_subscribe() {
        let body = br#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"test","failover_timeout":100,"capabilities":[{"type":"GPU_RESOURCES"}],"hostname":"h"}}}"#;
        let call = Call::parse(body).unwrap();
        assert_eq!(
            call.subscribe.unwrap().framework_info.failover_timeout,
            100.0
        );
    }

    #[test]
    fn rejects_missing_payloads() {
        let err = Call::parse(br#"{"type":"ACCEPT","framework_id":{"value":"f"}}"#).unwrap_err();
        assert_eq!(err.to_string(), "Expecting 'accept' to be present");
        let err = Call::parse(br#"{"type":"REVIVE"}"#).unwrap_err();
        assert_eq!(err.to_string(), "Expecting 'framework_id' to be present");
        assert!(Call::parse(br#"{"type":"ACKNOWLEDGE","framework_id":{"value":"f"},"acknowledge":{"agent_id":{"value":"a"},"task_id":{"value":"t"},"uuid":"AAAA"}}"#).is_err());
        assert!(Call::parse(b"not json").is_err());
    }

    #[test]
    fn events_have_their_payload_key() {
        let json = String::from_utf8(Event::error("Framework failed over").to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ERROR","error":{"message":"Framework failed over"}}"#
        );
        assert_eq!(
            String::from_utf8(Event::Heartbeat.to_json()).unwrap(),
            r#"{"type":"HEARTBEAT"}"#
        );
        let status = TaskStatus::new("t", agora_types::TaskState::Running).with_message("é");
        let json = String::from_utf8(Event::update(status).to_json()).unwrap();
        assert!(json.is_ascii() && json.contains("\\u00e9"), "{json}");
    }

    #[test]
    fn refuse_seconds_rules() {
        assert_eq!(Filters::refuse_ms(None), 5000);
        assert_eq!(
            Filters::refuse_ms(Some(&Filters {
                refuse_seconds: Some(-1.0)
            })),
            5000
        );
        assert_eq!(
            Filters::refuse_ms(Some(&Filters {
                refuse_seconds: Some(0.5)
            })),
            500
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = Call::parse(&body);
        }

        #[test]
        fn arbitrary_json_never_panics(kind in "[A-Z_]{0,12}", payload in "[ -~]{0,200}") {
            let body = format!(r#"{{"type":"{kind}","framework_id":{{"value":"x"}},"{}":{payload}}}"#, kind.to_lowercase());
            let _ = Call::parse(body.as_bytes());
        }
    }
}

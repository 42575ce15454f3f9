//! The executor API (`POST /api/v1/executor` on the agent): calls an executor sends and the
//! events the agent streams to it.

use serde::{Deserialize, Serialize};

use crate::ApiError;
use crate::mesos::{
    AgentInfo, ExecutorInfo, FrameworkInfo, Id, KillPolicy, TaskGroupInfo, TaskInfo, TaskStatus,
    null_vec,
};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UnacknowledgedUpdate {
    pub status: TaskStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub unacknowledged_tasks: Vec<TaskInfo>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub unacknowledged_updates: Vec<UnacknowledgedUpdate>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub status: TaskStatus,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub data: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    #[serde(rename = "type")]
    pub kind: String,
    pub executor_id: Id,
    pub framework_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<Update>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
}

impl Default for Update {
    fn default() -> Update {
        Update {
            status: TaskStatus::new("", agora_types::TaskState::Running),
        }
    }
}

impl Default for TaskStatus {
    fn default() -> TaskStatus {
        TaskStatus::new("", agora_types::TaskState::Running)
    }
}

impl Call {
    pub fn parse(body: &[u8]) -> Result<Call, ApiError> {
        let call: Call = serde_json::from_slice(body).map_err(|e| ApiError::Json(e.to_string()))?;
        match call.kind.as_str() {
            "SUBSCRIBE" | "HEARTBEAT" => {}
            "UPDATE" => {
                let update = call
                    .update
                    .as_ref()
                    .ok_or_else(|| ApiError::invalid("Expecting 'update' to be present"))?;
                let status = &update.status;
                let uuid = status
                    .uuid
                    .as_deref()
                    .ok_or_else(|| ApiError::invalid("'uuid' must be set on status updates"))?;
                if crate::mesos::decode_bytes(uuid)?.len() != 16 {
                    return Err(ApiError::invalid("'uuid' is not a valid UUID"));
                }
                if status.state == agora_types::TaskState::Staging {
                    return Err(ApiError::invalid(
                        "Executors may not send TASK_STAGING updates",
                    ));
                }
                if let Some(source) = &status.source
                    && source != "SOURCE_EXECUTOR"
                {
                    return Err(ApiError::invalid("Received wrong source for status update"));
                }
                if let Some(executor) = &status.executor_id
                    && executor != &call.executor_id
                {
                    return Err(ApiError::invalid(
                        "ExecutorID in status update does not match",
                    ));
                }
            }
            "MESSAGE" => {
                call.message
                    .as_ref()
                    .ok_or_else(|| ApiError::invalid("Expecting 'message' to be present"))?;
            }
            other => {
                return Err(ApiError::invalid(format!(
                    "Unsupported executor call '{other}'"
                )));
            }
        }
        Ok(call)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub executor_info: ExecutorInfo,
    pub framework_info: FrameworkInfo,
    pub agent_info: AgentInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<Id>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    pub task: TaskInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchGroup {
    pub task_group: TaskGroupInfo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kill {
    pub task_id: Id,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Acknowledged {
    pub task_id: Id,
    pub uuid: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

// Events are built, serialised and dropped at once; boxing the large variants buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    Subscribed { subscribed: Box<Subscribed> },
    Launch { launch: Launch },
    LaunchGroup { launch_group: LaunchGroup },
    Kill { kill: Kill },
    Acknowledged { acknowledged: Acknowledged },
    Message { message: Message },
    Shutdown,
    Error { error: ErrorEvent },
    Heartbeat,
}

impl Event {
    pub fn to_json(&self) -> Vec<u8> {
        crate::scheduler::ascii_json(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_updates() {
        let good = br#"{"type":"UPDATE","executor_id":{"value":"e"},"framework_id":{"value":"f"},"update":{"status":{"task_id":{"value":"t"},"state":"TASK_RUNNING","uuid":"AAAAAAAAAAAAAAAAAAAAAA==","source":"SOURCE_EXECUTOR"}}}"#;
        assert!(Call::parse(good).is_ok());
        let staging = String::from_utf8_lossy(good).replace("TASK_RUNNING", "TASK_STAGING");
        assert!(Call::parse(staging.as_bytes()).is_err());
        let no_uuid =
            String::from_utf8_lossy(good).replace(r#","uuid":"AAAAAAAAAAAAAAAAAAAAAA==""#, "");
        assert!(Call::parse(no_uuid.as_bytes()).is_err());
    }

    #[test]
    fn shutdown_has_no_payload() {
        assert_eq!(
            String::from_utf8(Event::Shutdown.to_json()).unwrap(),
            r#"{"type":"SHUTDOWN"}"#
        );
    }
}

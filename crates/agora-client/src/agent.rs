//! Calls to an agent: its state, files in sandboxes, and operators' access to a running task.

use reqwest::Method;
use serde_json::{Value, json};

use crate::ClientError;
use crate::http::{JsonHttp, escape};

#[derive(Clone)]
pub struct AgentClient {
    http: JsonHttp,
}

/// A piece of a sandbox file: `data` read from `offset`, standing for `length` bytes of the
/// file (the next piece starts at `offset + length`).
#[derive(Debug, Clone)]
pub struct FileChunk {
    pub offset: u64,
    pub data: String,
    pub length: u64,
}

impl AgentClient {
    /// `address` is `host:port` or an agent's pid (`slave(1)@host:port`).
    pub fn new(address: &str) -> AgentClient {
        AgentClient::with_access(address, &crate::Access::default())
    }

    /// The same client (its connections shared) acting as whoever `authorization` names:
    /// the `Authorization` header to send instead of its own (none: anonymous).
    pub fn acting_as(&self, authorization: Option<reqwest::header::HeaderValue>) -> AgentClient {
        AgentClient {
            http: self.http.acting_as(authorization),
        }
    }

    /// The same client (its connections shared, its identity and TLS kept) for the agent at
    /// `address`: one client serves many agents.
    pub fn at(&self, address: &str) -> AgentClient {
        let address = address.rsplit('@').next().unwrap_or(address);
        AgentClient {
            http: self.http.at(address),
        }
    }

    /// A client that proves who it is as `access` says.
    pub fn with_access(address: &str, access: &crate::Access) -> AgentClient {
        let address = address.rsplit('@').next().unwrap_or(address);
        AgentClient {
            http: JsonHttp::new(address, access),
        }
    }

    pub fn base(&self) -> &str {
        self.http.base()
    }

    /// `/slave(1)/state`: frameworks, executors with their sandbox directories, tasks.
    pub async fn state(&self) -> Result<Value, ClientError> {
        self.http.get("/slave(1)/state").await
    }

    /// Up to `length` bytes of a file from `offset`; without an offset, only the file's size
    /// (as Mesos: `offset=-1`).
    pub async fn read_file(
        &self,
        path: &str,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> Result<FileChunk, ClientError> {
        let mut query = format!(
            "/files/read?path={}&offset={}",
            escape(path),
            offset.map_or(-1, |o| o as i64)
        );
        if let Some(length) = length {
            query.push_str(&format!("&length={length}"));
        }
        let answer = self.http.get(&query).await?;
        let data = answer["data"].as_str().unwrap_or_default().to_owned();
        Ok(FileChunk {
            offset: answer["offset"].as_u64().unwrap_or(0),
            // An agent without `length` (Mesos') sent the bytes as they were.
            length: answer["length"].as_u64().unwrap_or(data.len() as u64),
            data,
        })
    }

    /// The sandbox directory of a task on this agent (its executor's), while the agent keeps it.
    pub async fn sandbox_of(&self, task_id: &str) -> Result<Option<String>, ClientError> {
        let state = self.state().await?;
        let list = |value: &Value, key: &str| value[key].as_array().cloned().unwrap_or_default();
        let frameworks = list(&state, "frameworks")
            .into_iter()
            .chain(list(&state, "completed_frameworks"));
        for framework in frameworks {
            let executors = list(&framework, "executors")
                .into_iter()
                .chain(list(&framework, "completed_executors"));
            for executor in executors {
                let has = ["tasks", "queued_tasks", "completed_tasks"]
                    .iter()
                    .any(|key| list(&executor, key).iter().any(|t| t["id"] == task_id));
                if has && let Some(directory) = executor["directory"].as_str() {
                    return Ok(Some(directory.to_owned()));
                }
            }
        }
        Ok(None)
    }

    /// The entries of a sandbox directory, as Mesos' `/files/browse`.
    pub async fn browse(&self, path: &str) -> Result<Value, ClientError> {
        self.http
            .get(&format!("/files/browse?path={}", escape(path)))
            .await
    }

    /// Runs `argv` inside a running task's container; the answer has `exit_code`, `signal`,
    /// `stdout`, `stderr` and `timed_out`.
    pub async fn exec(
        &self,
        task_id: &str,
        argv: &[String],
        timeout_seconds: Option<u64>,
    ) -> Result<Value, ClientError> {
        let mut body = json!({"argv": argv});
        if let Some(seconds) = timeout_seconds {
            body["timeout_seconds"] = json!(seconds);
        }
        Ok(self
            .http
            .send(
                Method::POST,
                &format!("/slave(1)/tasks/{}/exec", escape(task_id)),
                Some(&body),
            )
            .await?
            .body)
    }
}

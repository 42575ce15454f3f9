//! Calls to a master: its state documents and the v1 operator API.

use serde_json::{Value, json};

use crate::ClientError;
use crate::http::JsonHttp;

#[derive(Clone)]
pub struct MasterClient {
    http: JsonHttp,
}

impl MasterClient {
    pub fn new(master: &str) -> MasterClient {
        MasterClient::with_access(master, &crate::Access::default())
    }

    /// The same client (its connections shared) acting as whoever `authorization` names:
    /// the `Authorization` header to send instead of its own (none: anonymous).
    pub fn acting_as(&self, authorization: Option<reqwest::header::HeaderValue>) -> MasterClient {
        MasterClient {
            http: self.http.acting_as(authorization),
        }
    }

    /// A client that proves who it is as `access` says.
    pub fn with_access(master: &str, access: &crate::Access) -> MasterClient {
        MasterClient {
            http: JsonHttp::new(master, access),
        }
    }

    pub fn base(&self) -> &str {
        self.http.base()
    }

    /// GETs a JSON document, e.g. `/master/state`.
    pub async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.http.get(path).await
    }

    /// Signs in: a bearer token for `principal`, if `secret` is its (DC/OS's
    /// `POST /acs/api/v1/auth/login`).
    pub async fn login(&self, principal: &str, secret: &str) -> Result<String, ClientError> {
        let answer = self
            .http
            .send(
                reqwest::Method::POST,
                "/acs/api/v1/auth/login",
                Some(&serde_json::json!({"uid": principal, "password": secret})),
            )
            .await?;
        answer.body["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Invalid {
                url: self.http.url("/acs/api/v1/auth/login"),
                message: "no token in the answer".into(),
            })
    }

    /// The v0 state: agents, frameworks with their tasks, the leader.
    pub async fn state(&self) -> Result<Value, ClientError> {
        self.http.get("/master/state").await
    }

    /// `/master/state-summary`: the v0 state's agents and frameworks, without tasks.
    pub async fn state_summary(&self) -> Result<Value, ClientError> {
        self.http.get("/master/state-summary").await
    }

    /// `/metrics/snapshot`: Mesos-named gauges and counters.
    pub async fn metrics_snapshot(&self) -> Result<Value, ClientError> {
        self.http.get("/metrics/snapshot").await
    }

    /// A v1 operator call; returns the decoded JSON answer (`Null` for empty answers).
    pub async fn operator(&self, call: &Value) -> Result<Value, ClientError> {
        Ok(self
            .http
            .send(reqwest::Method::POST, "/api/v1", Some(call))
            .await?
            .body)
    }

    /// DRAIN_AGENT: no new tasks, running ones killed (with `grace_seconds` as their kill
    /// grace period when given); `mark_gone` forgets the agent once it is drained.
    pub async fn drain_agent(
        &self,
        agent_id: &str,
        grace_seconds: Option<f64>,
        mark_gone: bool,
    ) -> Result<(), ClientError> {
        let mut drain = json!({"agent_id": {"value": agent_id}, "mark_gone": mark_gone});
        if let Some(seconds) = grace_seconds {
            drain["max_grace_period"] = json!({"nanoseconds": (seconds * 1e9) as i64});
        }
        self.operator(&json!({"type": "DRAIN_AGENT", "drain_agent": drain}))
            .await
            .map(drop)
    }

    /// REACTIVATE_AGENT: a drained or deactivated agent is offered again.
    pub async fn reactivate_agent(&self, agent_id: &str) -> Result<(), ClientError> {
        self.operator(&json!({"type": "REACTIVATE_AGENT",
            "reactivate_agent": {"agent_id": {"value": agent_id}}}))
            .await
            .map(drop)
    }

    /// TEARDOWN: the framework's tasks are killed and it is removed.
    pub async fn teardown(&self, framework_id: &str) -> Result<(), ClientError> {
        self.operator(&json!({"type": "TEARDOWN",
            "teardown": {"framework_id": {"value": framework_id}}}))
            .await
            .map(drop)
    }
}

//! The jobs API (Chronos' `/scheduler`): define, list, run, remove and look back at jobs.

use reqwest::Method;
use serde_json::Value;

use crate::ClientError;
use crate::http::{JsonHttp, escape};

#[derive(Clone)]
pub struct JobsClient {
    http: JsonHttp,
}

impl JobsClient {
    pub fn new(master: &str) -> JobsClient {
        JobsClient::with_access(master, &crate::Access::default())
    }

    /// The same client (its connections shared) acting as whoever `authorization` names:
    /// the `Authorization` header to send instead of its own (none: anonymous).
    pub fn acting_as(&self, authorization: Option<reqwest::header::HeaderValue>) -> JobsClient {
        JobsClient {
            http: self.http.acting_as(authorization),
        }
    }

    /// A client that proves who it is as `access` says.
    pub fn with_access(master: &str, access: &crate::Access) -> JobsClient {
        JobsClient {
            http: JsonHttp::new(master, access),
        }
    }

    /// Creates or replaces a job: a job with `parents` is a dependent job
    /// (`/scheduler/dependency`), any other a scheduled one (`/scheduler/iso8601`).
    pub async fn put_job(&self, definition: &Value) -> Result<(), ClientError> {
        let dependent = definition
            .get("parents")
            .and_then(Value::as_array)
            .is_some_and(|parents| !parents.is_empty());
        let path = if dependent {
            "/scheduler/dependency"
        } else {
            "/scheduler/iso8601"
        };
        self.http
            .send(Method::POST, path, Some(definition))
            .await
            .map(drop)
    }

    pub async fn jobs(&self) -> Result<Value, ClientError> {
        self.http.get("/scheduler/jobs").await
    }

    pub async fn job(&self, name: &str) -> Result<Value, ClientError> {
        self.http
            .get(&format!("/scheduler/job/{}", escape(name)))
            .await
    }

    /// Runs a job now, besides its schedule.
    pub async fn run_job(&self, name: &str) -> Result<(), ClientError> {
        self.http
            .send(
                Method::PUT,
                &format!("/scheduler/job/{}", escape(name)),
                None,
            )
            .await
            .map(drop)
    }

    pub async fn remove_job(&self, name: &str) -> Result<(), ClientError> {
        self.http
            .send(
                Method::DELETE,
                &format!("/scheduler/job/{}", escape(name)),
                None,
            )
            .await
            .map(drop)
    }

    /// `job/stat`: duration percentiles and the runs, latest first.
    pub async fn job_stat(&self, name: &str) -> Result<Value, ClientError> {
        self.http
            .get(&format!("/scheduler/job/stat/{}", escape(name)))
            .await
    }
}

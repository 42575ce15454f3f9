//! The services API (Marathon's `/v2`): apps, groups, deployments, tasks and the event stream.
//! Answers are the API's JSON as it came, so a caller can show it unchanged.

use futures_util::{Stream, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use crate::ClientError;
use crate::http::{Answer, JsonHttp, connect_error, escape, escape_path_id};
use crate::sse::{ServiceEvent, SseParser};

#[derive(Clone)]
pub struct ServicesClient {
    http: JsonHttp,
}

fn force_query(force: bool) -> &'static str {
    if force { "?force=true" } else { "" }
}

impl ServicesClient {
    pub fn new(master: &str) -> ServicesClient {
        ServicesClient::with_access(master, &crate::Access::default())
    }

    /// The same client (its connections shared) acting as whoever `authorization` names:
    /// the `Authorization` header to send instead of its own (none: anonymous).
    pub fn acting_as(&self, authorization: Option<reqwest::header::HeaderValue>) -> ServicesClient {
        ServicesClient {
            http: self.http.acting_as(authorization),
        }
    }

    /// A client that proves who it is as `access` says.
    pub fn with_access(master: &str, access: &crate::Access) -> ServicesClient {
        ServicesClient {
            http: JsonHttp::new(master, access),
        }
    }

    pub fn base(&self) -> &str {
        self.http.base()
    }

    /// `GET /v2/apps` with Marathon's `embed` values (e.g. `apps.counts`).
    pub async fn apps(&self, embed: &[&str]) -> Result<Value, ClientError> {
        let query: Vec<String> = embed.iter().map(|e| format!("embed={e}")).collect();
        self.http
            .get(&format!("/v2/apps?{}", query.join("&")))
            .await
    }

    /// One app; its counts, deployments, tasks and last task failure come without asking (as
    /// Marathon embeds them for one app), `embed` adds e.g. `app.taskStats`.
    pub async fn app(&self, id: &str, embed: &[&str]) -> Result<Value, ClientError> {
        let query: Vec<String> = embed.iter().map(|e| format!("embed={e}")).collect();
        self.http
            .get(&format!(
                "/v2/apps/{}?{}",
                escape_path_id(id),
                query.join("&")
            ))
            .await
    }

    /// `POST /v2/apps`: the created app, with the deployment that starts it (`force` overrides
    /// a deployment in progress on the app's group).
    pub async fn create_app(&self, definition: &Value, force: bool) -> Result<Answer, ClientError> {
        let path = format!("/v2/apps{}", force_query(force));
        self.http.send(Method::POST, &path, Some(definition)).await
    }

    /// `PUT /v2/apps/{id}`: a new version from a whole or partial definition.
    pub async fn update_app(
        &self,
        id: &str,
        definition: &Value,
        force: bool,
    ) -> Result<Answer, ClientError> {
        let path = format!("/v2/apps/{}{}", escape_path_id(id), force_query(force));
        self.http.send(Method::PUT, &path, Some(definition)).await
    }

    pub async fn scale_app(
        &self,
        id: &str,
        instances: u32,
        force: bool,
    ) -> Result<Answer, ClientError> {
        self.update_app(id, &json!({"instances": instances}), force)
            .await
    }

    /// A new version made of an earlier one.
    pub async fn rollback_app(
        &self,
        id: &str,
        version: &str,
        force: bool,
    ) -> Result<Answer, ClientError> {
        self.update_app(id, &json!({"version": version}), force)
            .await
    }

    pub async fn restart_app(&self, id: &str, force: bool) -> Result<Answer, ClientError> {
        let path = format!(
            "/v2/apps/{}/restart{}",
            escape_path_id(id),
            force_query(force)
        );
        self.http.send(Method::POST, &path, None).await
    }

    pub async fn remove_app(&self, id: &str, force: bool) -> Result<Answer, ClientError> {
        let path = format!("/v2/apps/{}{}", escape_path_id(id), force_query(force));
        self.http.send(Method::DELETE, &path, None).await
    }

    pub async fn app_versions(&self, id: &str) -> Result<Value, ClientError> {
        self.http
            .get(&format!("/v2/apps/{}/versions", escape_path_id(id)))
            .await
    }

    pub async fn app_version(&self, id: &str, version: &str) -> Result<Value, ClientError> {
        self.http
            .get(&format!(
                "/v2/apps/{}/versions/{}",
                escape_path_id(id),
                escape(version)
            ))
            .await
    }

    /// `GET /v2/tasks`, or one app's tasks.
    pub async fn tasks(&self, app: Option<&str>) -> Result<Value, ClientError> {
        match app {
            Some(id) => {
                self.http
                    .get(&format!("/v2/apps/{}/tasks", escape_path_id(id)))
                    .await
            }
            None => self.http.get("/v2/tasks").await,
        }
    }

    /// Kills tasks (of any apps); with `scale` their apps shrink by as many instances instead of
    /// replacing them.
    pub async fn kill_tasks(
        &self,
        task_ids: &[String],
        scale: bool,
    ) -> Result<Answer, ClientError> {
        let path = if scale {
            "/v2/tasks/delete?scale=true"
        } else {
            "/v2/tasks/delete"
        };
        self.http
            .send(Method::POST, path, Some(&json!({"ids": task_ids})))
            .await
    }

    /// `GET /v2/groups/{id}` with its apps and subgroups (`/` for the root).
    pub async fn group(&self, id: &str) -> Result<Value, ClientError> {
        let id = escape_path_id(id);
        let path = if id.is_empty() {
            "/v2/groups".to_owned()
        } else {
            format!("/v2/groups/{id}")
        };
        self.http.get(&path).await
    }

    /// `POST /v2/groups`: a group with its apps, deployed in dependency order.
    pub async fn create_group(
        &self,
        definition: &Value,
        force: bool,
    ) -> Result<Answer, ClientError> {
        let path = format!("/v2/groups{}", force_query(force));
        self.http.send(Method::POST, &path, Some(definition)).await
    }

    /// Every app below the group scaled by `factor`.
    pub async fn scale_group(
        &self,
        id: &str,
        factor: f64,
        force: bool,
    ) -> Result<Answer, ClientError> {
        let path = format!("/v2/groups/{}{}", escape_path_id(id), force_query(force));
        self.http
            .send(Method::PUT, &path, Some(&json!({"scaleBy": factor})))
            .await
    }

    pub async fn remove_group(&self, id: &str, force: bool) -> Result<Answer, ClientError> {
        let path = format!("/v2/groups/{}{}", escape_path_id(id), force_query(force));
        self.http.send(Method::DELETE, &path, None).await
    }

    pub async fn deployments(&self) -> Result<Value, ClientError> {
        self.http.get("/v2/deployments").await
    }

    /// Cancels a deployment: by default with a deployment rolling its apps back to where they
    /// were; `force` stops it where it stands.
    pub async fn cancel_deployment(&self, id: &str, force: bool) -> Result<Answer, ClientError> {
        let path = format!("/v2/deployments/{}{}", escape(id), force_query(force));
        self.http.send(Method::DELETE, &path, None).await
    }

    /// Subscribes to `/v2/events` (only `kinds` when not empty). The stream ends when the
    /// connection does.
    pub async fn events(
        &self,
        kinds: &[&str],
    ) -> Result<impl Stream<Item = Result<ServiceEvent, ClientError>> + use<>, ClientError> {
        let query: Vec<String> = kinds.iter().map(|k| format!("event_type={k}")).collect();
        let url = self.http.url(&format!("/v2/events?{}", query.join("&")));
        let response = self
            .http
            .request(reqwest::Method::GET, &url)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| connect_error(&url, &e))?;
        if !response.status().is_success() {
            return Err(ClientError::Status {
                url,
                status: response.status().as_u16(),
                body: response.text().await.unwrap_or_default(),
            });
        }
        let mut parser = SseParser::default();
        let chunks = response.bytes_stream();
        Ok(chunks.flat_map(move |chunk| {
            let events: Vec<Result<ServiceEvent, ClientError>> = match chunk {
                Ok(bytes) => parser.push(&bytes).into_iter().map(Ok).collect(),
                Err(error) => vec![Err(connect_error(&url, &error))],
            };
            futures_util::stream::iter(events)
        }))
    }
}

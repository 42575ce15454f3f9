//! A small client for the services scheduler's `/v2` API, as the tests drive it.

use std::time::Duration;

use serde_json::Value;

use super::wait_until;

pub struct Marathon {
    pub base: String,
    pub http: reqwest::Client,
}

impl Marathon {
    pub fn new(address: &str) -> Marathon {
        Marathon {
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await.1
    }

    /// `/v2/tasks` as text, the form the HAProxy bridge reads.
    pub async fn tasks_text(&self) -> String {
        self.http
            .get(format!("{}/v2/tasks", self.base))
            .header("Accept", "text/plain")
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("text")
    }

    /// Kills a task of `app` (an id with its leading `/`): replaced, or not when `scale`.
    pub async fn kill_task(&self, app: &str, task: &str, scale: bool) {
        let path = format!("/v2/apps{app}/tasks/{task}?scale={scale}");
        let (status, body) = self.send(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, 200, "DELETE {path}: {body}");
    }

    /// The app's tasks (none for an unknown app).
    pub async fn tasks(&self, app: &str) -> Vec<Value> {
        self.get(&format!("/v2/apps{app}/tasks")).await["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// POSTs an app, which must be created (201); returns it as answered.
    pub async fn create(&self, app: Value) -> Value {
        let (status, body) = self
            .send(reqwest::Method::POST, "/v2/apps", Some(app))
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Waits until no deployment is running and the app has `count` running tasks.
    pub async fn settled(&self, app: &str, count: usize) -> Vec<Value> {
        self.settled_within(app, count, Duration::from_secs(20))
            .await
    }

    /// [`Marathon::settled`] with a timeout of the caller's.
    pub async fn settled_within(&self, app: &str, count: usize, timeout: Duration) -> Vec<Value> {
        wait_until(
            timeout,
            &format!("{app} settled with {count} tasks"),
            || async {
                let deployments = self.get("/v2/deployments").await;
                let tasks = self.tasks(app).await;
                (deployments.as_array()?.is_empty()
                    && running(&tasks) == count
                    && tasks.len() == count)
                    .then_some(tasks)
            },
        )
        .await
    }
}

/// How many of these tasks are running.
pub fn running(tasks: &[Value]) -> usize {
    tasks
        .iter()
        .filter(|t| t["state"] == "TASK_RUNNING")
        .count()
}

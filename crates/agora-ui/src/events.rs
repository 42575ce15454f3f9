//! Recent events for the dashboard: the services API's event stream followed (re-subscribing
//! after a failure), each event kept as one line.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{Shared, lock};

/// One event as the dashboard lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecentEvent {
    pub at: String,
    pub kind: String,
    pub text: String,
}

/// The last `capacity` events, newest first.
pub struct RecentEvents {
    capacity: usize,
    events: VecDeque<RecentEvent>,
}

impl RecentEvents {
    pub fn new(capacity: usize) -> RecentEvents {
        RecentEvents {
            capacity,
            events: VecDeque::new(),
        }
    }

    pub fn push(&mut self, event: RecentEvent) {
        self.events.push_front(event);
        self.events.truncate(self.capacity);
    }

    pub fn latest(&self, count: usize) -> Vec<RecentEvent> {
        self.events.iter().take(count).cloned().collect()
    }
}

/// The line for an event worth showing; `None` for those that repeat another.
pub fn summarize(kind: &str, data: &Value) -> Option<RecentEvent> {
    let s = |key: &str| data[key].as_str().unwrap_or("?").to_owned();
    let text = match kind {
        "status_update_event" => format!(
            "{} {} on {}",
            s("taskId"),
            crate::format::state(&s("taskStatus")),
            s("host")
        ),
        "deployment_info" => {
            let apps: Vec<String> = crate::format::items(&data["plan"], "steps")
                .flat_map(|step| crate::format::items(step, "actions"))
                .filter_map(|a| Some(format!("{} {}", a["action"].as_str()?, a["app"].as_str()?)))
                .collect();
            let id = data["plan"]["id"].as_str().unwrap_or("?");
            format!("deployment {id} started: {}", apps.join(", "))
        }
        "deployment_success" => format!("deployment {} finished", s("id")),
        "deployment_failed" => format!("deployment {} failed", s("id")),
        "health_status_changed_event" => format!(
            "{} is {}",
            s("instanceId"),
            if data["alive"] == true {
                "healthy"
            } else {
                "unhealthy"
            }
        ),
        "unhealthy_task_kill_event" => format!("{} killed: unhealthy", s("taskId")),
        "failed_health_check_event" => format!("{} failed a health check", s("instanceId")),
        "app_terminated_event" => format!("app {} removed", s("appId")),
        "group_change_success" => format!("group {} changed", s("groupId")),
        _ => return None,
    };
    Some(RecentEvent {
        at: data["timestamp"].as_str().unwrap_or_default().to_owned(),
        kind: kind.to_owned(),
        text,
    })
}

pub async fn follow(ui: Shared, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let subscribed = tokio::select! {
            subscribed = ui.services.events(&[]) => subscribed,
            () = shutdown.cancelled() => return,
        };
        match subscribed {
            Ok(stream) => {
                backoff = Duration::from_millis(200);
                let mut stream = std::pin::pin!(stream);
                loop {
                    let next = tokio::select! {
                        next = stream.next() => next,
                        () = shutdown.cancelled() => return,
                    };
                    let Some(Ok(event)) = next else { break };
                    if let Some(line) = summarize(&event.kind, &event.data) {
                        lock(&ui.events).push(line);
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "the UI cannot follow the services events yet"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn events_read_as_lines() {
        let update = json!({"taskId": "web.1", "taskStatus": "TASK_RUNNING", "host": "vm",
                            "timestamp": "2026-01-01T00:00:00.000Z"});
        let Some(line) = summarize("status_update_event", &update) else {
            panic!("a status update is shown")
        };
        assert_eq!(line.text, "web.1 running on vm");
        assert!(summarize("instance_changed_event", &json!({})).is_none());
        let mut recent = RecentEvents::new(2);
        for n in 0..3 {
            recent.push(RecentEvent {
                at: n.to_string(),
                kind: "k".into(),
                text: "t".into(),
            });
        }
        let at: Vec<String> = recent.latest(5).into_iter().map(|e| e.at).collect();
        assert_eq!(at, ["2", "1"], "newest first, the oldest dropped");
    }
}

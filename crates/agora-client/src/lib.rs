//! The Rust client for agora's HTTP APIs: the scheduler SDK ([`Scheduler`]) that frameworks —
//! agora's own services and jobs schedulers included — use to subscribe and act, and the
//! clients the `agora` CLI operates the cluster with: [`MasterClient`] (state, operator calls),
//! [`ServicesClient`] (Marathon `/v2`), [`JobsClient`] (Chronos) and [`AgentClient`] (sandbox
//! files, exec).

mod access;
mod agent;
mod http;
mod jobs;
mod leader;
mod master;
pub mod readings;
mod scheduler;
mod services;
pub mod sse;

pub use access::{Access, Auth, Tls, plain_client_builder};
pub use agent::{AgentClient, FileChunk};
pub use http::{Answer, escape as escape_segment};
pub use jobs::JobsClient;
pub use master::MasterClient;
pub use scheduler::{KeptId, Scheduler, SchedulerOptions, long_lived_framework};
pub use services::ServicesClient;
pub use sse::ServiceEvent;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {message}")]
    Connect { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("invalid response from {url}: {message}")]
    Invalid { url: String, message: String },
    #[error("not subscribed")]
    NotSubscribed,
}

impl ClientError {
    /// The HTTP status of an answer that was not a success.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What the server said, readable: the `message` of a JSON error body (Marathon, Chronos,
    /// Metronome) followed by each field's problem from `details`, else the body's text.
    pub fn server_message(&self) -> Option<String> {
        let ClientError::Status { body, .. } = self else {
            return None;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(body) else {
            let text = body.trim();
            return (!text.is_empty()).then(|| text.to_owned());
        };
        let mut lines: Vec<String> = Vec::new();
        if let Some(message) = value.get("message").and_then(|m| m.as_str()) {
            lines.push(message.to_owned());
        }
        for detail in value
            .get("details")
            .and_then(|d| d.as_array())
            .into_iter()
            .flatten()
        {
            let path = detail.get("path").and_then(|p| p.as_str()).unwrap_or("/");
            for error in detail
                .get("errors")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
            {
                lines.push(format!("  {path}: {}", error.as_str().unwrap_or_default()));
            }
        }
        if lines.is_empty() {
            lines.push(value.to_string());
        }
        Some(lines.join("\n"))
    }
}

pub use agora_types::host_of;

/// `host:port`, `http(s)://host:port` or `//host:port/path` → `http(s)://host:port`: a scheme
/// given is kept, else https when `tls`.
pub(crate) fn base_url(master: &str, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let trimmed = master.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("//") {
        let authority = rest.split('/').next().unwrap_or(rest);
        return format!("{scheme}://{authority}");
    }
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return trimmed.to_owned();
    }
    format!("{scheme}://{trimmed}")
}

#[cfg(test)]
mod tests {
    use super::ClientError;

    #[test]
    fn server_messages() {
        let invalid = ClientError::Status {
            url: "u".into(),
            status: 422,
            body: r#"{"message":"Object is not valid","details":[{"path":"/cpus","errors":["error.min"]}]}"#.into(),
        };
        assert_eq!(
            invalid.server_message().as_deref(),
            Some("Object is not valid\n  /cpus: error.min")
        );
        let plain = ClientError::Status {
            url: "u".into(),
            status: 400,
            body: "Expecting 'agent_id'\n".into(),
        };
        assert_eq!(
            plain.server_message().as_deref(),
            Some("Expecting 'agent_id'")
        );
    }

    #[test]
    fn base_urls() {
        assert_eq!(super::base_url("m:5050", false), "http://m:5050");
        assert_eq!(super::base_url("m:5050", true), "https://m:5050");
        assert_eq!(super::base_url("http://m:5050/", true), "http://m:5050");
        assert_eq!(super::base_url("https://m:5050/", false), "https://m:5050");
        assert_eq!(
            super::base_url("//m2:5050/api/v1/scheduler", false),
            "http://m2:5050"
        );
        assert_eq!(
            super::base_url("//m2:5050/api/v1/scheduler", true),
            "https://m2:5050"
        );
    }
}

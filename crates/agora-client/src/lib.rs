//! The Rust client for agora's HTTP APIs: the scheduler SDK ([`Scheduler`]) that frameworks —
//! agora's own services and jobs schedulers included — use to subscribe and act, and a small
//! [`MasterClient`] for state and operator calls.

mod master;
mod scheduler;

pub use master::MasterClient;
pub use scheduler::{Scheduler, SchedulerOptions};

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

/// `host:port`, `http://host:port` or `//host:port/path` → `http://host:port`.
pub(crate) fn base_url(master: &str) -> String {
    let trimmed = master.trim_end_matches('/');
    if let Some(rest) = trimmed.strip_prefix("//") {
        let authority = rest.split('/').next().unwrap_or(rest);
        return format!("http://{authority}");
    }
    if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
        return trimmed.to_owned();
    }
    format!("http://{trimmed}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn base_urls() {
        assert_eq!(super::base_url("m:5050"), "http://m:5050");
        assert_eq!(super::base_url("http://m:5050/"), "http://m:5050");
        assert_eq!(
            super::base_url("//m2:5050/api/v1/scheduler"),
            "http://m2:5050"
        );
    }
}

//! Which API a request path belongs to, and how that API words an error: Mesos answers in
//! plain text; Marathon, Chronos and Metronome with a JSON `{"message": …}`; the web UI with
//! text a person reads.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApiFamily {
    /// The Mesos scheduler, operator, executor and state endpoints, agora's agent protocol.
    Mesos,
    /// Marathon's `/v2` (and `/ping`).
    Marathon,
    /// Chronos' `/scheduler` and `/v1/scheduler`.
    Chronos,
    /// Metronome's `/v1/jobs`.
    Metronome,
    /// The web UI at `/` and `/ui`.
    Ui,
}

/// The Mesos v1 HTTP APIs, by their exact paths (no other path is one of them: a Marathon id
/// may well end in `/api/v1/executor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MesosV1 {
    Scheduler,
    Executor,
    Operator,
}

impl MesosV1 {
    pub fn of(path: &str) -> Option<MesosV1> {
        match path {
            "/api/v1/scheduler" | "/master/api/v1/scheduler" => Some(MesosV1::Scheduler),
            "/api/v1/executor" | "/slave(1)/api/v1/executor" => Some(MesosV1::Executor),
            "/api/v1" | "/api/v1/" | "/api/v1/operator" | "/master/api/v1" => {
                Some(MesosV1::Operator)
            }
            _ => None,
        }
    }
}

impl ApiFamily {
    pub fn of(path: &str) -> ApiFamily {
        let under = |prefix: &str| {
            path == prefix
                || path
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if under("/v2") || path == "/ping" {
            ApiFamily::Marathon
        } else if under("/scheduler") || under("/v1/scheduler") {
            ApiFamily::Chronos
        } else if under("/v1/jobs") {
            ApiFamily::Metronome
        } else if path == "/" || under("/ui") {
            ApiFamily::Ui
        } else {
            ApiFamily::Mesos
        }
    }

    /// An error as this API answers one.
    pub fn error(self, status: StatusCode, message: &str) -> Response {
        match self {
            ApiFamily::Mesos | ApiFamily::Ui => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                message.to_owned(),
            )
                .into_response(),
            ApiFamily::Marathon | ApiFamily::Chronos | ApiFamily::Metronome => (
                status,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                serde_json::json!({ "message": message }).to_string(),
            )
                .into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiFamily, MesosV1};

    #[test]
    fn paths_belong_to_their_api() {
        assert_eq!(ApiFamily::of("/v2/apps"), ApiFamily::Marathon);
        assert_eq!(ApiFamily::of("/v2"), ApiFamily::Marathon);
        assert_eq!(ApiFamily::of("/v2apps"), ApiFamily::Mesos);
        assert_eq!(ApiFamily::of("/ping"), ApiFamily::Marathon);
        assert_eq!(ApiFamily::of("/scheduler/iso8601"), ApiFamily::Chronos);
        assert_eq!(ApiFamily::of("/v1/scheduler/jobs"), ApiFamily::Chronos);
        assert_eq!(ApiFamily::of("/api/v1/scheduler"), ApiFamily::Mesos);
        assert_eq!(MesosV1::of("/api/v1/scheduler"), Some(MesosV1::Scheduler));
        assert_eq!(MesosV1::of("/v2/apps/x/api/v1/executor"), None);
        assert_eq!(MesosV1::of("/v2/apps/api/v1/scheduler"), None);
        assert_eq!(ApiFamily::of("/v1/jobs/a.b/runs"), ApiFamily::Metronome);
        assert_eq!(ApiFamily::of("/"), ApiFamily::Ui);
        assert_eq!(ApiFamily::of("/ui/apps/web"), ApiFamily::Ui);
        assert_eq!(ApiFamily::of("/master/state"), ApiFamily::Mesos);
        assert_eq!(ApiFamily::of("/slave(1)/tasks/t/exec"), ApiFamily::Mesos);
    }
}

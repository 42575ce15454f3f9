//! Which requests must name their caller, as Mesos' flags say it: frameworks (the scheduler
//! API), agents (agora's agent protocol), read-write and read-only HTTP endpoints. A few
//! endpoints are open whatever the flags: health, version, the leader's address, signing in
//! and the UI's assets.

use axum::http::Method;

use crate::MesosV1;

/// What kind of caller a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Realm {
    /// `/api/v1/scheduler`: `--authenticate-frameworks`.
    Frameworks,
    /// `/internal/agent/*`: `--authenticate-agents`.
    Agents,
    /// The executor API: the agent checks executors' own tokens.
    Executors,
    /// Changes state: `--authenticate-http-readwrite`.
    ReadWrite,
    /// Reads: `--authenticate-http-readonly`.
    ReadOnly,
    /// Never asks for a caller.
    Open,
}

/// Which realms require an authenticated caller (Mesos' `--authenticate*` flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Required {
    pub frameworks: bool,
    pub agents: bool,
    pub readwrite: bool,
    pub readonly: bool,
}

impl Required {
    pub fn any(&self) -> bool {
        self.frameworks || self.agents || self.readwrite || self.readonly
    }

    pub fn of(&self, realm: Realm) -> bool {
        match realm {
            Realm::Frameworks => self.frameworks,
            Realm::Agents => self.agents,
            Realm::ReadWrite => self.readwrite,
            Realm::ReadOnly => self.readonly,
            Realm::Executors | Realm::Open => false,
        }
    }
}

/// The realm of a request.
pub fn realm(method: &Method, path: &str) -> Realm {
    if matches!(
        path,
        "/health"
            | "/master/health"
            | "/slave(1)/health"
            | "/version"
            | "/master/redirect"
            | "/ping"
            | "/ui/login"
            | "/ui/logout"
            | "/acs/api/v1/auth/login"
    ) || path.starts_with("/ui/assets/")
    {
        return Realm::Open;
    }
    match MesosV1::of(path) {
        Some(MesosV1::Scheduler) => return Realm::Frameworks,
        Some(MesosV1::Executor) => return Realm::Executors,
        // Mesos puts its v1 operator API in the read-write realm, whatever the call.
        Some(MesosV1::Operator) => return Realm::ReadWrite,
        None => {}
    }
    if path.starts_with("/internal/agent/") {
        return Realm::Agents;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        Realm::ReadOnly
    } else {
        Realm::ReadWrite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fall_in_mesos_realms() {
        assert_eq!(realm(&Method::POST, "/api/v1/scheduler"), Realm::Frameworks);
        assert_eq!(realm(&Method::POST, "/api/v1/executor"), Realm::Executors);
        assert_eq!(realm(&Method::POST, "/internal/agent/ping"), Realm::Agents);
        assert_eq!(realm(&Method::POST, "/api/v1"), Realm::ReadWrite);
        // A Marathon id may end like a Mesos API: it is still Marathon's.
        assert_eq!(
            realm(&Method::PUT, "/v2/apps/x/api/v1/executor"),
            Realm::ReadWrite
        );
        assert_eq!(
            realm(&Method::PUT, "/v2/apps/x/api/v1/scheduler"),
            Realm::ReadWrite
        );
        assert_eq!(realm(&Method::GET, "/master/state"), Realm::ReadOnly);
        assert_eq!(realm(&Method::POST, "/v2/apps"), Realm::ReadWrite);
        assert_eq!(realm(&Method::DELETE, "/scheduler/job/x"), Realm::ReadWrite);
        assert_eq!(realm(&Method::GET, "/v2/apps"), Realm::ReadOnly);
        assert_eq!(realm(&Method::GET, "/health"), Realm::Open);
        assert_eq!(realm(&Method::GET, "/ui/assets/ui.css"), Realm::Open);
        assert_eq!(realm(&Method::POST, "/ui/login"), Realm::Open);
        assert_eq!(
            realm(&Method::GET, "/slave(1)/tasks/t/attach"),
            Realm::ReadOnly
        );
        assert_eq!(
            realm(&Method::POST, "/slave(1)/tasks/t/exec"),
            Realm::ReadWrite
        );
    }
}

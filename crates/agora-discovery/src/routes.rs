//! What to serve, derived from the cluster: a route per service port (its app, backends and
//! balancing), virtual hosts for apps labelled for HTTP routing. Pure; the proxy and the
//! HAProxy renderer both read it, so they always agree.
//!
//! Labels follow marathon-lb: `HAPROXY_GROUP` (comma list), and per port index `n`
//! `HAPROXY_{n}_VHOST` (comma list of host names), `HAPROXY_{n}_BALANCE`
//! (`roundrobin`/`leastconn`), `HAPROXY_{n}_MODE` (`tcp`/`http`), `HAPROXY_{n}_ENABLED`.

use std::collections::BTreeMap;

use crate::model::{App, Cluster};

/// How a port's connections are spread over its backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// The backend with the fewest open connections (ties taken in turn).
    #[default]
    LeastConn,
    RoundRobin,
}

impl Balance {
    pub fn parse(text: &str) -> Option<Balance> {
        match text.trim().to_ascii_lowercase().as_str() {
            "leastconn" | "least-conn" | "least_conn" => Some(Balance::LeastConn),
            "roundrobin" | "round-robin" | "round_robin" => Some(Balance::RoundRobin),
            _ => None,
        }
    }

    pub fn haproxy_name(self) -> &'static str {
        match self {
            Balance::LeastConn => "leastconn",
            Balance::RoundRobin => "roundrobin",
        }
    }
}

/// A task's address for one port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub task_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRoute {
    pub app_id: String,
    pub port_index: usize,
    pub service_port: u16,
    /// Sorted by host, port and task id, so renderings are stable.
    pub backends: Vec<Endpoint>,
    /// Set by `HAPROXY_{n}_BALANCE`; else the proxy's default.
    pub balance: Option<Balance>,
    /// Lower-cased host names routed to this port's backends on the shared HTTP port.
    pub vhosts: Vec<String>,
    /// `HAPROXY_{n}_MODE=http` or a virtual host set.
    pub http: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes {
    pub ports: BTreeMap<u16, PortRoute>,
    /// Virtual host → the service port whose backends serve it.
    pub vhosts: BTreeMap<String, u16>,
    /// Service ports claimed by more than one app: the first app by id keeps the port.
    pub conflicts: BTreeMap<u16, Vec<String>>,
}

/// Which apps a consumer exposes: all (`*`, the default) or those whose `HAPROXY_GROUP`
/// shares a group with the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Groups(Vec<String>);

impl Default for Groups {
    fn default() -> Groups {
        Groups(vec!["*".to_owned()])
    }
}

impl Groups {
    pub fn parse(text: &str) -> Groups {
        let groups: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect();
        if groups.is_empty() {
            Groups::default()
        } else {
            Groups(groups)
        }
    }

    fn admits(&self, app: &App) -> bool {
        if self.0.iter().any(|g| g == "*") {
            return true;
        }
        app.labels.get("HAPROXY_GROUP").is_some_and(|groups| {
            groups
                .split(',')
                .map(str::trim)
                .any(|g| self.0.iter().any(|wanted| wanted == g))
        })
    }
}

/// A load-balancer label of an app; one holding a control character (which could write
/// directives into HAProxy's configuration; the API refuses them) is ignored.
fn label<'a>(app: &'a App, index: usize, name: &str) -> Option<&'a str> {
    app.labels
        .get(&format!("HAPROXY_{index}_{name}"))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty() && !v.chars().any(char::is_control))
}

/// Host names are matched case-insensitively and without a port.
pub fn normalize_host(host: &str) -> String {
    agora_client::host_of(host.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl Routes {
    pub fn of(cluster: &Cluster, groups: &Groups) -> Routes {
        let mut routes = Routes::default();
        for app in cluster.apps.values().filter(|app| groups.admits(app)) {
            let mut serving: Vec<_> = cluster.serving(app).collect();
            serving.sort_by(|a, b| (&a.host, &a.id).cmp(&(&b.host, &b.id)));
            for (index, &service_port) in app.service_ports.iter().enumerate() {
                if service_port == 0 || label(app, index, "ENABLED") == Some("false") {
                    continue;
                }
                if let Some(existing) = routes.ports.get(&service_port) {
                    let claimants = routes
                        .conflicts
                        .entry(service_port)
                        .or_insert_with(|| vec![existing.app_id.clone()]);
                    claimants.push(app.id.clone());
                    continue;
                }
                let mut backends: Vec<Endpoint> = serving
                    .iter()
                    .filter_map(|task| {
                        let port = *task.ports.get(index)?;
                        (port != 0).then(|| Endpoint {
                            host: task.host.clone(),
                            port,
                            task_id: task.id.clone(),
                        })
                    })
                    .collect();
                backends.sort();
                let vhosts: Vec<String> = label(app, index, "VHOST")
                    .map(|list| {
                        list.split(',')
                            .map(normalize_host)
                            // Only host names reach HAProxy's configuration.
                            .filter(|h| {
                                !h.is_empty()
                                    && h.chars().all(|c| {
                                        c.is_ascii_alphanumeric()
                                            || matches!(c, '.' | '-' | '_' | '*')
                                    })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let http = !vhosts.is_empty()
                    || label(app, index, "MODE").is_some_and(|m| m.eq_ignore_ascii_case("http"));
                for vhost in &vhosts {
                    routes.vhosts.entry(vhost.clone()).or_insert(service_port);
                }
                routes.ports.insert(
                    service_port,
                    PortRoute {
                        app_id: app.id.clone(),
                        port_index: index,
                        service_port,
                        backends,
                        balance: label(app, index, "BALANCE").and_then(Balance::parse),
                        vhosts,
                        http,
                    },
                );
            }
        }
        routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(doc: serde_json::Value) -> Cluster {
        let mut cluster = Cluster::default();
        cluster
            .load_snapshot(doc.to_string().as_bytes())
            .expect("snapshot");
        cluster
    }

    #[test]
    fn ports_pair_with_task_ports_by_index() {
        let cluster = cluster(json!({"apps": [
            {"id": "/web", "portDefinitions": [{"port": 10001}, {"port": 10002}],
             "labels": {"HAPROXY_0_VHOST": "Web.Example.com, api.example.com, a } || { b", "HAPROXY_1_BALANCE": "roundrobin"},
             "tasks": [
                {"id": "web.2", "host": "b", "ports": [31002, 31003], "state": "TASK_RUNNING"},
                {"id": "web.1", "host": "a", "ports": [31000, 31001], "state": "TASK_RUNNING"},
                {"id": "web.3", "host": "c", "ports": [31004, 31005], "state": "TASK_STAGING"}]},
        ]}));
        let routes = Routes::of(&cluster, &Groups::default());
        let first = &routes.ports[&10001];
        assert_eq!(
            first
                .backends
                .iter()
                .map(|e| (e.host.as_str(), e.port))
                .collect::<Vec<_>>(),
            vec![("a", 31000), ("b", 31002)]
        );
        assert!(first.http);
        assert_eq!(first.vhosts, vec!["web.example.com", "api.example.com"]);
        let second = &routes.ports[&10002];
        assert_eq!(second.balance, Some(Balance::RoundRobin));
        assert!(!second.http);
        assert_eq!(routes.vhosts["web.example.com"], 10001);
    }

    #[test]
    fn groups_filter_and_conflicts_are_reported() {
        let cluster = cluster(json!({"apps": [
            {"id": "/a", "portDefinitions": [{"port": 10001}], "labels": {"HAPROXY_GROUP": "external"}},
            {"id": "/b", "portDefinitions": [{"port": 10001}]},
            {"id": "/c", "portDefinitions": [{"port": 10003}], "labels": {"HAPROXY_GROUP": "internal,other"}},
        ]}));
        let all = Routes::of(&cluster, &Groups::default());
        assert_eq!(all.ports[&10001].app_id, "/a");
        assert_eq!(all.conflicts[&10001], vec!["/a", "/b"]);
        let external = Routes::of(&cluster, &Groups::parse("external"));
        assert_eq!(
            external.ports.keys().copied().collect::<Vec<_>>(),
            vec![10001]
        );
        let other = Routes::of(&cluster, &Groups::parse("other"));
        assert_eq!(other.ports.keys().copied().collect::<Vec<_>>(), vec![10003]);
    }

    #[test]
    fn hosts_are_normalized() {
        assert_eq!(normalize_host("Web.Example.COM:8080"), "web.example.com");
        assert_eq!(normalize_host("web.example.com."), "web.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
    }
}

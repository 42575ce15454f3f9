//! The Marathon app definition: parsing with Marathon's defaults, normalising legacy forms
//! (`ports`, `uris`, relative ids) and the JSON Marathon answers with; `validate` checks
//! every field at once into 422 details.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::Violations;
use super::path;

mod validate;

mod defaults {
    pub fn readiness_name() -> String {
        "readinessCheck".into()
    }
    pub fn root() -> String {
        "/".into()
    }
    pub fn http_api() -> String {
        "http-api".into()
    }
    pub fn readiness_interval() -> i64 {
        30
    }
    pub fn readiness_timeout() -> i64 {
        10
    }
    pub fn ready_codes() -> Vec<u16> {
        vec![200]
    }
    pub fn instances() -> i64 {
        1
    }
    pub fn cpus() -> f64 {
        1.0
    }
    pub fn mem() -> f64 {
        128.0
    }
    pub fn backoff_seconds() -> f64 {
        1.0
    }
    pub fn backoff_factor() -> f64 {
        1.15
    }
    /// Marathon ≤ 1.x and its documentation examples; the later RAML says 300.
    pub fn max_launch_delay_seconds() -> f64 {
        3600.0
    }
    pub fn kill_selection() -> String {
        "YOUNGEST_FIRST".into()
    }
    pub fn one() -> f64 {
        1.0
    }
    pub fn tcp() -> String {
        "tcp".into()
    }
    pub fn http() -> String {
        "HTTP".into()
    }
    pub fn grace_period() -> i64 {
        300
    }
    pub fn interval() -> i64 {
        60
    }
    pub fn timeout() -> i64 {
        20
    }
    pub fn max_failures() -> i64 {
        3
    }
    pub fn delay() -> i64 {
        15
    }
    pub fn yes() -> bool {
        true
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeStrategy {
    #[serde(default = "defaults::one")]
    pub minimum_health_capacity: f64,
    #[serde(default = "defaults::one")]
    pub maximum_over_capacity: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
        }
    }
}

/// `"disabled"`, or when to consider an unreachable instance gone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UnreachableStrategy {
    Disabled(String),
    #[serde(rename_all = "camelCase")]
    Policy {
        inactive_after_seconds: i64,
        expunge_after_seconds: i64,
    },
}

impl Default for UnreachableStrategy {
    fn default() -> UnreachableStrategy {
        UnreachableStrategy::Policy {
            inactive_after_seconds: 0,
            expunge_after_seconds: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortDefinition {
    #[serde(default)]
    pub port: i64,
    #[serde(default = "defaults::tcp")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchUri {
    pub uri: String,
    #[serde(default = "defaults::yes")]
    pub extract: bool,
    #[serde(default)]
    pub executable: bool,
    #[serde(default)]
    pub cache: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_path: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    #[serde(default = "defaults::http")]
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_index: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Value>,
    #[serde(default = "defaults::grace_period")]
    pub grace_period_seconds: i64,
    #[serde(default = "defaults::interval")]
    pub interval_seconds: i64,
    #[serde(default = "defaults::timeout")]
    pub timeout_seconds: i64,
    #[serde(default = "defaults::max_failures")]
    pub max_consecutive_failures: i64,
    #[serde(default)]
    pub ignore_http1xx: bool,
    #[serde(default = "defaults::delay")]
    pub delay_seconds: i64,
}

/// Checked by the scheduler against a new task during deployments: it counts toward the
/// deployment once healthy and ready.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadinessCheck {
    #[serde(default = "defaults::readiness_name")]
    pub name: String,
    #[serde(default = "defaults::http")]
    pub protocol: String,
    #[serde(default = "defaults::root")]
    pub path: String,
    #[serde(default = "defaults::http_api")]
    pub port_name: String,
    #[serde(default = "defaults::readiness_interval")]
    pub interval_seconds: i64,
    #[serde(default = "defaults::readiness_timeout")]
    pub timeout_seconds: i64,
    #[serde(default = "defaults::ready_codes")]
    pub http_status_codes_for_ready: Vec<u16>,
    #[serde(default)]
    pub preserve_last_response: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub last_scaling_at: String,
    pub last_config_change_at: String,
}

/// An env variable whose value is a secret: the app's name for the secret, and its source
/// (its name in the secrets directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEnv {
    pub variable: String,
    pub secret: String,
    pub source: String,
}

/// An app as stored and answered. Read-only fields a client sends back (task counts,
/// deployments, `versionInfo`) are ignored on input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDefinition {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, Value>,
    /// Marathon's secrets: a name the app's `env` refers to (`{"secret": name}`) and where
    /// the value is (`{"source": "team-a/db-password"}`, a name in `--secrets-dir`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Value>,
    #[serde(default = "defaults::instances")]
    pub instances: i64,
    #[serde(default = "defaults::cpus")]
    pub cpus: f64,
    #[serde(default = "defaults::mem")]
    pub mem: f64,
    #[serde(default)]
    pub disk: f64,
    #[serde(default)]
    pub gpus: i64,
    #[serde(default)]
    pub executor: String,
    #[serde(default)]
    pub constraints: Vec<Vec<String>>,
    #[serde(default)]
    pub uris: Vec<String>,
    #[serde(default)]
    pub fetch: Vec<FetchUri>,
    #[serde(default)]
    pub store_urls: Vec<String>,
    #[serde(default = "defaults::backoff_seconds")]
    pub backoff_seconds: f64,
    #[serde(default = "defaults::backoff_factor")]
    pub backoff_factor: f64,
    #[serde(default = "defaults::max_launch_delay_seconds")]
    pub max_launch_delay_seconds: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Value>,
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    #[serde(default)]
    pub readiness_checks: Vec<ReadinessCheck>,
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub upgrade_strategy: UpgradeStrategy,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_resource_roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<i64>,
    #[serde(default)]
    pub unreachable_strategy: UnreachableStrategy,
    #[serde(default = "defaults::kill_selection")]
    pub kill_selection: String,
    #[serde(default)]
    pub port_definitions: Option<Vec<PortDefinition>>,
    /// Legacy input, mirrored from `portDefinitions` on output.
    #[serde(default)]
    pub ports: Option<Vec<i64>>,
    #[serde(default)]
    pub require_ports: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Value>,
    #[serde(default, skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub version_info: Option<VersionInfo>,
}

impl AppDefinition {
    /// The app's service ports as asked (0: to be assigned): its container's port mappings'
    /// when it has any (BRIDGE and USER networking), else its port definitions'.
    pub fn service_ports(&self) -> Vec<u64> {
        let mappings = self
            .container
            .as_ref()
            .map(super::container::port_mappings)
            .unwrap_or_default();
        if !mappings.is_empty() {
            return mappings
                .iter()
                .map(|m| m.get("servicePort").and_then(Value::as_u64).unwrap_or(0))
                .collect();
        }
        self.port_definitions
            .iter()
            .flatten()
            .map(|p| p.port.max(0) as u64)
            .collect()
    }

    /// Sets the service ports [`AppDefinition::service_ports`] reads, and the legacy `ports`.
    pub fn set_service_ports(&mut self, ports: &[u64]) {
        let has_mappings = self
            .container
            .as_ref()
            .is_some_and(|c| !super::container::port_mappings(c).is_empty());
        if has_mappings {
            if let Some(container) = self.container.as_mut() {
                super::container::set_service_ports(container, ports);
            }
        } else {
            for (definition, port) in self.port_definitions.iter_mut().flatten().zip(ports) {
                definition.port = *port as i64;
            }
        }
        self.ports = Some(ports.iter().map(|p| *p as i64).collect());
    }

    /// Parses a request body. Type errors are reported as violations at their JSON path, as
    /// Marathon does, so one 422 answers everything.
    pub fn parse(body: &Value) -> Result<AppDefinition, Violations> {
        let mut violations = Violations::default();
        match serde_path_to_error::deserialize::<_, AppDefinition>(body) {
            Ok(app) => Ok(app),
            Err(error) => {
                let path = error.path().to_string();
                let path = if path == "." {
                    "/".to_owned()
                } else {
                    format!("/{}", path.replace('.', "/"))
                };
                violations.add(path, error.inner().to_string());
                Err(violations)
            }
        }
    }

    /// Resolves ids and legacy forms into the canonical definition: absolute `id` and
    /// `dependencies`, `portDefinitions` from `ports` (or Marathon's one default port), `fetch`
    /// from `uris`, and `ports` mirrored back.
    pub fn normalize(&mut self, parent_group: &str) -> Result<(), Violations> {
        let mut violations = Violations::default();
        match path::resolve(&self.id, parent_group) {
            Ok(id) => self.id = id,
            Err(message) => violations.add("/id", message),
        }
        let parent = path::parent(&self.id).to_owned();
        for (index, dependency) in self.dependencies.iter_mut().enumerate() {
            match path::resolve(dependency, &parent) {
                Ok(resolved) => *dependency = resolved,
                Err(message) => violations.add(format!("/dependencies({index})"), message),
            }
        }
        if self.port_definitions.is_none() {
            self.port_definitions = Some(match &self.ports {
                Some(ports) => ports
                    .iter()
                    .map(|port| PortDefinition {
                        port: *port,
                        protocol: "tcp".into(),
                        name: None,
                        labels: BTreeMap::new(),
                    })
                    .collect(),
                None if self.uses_host_network() => vec![PortDefinition {
                    port: 0,
                    protocol: "tcp".into(),
                    name: Some("default".into()),
                    labels: BTreeMap::new(),
                }],
                None => Vec::new(),
            });
        }
        // With its container's port mappings an app's ports are those (Marathon allows port
        // definitions only on the host network); ones kept from a HOST past would be offered
        // for and reserved besides.
        let has_mappings = self
            .container
            .as_ref()
            .is_some_and(|c| !super::container::port_mappings(c).is_empty());
        if has_mappings && !self.uses_host_network() {
            self.port_definitions = Some(Vec::new());
        }
        self.ports = Some(
            self.port_definitions
                .iter()
                .flatten()
                .map(|p| p.port)
                .collect(),
        );
        if self.fetch.is_empty() {
            self.fetch = self
                .uris
                .iter()
                .map(|uri| FetchUri {
                    uri: uri.clone(),
                    extract: true,
                    executable: false,
                    cache: false,
                    dest_path: None,
                })
                .collect();
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(violations)
        }
    }

    fn uses_host_network(&self) -> bool {
        let bridge_in_container = self
            .container
            .as_ref()
            .and_then(|c| c.get("docker"))
            .and_then(|d| d.get("network"))
            .and_then(Value::as_str)
            .is_some_and(|network| network != "HOST");
        let container_network = self.networks.iter().any(|n| {
            n.get("mode")
                .and_then(Value::as_str)
                .is_some_and(|m| m != "host")
        });
        !bridge_in_container && !container_network
    }
}

impl AppDefinition {
    /// The secrets the app's env uses.
    pub fn secret_env(&self) -> Vec<SecretEnv> {
        self.env
            .iter()
            .filter_map(|(variable, value)| {
                let secret = value.get("secret")?.as_str()?;
                let source = self.secrets.get(secret)?.get("source")?.as_str()?;
                Some(SecretEnv {
                    variable: variable.clone(),
                    secret: secret.to_owned(),
                    source: source.to_owned(),
                })
            })
            .collect()
    }
}

/// A partial update: the fields present in `patch` replace the app's, the others stay
/// (Marathon's `partialUpdate=true`, the default of `PUT /v2/apps/{id}`).
pub fn merge_partial(current: &Value, patch: &Value) -> Value {
    let mut merged = current.clone();
    if let (Some(target), Some(changes)) = (merged.as_object_mut(), patch.as_object()) {
        for (key, value) in changes {
            target.insert(key.clone(), value.clone());
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> AppDefinition {
        let mut app = AppDefinition::parse(&body).unwrap();
        app.normalize("/").unwrap();
        app
    }

    #[test]
    fn env_secrets_name_declared_secrets() {
        let app = parse(json!({"id": "web", "cmd": "x",
            "env": {"A": "plain", "B": {"secret": "db"}, "C": {"secret": "nope"}, "D": 1},
            "secrets": {"db": {"source": "team/db"}, "bad": {"path": "x"}},
            "container": {"type": "MESOS", "volumes": [{"containerPath": "s", "secret": "db"}]}}));
        let paths: Vec<String> = app
            .validate()
            .into_vec()
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/env/C",
                "/env/D",
                "/secrets/bad/source",
                "/container/volumes(0)/secret"
            ]
        );
        let used = SecretEnv {
            variable: "B".into(),
            secret: "db".into(),
            source: "team/db".into(),
        };
        assert_eq!(app.secret_env(), [used]);
    }

    #[test]
    fn labels_written_into_haproxy_cannot_write_directives() {
        let app = parse(json!({"id": "web", "cmd": "x", "labels": {
            "HAPROXY_0_VHOST": "web.example.com\n  server evil 10.0.0.1:22",
            "HAPROXY_1_VHOST": "a.example.com, b.example.com",
            "HAPROXY_2_VHOST": "a example",
            "HAPROXY_GROUP": "external\rx",
            "team": "anything\ngoes here"}}));
        let paths: Vec<String> = app
            .validate()
            .into_vec()
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/labels/HAPROXY_0_VHOST",
                "/labels/HAPROXY_2_VHOST",
                "/labels/HAPROXY_GROUP"
            ]
        );
    }

    #[test]
    fn a_drain_label_is_a_number_of_seconds() {
        let violations = |value: &str| {
            parse(json!({"id": "web", "cmd": "x", "labels": {"AGORA_KILL_DRAIN_SECONDS": value}}))
                .validate()
                .into_vec()
                .into_iter()
                .map(|v| v.path)
                .collect::<Vec<_>>()
        };
        for good in ["0", "1.5", " 30 ", "3600"] {
            assert!(violations(good).is_empty(), "{good}");
        }
        for bad in ["", "soon", "-1", "3601", "NaN", "inf", "1e9"] {
            assert_eq!(
                violations(bad),
                ["/labels/AGORA_KILL_DRAIN_SECONDS"],
                "{bad}"
            );
        }
    }

    #[test]
    fn counts_and_seconds_stay_within_marathons_ints() {
        let app = parse(
            json!({"id": "web", "cmd": "x", "instances": 3_000_000_000_i64,
            "backoffSeconds": 1e300,
            "readinessChecks": [{"intervalSeconds": 9_223_372_036_854_775_807_i64, "timeoutSeconds": 10}],
            "healthChecks": [{"protocol": "TCP", "gracePeriodSeconds": 4_000_000_000_i64}]}),
        );
        let paths: Vec<String> = app
            .validate()
            .into_vec()
            .into_iter()
            .map(|v| v.path)
            .collect();
        for path in [
            "/instances",
            "/backoffSeconds",
            "/readinessChecks(0)/intervalSeconds",
            "/healthChecks(0)/gracePeriodSeconds",
        ] {
            assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
        }
    }

    #[test]
    fn port_mappings_are_checked_and_replace_port_definitions() {
        let mut app = AppDefinition::parse(&json!({"id": "web", "container": {"type": "DOCKER",
            "docker": {"image": "x", "network": "BRIDGE", "portMappings": [
                {"containerPort": 80, "servicePort": 70000},
                {"containerPort": -1, "servicePort": 10001},
                {"containerPort": 81, "servicePort": 10001}]}},
            "portDefinitions": [{"port": 0}, {"port": 0}, {"port": 0}, {"port": 0}],
            "healthChecks": [{"protocol": "HTTP", "portIndex": 2}]}))
        .unwrap();
        app.normalize("/").unwrap();
        assert_eq!(app.port_definitions, Some(vec![]), "kept from a HOST past");
        let paths: Vec<String> = app
            .validate()
            .into_vec()
            .into_iter()
            .map(|v| v.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/container/docker/portMappings(0)/servicePort",
                "/container/docker/portMappings(1)/containerPort",
                "/container/docker/portMappings(2)/servicePort",
            ],
            "portIndex 2 is one of the three mappings"
        );
    }

    #[test]
    fn service_ports_come_from_port_mappings_when_there_are_any() {
        let mut bridge = parse(json!({"id": "web", "container": {"type": "DOCKER",
            "docker": {"image": "x", "network": "BRIDGE",
                "portMappings": [{"containerPort": 80}, {"containerPort": 81, "servicePort": 10500}]}}}));
        assert_eq!(bridge.service_ports(), [0, 10500]);
        bridge.set_service_ports(&[10001, 10500]);
        assert_eq!(bridge.service_ports(), [10001, 10500]);
        assert_eq!(
            bridge.container.as_ref().unwrap()["docker"]["portMappings"][0]["servicePort"],
            10001
        );
        let mut host = parse(json!({"id": "web", "cmd": "x", "portDefinitions": [{"port": 0}]}));
        assert_eq!(host.service_ports(), [0]);
        host.set_service_ports(&[10002]);
        assert_eq!(host.port_definitions.as_ref().unwrap()[0].port, 10002);
        assert_eq!(host.ports, Some(vec![10002]));
    }

    #[test]
    fn defaults_are_marathons() {
        let app = parse(json!({"id": "web", "cmd": "sleep 100"}));
        assert_eq!(app.id, "/web");
        assert_eq!(
            (app.instances, app.cpus, app.mem, app.disk),
            (1, 1.0, 128.0, 0.0)
        );
        assert_eq!(app.backoff_factor, 1.15);
        assert_eq!(app.upgrade_strategy, UpgradeStrategy::default());
        assert_eq!(app.kill_selection, "YOUNGEST_FIRST");
        assert_eq!(
            app.port_definitions.as_ref().map(Vec::len),
            Some(1),
            "one default port on host networking"
        );
        assert_eq!(app.ports, Some(vec![0]));
        assert!(app.validate().is_empty());
        let out = serde_json::to_value(&app).unwrap();
        assert_eq!(
            out["unreachableStrategy"],
            json!({"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0})
        );
        assert_eq!(
            out["portDefinitions"][0],
            json!({"port": 0, "protocol": "tcp", "name": "default"})
        );
        assert!(out.get("versionInfo").is_none());
    }

    #[test]
    fn legacy_forms_are_normalized() {
        let app = parse(json!({
            "id": "/prod/web", "cmd": "x", "ports": [8080, 0], "uris": ["http://h/a.tgz"],
            "dependencies": ["../db", "/cache"]
        }));
        let ports: Vec<i64> = app
            .port_definitions
            .iter()
            .flatten()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, vec![8080, 0]);
        assert_eq!(app.fetch[0].uri, "http://h/a.tgz");
        assert!(app.fetch[0].extract);
        assert_eq!(
            app.dependencies,
            vec!["/db".to_owned(), "/cache".to_owned()]
        );
        let bridged = parse(
            json!({"id": "b", "container": {"type": "DOCKER", "docker": {"image": "x", "network": "BRIDGE"}}}),
        );
        assert_eq!(bridged.port_definitions, Some(vec![]));
    }

    #[test]
    fn reports_every_problem_at_once() {
        let app = parse(json!({
            "id": "/web", "cmd": "x", "args": ["y"], "cpus": 0, "mem": -1, "instances": -2,
            "backoffFactor": 0.5, "upgradeStrategy": {"minimumHealthCapacity": 1.5},
            "killSelection": "RANDOM", "portDefinitions": [{"port": 70000, "protocol": "sctp", "name": "A"}],
            "healthChecks": [{"protocol": "HTTP", "portIndex": 3}, {"protocol": "COMMAND"}],
            "constraints": [["hostname"]],
            "readinessChecks": [{"portName": "web", "protocol": "TCP", "intervalSeconds": 5,
                "timeoutSeconds": 5, "httpStatusCodesForReady": [42]}]
        }));
        let violations = app.validate().into_vec();
        let paths: Vec<&str> = violations.iter().map(|v| v.path.as_str()).collect();
        for expected in [
            "/",
            "/cpus",
            "/mem",
            "/instances",
            "/backoffFactor",
            "/upgradeStrategy/minimumHealthCapacity",
            "/killSelection",
            "/portDefinitions(0)/port",
            "/portDefinitions(0)/protocol",
            "/portDefinitions(0)/name",
            "/healthChecks",
            "/healthChecks(0)/portIndex",
            "/healthChecks(1)/command",
            "/constraints(0)",
            "/readinessChecks(0)/portName",
            "/readinessChecks(0)/protocol",
            "/readinessChecks(0)/timeoutSeconds",
            "/readinessChecks(0)/httpStatusCodesForReady",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {paths:?}"
            );
        }
        let body = super::super::errors::invalid_body(&violations);
        assert_eq!(body["message"], "Object is not valid");
    }

    #[test]
    fn readiness_checks_take_marathon_defaults() {
        let app = parse(json!({"id": "/web", "cmd": "x",
            "portDefinitions": [{"port": 0, "name": "http-api"}], "readinessChecks": [{}]}));
        let check = &app.readiness_checks[0];
        assert_eq!(
            (
                check.name.as_str(),
                check.protocol.as_str(),
                check.path.as_str()
            ),
            ("readinessCheck", "HTTP", "/")
        );
        assert_eq!((check.interval_seconds, check.timeout_seconds), (30, 10));
        assert_eq!(check.http_status_codes_for_ready, vec![200]);
        assert!(app.validate().is_empty());
    }

    #[test]
    fn type_errors_name_their_path() {
        let error =
            AppDefinition::parse(&json!({"id": "/web", "cmd": "x", "cpus": "lots"})).unwrap_err();
        let violations = error.into_vec();
        assert_eq!(violations[0].path, "/cpus");
        let error = AppDefinition::parse(
            &json!({"id": "/web", "upgradeStrategy": {"maximumOverCapacity": []}}),
        )
        .unwrap_err();
        assert_eq!(
            error.into_vec()[0].path,
            "/upgradeStrategy/maximumOverCapacity"
        );
        let bad_id = AppDefinition::parse(&json!({"id": "/Web", "cmd": "x"}))
            .unwrap()
            .normalize("/")
            .unwrap_err();
        assert_eq!(bad_id.into_vec()[0].path, "/id");
    }

    /// The `marathon` 0.13.0 Python client builds `MarathonApp(**snake_case(json))` and raises
    /// on any other key. Its accepted keys, read from the installed client's signature:
    const CLIENT_APP_KEYS: &[&str] = &[
        "accepted_resource_roles",
        "args",
        "backoff_factor",
        "backoff_seconds",
        "cmd",
        "constraints",
        "container",
        "cpus",
        "dependencies",
        "deployments",
        "disk",
        "env",
        "executor",
        "fetch",
        "gpus",
        "health_checks",
        "id",
        "instances",
        "ip_address",
        "kill_selection",
        "labels",
        "last_task_failure",
        "max_launch_delay_seconds",
        "mem",
        "networks",
        "port_definitions",
        "ports",
        "readiness_check_results",
        "readiness_checks",
        "require_ports",
        "residency",
        "role",
        "secrets",
        "store_urls",
        "task_kill_grace_period_seconds",
        "task_rate_limit",
        "task_stats",
        "tasks",
        "tasks_healthy",
        "tasks_running",
        "tasks_staged",
        "tasks_unhealthy",
        "unreachable_strategy",
        "upgrade_strategy",
        "uris",
        "user",
        "version",
        "version_info",
    ];

    fn snake_case(key: &str) -> String {
        let mut out = String::new();
        for c in key.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn answers_only_keys_the_python_client_knows() {
        let mut app = parse(json!({
            "id": "/web", "cmd": "x", "user": "nobody", "acceptedResourceRoles": ["*"], "version": "2015-09-17T09:32:36.583Z",
            "taskKillGracePeriodSeconds": 3, "container": {"type": "MESOS"}, "networks": [{"mode": "host"}]
        }));
        app.version_info = Some(VersionInfo {
            last_scaling_at: "a".into(),
            last_config_change_at: "b".into(),
        });
        let out = serde_json::to_value(&app).unwrap();
        for key in out.as_object().unwrap().keys() {
            assert!(
                CLIENT_APP_KEYS.contains(&snake_case(key).as_str()),
                "the marathon client would reject '{key}'"
            );
        }
    }

    #[test]
    fn partial_updates_replace_only_given_fields() {
        let current = json!({"id": "/web", "cmd": "x", "instances": 1, "mem": 64});
        let merged = merge_partial(&current, &json!({"instances": 3}));
        assert_eq!(
            merged,
            json!({"id": "/web", "cmd": "x", "instances": 3, "mem": 64})
        );
    }
}

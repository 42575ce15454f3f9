//! Validation of an app definition: every problem at once, each at its JSON path, as
//! Marathon's 422 `details` — ids, resources, ports, checks, counts and seconds within
//! Marathon's 32-bit ints, labels written into load balancers, secrets.

use serde_json::Value;

use super::*;
use crate::marathon::container::port_mappings;

const HEALTH_PROTOCOLS: &[&str] = &[
    "HTTP",
    "HTTPS",
    "TCP",
    "COMMAND",
    "MESOS_HTTP",
    "MESOS_HTTPS",
    "MESOS_TCP",
];

impl AppDefinition {
    /// Every problem with the definition, each at its JSON path.
    pub fn validate(&self) -> Violations {
        let mut v = Violations::default();
        if path::resolve(&self.id, "/").is_err() || !self.id.starts_with('/') {
            v.add("/id", path::SEGMENT_RULE);
        }
        let has_image = self
            .container
            .as_ref()
            .and_then(|c| c.get("docker").or_else(|| c.get("mesos")))
            .and_then(|runtime| runtime.get("image"))
            .is_some();
        match (&self.cmd, &self.args) {
            (Some(_), Some(_)) => v.add(
                "/",
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
            ),
            (None, None) if !has_image => v.add(
                "/",
                "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'.",
            ),
            _ => {}
        }
        if let Some(cmd) = &self.cmd
            && cmd.trim().is_empty()
        {
            v.add("/cmd", "must not be empty");
        }
        if !at_least(self.cpus, 0.001) {
            v.add(
                "/cpus",
                format!("got {}, expected 0.001 or more", self.cpus),
            );
        }
        for (field, value) in [("/mem", self.mem), ("/disk", self.disk)] {
            if !at_least(value, 0.0) {
                v.add(field, format!("got {value}, expected 0.0 or more"));
            }
        }
        if self.gpus < 0 {
            v.add("/gpus", format!("got {}, expected 0 or more", self.gpus));
        }
        if self.instances < 0 {
            v.add(
                "/instances",
                format!("got {}, expected 0 or more", self.instances),
            );
        }
        if !at_least(self.backoff_seconds, 0.0) {
            v.add("/backoffSeconds", "must be 0 or more");
        }
        if !at_least(self.backoff_factor, 1.0) {
            v.add(
                "/backoffFactor",
                format!("got {}, expected 1.0 or more", self.backoff_factor),
            );
        }
        if !at_least(self.max_launch_delay_seconds, 0.0) {
            v.add("/maxLaunchDelaySeconds", "must be 0 or more");
        }
        for (field, value) in [
            (
                "/upgradeStrategy/minimumHealthCapacity",
                self.upgrade_strategy.minimum_health_capacity,
            ),
            (
                "/upgradeStrategy/maximumOverCapacity",
                self.upgrade_strategy.maximum_over_capacity,
            ),
        ] {
            if !(0.0..=1.0).contains(&value) {
                v.add(
                    field,
                    format!("got {value}, expected a number between 0.0 and 1.0"),
                );
            }
        }
        if !matches!(
            self.kill_selection.as_str(),
            "YOUNGEST_FIRST" | "OLDEST_FIRST"
        ) {
            v.add("/killSelection", "must be YOUNGEST_FIRST or OLDEST_FIRST");
        }
        match &self.unreachable_strategy {
            UnreachableStrategy::Disabled(text) if text != "disabled" => {
                v.add("/unreachableStrategy", "must be \"disabled\" or an object with inactiveAfterSeconds and expungeAfterSeconds");
            }
            UnreachableStrategy::Policy {
                inactive_after_seconds,
                expunge_after_seconds,
            } => {
                if *inactive_after_seconds < 0 {
                    v.add(
                        "/unreachableStrategy/inactiveAfterSeconds",
                        "must be 0 or more",
                    );
                }
                if expunge_after_seconds < inactive_after_seconds {
                    v.add(
                        "/unreachableStrategy/expungeAfterSeconds",
                        "must be at least inactiveAfterSeconds",
                    );
                }
            }
            UnreachableStrategy::Disabled(_) => {}
        }
        if let Some(grace) = self.task_kill_grace_period_seconds
            && grace < 0
        {
            v.add("/taskKillGracePeriodSeconds", "must be 0 or more");
        }
        self.validate_secrets(&mut v);
        for (index, constraint) in self.constraints.iter().enumerate() {
            let operator = constraint.get(1).map(|o| o.to_ascii_uppercase());
            let known = [
                "UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
            ];
            if !(2..=3).contains(&constraint.len())
                || !operator.as_deref().is_some_and(|o| known.contains(&o))
            {
                v.add(
                    format!("/constraints({index})"),
                    "must be [field, OPERATOR, value?] with a known operator",
                );
            }
        }
        self.validate_ports(&mut v);
        self.validate_health_checks(&mut v);
        self.validate_readiness_checks(&mut v);
        self.validate_bounds(&mut v);
        self.validate_balancer_labels(&mut v);
        for (index, dependency) in self.dependencies.iter().enumerate() {
            if !dependency.starts_with('/') || path::resolve(dependency, "/").is_err() {
                v.add(format!("/dependencies({index})"), path::SEGMENT_RULE);
            }
        }
        v
    }

    fn validate_ports(&self, v: &mut Violations) {
        let definitions = self.port_definitions.as_deref().unwrap_or_default();
        let mut names = std::collections::BTreeSet::new();
        for (index, definition) in definitions.iter().enumerate() {
            let at = |field: &str| format!("/portDefinitions({index})/{field}");
            if !(0..=65535).contains(&definition.port) {
                v.add(at("port"), "must be between 0 and 65535");
            }
            if self.require_ports && definition.port == 0 {
                v.add(
                    at("port"),
                    "must be given (not 0) when requirePorts is true",
                );
            }
            if !matches!(definition.protocol.as_str(), "tcp" | "udp" | "udp,tcp") {
                v.add(at("protocol"), "must be tcp, udp or udp,tcp");
            }
            if let Some(name) = &definition.name {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !valid {
                    v.add(at("name"), "must be lowercase letters, digits and hyphens");
                }
                if !names.insert(name.clone()) {
                    v.add(
                        at("name"),
                        format!("'{name}' is used by another port definition"),
                    );
                }
            }
        }
        let fixed: Vec<i64> = definitions
            .iter()
            .map(|d| d.port)
            .filter(|p| *p != 0)
            .collect();
        let distinct: std::collections::BTreeSet<i64> = fixed.iter().copied().collect();
        if distinct.len() != fixed.len() {
            v.add("/portDefinitions", "ports must be unique");
        }
        let Some(container) = &self.container else {
            return;
        };
        let base = if container.get("portMappings").is_some() {
            "/container/portMappings"
        } else {
            "/container/docker/portMappings"
        };
        let mut service_ports = std::collections::BTreeSet::new();
        for (index, mapping) in port_mappings(container).iter().enumerate() {
            for field in ["containerPort", "hostPort", "servicePort"] {
                let Some(value) = mapping.get(field).filter(|v| !v.is_null()) else {
                    continue;
                };
                let port = value.as_u64().filter(|p| *p <= 65535);
                match port {
                    None => v.add(
                        format!("{base}({index})/{field}"),
                        "must be between 0 and 65535",
                    ),
                    Some(port) if field == "servicePort" && port != 0 => {
                        if !service_ports.insert(port) {
                            v.add(
                                format!("{base}({index})/servicePort"),
                                "service ports must be unique",
                            );
                        }
                    }
                    Some(_) => {}
                }
            }
        }
    }

    fn validate_readiness_checks(&self, v: &mut Violations) {
        if self.readiness_checks.len() > 1 {
            v.add("/readinessChecks", "only one readiness check is supported");
        }
        let names: Vec<&str> = self
            .port_definitions
            .iter()
            .flatten()
            .filter_map(|p| p.name.as_deref())
            .collect();
        for (index, check) in self.readiness_checks.iter().enumerate() {
            let at = |field: &str| format!("/readinessChecks({index})/{field}");
            if !matches!(check.protocol.as_str(), "HTTP" | "HTTPS") {
                v.add(at("protocol"), "must be HTTP or HTTPS");
            }
            if !names.contains(&check.port_name.as_str()) {
                v.add(
                    at("portName"),
                    format!("no port definition is named '{}'", check.port_name),
                );
            }
            if !check.path.starts_with('/') {
                v.add(at("path"), "must start with '/'");
            }
            if check.interval_seconds <= 0 {
                v.add(at("intervalSeconds"), "must be greater than 0");
            }
            if check.timeout_seconds <= 0 || check.timeout_seconds >= check.interval_seconds {
                v.add(
                    at("timeoutSeconds"),
                    "must be greater than 0 and less than intervalSeconds",
                );
            }
            if check.http_status_codes_for_ready.is_empty()
                || check
                    .http_status_codes_for_ready
                    .iter()
                    .any(|c| !(100..=599).contains(c))
            {
                v.add(
                    at("httpStatusCodesForReady"),
                    "must list HTTP status codes (100-599)",
                );
            }
        }
    }

    fn validate_health_checks(&self, v: &mut Violations) {
        // Its ports: the port mappings' with a container network, else the definitions'.
        let port_count = self.service_ports().len();
        // Checks run on the agent as the task's Mesos health check, and a task has one.
        if self.health_checks.len() > 1 {
            v.add(
                "/healthChecks",
                "at most one health check per app: agora runs it on the agent, next to the task",
            );
        }
        for (index, check) in self.health_checks.iter().enumerate() {
            let at = |field: &str| format!("/healthChecks({index})/{field}");
            if !HEALTH_PROTOCOLS.contains(&check.protocol.as_str()) {
                v.add(
                    at("protocol"),
                    format!("must be one of {}", HEALTH_PROTOCOLS.join(", ")),
                );
            }
            if check.protocol == "COMMAND" {
                if check
                    .command
                    .as_ref()
                    .and_then(|c| c.get("value"))
                    .and_then(Value::as_str)
                    .is_none()
                {
                    v.add(at("command"), "a COMMAND health check needs command.value");
                }
            } else if check.port.is_none() {
                let index_wanted = check.port_index.unwrap_or(0);
                if index_wanted < 0 || index_wanted as usize >= port_count {
                    v.add(
                        at("portIndex"),
                        format!(
                            "refers to port {index_wanted}, but the app has {port_count} port(s)"
                        ),
                    );
                }
            }
            for (field, value) in [
                ("intervalSeconds", check.interval_seconds),
                ("timeoutSeconds", check.timeout_seconds),
            ] {
                if value <= 0 {
                    v.add(at(field), "must be greater than 0");
                }
            }
            for (field, value) in [
                ("gracePeriodSeconds", check.grace_period_seconds),
                ("maxConsecutiveFailures", check.max_consecutive_failures),
            ] {
                if value < 0 {
                    v.add(at(field), "must be 0 or more");
                }
            }
        }
    }
}

/// Marathon keeps counts and seconds in 32-bit ints; larger values are refused, which also
/// keeps every deadline computed from them far from overflowing.
const MARATHON_INT_MAX: i64 = i32::MAX as i64;
/// A drain delay longer than this is a mistake (a kill would wait an hour).
const MAX_KILL_DRAIN_SECONDS: f64 = 3600.0;

impl AppDefinition {
    /// Every count and number of seconds in the definition, at its JSON path.
    fn bounded_numbers(&self) -> Vec<(String, f64)> {
        let mut numbers = vec![
            ("/instances".to_owned(), self.instances as f64),
            ("/gpus".to_owned(), self.gpus as f64),
            ("/backoffSeconds".to_owned(), self.backoff_seconds),
            ("/backoffFactor".to_owned(), self.backoff_factor),
            (
                "/maxLaunchDelaySeconds".to_owned(),
                self.max_launch_delay_seconds,
            ),
        ];
        if let Some(grace) = self.task_kill_grace_period_seconds {
            numbers.push(("/taskKillGracePeriodSeconds".to_owned(), grace as f64));
        }
        if let UnreachableStrategy::Policy {
            inactive_after_seconds,
            expunge_after_seconds,
        } = &self.unreachable_strategy
        {
            numbers.push((
                "/unreachableStrategy/inactiveAfterSeconds".to_owned(),
                *inactive_after_seconds as f64,
            ));
            numbers.push((
                "/unreachableStrategy/expungeAfterSeconds".to_owned(),
                *expunge_after_seconds as f64,
            ));
        }
        for (index, check) in self.health_checks.iter().enumerate() {
            for (field, value) in [
                ("intervalSeconds", check.interval_seconds),
                ("timeoutSeconds", check.timeout_seconds),
                ("gracePeriodSeconds", check.grace_period_seconds),
                ("maxConsecutiveFailures", check.max_consecutive_failures),
                ("delaySeconds", check.delay_seconds),
            ] {
                numbers.push((format!("/healthChecks({index})/{field}"), value as f64));
            }
        }
        for (index, check) in self.readiness_checks.iter().enumerate() {
            for (field, value) in [
                ("intervalSeconds", check.interval_seconds),
                ("timeoutSeconds", check.timeout_seconds),
            ] {
                numbers.push((format!("/readinessChecks({index})/{field}"), value as f64));
            }
        }
        numbers
    }

    /// Labels that load balancers write into their configuration (marathon-lb's
    /// `HAPROXY_*`): a newline or any control character would let a label write directives of
    /// its own, and a virtual host is a host name.
    fn validate_balancer_labels(&self, v: &mut Violations) {
        if let Some(drain) = self.labels.get(crate::mesos::KILL_DRAIN_LABEL)
            && !drain
                .trim()
                .parse::<f64>()
                .is_ok_and(|seconds| (0.0..=MAX_KILL_DRAIN_SECONDS).contains(&seconds))
        {
            v.add(
                format!("/labels/{}", crate::mesos::KILL_DRAIN_LABEL),
                format!("must be a number of seconds from 0 to {MAX_KILL_DRAIN_SECONDS}"),
            );
        }
        for (key, value) in &self.labels {
            if !key.starts_with("HAPROXY_") {
                continue;
            }
            let at = format!("/labels/{key}");
            if key.chars().chain(value.chars()).any(char::is_control) {
                v.add(
                    at,
                    "must not contain control characters: it is written into HAProxy's configuration",
                );
            } else if key.ends_with("_VHOST")
                && !value.split(',').all(|host| {
                    host.trim()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*'))
                })
            {
                v.add(at, "must be host names separated by commas");
            }
        }
    }

    /// Each env value is a string or names a declared secret, and each secret says where its
    /// value is. Whether that exists is the scheduler's to check (it has the directory).
    fn validate_secrets(&self, v: &mut Violations) {
        for (name, value) in &self.env {
            match value.get("secret") {
                _ if value.is_string() => {}
                Some(Value::String(secret)) if self.secrets.contains_key(secret) => {}
                Some(Value::String(secret)) => v.add(
                    format!("/env/{name}"),
                    format!("references an undefined secret named '{secret}'"),
                ),
                _ => v.add(
                    format!("/env/{name}"),
                    "must be a string or {\"secret\": name}",
                ),
            }
        }
        for (name, secret) in &self.secrets {
            if !secret.get("source").is_some_and(Value::is_string) {
                v.add(format!("/secrets/{name}/source"), "must be a string");
            }
        }
        let volumes = self
            .container
            .as_ref()
            .and_then(|c| c.get("volumes"))
            .and_then(Value::as_array);
        for (index, volume) in volumes.into_iter().flatten().enumerate() {
            if volume.get("secret").is_some() {
                v.add(
                    format!("/container/volumes({index})/secret"),
                    "secret volumes are not supported: give the secret to the task in env",
                );
            }
        }
    }

    fn validate_bounds(&self, v: &mut Violations) {
        for (path, value) in self.bounded_numbers() {
            if value > MARATHON_INT_MAX as f64 {
                v.add(path, format!("must be at most {MARATHON_INT_MAX}"));
            }
        }
    }
}

/// `value >= min`, false for NaN.
fn at_least(value: f64, min: f64) -> bool {
    value >= min
}

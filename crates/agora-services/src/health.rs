//! Health checks: an app's Marathon definition becomes the Mesos check the agent runs next to
//! the task, and the health the agent reports becomes Marathon's `healthCheckResults`.

use serde_json::{Value, json};

use agora_api::marathon::app::HealthCheck;

/// The Mesos `HealthCheck` for one instance, with the port resolved from its host ports.
/// Marathon ran HTTP, HTTPS and TCP checks itself, starting at once; here the agent runs them,
/// so they keep that timing (no initial delay), while `MESOS_*` and COMMAND checks keep
/// `delaySeconds`. `None` when the check names a port the instance does not have.
pub(crate) fn mesos_check(check: &HealthCheck, host_ports: &[u64]) -> Option<Value> {
    let port = || -> Option<u64> {
        match check.port {
            Some(port) => u64::try_from(port).ok(),
            None => host_ports
                .get(usize::try_from(check.port_index.unwrap_or(0)).ok()?)
                .copied(),
        }
    };
    let path = check.path.clone().unwrap_or_else(|| "/".into());
    let (kind, probe) = match check.protocol.as_str() {
        "HTTP" | "MESOS_HTTP" => ("HTTP", json!({"http": {"port": port()?, "path": path}})),
        "HTTPS" | "MESOS_HTTPS" => (
            "HTTP",
            json!({"http": {"port": port()?, "path": path, "scheme": "https"}}),
        ),
        "TCP" | "MESOS_TCP" => ("TCP", json!({"tcp": {"port": port()?}})),
        "COMMAND" => {
            let value = check.command.as_ref()?.get("value")?.as_str()?;
            (
                "COMMAND",
                json!({"command": {"value": value, "shell": true}}),
            )
        }
        _ => return None,
    };
    let delay = if check.protocol.starts_with("MESOS_") || check.protocol == "COMMAND" {
        check.delay_seconds.max(0)
    } else {
        0
    };
    let mut value = json!({
        "type": kind,
        "delay_seconds": delay,
        "interval_seconds": check.interval_seconds.max(0),
        "timeout_seconds": check.timeout_seconds.max(0),
        "grace_period_seconds": check.grace_period_seconds.max(0),
        "consecutive_failures": check.max_consecutive_failures.max(0),
    });
    if let (Some(map), Some(probe)) = (value.as_object_mut(), probe.as_object()) {
        map.extend(probe.clone());
    }
    Some(value)
}

/// One instance's health as its checks reported it. Persisted with the instance when its
/// verdict changes, so that a scheduler taking over (a restart, a failover) knows which tasks
/// were healthy before the first check reaches it, and the proxies keep routing to them.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub(crate) struct HealthRecord {
    /// `None` until the first verdict.
    pub alive: Option<bool>,
    pub consecutive_failures: u32,
    pub first_success: Option<String>,
    pub last_success: Option<String>,
    pub last_failure: Option<String>,
    pub last_failure_cause: Option<String>,
}

impl HealthRecord {
    /// Records one verdict at `now`; returns whether `alive` changed.
    pub fn record(&mut self, healthy: bool, cause: Option<&str>, now: &str) -> bool {
        let changed = self.alive != Some(healthy);
        self.alive = Some(healthy);
        if healthy {
            self.consecutive_failures = 0;
            self.first_success.get_or_insert_with(|| now.to_owned());
            self.last_success = Some(now.to_owned());
        } else {
            self.consecutive_failures += 1;
            self.last_failure = Some(now.to_owned());
            self.last_failure_cause = cause.map(str::to_owned);
        }
        changed
    }

    /// `healthCheckResults` of a task: one entry once the check has reported.
    pub fn results(&self, task_id: &str) -> Vec<Value> {
        let Some(alive) = self.alive else {
            return Vec::new();
        };
        vec![json!({
            "alive": alive,
            "consecutiveFailures": self.consecutive_failures,
            "firstSuccess": self.first_success,
            "lastSuccess": self.last_success,
            "lastFailure": self.last_failure,
            "lastFailureCause": self.last_failure_cause,
            "taskId": task_id,
            "instanceId": task_id,
        })]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: Value) -> HealthCheck {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn marathon_checks_become_mesos_checks_on_the_instance_ports() {
        let http = check(
            json!({"protocol": "HTTP", "path": "/health", "portIndex": 1,
            "intervalSeconds": 2, "timeoutSeconds": 1, "gracePeriodSeconds": 5, "maxConsecutiveFailures": 2}),
        );
        assert_eq!(
            mesos_check(&http, &[31000, 31001]),
            Some(json!({
                "type": "HTTP", "http": {"port": 31001, "path": "/health"},
                "delay_seconds": 0, "interval_seconds": 2, "timeout_seconds": 1,
                "grace_period_seconds": 5, "consecutive_failures": 2,
            }))
        );
        let https = check(json!({"protocol": "MESOS_HTTPS", "port": 8443, "delaySeconds": 3}));
        let value = mesos_check(&https, &[]).unwrap();
        assert_eq!(value["http"]["scheme"], "https");
        assert_eq!(value["http"]["port"], 8443);
        assert_eq!(value["delay_seconds"], 3);
        let tcp = check(json!({"protocol": "TCP"}));
        assert_eq!(mesos_check(&tcp, &[31000]).unwrap()["tcp"]["port"], 31000);
        assert_eq!(mesos_check(&tcp, &[]), None, "no port to check");
        let command = check(json!({"protocol": "COMMAND", "command": {"value": "true"}}));
        assert_eq!(
            mesos_check(&command, &[]).unwrap()["command"],
            json!({"value": "true", "shell": true})
        );
    }

    #[test]
    fn records_follow_marathon_counters() {
        let mut record = HealthRecord::default();
        assert!(record.results("t").is_empty(), "no verdict yet");
        assert!(record.record(true, None, "t1"));
        assert!(!record.record(true, None, "t2"));
        assert!(record.record(false, Some("refused"), "t3"));
        assert!(!record.record(false, Some("refused again"), "t4"));
        let results = record.results("t");
        assert_eq!(results[0]["alive"], false);
        assert_eq!(results[0]["consecutiveFailures"], 2);
        assert_eq!(results[0]["firstSuccess"], "t1");
        assert_eq!(results[0]["lastSuccess"], "t2");
        assert_eq!(results[0]["lastFailureCause"], "refused again");
    }
}

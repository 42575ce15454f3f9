//! Readings of the APIs' answers that every operator client makes the same way (the CLI's
//! tables and the web UI's pages): whether a task has ended, the cluster's totals and a
//! framework's dominant share from the master's state, what an app runs and whether it is
//! health-checked.

use serde_json::Value;

/// Whether a task state (`TASK_FINISHED`, ...) is one a task does not leave.
pub fn is_terminal(state: &str) -> bool {
    state
        .parse::<agora_types::TaskState>()
        .is_ok_and(agora_types::TaskState::is_terminal)
}

/// The active frameworks of a v0 master state or state summary: (name, hostname).
pub fn active_frameworks(state: &Value) -> Vec<(&str, &str)> {
    state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|framework| framework["active"].as_bool() != Some(false))
        .map(|framework| {
            (
                framework["name"].as_str().unwrap_or_default(),
                framework["hostname"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// The hostnames of the agents of a v0 master state or state summary.
pub fn agent_hostnames(state: &Value) -> Vec<&str> {
    state["slaves"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|agent| agent["hostname"].as_str())
        .collect()
}

/// cpus, mem and disk of every connected agent together, from a v0 master state.
pub fn cluster_totals(state: &Value) -> [f64; 3] {
    let mut totals = [0.0; 3];
    for agent in state["slaves"].as_array().into_iter().flatten() {
        for (total, name) in totals.iter_mut().zip(["cpus", "mem", "disk"]) {
            *total += agent["resources"][name].as_f64().unwrap_or(0.0);
        }
    }
    totals
}

/// A framework's dominant share: its largest fraction of any of cpus, mem and disk, as DRF
/// counts it (`used` is a v0 flat resource map).
pub fn dominant_share(used: &Value, totals: &[f64; 3]) -> f64 {
    ["cpus", "mem", "disk"]
        .iter()
        .zip(totals)
        .filter(|(_, total)| **total > 0.0)
        .map(|(name, total)| used[*name].as_f64().unwrap_or(0.0) / total)
        .fold(0.0, f64::max)
}

/// What a Marathon app runs: its command, else its Docker image, else its arguments.
pub fn app_runs(app: &Value) -> Option<String> {
    if let Some(cmd) = app["cmd"].as_str() {
        return Some(cmd.to_owned());
    }
    if let Some(image) = app["container"]["docker"]["image"].as_str() {
        return Some(format!("image {image}"));
    }
    let args: Vec<&str> = app["args"]
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

/// Whether a Marathon app has health checks (its readiness is then its healthy tasks).
pub fn app_is_checked(app: &Value) -> bool {
    app["healthChecks"]
        .as_array()
        .is_some_and(|checks| !checks.is_empty())
}

/// (healthy, running) tasks of a Marathon app with health checks; `None` without checks.
pub fn app_health(app: &Value) -> Option<(u64, u64)> {
    app_is_checked(app).then(|| {
        (
            app["tasksHealthy"].as_u64().unwrap_or(0),
            app["tasksRunning"].as_u64().unwrap_or(0),
        )
    })
}

/// A Marathon app's service ports: the services API's one reading of them.
pub use agora_api::marathon::container::service_ports as app_service_ports;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn readings() {
        assert!(is_terminal("TASK_FINISHED"));
        assert!(!is_terminal("TASK_RUNNING"));
        assert!(!is_terminal("nonsense"));
        let state = json!({"slaves": [{"resources": {"cpus": 4, "mem": 2048}}]});
        assert_eq!(cluster_totals(&state), [4.0, 2048.0, 0.0]);
        let share = dominant_share(&json!({"cpus": 1, "mem": 1024}), &[4.0, 2048.0, 0.0]);
        assert!((share - 0.5).abs() < 1e-9);
        assert_eq!(
            app_runs(&json!({"cmd": "sleep 1"})).as_deref(),
            Some("sleep 1")
        );
        assert_eq!(
            app_runs(&json!({"container": {"docker": {"image": "busybox"}}})).as_deref(),
            Some("image busybox")
        );
        assert_eq!(
            app_runs(&json!({"args": ["a", "b"]})).as_deref(),
            Some("a b")
        );
        assert_eq!(app_runs(&json!({})), None);
        assert!(app_is_checked(&json!({"healthChecks": [{}]})));
        assert!(!app_is_checked(&json!({"healthChecks": []})));
        let app = json!({"healthChecks": [{}], "tasksHealthy": 1, "tasksRunning": 2,
            "portDefinitions": [{"port": 10000}],
            "container": {"docker": {"portMappings": [{"servicePort": 10001}, {"servicePort": 10002}]}}});
        assert_eq!(app_health(&app), Some((1, 2)));
        assert_eq!(app_health(&json!({})), None);
        assert_eq!(
            app_service_ports(&app),
            [10001, 10002],
            "the mappings, as the server"
        );
        let host = json!({"portDefinitions": [{"port": 10000}], "container": {"portMappings": []}});
        assert_eq!(app_service_ports(&host), [10000]);
    }
}

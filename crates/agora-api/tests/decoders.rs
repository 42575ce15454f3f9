//! No decoder panics, whatever a client sends: arbitrary bytes, arbitrary JSON, and valid
//! documents with arbitrary values put in at the fields the decoders know (so the checks deep
//! inside them are reached, not only the first type error) — Marathon apps (parsed,
//! normalised, validated, merged as partial updates, turned into Mesos containers), Chronos
//! and Metronome jobs and schedules, scheduler and executor calls, the agent protocol, health
//! checks, attributes, Docker policies and the other texts a request carries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use proptest::prelude::*;
use serde_json::{Value, json};

#[path = "support/fuzz.rs"]
mod fuzz;
use fuzz::{json_value, mutated, text};

use agora_api::marathon::app::{AppDefinition, merge_partial};
use agora_api::marathon::{container, path, time};
use agora_api::{
    agent_protocol, chronos, docker_policy, executor, health, mesos, metronome, scheduler,
};

/// Field names the decoders read, so arbitrary documents hit them.
fn app_base() -> Value {
    json!({
        "id": "/team/web", "cmd": "serve", "instances": 2, "cpus": 0.5, "mem": 64,
        "env": {"A": "b", "S": {"secret": "s"}}, "secrets": {"s": {"source": "team/s"}},
        "labels": {"HAPROXY_0_VHOST": "web.example.com"},
        "constraints": [["hostname", "UNIQUE"]],
        "container": {"type": "DOCKER", "docker": {"image": "web:1", "network": "BRIDGE",
            "parameters": [{"key": "label", "value": "a=b"}],
            "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 10001}]},
            "volumes": [{"containerPath": "/d", "hostPath": "d", "mode": "RW"}]},
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
        "readinessChecks": [{"name": "r", "protocol": "HTTP", "path": "/ready"}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        "fetch": [{"uri": "http://h/a.tgz"}],
        "dependencies": ["/team/db"],
    })
}

fn chronos_base() -> Value {
    json!({
        "name": "nightly", "command": "backup", "schedule": "R/2030-01-01T00:00:00Z/PT24H",
        "epsilon": "PT60S", "owner": "ops@example.com", "cpus": 0.1, "mem": 32,
        "environmentVariables": [{"name": "A", "value": "b"}],
        "container": {"type": "DOCKER", "image": "x", "parameters": [{"key": "a", "value": "b"}]},
        "constraints": [["rack", "EQUALS", "a"]], "fetch": [{"uri": "http://h/x"}],
    })
}

fn metronome_base() -> Value {
    json!({
        "id": "team.backup",
        "run": {"cmd": "backup", "cpus": 0.1, "mem": 32, "env": {"A": "b", "S": {"secret": "s"}},
                "secrets": {"s": {"source": "team/s"}},
                "restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 60},
                "placement": {"constraints": [{"attribute": "rack", "operator": "EQ", "value": "a"}]},
                "docker": {"image": "x"}, "artifacts": [{"uri": "http://h/a"}]},
        "schedules": [{"id": "s", "cron": "0 * * * *", "timezone": "UTC"}],
    })
}

fn scheduler_call_base() -> Value {
    json!({
        "type": "ACCEPT", "framework_id": {"value": "f"},
        "accept": {"offer_ids": [{"value": "o"}], "filters": {"refuse_seconds": 5},
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
                              {"name": "ports", "type": "RANGES",
                               "ranges": {"range": [{"begin": 1, "end": 2}]}}],
                "command": {"value": "x", "environment": {"variables": [{"name": "A", "value": "b"}]}},
                "health_check": {"type": "HTTP", "http": {"port": 80, "path": "/"}}}]}}]},
    })
}

fn executor_call_base() -> Value {
    json!({
        "type": "UPDATE", "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
        "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
            "uuid": "AAAAAAAAAAAAAAAAAAAAAA==", "source": "SOURCE_EXECUTOR"}},
        "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []},
    })
}

fn app_pipeline(body: &Value) {
    let Ok(mut app) = AppDefinition::parse(body) else {
        return;
    };
    if app.normalize("/team").is_err() {
        return;
    }
    let _ = app.validate();
    let _ = app.secret_env();
    let ports = app.service_ports();
    app.set_service_ports(&ports);
    if let Some(container) = &app.container {
        let _ = container::to_mesos(container, &[31000, 31001]);
        let _ = container::requested_host_ports(container);
        let _ =
            docker_policy::DockerPolicy::default().refusals(&container::to_mesos(container, &[]));
    }
    let _ = container::to_mesos_uris(&app.fetch, &app.uris);
    let _ = serde_json::to_value(&app);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn marathon_apps(body in mutated(app_base())) {
        app_pipeline(&body);
        let merged = merge_partial(&app_base(), &body);
        app_pipeline(&merged);
    }

    #[test]
    fn marathon_apps_from_any_json(body in json_value()) {
        app_pipeline(&body);
        let _ = merge_partial(&body, &app_base());
    }

    #[test]
    fn chronos_jobs(body in prop_oneof![mutated(chronos_base()), json_value()]) {
        if let Ok(job) = chronos::Job::parse(&body) {
            let _ = job.mesos_container();
            let _ = job.all_fetches();
        }
    }

    #[test]
    fn metronome_jobs_and_schedules(body in prop_oneof![mutated(metronome_base()), json_value()]) {
        if let Ok(spec) = metronome::JobSpec::parse(&body) {
            let job = spec.to_job(true);
            let _ = job.mesos_container();
        }
        let schedule = body.get("schedules").and_then(|s| s.get(0)).unwrap_or(&body);
        let _ = metronome::ScheduleSpec::parse(schedule);
    }

    #[test]
    fn scheduler_calls(body in prop_oneof![mutated(scheduler_call_base()), json_value()]) {
        let _ = scheduler::Call::parse(body.to_string().as_bytes());
    }

    #[test]
    fn executor_calls(body in prop_oneof![mutated(executor_call_base()), json_value()]) {
        let _ = executor::Call::parse(body.to_string().as_bytes());
    }

    #[test]
    fn executor_calls_from_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = executor::Call::parse(&body);
    }

    #[test]
    fn agent_protocol_messages(body in json_value()) {
        let text = body.to_string();
        let _ = serde_json::from_str::<agent_protocol::RegisterAgent>(&text);
        let _ = serde_json::from_str::<
            agent_protocol::RegisterAgent<agent_protocol::ReportedTask>,
        >(&text);
        let _ = serde_json::from_str::<agent_protocol::AgentCommand>(&text);
        let _ = serde_json::from_str::<agent_protocol::StatusUpdate>(&text);
        let _ = serde_json::from_str::<agent_protocol::StatusUpdates>(&text);
        let _ = serde_json::from_str::<agent_protocol::ExecutorMessage>(&text);
        let _ = serde_json::from_str::<agent_protocol::ExecutorExited>(&text);
        let _ = serde_json::from_str::<agent_protocol::Ping>(&text);
        if let Ok(task) = serde_json::from_str::<mesos::TaskInfo>(&text) {
            let _ = mesos::to_resources(&task.resources);
        }
    }

    #[test]
    fn health_checks(body in prop_oneof![
        mutated(json!({"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0,
                       "command": {"value": "true"}, "intervalSeconds": 10})),
        json_value(),
    ]) {
        let _ = health::HealthCheck::parse(&body);
    }

    #[test]
    fn texts_a_request_or_flag_carries(text in "[ -~]{0,40}", other in text()) {
        for text in [text.as_str(), other.as_str()] {
            let _ = mesos::Attribute::parse_list(text);
            let _ = docker_policy::DockerPolicy::parse(text);
            let _ = time::parse_millis(text);
            let _ = path::resolve(text, "/team");
            let _ = path::resolve("x", text);
            let _ = path::parent(text);
            let _ = path::safe_name(text);
            let _ = agora_types::Resources::parse(text);
        }
    }

    #[test]
    fn docker_policies_over_any_container(container in json_value(), policy in text()) {
        let policy = docker_policy::DockerPolicy::parse(&policy).unwrap_or_default();
        let _ = policy.refusals(&container);
        let _ = container::to_mesos(&container, &[1, 2]);
        let _ = container::port_mappings(&container);
        let mut container = container;
        container::set_service_ports(&mut container, &[10000, 10001]);
    }
}

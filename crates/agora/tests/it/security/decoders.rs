//! Every route that reads a body, against the real binary, with bodies a fuzzer makes: valid
//! documents with arbitrary values put in at the fields the APIs read, arbitrary JSON and
//! arbitrary bytes. No answer may be a server error or a dropped connection (a handler that
//! panicked), and the servers serve on. The master runs with no real agent (fuzzed agent
//! registrations come and go, nothing runs on them) and the agent with no master, so nothing
//! a fuzzed app or job asks for ever runs.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, Process, temp_dir};

#[path = "../../../../agora-api/tests/support/fuzz.rs"]
mod fuzz;
use fuzz::{json_value, mutated};

fn app() -> Value {
    json!({"id": "/team/web", "cmd": "true", "instances": 1, "cpus": 0.1, "mem": 16,
        "env": {"A": "b"}, "labels": {"HAPROXY_0_VHOST": "web.example.com"},
        "constraints": [["hostname", "UNIQUE"]],
        "container": {"type": "DOCKER", "docker": {"image": "x", "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0}]},
            "volumes": [{"containerPath": "/d", "hostPath": "d", "mode": "RW"}]},
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5}})
}

fn chronos() -> Value {
    json!({"name": "nightly", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/PT24H",
        "cpus": 0.1, "mem": 16, "environmentVariables": [{"name": "A", "value": "b"}]})
}

fn metronome() -> Value {
    json!({"id": "team.backup", "run": {"cmd": "true", "cpus": 0.1, "mem": 16,
        "env": {"A": "b"}, "restart": {"policy": "NEVER"}},
        "schedules": [{"id": "s", "cron": "0 0 1 1 *"}]})
}

/// An app as a group holds it (its id relative to the group).
fn group_app(id: &str) -> Value {
    let mut app = app();
    app["id"] = json!(id);
    app
}

fn running(task: &str) -> Value {
    json!({"task_id": {"value": task}, "state": "TASK_RUNNING"})
}

/// The routes that read a body, and a valid document for each.
fn master_routes() -> Vec<(Method, &'static str, Value)> {
    let group = json!({"id": "/g", "apps": [group_app("web")],
        "groups": [{"id": "/g/s", "apps": [group_app("db")], "dependencies": ["/g/x"]}]});
    let subscribe = json!({"type": "SUBSCRIBE",
        "subscribe": {"framework_info": {"user": "nobody", "name": "f", "roles": ["*"]}}});
    let weights = json!({"type": "UPDATE_WEIGHTS",
        "update_weights": {"weight_infos": [{"role": "r", "weight": 2.0}]}});
    let quota = json!({"type": "UPDATE_QUOTA", "update_quota": {
        "quota_configs": [{"role": "r", "guarantees": {"cpus": {"value": 1}}}]}});
    let drain = json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": "a"}}});
    let register = json!({"info": {"hostname": "h", "port": 1,
        "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}}]},
        "endpoint": "127.0.0.1:1", "version": "1", "executors": [], "tasks": []});
    vec![
        (Method::POST, "/v2/apps", app()),
        (Method::PUT, "/v2/apps?force=true", json!([app()])),
        (Method::PUT, "/v2/apps/team/web?force=true", app()),
        (
            Method::PATCH,
            "/v2/apps/team/web?force=true",
            json!({"instances": 2}),
        ),
        (
            Method::POST,
            "/v2/apps/team/web/restart?force=true",
            json!({}),
        ),
        (Method::POST, "/v2/groups", group.clone()),
        (Method::PUT, "/v2/groups/g?force=true", group),
        (
            Method::PUT,
            "/v2/groups/g?force=true",
            json!({"scaleBy": 2}),
        ),
        (Method::POST, "/v2/tasks/delete", json!({"ids": ["a.b"]})),
        (Method::POST, "/scheduler/iso8601", chronos()),
        (
            Method::POST,
            "/scheduler/dependency",
            json!({"name": "child", "command": "true",
            "parents": ["nightly"]}),
        ),
        (
            Method::PUT,
            "/scheduler/job/nightly",
            json!({"environmentVariables": [{"name": "A", "value": "b"}]}),
        ),
        (Method::POST, "/v1/jobs", metronome()),
        (Method::PUT, "/v1/jobs/team.backup", metronome()),
        (
            Method::POST,
            "/v1/jobs/team.backup/schedules",
            json!({"id": "t", "cron": "0 0 1 1 *"}),
        ),
        (Method::POST, "/api/v1/scheduler", subscribe),
        (Method::POST, "/api/v1", weights),
        (Method::POST, "/api/v1", quota),
        (Method::POST, "/api/v1", drain),
        (Method::POST, "/internal/agent/subscribe", register),
        (
            Method::POST,
            "/internal/agent/ping",
            json!({"agent_id": "a"}),
        ),
        (
            Method::POST,
            "/internal/agent/status",
            json!({"agent_id": "a", "framework_id": "f", "status": running("t")}),
        ),
        (
            Method::POST,
            "/internal/agent/statuses",
            json!({"agent_id": "a",
            "updates": [{"framework_id": "f", "status": running("t")}]}),
        ),
        (
            Method::POST,
            "/internal/agent/message",
            json!({"agent_id": "a", "framework_id": "f", "executor_id": "e", "data": ""}),
        ),
        (
            Method::POST,
            "/internal/agent/executor-exited",
            json!({"agent_id": "a", "framework_id": "f", "executor_id": "e", "status": 0}),
        ),
        (
            Method::POST,
            "/master/teardown",
            json!({"frameworkId": "f"}),
        ),
        (
            Method::POST,
            "/acs/api/v1/auth/login",
            json!({"uid": "u", "password": "p"}),
        ),
    ]
}

fn agent_routes() -> Vec<(Method, &'static str, Value)> {
    vec![
        (
            Method::POST,
            "/api/v1/executor",
            json!({"type": "SUBSCRIBE",
            "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
            "subscribe": {"unacknowledged_tasks": [], "unacknowledged_updates": []}}),
        ),
        (
            Method::POST,
            "/slave(1)/api/v1/executor",
            json!({"type": "UPDATE",
            "framework_id": {"value": "f"}, "executor_id": {"value": "e"},
            "update": {"status": {"task_id": {"value": "t"}, "state": "TASK_RUNNING",
                "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}}),
        ),
        (
            Method::POST,
            "/slave(1)/tasks/t/exec",
            json!({"command": "true"}),
        ),
    ]
}

/// Sends fuzzed bodies to each route; every answer must be one a client can read and not a
/// server error.
async fn fuzz(server: &Process, routes: Vec<(Method, &'static str, Value)>, cases: usize) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut runner = TestRunner::deterministic();
    let bytes = prop::collection::vec(any::<u8>(), 0..200);
    for (method, path, base) in routes {
        let documents = prop_oneof![3 => mutated(base), 1 => json_value()];
        for case in 0..cases {
            let body = if case % 8 == 7 {
                bytes.new_tree(&mut runner).expect("bytes").current()
            } else {
                let value = documents.new_tree(&mut runner).expect("json").current();
                value.to_string().into_bytes()
            };
            let sent = client
                .request(method.clone(), format!("http://{}{path}", server.address()))
                .header("Content-Type", "application/json")
                .body(body.clone())
                .send()
                .await;
            let response = sent.unwrap_or_else(|error| {
                panic!(
                    "{method} {path} with {} dropped the connection: {error}",
                    String::from_utf8_lossy(&body)
                )
            });
            let status = response.status();
            assert!(
                !status.is_server_error() || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
                "{method} {path} answered {status} to {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let health = client
        .get(format!("http://{}/health", server.address()))
        .send()
        .await
        .expect("still serving");
    assert!(health.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_makes_a_server_fail() {
    let dir = temp_dir();
    let master = common::start_master(&dir.path().join("master"));
    // An agent whose master is nowhere: its APIs serve, nothing is ever launched on it.
    let agent = common::start_agent("127.0.0.1:1", &dir.path().join("agent"), "cpus:1;mem:256");
    fuzz(&master, master_routes(), 48).await;
    fuzz(&agent, agent_routes(), 48).await;
}

//! Every route that reads a body, against the real binary, with bodies a fuzzer makes: valid
//! documents with arbitrary values put in at the fields the APIs read, arbitrary JSON and
//! arbitrary bytes. No answer may be a server error or a dropped connection (a handler that
//! panicked), and the servers serve on. The master runs with no agent and the agent with no
//! master, so nothing a fuzzed app or job asks for ever runs.

use std::time::Duration;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, Process, temp_dir};

const KEYS: &[&str] = &[
    "id",
    "cmd",
    "args",
    "user",
    "env",
    "secrets",
    "source",
    "secret",
    "instances",
    "cpus",
    "mem",
    "disk",
    "constraints",
    "fetch",
    "uri",
    "container",
    "type",
    "docker",
    "image",
    "network",
    "privileged",
    "parameters",
    "key",
    "value",
    "volumes",
    "containerPath",
    "hostPath",
    "portMappings",
    "containerPort",
    "hostPort",
    "servicePort",
    "labels",
    "healthChecks",
    "protocol",
    "path",
    "portIndex",
    "intervalSeconds",
    "readinessChecks",
    "dependencies",
    "upgradeStrategy",
    "minimumHealthCapacity",
    "apps",
    "groups",
    "scaleBy",
    "version",
    "ids",
    "name",
    "command",
    "schedule",
    "parents",
    "environmentVariables",
    "run",
    "restart",
    "policy",
    "schedules",
    "cron",
    "timezone",
    "framework_id",
    "executor_id",
    "subscribe",
    "framework_info",
    "accept",
    "offer_ids",
    "operations",
    "launch",
    "task_infos",
    "task_id",
    "agent_id",
    "resources",
    "scalar",
    "ranges",
    "role",
    "roles",
    "weights",
    "weight",
    "quota",
    "guarantee",
    "update_weights",
    "update_quota",
    "drain_agent",
    "mark_agent_gone",
    "teardown",
    "uuid",
    "status",
    "state",
    "update",
    "statuses",
    "frameworkId",
    "uid",
    "password",
    "token",
    "generation",
    "ping",
    "data",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,12}",
        prop::sample::select(vec![
            "",
            "/",
            "..",
            "R//PT0S",
            "* * * * *",
            "DOCKER",
            "BRIDGE",
            "HTTP",
            "SUBSCRIBE",
            "ACCEPT",
            "LAUNCH",
            "UPDATE",
            "TASK_RUNNING",
            "SCALAR",
            "RANGES",
            "UPDATE_WEIGHTS",
            "UPDATE_QUOTA",
            "DRAIN_AGENT",
            "TEARDOWN",
            "GET_STATE",
            "\u{0}",
            "\n",
            "日本",
            "99999999999999999999",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![0i64, -1, 1, 3600, i32::MAX as i64, i64::MAX])
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    let key = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-z_]{0,6}",
    ];
    leaf.prop_recursive(3, 32, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..5)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// `base` with arbitrary values at up to six paths of known keys.
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let path = prop::collection::vec(prop::sample::select(KEYS).prop_map(str::to_owned), 1..4);
    prop::collection::vec((path, json_value()), 0..6).prop_map(move |edits| {
        let mut document = base.clone();
        for (path, value) in edits {
            set(&mut document, &path, value);
        }
        document
    })
}

fn set(document: &mut Value, path: &[String], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        *document = value;
        return;
    };
    let target = match document {
        Value::Array(items) if !items.is_empty() => &mut items[0],
        other => other,
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(fields) = target {
        set(
            fields.entry(first.clone()).or_insert(Value::Null),
            rest,
            value,
        );
    }
}

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

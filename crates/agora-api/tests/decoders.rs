//! No decoder panics, whatever a client sends: arbitrary bytes, arbitrary JSON, and valid
//! documents with arbitrary values put in at the fields the decoders know (so the checks deep
//! inside them are reached, not only the first type error) — Marathon apps (parsed,
//! normalised, validated, merged as partial updates, turned into Mesos containers), Chronos
//! and Metronome jobs and schedules, scheduler and executor calls, the agent protocol, health
//! checks, attributes, Docker policies and the other texts a request carries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

use proptest::prelude::*;
use serde_json::{Value, json};

use agora_api::marathon::app::{AppDefinition, merge_partial};
use agora_api::marathon::{container, path, time};
use agora_api::{
    agent_protocol, chronos, docker_policy, executor, health, mesos, metronome, scheduler,
};

/// Field names the decoders read, so arbitrary documents hit them.
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
    "gpus",
    "executor",
    "constraints",
    "uris",
    "fetch",
    "uri",
    "extract",
    "executable",
    "cache",
    "outputFile",
    "backoffSeconds",
    "backoffFactor",
    "maxLaunchDelaySeconds",
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
    "mode",
    "portMappings",
    "containerPort",
    "hostPort",
    "servicePort",
    "protocol",
    "name",
    "labels",
    "healthChecks",
    "path",
    "portIndex",
    "port",
    "gracePeriodSeconds",
    "intervalSeconds",
    "timeoutSeconds",
    "maxConsecutiveFailures",
    "delaySeconds",
    "command",
    "ignoreHttp1xx",
    "readinessChecks",
    "httpStatusCodesForReady",
    "preserveLastResponse",
    "dependencies",
    "upgradeStrategy",
    "minimumHealthCapacity",
    "maximumOverCapacity",
    "acceptedResourceRoles",
    "ipAddress",
    "version",
    "taskKillGracePeriodSeconds",
    "unreachableStrategy",
    "inactiveAfterSeconds",
    "expungeAfterSeconds",
    "killSelection",
    "portDefinitions",
    "ports",
    "requirePorts",
    "networks",
    "forcePullImage",
    "schedule",
    "scheduleTimeZone",
    "parents",
    "epsilon",
    "owner",
    "async",
    "retries",
    "disabled",
    "shell",
    "arguments",
    "environmentVariables",
    "runAsUser",
    "maxCompletionTime",
    "concurrent",
    "description",
    "run",
    "restart",
    "policy",
    "activeDeadlineSeconds",
    "placement",
    "attribute",
    "operator",
    "artifacts",
    "schedules",
    "cron",
    "timezone",
    "startingDeadlineSeconds",
    "concurrencyPolicy",
    "enabled",
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
    "range",
    "begin",
    "end",
    "set",
    "item",
    "role",
    "decline",
    "filters",
    "refuse_seconds",
    "kill",
    "shutdown",
    "acknowledge",
    "uuid",
    "reconcile",
    "tasks",
    "message",
    "data",
    "request",
    "update",
    "status",
    "state",
    "reason",
    "timestamp",
    "unacknowledged_tasks",
    "unacknowledged_updates",
    "http",
    "tcp",
    "scheme",
    "hostname",
    "port",
    "attributes",
    "running",
    "executors",
    "token",
    "statuses",
    "generation",
    "variables",
    "environment",
    "reference",
    "shell",
    "checkpoint",
    "failover_timeout",
    "principal",
    "capabilities",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(vec![
            0i64,
            -1,
            1,
            2,
            59,
            3600,
            i32::MAX as i64,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(Value::from),
        prop::sample::select(vec![1e300, -1e300, 0.5, f64::MAX, f64::MIN_POSITIVE])
            .prop_map(Value::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,16}",
        prop::sample::select(vec![
            "",
            "/",
            "..",
            "/a/../..",
            "R/2020-01-01T00:00:00Z/PT1S",
            "R//PT0S",
            "R-1//P1Y",
            "* * * * *",
            "0 0 31 2 *",
            "DOCKER",
            "MESOS",
            "BRIDGE",
            "HOST",
            "USER",
            "HTTP",
            "TCP",
            "COMMAND",
            "MESOS_HTTP",
            "SUBSCRIBE",
            "ACCEPT",
            "LAUNCH",
            "LAUNCH_GROUP",
            "UPDATE",
            "TASK_RUNNING",
            "TASK_STAGING",
            "SCALAR",
            "RANGES",
            "SET",
            "ALLOW",
            "FORBID",
            "ON_FAILURE",
            "EQ",
            "LIKE",
            "UNIQUE",
            "GROUP_BY",
            "MAX_PER",
            "CLUSTER",
            "IS",
            "host",
            "container:x",
            "privileged",
            "cap-add",
            "volume",
            "\u{0}",
            "\n",
            "日本",
            "9999999999999999999999",
            "-0",
            "1e999",
        ])
        .prop_map(str::to_owned),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number(),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// `base` with arbitrary values set at up to eight paths of known keys (each path's objects
/// made when missing; arrays entered at their first element).
fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let edit = (prop::collection::vec(key(), 1..4), json_value());
    prop::collection::vec(edit, 0..8).prop_map(move |edits| {
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

//! Strategies for fuzzing decoders, shared by agora-api's decoder tests and the binary's
//! route tests: arbitrary JSON whose keys are mostly the field names the decoders read, texts
//! the APIs give meaning to, and valid documents with arbitrary values set at known paths.

use proptest::prelude::*;
use serde_json::{Value, json};

pub const KEYS: &[&str] = &[
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
    "attributes",
    "running",
    "executors",
    "token",
    "statuses",
    "generation",
    "variables",
    "environment",
    "reference",
    "checkpoint",
    "failover_timeout",
    "principal",
    "capabilities",
    "apps",
    "groups",
    "scaleBy",
    "ids",
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
    "frameworkId",
    "uid",
    "password",
    "ping",
];

pub fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{0,8}",
    ]
}

pub fn number() -> impl Strategy<Value = Value> {
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

pub fn text() -> impl Strategy<Value = String> {
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
            "UPDATE_WEIGHTS",
            "UPDATE_QUOTA",
            "DRAIN_AGENT",
            "TEARDOWN",
            "GET_STATE",
            "99999999999999999999",
        ])
        .prop_map(str::to_owned),
    ]
}

pub fn json_value() -> impl Strategy<Value = Value> {
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
pub fn mutated(base: Value) -> impl Strategy<Value = Value> {
    let edit = (prop::collection::vec(key(), 1..4), json_value());
    prop::collection::vec(edit, 0..8).prop_map(move |edits| {
        let mut document = base.clone();
        for (path, value) in edits {
            set(&mut document, &path, value);
        }
        document
    })
}

pub fn set(document: &mut Value, path: &[String], value: Value) {
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

//! Snapshots of Marathon's shapes as agora-services renders them: `GET /v2/apps/{id}` (an app
//! with a health check, port definitions and labels, its tasks embedded as `/v2/tasks` shows
//! them) and the HAProxy bridge's `/v2/tasks` text form. Versions and task times are fixed
//! strings here, so nothing depends on the clock. Refresh with
//! `UPDATE_EXPECT=1 cargo test -p agora-services snapshot` (one process: nextest's parallel
//! processes would each rewrite this file).

use std::sync::Arc;

use expect_test::expect;
use serde_json::json;

use agora_api::marathon::app::{AppDefinition, VersionInfo};
use agora_store::MemoryStore;
use agora_types::TaskState;

use crate::core::{App, Instance, Services};
use crate::views::{self, Embed};

const VERSION: &str = "2024-05-01T10:00:00.000Z";

/// `/prod/web`: two instances wanted, one running and healthy on `host-1`, one staging on
/// `host-2`.
fn services() -> Services {
    let mut services = Services::load(
        agora_store::Registrar::spawn(Arc::new(MemoryStore::new())).expect("a registrar"),
    )
    .expect("an empty store loads");
    let body = json!({
        "id": "web",
        "cmd": "python3 -m http.server $PORT0",
        "cpus": 0.5,
        "mem": 128,
        "instances": 2,
        "portDefinitions": [{"port": 10001, "name": "http", "protocol": "tcp"}],
        "labels": {"HAPROXY_0_VHOST": "web.example.com", "team": "storefront"},
        "healthChecks": [{
            "protocol": "MESOS_HTTP",
            "path": "/health",
            "portIndex": 0,
            "gracePeriodSeconds": 30,
            "intervalSeconds": 5,
            "timeoutSeconds": 2,
            "maxConsecutiveFailures": 3
        }]
    });
    let mut definition = AppDefinition::parse(&body).expect("a valid app");
    definition.normalize("/prod").expect("a valid id");
    assert!(definition.validate().is_empty());
    definition.version = Some(VERSION.to_owned());
    services.apps.insert(
        definition.id.clone(),
        App {
            definition,
            version_info: VersionInfo {
                last_scaling_at: VERSION.to_owned(),
                last_config_change_at: VERSION.to_owned(),
            },
            versions: Vec::new(),
        },
    );

    let mut running = Instance::new(
        "prod_web.a1",
        "/prod/web",
        VERSION,
        TaskState::Running,
        "2024-05-01T10:00:01.000Z",
    );
    running.agent_id = "agent-1".to_owned();
    running.host = "host-1".to_owned();
    running.ip = Some("10.0.0.1".to_owned());
    running.ports = vec![31000];
    running.started_at = Some("2024-05-01T10:00:03.000Z".to_owned());
    running
        .health
        .record(true, None, "2024-05-01T10:00:08.000Z");
    let mut staging = Instance::new(
        "prod_web.b2",
        "/prod/web",
        VERSION,
        TaskState::Staging,
        "2024-05-01T10:00:02.000Z",
    );
    staging.agent_id = "agent-2".to_owned();
    staging.host = "host-2".to_owned();
    staging.ip = Some("10.0.0.2".to_owned());
    staging.ports = vec![31005];
    for instance in [running, staging] {
        services
            .instances
            .insert(instance.task_id.clone(), instance);
    }
    services
}

#[test]
fn an_app_with_its_tasks() {
    let services = services();
    let app = &services.apps["/prod/web"];
    // What `GET /v2/apps/prod/web` embeds by default.
    let embed = Embed {
        tasks: true,
        last_task_failure: true,
        ..Embed::default()
    };
    let text = serde_json::to_string_pretty(&json!({"app": views::app(&services, app, embed)}))
        .expect("JSON renders");
    expect![[r#"
        {
          "app": {
            "backoffFactor": 1.15,
            "backoffSeconds": 1.0,
            "cmd": "python3 -m http.server $PORT0",
            "constraints": [],
            "cpus": 0.5,
            "dependencies": [],
            "deployments": [],
            "disk": 0.0,
            "env": {},
            "executor": "",
            "fetch": [],
            "gpus": 0,
            "healthChecks": [
              {
                "delaySeconds": 15,
                "gracePeriodSeconds": 30,
                "ignoreHttp1xx": false,
                "intervalSeconds": 5,
                "maxConsecutiveFailures": 3,
                "path": "/health",
                "portIndex": 0,
                "protocol": "MESOS_HTTP",
                "timeoutSeconds": 2
              }
            ],
            "id": "/prod/web",
            "instances": 2,
            "killSelection": "YOUNGEST_FIRST",
            "labels": {
              "HAPROXY_0_VHOST": "web.example.com",
              "team": "storefront"
            },
            "maxLaunchDelaySeconds": 3600.0,
            "mem": 128.0,
            "portDefinitions": [
              {
                "name": "http",
                "port": 10001,
                "protocol": "tcp"
              }
            ],
            "ports": [
              10001
            ],
            "readinessChecks": [],
            "requirePorts": false,
            "storeUrls": [],
            "tasks": [
              {
                "appId": "/prod/web",
                "healthCheckResults": [
                  {
                    "alive": true,
                    "consecutiveFailures": 0,
                    "firstSuccess": "2024-05-01T10:00:08.000Z",
                    "instanceId": "prod_web.a1",
                    "lastFailure": null,
                    "lastFailureCause": null,
                    "lastSuccess": "2024-05-01T10:00:08.000Z",
                    "taskId": "prod_web.a1"
                  }
                ],
                "host": "host-1",
                "id": "prod_web.a1",
                "ipAddresses": [
                  {
                    "ipAddress": "10.0.0.1",
                    "protocol": "IPv4"
                  }
                ],
                "localVolumes": [],
                "ports": [
                  31000
                ],
                "servicePorts": [
                  10001
                ],
                "slaveId": "agent-1",
                "stagedAt": "2024-05-01T10:00:01.000Z",
                "startedAt": "2024-05-01T10:00:03.000Z",
                "state": "TASK_RUNNING",
                "version": "2024-05-01T10:00:00.000Z"
              },
              {
                "appId": "/prod/web",
                "healthCheckResults": [],
                "host": "host-2",
                "id": "prod_web.b2",
                "ipAddresses": [
                  {
                    "ipAddress": "10.0.0.2",
                    "protocol": "IPv4"
                  }
                ],
                "localVolumes": [],
                "ports": [
                  31005
                ],
                "servicePorts": [
                  10001
                ],
                "slaveId": "agent-2",
                "stagedAt": "2024-05-01T10:00:02.000Z",
                "startedAt": null,
                "state": "TASK_STAGING",
                "version": "2024-05-01T10:00:00.000Z"
              }
            ],
            "tasksHealthy": 1,
            "tasksRunning": 1,
            "tasksStaged": 1,
            "tasksUnhealthy": 0,
            "unreachableStrategy": {
              "expungeAfterSeconds": 0,
              "inactiveAfterSeconds": 0
            },
            "upgradeStrategy": {
              "maximumOverCapacity": 1.0,
              "minimumHealthCapacity": 1.0
            },
            "uris": [],
            "version": "2024-05-01T10:00:00.000Z",
            "versionInfo": {
              "lastConfigChangeAt": "2024-05-01T10:00:00.000Z",
              "lastScalingAt": "2024-05-01T10:00:00.000Z"
            }
          }
        }"#]]
    .assert_eq(&text);
}

#[test]
fn the_haproxy_bridge_text_lists_running_tasks_only() {
    // Tabs shown as `\t`: the format ends every field with one, trailing ones included.
    let text = views::tasks_text(&services()).replace('\t', "\\t");
    expect![[r#"
        prod_web\t10001\thost-1:31000\t
    "#]]
    .assert_eq(&text);
}

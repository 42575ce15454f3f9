//! What an app, job or task asks of the hosts it runs on: nothing past its container unless
//! `--docker-allow` says so (refused by the APIs with their error shapes, and by the agent for
//! a framework that asks directly), no line breaks into the HAProxy config through labels,
//! and no link planted in a sandbox leading a Docker volume out of it.

use std::time::Duration;

use agora_types::TaskState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{self, docker::busybox_image, temp_dir};

/// The paths of a Marathon 422's violations.
fn violation_paths(body: &str) -> Vec<String> {
    let body: Value = serde_json::from_str(body).unwrap_or_default();
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["path"].as_str())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn what_reaches_past_a_container_is_refused_by_every_api_and_the_agent() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);

    let docker = |docker: Value, volumes: Value| {
        json!({"id": "/reaching", "cmd": "sleep 60", "cpus": 0.1, "mem": 16,
               "container": {"type": "DOCKER", "docker": docker, "volumes": volumes}})
    };
    let cases = [
        (
            docker(json!({"image": "x", "privileged": true}), json!([])),
            "/container/docker/privileged",
        ),
        (
            docker(
                json!({"image": "x", "parameters": [{"key": "label", "value": "a=b"},
                                                    {"key": "pid", "value": "host"}]}),
                json!([]),
            ),
            "/container/docker/parameters(1)",
        ),
        (
            docker(
                json!({"image": "x", "parameters": [{"key": "volume", "value": "/:/host"}]}),
                json!([]),
            ),
            "/container/docker/parameters(0)",
        ),
        (
            docker(
                json!({"image": "x"}),
                json!([{"containerPath": "/sock", "hostPath": "/var/run/docker.sock", "mode": "RW"}]),
            ),
            "/container/volumes(0)/hostPath",
        ),
        (
            docker(
                json!({"image": "x"}),
                json!([{"containerPath": "/up", "hostPath": "../../..", "mode": "RW"}]),
            ),
            "/container/volumes(0)/hostPath",
        ),
        (
            json!({"id": "/proxied", "cmd": "sleep 60", "cpus": 0.1, "mem": 16,
                   "labels": {"HAPROXY_GROUP": "external",
                              "HAPROXY_0_VHOST": "a.example.com\n  server evil 10.0.0.1:80"}}),
            "/labels/HAPROXY_0_VHOST",
        ),
    ];
    for (app, path) in &cases {
        let (status, body) = up.send_json(Method::POST, "/v2/apps", app.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{app}: {body}");
        assert_eq!(violation_paths(&body), [*path], "{body}");
        // A group carrying the same app is refused alike.
        let group = json!({"id": "/team", "apps": [app]});
        let (status, body) = up.send_json(Method::POST, "/v2/groups", group).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
    let apps = up.get_text("/v2/apps").await;
    assert_eq!(
        serde_json::from_str::<Value>(&apps).unwrap()["apps"],
        json!([]),
        "nothing was created"
    );

    // Chronos and Metronome jobs: their APIs' 400 and 422.
    let (status, body) = up.send_json(Method::POST, "/scheduler/iso8601",
        json!({"name": "privileged-job", "command": "true", "schedule": "R1//PT1M",
               "container": {"type": "DOCKER", "image": "x", "parameters": [{"key": "cap-add", "value": "SYS_ADMIN"}]}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("capabilities"), "{body}");
    let (status, body) = up
        .send_json(
            Method::POST,
            "/v1/jobs",
            json!({"id": "privileged-job", "run": {"cmd": "true", "cpus": 0.1, "mem": 16,
               "docker": {"image": "x", "privileged": true}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("privileged"), "{body}");
    let jobs = up.get_text("/scheduler/jobs").await;
    assert_eq!(jobs.trim(), "[]", "no job was created");

    // A framework asking the agent directly: TASK_ERROR, as an unauthorized task.
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("direct")).await;
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = common::command_task("privileged", offer, "sleep 60", 0.1, 32.0);
        task.container =
            Some(json!({"type": "DOCKER", "docker": {"image": "x", "privileged": true}}));
        vec![task]
    })
    .await;
    let status = common::wait_for_state(
        &mut scheduler,
        "privileged",
        TaskState::Error,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(status.reason.as_deref(), Some("REASON_TASK_UNAUTHORIZED"));
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("privileged"),
        "{status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_planted_in_a_sandbox_does_not_lead_a_docker_volume_out() {
    let image = busybox_image();
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    // An archive the task fetches, with a link to the host's /etc among its files.
    let content = dir.path().join("content");
    std::fs::create_dir_all(&content).unwrap();
    std::os::unix::fs::symlink("/etc", content.join("escape")).unwrap();
    std::fs::write(content.join("readme"), "hello").unwrap();
    let archive = dir.path().join("bundle.tar.gz");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&content)
        .arg("-czf")
        .arg(&archive)
        .args(["escape", "readme"])
        .status()
        .unwrap();
    assert!(tar.success());

    let mut scheduler = common::subscribe(&up.address(), common::framework_info("volumes")).await;
    let uris = json!([{"value": format!("file://{}", archive.display()), "extract": true}]);
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let task = |id: &str, command: &str, volume: Value| {
            let mut task = common::command_task(id, offer, command, 0.1, 32.0);
            if let Some(command) = task.command.as_mut() {
                command.uris = serde_json::from_value(uris.clone()).unwrap();
            }
            task.container = Some(json!({"type": "DOCKER", "docker": {"image": image},
                                         "volumes": [volume]}));
            task
        };
        let escaping = task(
            "escaping",
            "ls /escape",
            json!({"container_path": "/escape", "host_path": "escape", "mode": "RO"}),
        );
        let staying = task(
            "staying",
            "echo written > /data/out && cat /mnt/mesos/sandbox/readme",
            json!({"container_path": "/data", "host_path": "data/set", "mode": "RW"}),
        );
        vec![escaping, staying]
    })
    .await;
    let mut seen = Vec::new();
    let failed = common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "escaping",
        TaskState::Failed,
        Duration::from_secs(60),
    )
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("volume 'escape'"), "{message}");
    common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "staying",
        TaskState::Finished,
        Duration::from_secs(60),
    )
    .await;
    let (_, sandbox) = common::executor_directory(&up.address(), "staying").await;
    let written = std::fs::read_to_string(std::path::Path::new(&sandbox).join("data/set/out"));
    assert_eq!(written.unwrap_or_default().trim(), "written");
    assert!(
        seen.iter()
            .all(|s| s.task_id.value != "escaping" || s.state != TaskState::Running),
        "the escaping task never ran: {seen:?}"
    );
}

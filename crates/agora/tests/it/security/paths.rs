//! Ids and paths: what a framework, an executor or a task names never becomes a path outside
//! its own place; sandbox files are read beneath their sandbox only; what the agent and the
//! master keep is theirs alone.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use agora_types::TaskState;
use serde_json::{Value, json};

use crate::common::{self, temp_dir};

async fn post_json(address: &str, path: &str, body: &Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        // A refused subscription's stream ends; one wrongly taken would not.
        .timeout(Duration::from_secs(20))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn get(address: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("get");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn a_framework_id_that_is_a_path_is_refused() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    for id in ["../../../../tmp/agora-escape", "/etc", "..", "a/b"] {
        let (status, body) = post_json(
            &up.address(),
            "/api/v1/scheduler",
            &json!({"type": "SUBSCRIBE", "framework_id": {"value": id},
                    "subscribe": {"framework_info": {"user": "root", "name": "x",
                                                     "id": {"value": id}}}}),
        )
        .await;
        // Mesos' way: 200 with an ERROR event, then the stream ends.
        assert_eq!(status, 200, "{id}");
        assert!(
            body.contains("\"ERROR\"") && body.contains("Framework id"),
            "{id}: {body}"
        );
    }
    let state: Value = serde_json::from_str(&up.get_text("/master/state").await).expect("json");
    let names: Vec<&Value> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| &f["name"])
        .collect();
    assert!(!names.contains(&&json!("x")), "{names:?}");
}

#[tokio::test]
async fn an_executor_speaks_only_for_its_own_tasks() {
    let dir = temp_dir();
    let up = common::start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("owner")).await;
    common::launch_on_next_offer(
        &mut scheduler,
        &[
            ("first", "sleep 60", 0.1, 32.0),
            ("second", "sleep 60", 0.1, 32.0),
        ],
    )
    .await;
    common::wait_for_all(
        &mut scheduler,
        &mut Vec::new(),
        &["first", "second"],
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let framework_id = scheduler.framework_id().expect("id");
    let escape = dir.path().join("escaped");
    let update = |task: &str| {
        json!({"type": "UPDATE", "framework_id": {"value": framework_id},
               "executor_id": {"value": "first"},
               "update": {"status": {"task_id": {"value": task}, "state": "TASK_FINISHED",
                                     "source": "SOURCE_EXECUTOR",
                                     "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}})
    };
    // The first executor itself (with its own token, read from its checkpoint) tries a task id
    // that would be a checkpoint path outside the agent's work dir, and a task of another
    // executor.
    let checkpoint = dir.path().join(format!(
        "data/agent/meta/frameworks/{framework_id}/executors/first.json"
    ));
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).expect("checkpoint"))
            .expect("json");
    let token = saved["executor"]["token"]
        .as_str()
        .expect("a token")
        .to_owned();
    let traversal = format!("../../../../../../../../../..{}", escape.display());
    for task in [traversal.as_str(), "second"] {
        let response = reqwest::Client::new()
            .post(format!("http://{}/api/v1/executor", up.address()))
            .header("Content-Type", "application/json")
            .header("Authorization", format!("Bearer {token}"))
            .body(update(task).to_string())
            .send()
            .await
            .expect("update");
        assert_eq!(response.status().as_u16(), 400, "{task}");
    }
    assert!(
        !escape.with_extension("json").exists() && !escape.exists(),
        "nothing written outside the work dir"
    );
    // The master heard nothing of it: the second task is still running (a kill of the
    // first, which its executor does own, shows the master is listening).
    scheduler.kill("first", None).await.expect("kill");
    common::wait_for_state(
        &mut scheduler,
        "first",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    let state: Value = serde_json::from_str(&up.get_text("/master/state").await).expect("json");
    let framework = common::framework(&state, "owner");
    let second = framework["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == "second")
        .cloned()
        .unwrap_or_default();
    assert_eq!(second["state"], "TASK_RUNNING", "{second}");
}

#[tokio::test]
async fn sandbox_files_are_read_beneath_the_sandbox_only() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let up = common::start_up(&data, &["--resources", "cpus:2;mem:1024"]);
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("planter")).await;
    // A task that plants links to what only root may read, and replaces its own stdout by one.
    let command = "ln -s /etc/shadow leak; ln -s ../../../../../../../../meta meta; \
                   echo started; rm stdout; ln -s /etc/shadow stdout; sleep 60";
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = common::command_task("planter", offer, command, 0.1, 32.0);
        if let Some(command) = task.command.as_mut() {
            command.user = Some("nobody".into());
        }
        vec![task]
    })
    .await;
    common::wait_for_state(
        &mut scheduler,
        "planter",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let (framework_id, directory) = common::executor_directory(&up.address(), "planter").await;
    let address = up.address();
    common::wait_until(Duration::from_secs(10), "the links planted", || async {
        let (_, listing) = get(&address, &format!("/files/browse?path={directory}")).await;
        (listing.contains("/leak") && listing.contains("/meta") && listing.contains("\"l"))
            .then_some(())
    })
    .await;
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let root_line = shadow.lines().next().unwrap_or("root:");
    let virtual_dir = format!("/frameworks/{framework_id}/executors/planter/runs/latest");
    for path in [
        format!("{directory}/leak"),
        format!("{directory}/stdout"),
        format!("{directory}/meta/agent.json"),
        format!("{virtual_dir}/leak"),
        format!("{virtual_dir}/meta/agent.json"),
    ] {
        for endpoint in ["read", "download"] {
            let (status, body) =
                get(&address, &format!("/files/{endpoint}?path={path}&offset=0")).await;
            assert_eq!(status, 403, "{endpoint} {path}: {body}");
            assert!(!body.contains(root_line), "{endpoint} {path}");
        }
    }
    // The agent's own files are in no sandbox.
    let work_dir = data.join("agent");
    for path in [
        work_dir.join("meta/agent.json"),
        data.join("registry.redb"),
        std::path::PathBuf::from("/etc/shadow"),
    ] {
        let (status, _) = get(
            &address,
            &format!("/files/read?path={}&offset=0", path.display()),
        )
        .await;
        assert_eq!(status, 404, "{}", path.display());
    }
    // Attaching to the task's stdout follows no link either: what the stream carries for
    // three seconds (it follows a running task's output until it ends).
    let attach = reqwest::Client::new()
        .get(format!(
            "http://{address}/slave(1)/tasks/planter/attach?stream=stdout&from=start"
        ))
        .send()
        .await
        .expect("attach");
    assert_eq!(attach.status(), 200);
    let mut stream = attach.bytes_stream();
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut stream).await {
            seen.extend_from_slice(&chunk);
        }
    })
    .await;
    let seen = String::from_utf8_lossy(&seen);
    assert!(!seen.contains(root_line), "{seen}");

    // What the agent and master keep is theirs.
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    };
    assert_eq!(mode(&data), 0o711, "agora up's data dir");
    assert_eq!(mode(&work_dir), 0o711, "the work dir");
    assert_eq!(mode(&work_dir.join("meta")), 0o700, "checkpoints");
    assert_eq!(mode(&work_dir.join("meta/agent.json")), 0o600);
    assert_eq!(mode(&data.join("registry.redb")), 0o600);
    assert_eq!(mode(&data.join("services.redb")), 0o600);
}

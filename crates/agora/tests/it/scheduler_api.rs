//! The scheduler API on `agora up`: Mesos' status codes, invalid launches answered with
//! TASK_ERROR/TASK_LOST/TASK_DROPPED, decline filters, kills, reconciliation, failover timeout,
//! teardown, task groups and custom executors.

use std::time::Duration;

use crate::common::*;
use agora_api::mesos::{ExecutorInfo, Id, TaskGroupInfo};
use agora_api::scheduler::{Event, LaunchGroup, Operation};
use agora_client::MasterClient;
use agora_types::TaskState;

async fn post(base: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("http://{base}/api/v1/scheduler"))
        .body(body.to_owned());
    for (key, value) in headers {
        request = request.header(*key, *value);
    }
    let response = request.send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_follow_mesos() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let base = up.address();
    let json_type = [("Content-Type", "application/json")];

    let (status, _) = post(&base, r#"{"type":"REVIVE"}"#, &[]).await;
    assert_eq!(status, 400, "missing Content-Type");
    let (status, _) = post(
        &base,
        r#"{"type":"REVIVE"}"#,
        &[("Content-Type", "application/json; charset=utf-8")],
    )
    .await;
    assert_eq!(status, 415);
    let (status, body) = post(&base, "{not json", &json_type).await;
    assert_eq!(status, 400);
    assert!(!body.is_empty());
    let (status, _) = post(&base, r#"{"type":"UNKNOWN"}"#, &json_type).await;
    assert_eq!(status, 501);
    let (status, _) = post(
        &base,
        r#"{"type":"REVIVE","framework_id":{"value":"nope"}}"#,
        &json_type,
    )
    .await;
    assert_eq!(status, 400, "unknown framework");
    let subscribe_call =
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"n"}}}"#;
    let (status, _) = post(
        &base,
        subscribe_call,
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/x-protobuf"),
        ],
    )
    .await;
    assert_eq!(status, 406);
    let (status, _) = post(
        &base,
        subscribe_call,
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", "x"),
        ],
    )
    .await;
    assert_eq!(status, 400, "SUBSCRIBE with a stream id");

    let scheduler = subscribe(&base, framework_info("codes")).await;
    let framework_id = scheduler.framework_id().expect("id");
    let revive = format!(r#"{{"type":"REVIVE","framework_id":{{"value":"{framework_id}"}}}}"#);
    let (status, _) = post(&base, &revive, &json_type).await;
    assert_eq!(status, 400, "missing Mesos-Stream-Id");
    let (status, _) = post(
        &base,
        &revive,
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 400, "wrong Mesos-Stream-Id");
    let accept_without_payload =
        format!(r#"{{"type":"ACCEPT","framework_id":{{"value":"{framework_id}"}}}}"#);
    let (status, body) = post(&base, &accept_without_payload, &json_type).await;
    assert_eq!(
        (status, body.as_str()),
        (
            400,
            "Failed to validate scheduler::Call: Expecting 'accept' to be present"
        )
    );

    // A disconnected framework's calls are refused with 403.
    scheduler.disconnect();
    wait_until(Duration::from_secs(5), "framework disconnected", || async {
        let state = MasterClient::new(&base)
            .get_json("/master/state")
            .await
            .ok()?;
        (framework(&state, "codes")["connected"] == false).then_some(())
    })
    .await;
    let (status, _) = post(
        &base,
        &revive,
        &[
            ("Content-Type", "application/json"),
            ("Mesos-Stream-Id", "any"),
        ],
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_launches_never_crash_anything() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("invalid")).await;
    let offer = next_offers(&mut scheduler, Duration::from_secs(10))
        .await
        .remove(0);

    let too_big = command_task("too-big", &offer, "true", 64.0, 32.0);
    let mut malformed = command_task("malformed", &offer, "true", 0.1, 32.0);
    malformed.resources[0].scalar = None;
    let mut bad_id = command_task("a/b", &offer, "true", 0.1, 32.0);
    bad_id.name = "bad id".into();
    let mut no_command = command_task("no-command", &offer, "true", 0.1, 32.0);
    no_command.command = None;
    let good = command_task("good", &offer, "sleep 600", 0.1, 32.0);
    let duplicate = command_task("good", &offer, "true", 0.1, 32.0);
    scheduler
        .launch(
            vec![offer.id.clone()],
            vec![too_big, malformed, bad_id, no_command, good, duplicate],
            Some(0.0),
        )
        .await
        .expect("accept");
    let mut errors = std::collections::HashMap::new();
    let mut good_running = false;
    while errors.len() < 5 || !good_running {
        if let Event::Update { update } = next_event(&mut scheduler, Duration::from_secs(10)).await
        {
            let status = update.status;
            if status.state == TaskState::Error {
                assert_eq!(status.reason.as_deref(), Some("REASON_TASK_INVALID"));
                assert_eq!(status.source.as_deref(), Some("SOURCE_MASTER"));
                errors.insert(
                    status.task_id.value.clone(),
                    status.message.clone().unwrap_or_default(),
                );
            } else if status.task_id.value == "good" && status.state == TaskState::Running {
                good_running = true;
            }
        }
    }
    assert!(errors["too-big"].contains("more resources"), "{errors:?}");
    assert!(
        errors["malformed"].contains("invalid resources"),
        "{errors:?}"
    );
    assert!(errors["good"].contains("duplicate"), "{errors:?}");
    assert!(errors.contains_key("a/b") && errors.contains_key("no-command"));

    // A launch on an offer that is gone: TASK_LOST for a framework that is not partition-aware.
    let stale = command_task("stale", &offer, "true", 0.1, 32.0);
    scheduler
        .launch(vec![offer.id.clone()], vec![stale], None)
        .await
        .expect("accept");
    let lost = wait_for_state(
        &mut scheduler,
        "stale",
        TaskState::Lost,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(lost.reason.as_deref(), Some("REASON_INVALID_OFFERS"));

    // The master is still healthy and the good task still runs.
    let state = MasterClient::new(&up.address())
        .get_json("/master/state")
        .await
        .expect("state");
    assert_eq!(
        framework(&state, "invalid")["tasks"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_aware_frameworks_get_dropped_and_unknown() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut info = framework_info("aware");
    info.capabilities = vec![agora_api::mesos::Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut scheduler = subscribe(&up.address(), info).await;
    let offer = next_offers(&mut scheduler, Duration::from_secs(10))
        .await
        .remove(0);
    scheduler
        .decline(vec![offer.id.clone()], Some(0.0))
        .await
        .expect("decline");
    let task = command_task("late", &offer, "true", 0.1, 32.0);
    scheduler
        .launch(vec![offer.id.clone()], vec![task], None)
        .await
        .expect("accept");
    let dropped = wait_for_state(
        &mut scheduler,
        "late",
        TaskState::Dropped,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(dropped.reason.as_deref(), Some("REASON_INVALID_OFFERS"));

    scheduler
        .reconcile(vec![("ghost".into(), None)])
        .await
        .expect("reconcile");
    let unknown = wait_for_state(
        &mut scheduler,
        "ghost",
        TaskState::Unknown,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(unknown.reason.as_deref(), Some("REASON_RECONCILIATION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decline_filters_and_revive() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("decliner")).await;
    let offer = next_offers(&mut scheduler, Duration::from_secs(10))
        .await
        .remove(0);
    scheduler
        .decline(vec![offer.id.clone()], Some(3600.0))
        .await
        .expect("decline");
    // Filtered for an hour: no offer in the next 1.5 s (several allocation rounds).
    let quiet = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            if let Some(Event::Offers { .. }) = scheduler.next_event().await {
                return;
            }
        }
    })
    .await;
    assert!(
        quiet.is_err(),
        "a declined agent was re-offered despite its filter"
    );
    scheduler.revive(vec![]).await.expect("revive");
    let again = next_offers(&mut scheduler, Duration::from_secs(5)).await;
    assert_eq!(again[0].agent_id, offer.agent_id);

    // A short filter expires by itself.
    scheduler
        .decline(vec![again[0].id.clone()], Some(1.0))
        .await
        .expect("decline");
    let started = std::time::Instant::now();
    next_offers(&mut scheduler, Duration::from_secs(5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "re-offered after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_reconcile_and_failover_timeout() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut info = framework_info("failing-over");
    info.failover_timeout = 1.0;
    let mut scheduler = subscribe(&up.address(), info.clone()).await;
    let framework_id = scheduler.framework_id().expect("id");
    launch_on_next_offer(
        &mut scheduler,
        &[
            ("short", "exit 3", 0.1, 32.0),
            ("long-1", "exec sleep 600", 0.1, 32.0),
            ("long-2", "exec sleep 600", 0.1, 32.0),
        ],
    )
    .await;
    let mut seen = Vec::new();
    let failed = wait_for_status(
        &mut scheduler,
        &mut seen,
        "short",
        TaskState::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        failed.message.as_deref(),
        Some("Command exited with status 3")
    );
    assert!(failed.uuid.is_some());
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["long-1", "long-2"],
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;

    scheduler
        .kill("long-1", Some(Duration::from_millis(500)))
        .await
        .expect("kill");
    let killed = wait_for_state(
        &mut scheduler,
        "long-1",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    assert!(killed.message.is_some());

    // Implicit reconciliation answers for every task the master still holds.
    scheduler.reconcile(vec![]).await.expect("reconcile");
    let reconciled = wait_for_state(
        &mut scheduler,
        "long-2",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(reconciled.reason.as_deref(), Some("REASON_RECONCILIATION"));
    assert!(reconciled.uuid.is_none());

    // Re-subscribing within the failover timeout keeps the task...
    scheduler.disconnect();
    let client = MasterClient::new(&up.address());
    wait_until(
        Duration::from_secs(10),
        "the master to see the framework gone",
        || async {
            let state = client.get_json("/master/state").await.ok()?;
            (framework(&state, "failing-over")["connected"] == false).then_some(())
        },
    )
    .await;
    info.id = Some(Id::new(framework_id.clone()));
    let mut scheduler = subscribe(&up.address(), info).await;
    scheduler
        .reconcile(vec![("long-2".into(), None)])
        .await
        .expect("reconcile");
    wait_for_state(
        &mut scheduler,
        "long-2",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;

    // ...staying away longer than it kills everything.
    scheduler.disconnect();
    let client = MasterClient::new(&up.address());
    let state = wait_until(
        Duration::from_secs(10),
        "framework removed after its failover timeout",
        || async {
            let state = client.get_json("/master/state").await.ok()?;
            (state["completed_frameworks"].as_array()?.len() == 1).then_some(state)
        },
    )
    .await;
    assert_eq!(
        state["completed_frameworks"][0]["id"],
        framework_id.as_str()
    );
    wait_until(
        Duration::from_secs(10),
        "the agent killed the framework's task",
        || async {
            let agent = client.get_json("/slave(1)/state").await.ok()?;
            agent["frameworks"].as_array()?.is_empty().then_some(())
        },
    )
    .await;

    // A removed framework cannot come back.
    let mut info = framework_info("failing-over");
    info.id = Some(Id::new(framework_id));
    let refused = agora_client::Scheduler::subscribe(&up.address(), info, Default::default()).await;
    assert!(refused.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_groups_and_custom_executors() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:4;mem:2048"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("groups")).await;
    let offer = next_offers(&mut scheduler, Duration::from_secs(10))
        .await
        .remove(0);

    // A task group under the built-in default executor: each task has its own sandbox dir.
    let executor = ExecutorInfo {
        kind: Some("DEFAULT".into()),
        executor_id: Id::new("group-executor"),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..ExecutorInfo::default()
    };
    let group = vec![
        command_task("g1", &offer, "echo one > out.txt", 0.1, 32.0),
        command_task("g2", &offer, "echo two; exit 0", 0.1, 32.0),
    ];
    // A custom executor: the built-in executor binary run as a framework's own executor,
    // shipped into the sandbox by the fetcher as frameworks ship theirs (a path of the
    // machine's /tmp is not visible in the task's private /tmp).
    let mut custom = command_task("custom-task", &offer, "echo custom", 0.1, 32.0);
    custom.executor = Some(ExecutorInfo {
        executor_id: Id::new("my-executor"),
        command: Some(agora_api::mesos::CommandInfo {
            value: Some("./agora-executor executor".into()),
            uris: vec![serde_json::json!({
                "value": format!("file://{BIN}"),
                "output_file": "agora-executor",
                "executable": true,
                "cache": true,
            })],
            ..Default::default()
        }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..ExecutorInfo::default()
    });
    let custom_command = custom.command.take();
    let operations = vec![
        Operation {
            kind: "LAUNCH_GROUP".into(),
            launch_group: Some(LaunchGroup {
                executor,
                task_group: TaskGroupInfo { tasks: group },
            }),
            ..Operation::default()
        },
        Operation {
            kind: "LAUNCH".into(),
            launch: Some(agora_api::scheduler::Launch {
                task_infos: vec![custom],
            }),
            ..Operation::default()
        },
    ];
    scheduler
        .accept(vec![offer.id.clone()], operations, None)
        .await
        .expect("accept");
    let mut seen = Vec::new();
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["g1", "g2"],
        TaskState::Finished,
        Duration::from_secs(15),
    )
    .await;
    // The custom executor (agora's own binary, started from the ExecutorInfo's command)
    // subscribed and received the task; it runs only tasks that carry a command, so it reports
    // this one failed, and that report travels back like any executor update.
    let custom_status = wait_for_status(
        &mut scheduler,
        &mut seen,
        "custom-task",
        TaskState::Failed,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(custom_status.state, TaskState::Failed, "{custom_status:?}");
    assert_eq!(
        custom_status.message.as_deref(),
        Some("Task has no command")
    );
    drop(custom_command);

    let agent = MasterClient::new(&up.address())
        .get_json("/slave(1)/state")
        .await
        .expect("state");
    let text = agent.to_string();
    assert!(
        text.contains("group-executor") && text.contains("my-executor"),
        "{text}"
    );
    // Tasks complete once their (asynchronous) acknowledgements have arrived.
    let completed = wait_until(Duration::from_secs(10), "tasks completed", || async {
        let master_state = MasterClient::new(&up.address())
            .get_json("/master/state")
            .await
            .ok()?;
        let completed = framework(&master_state, "groups")["completed_tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has = |id: &str| completed.iter().any(|t| t["id"] == id);
        (has("custom-task") && has("g1")).then_some(completed)
    })
    .await;
    let custom_task = completed
        .iter()
        .find(|t| t["id"] == "custom-task")
        .expect("custom task completed");
    assert_eq!(custom_task["executor_id"], "my-executor");
    let g1 = completed
        .iter()
        .find(|t| t["id"] == "g1")
        .expect("g1 completed");
    assert_eq!(g1["executor_id"], "group-executor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suppress_shutdown_and_foreign_offers() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:4;mem:2048"],
    );
    let mut first = subscribe(&up.address(), framework_info("first")).await;
    let offer = next_offers(&mut first, Duration::from_secs(10))
        .await
        .remove(0);

    // Another framework cannot use this offer: its tasks are lost, the offer stays valid.
    let mut second = subscribe(&up.address(), framework_info("second")).await;
    second
        .launch(
            vec![offer.id.clone()],
            vec![command_task("thief", &offer, "true", 0.1, 32.0)],
            None,
        )
        .await
        .expect("accept");
    let lost = wait_for_state(
        &mut second,
        "thief",
        TaskState::Lost,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(lost.reason.as_deref(), Some("REASON_INVALID_OFFERS"));
    assert!(
        lost.message
            .unwrap_or_default()
            .contains("invalid framework")
    );
    second.suppress(vec![]).await.expect("suppress");

    // A task group under the default executor, then SHUTDOWN of that executor kills its tasks.
    let executor = ExecutorInfo {
        kind: Some("DEFAULT".into()),
        executor_id: Id::new("shut-me"),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..ExecutorInfo::default()
    };
    let group = vec![
        command_task("s1", &offer, "exec sleep 600", 0.1, 32.0),
        command_task("s2", &offer, "exec sleep 600", 0.1, 32.0),
    ];
    let operation = Operation {
        kind: "LAUNCH_GROUP".into(),
        launch_group: Some(LaunchGroup {
            executor,
            task_group: TaskGroupInfo { tasks: group },
        }),
        ..Operation::default()
    };
    first
        .accept(vec![offer.id.clone()], vec![operation], None)
        .await
        .expect("accept");
    let mut seen = Vec::new();
    wait_for_all(
        &mut first,
        &mut seen,
        &["s1", "s2"],
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    first
        .shutdown("shut-me", &offer.agent_id.value)
        .await
        .expect("shutdown");
    wait_for_all(
        &mut first,
        &mut seen,
        &["s1", "s2"],
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;

    // The suppressed framework got no offers all this time, and gets them once revived.
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_offers(&mut second, Duration::from_secs(5)),
    )
    .await;
    assert!(
        quiet.is_err(),
        "a suppressed framework was offered resources"
    );
    // The first framework holds what it was re-offered; once it is gone, revive brings offers.
    first.teardown().await.expect("teardown");
    second.revive(vec![]).await.expect("revive");
    next_offers(&mut second, Duration::from_secs(5)).await;
}

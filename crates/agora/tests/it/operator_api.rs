//! The operator API and the v0 endpoints on `agora up`: state queries, weights and quota,
//! maintenance calls, and the SUBSCRIBE event stream.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::*;
use agora_api::recordio;
use agora_client::MasterClient;
use agora_types::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_weights_quota_and_maintenance() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024;cpus(analytics):1",
            "--attributes",
            "rack:a;zone:1",
        ],
    );
    let client = MasterClient::new(&up.address());
    wait_for_agents(&client, 1).await;

    assert_eq!(
        client
            .operator(&json!({"type": "GET_HEALTH"}))
            .await
            .expect("health")["get_health"]["healthy"],
        true
    );
    let version = client
        .operator(&json!({"type": "GET_VERSION"}))
        .await
        .expect("version");
    assert_eq!(version["get_version"]["version_info"]["version"], "1.11.0");
    let agents = client
        .operator(&json!({"type": "GET_AGENTS"}))
        .await
        .expect("agents");
    let agent = &agents["get_agents"]["agents"][0];
    let agent_id = agent["agent_info"]["id"]["value"]
        .as_str()
        .expect("agent id")
        .to_owned();
    assert_eq!(agent["active"], true);
    let resources = agent["total_resources"].as_array().expect("resources");
    assert!(
        resources.iter().any(|r| r["name"] == "cpus"
            && r["role"] == "analytics"
            && r["scalar"]["value"] == 1.0),
        "{resources:?}"
    );

    // v0 shapes.
    let state = client.get_json("/master/state").await.expect("state");
    // MasterInfo.ip as Mesos encodes it (the address's bytes in network order, read as a
    // little-endian integer), wherever MasterInfo appears.
    const LOOPBACK_AS_MESOS_IP: u32 = 16_777_343; // 127.0.0.1
    assert_eq!(state["leader_info"]["ip"], LOOPBACK_AS_MESOS_IP);
    assert_eq!(state["leader_info"]["address"]["ip"], "127.0.0.1");
    let master = client
        .operator(&json!({"type": "GET_MASTER"}))
        .await
        .expect("master");
    assert_eq!(
        master["get_master"]["master_info"]["ip"],
        LOOPBACK_AS_MESOS_IP
    );
    assert_eq!(state["slaves"][0]["resources"]["cpus"], 3.0);
    assert_eq!(
        state["slaves"][0]["reserved_resources"]["analytics"]["cpus"],
        1.0
    );
    assert_eq!(
        state["slaves"][0]["attributes"],
        json!({"rack": "a", "zone": 1.0})
    );
    assert_eq!(
        client.get_json("/state.json").await.expect("alias")["id"],
        state["id"]
    );
    let slaves = client
        .get_json(&format!("/master/slaves?slave_id={agent_id}"))
        .await
        .expect("slaves");
    assert_eq!(slaves["slaves"].as_array().map(Vec::len), Some(1));
    let summary = client
        .get_json("/master/state-summary")
        .await
        .expect("summary");
    assert_eq!(summary["slaves"][0]["TASK_RUNNING"], 0);

    // Weights: invalid ones are refused whole, valid ones change GET_WEIGHTS and GET_ROLES.
    let bad = client.operator(&json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": -1.0}]}})).await;
    assert!(
        matches!(
            bad,
            Err(agora_client::ClientError::Status { status: 400, .. })
        ),
        "{bad:?}"
    );
    client
        .operator(&json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 3.0}, {"role": "analytics", "weight": 1.0}]}}))
        .await
        .expect("weights");
    let weights = client
        .operator(&json!({"type": "GET_WEIGHTS"}))
        .await
        .expect("weights");
    assert_eq!(
        weights["get_weights"]["weight_infos"],
        json!([{"role": "analytics", "weight": 1.0}, {"role": "web", "weight": 3.0}])
    );
    let roles = client
        .operator(&json!({"type": "GET_ROLES"}))
        .await
        .expect("roles");
    let web = roles["get_roles"]["roles"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == "web").cloned())
        .expect("web");
    assert_eq!(web["weight"], 3.0);

    // Quota.
    let bad_quota = client
        .operator(&json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "web", "guarantees": {"cpus": {"value": 2}}, "limits": {"cpus": {"value": 1}}}]}}))
        .await;
    assert!(
        matches!(
            bad_quota,
            Err(agora_client::ClientError::Status { status: 400, .. })
        ),
        "{bad_quota:?}"
    );
    client
        .operator(&json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [{"role": "web", "guarantees": {"cpus": {"value": 1}}, "limits": {"cpus": {"value": 2}}}]}}))
        .await
        .expect("quota");
    let quota = client
        .operator(&json!({"type": "GET_QUOTA"}))
        .await
        .expect("quota");
    assert_eq!(quota["get_quota"]["status"]["configs"][0]["role"], "web");
    assert_eq!(
        quota["get_quota"]["status"]["configs"][0]["limits"]["cpus"]["value"],
        2.0
    );

    // Maintenance: a deactivated agent is offered to nobody; reactivated, it is again.
    let mut scheduler = subscribe(&up.address(), framework_info("maintenance")).await;
    let offer = next_offers(&mut scheduler, Duration::from_secs(10))
        .await
        .remove(0);
    client.operator(&json!({"type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": agent_id}}})).await.expect("deactivate");
    loop {
        if let agora_api::scheduler::Event::Rescind { rescind } =
            next_event(&mut scheduler, Duration::from_secs(5)).await
        {
            assert_eq!(rescind.offer_id, offer.id);
            break;
        }
    }
    let quiet = tokio::time::timeout(
        Duration::from_millis(800),
        next_offers(&mut scheduler, Duration::from_secs(5)),
    )
    .await;
    assert!(quiet.is_err(), "a deactivated agent was offered");
    assert_eq!(
        client.get_json("/master/state").await.expect("state")["deactivated_slaves"],
        1
    );
    client.operator(&json!({"type": "REACTIVATE_AGENT", "reactivate_agent": {"agent_id": {"value": agent_id}}})).await.expect("reactivate");
    next_offers(&mut scheduler, Duration::from_secs(5)).await;

    // Unknown calls are reported, not ignored.
    let unknown = client.operator(&json!({"type": "GET_NOTHING"})).await;
    assert!(
        matches!(
            unknown,
            Err(agora_client::ClientError::Status { status: 501, .. })
        ),
        "{unknown:?}"
    );
    // Redirect and metrics in both shapes.
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = redirect
        .get(format!("http://{}/master/redirect", up.address()))
        .send()
        .await
        .expect("redirect");
    assert_eq!(response.status().as_u16(), 307);
    assert!(
        response.headers()["location"]
            .to_str()
            .unwrap_or("")
            .starts_with("//")
    );
    let text = up.get_text("/metrics").await;
    assert!(
        text.contains("# TYPE agora_master_cpus_total gauge\nagora_master_cpus_total 3"),
        "{text}"
    );
    // Last: a framework that holds every offer it gets.
    let mut events = recordio_events(
        &format!("http://{}/api/v1/scheduler", up.address()),
        "application/json",
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"root","name":"ip"}}}"#,
    )
    .await;
    let subscribed = next_of(&mut events, "SUBSCRIBED").await;
    assert_eq!(
        subscribed["subscribed"]["master_info"]["ip"],
        LOOPBACK_AS_MESOS_IP
    );
}

/// Reads RecordIO operator events into a channel.
async fn operator_events(address: &str) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    recordio_events(
        &format!("http://{address}/api/v1"),
        "application/recordio",
        r#"{"type":"SUBSCRIBE"}"#,
    )
    .await
}

/// Reads the RecordIO events that a SUBSCRIBE `call` posted to `url` answers into a channel.
async fn recordio_events(
    url: &str,
    accept: &str,
    call: &'static str,
) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let response = reqwest::Client::new()
        .post(url)
        .header("Content-Type", "application/json")
        .header("Accept", accept)
        .body(call)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(response.status(), 200, "{url}");
    if accept == "application/recordio" {
        assert_eq!(response.headers()["content-type"], "application/recordio");
    }
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut decoder = recordio::Decoder::new();
        while let Some(Ok(chunk)) = body.next().await {
            decoder.feed(&chunk);
            while let Ok(Some(record)) = decoder.next_record() {
                if let Ok(event) = serde_json::from_slice(&record)
                    && sender.send(event).is_err()
                {
                    return;
                }
            }
        }
    });
    receiver
}

async fn next_of(events: &mut tokio::sync::mpsc::UnboundedReceiver<Value>, kind: &str) -> Value {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("operator event in time")
            .expect("stream open");
        if event["type"] == kind {
            return event;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_event_stream_follows_the_cluster() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let client = MasterClient::new(&up.address());
    wait_for_agents(&client, 1).await;
    let mut events = operator_events(&up.address()).await;
    let subscribed = next_of(&mut events, "SUBSCRIBED").await;
    assert_eq!(
        subscribed["subscribed"]["get_state"]["get_agents"]["agents"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let mut scheduler = subscribe(&up.address(), framework_info("watched")).await;
    // `agora up` also runs the services and jobs schedulers' frameworks, which may register
    // meanwhile.
    let added = loop {
        let added = next_of(&mut events, "FRAMEWORK_ADDED").await;
        let name = &added["framework_added"]["framework"]["framework_info"]["name"];
        if name != "marathon" && name != "chronos" {
            break added;
        }
    };
    assert_eq!(
        added["framework_added"]["framework"]["framework_info"]["name"],
        "watched"
    );
    launch_on_next_offer(&mut scheduler, &[("seen", "sleep 0.2", 0.1, 32.0)]).await;
    let task_added = next_of(&mut events, "TASK_ADDED").await;
    assert_eq!(task_added["task_added"]["task"]["task_id"]["value"], "seen");
    assert_eq!(task_added["task_added"]["task"]["state"], "TASK_STAGING");
    let mut states = Vec::new();
    while states.last().map(String::as_str) != Some("TASK_FINISHED") {
        let updated = next_of(&mut events, "TASK_UPDATED").await;
        states.push(
            updated["task_updated"]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(states, ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]);
    wait_for_state(
        &mut scheduler,
        "seen",
        TaskState::Finished,
        Duration::from_secs(10),
    )
    .await;
    // The task completes once the (implicit, asynchronous) acknowledgement has arrived.
    wait_until(Duration::from_secs(10), "the task completed", || async {
        let tasks = client.operator(&json!({"type": "GET_TASKS"})).await.ok()?;
        (tasks["get_tasks"]["completed_tasks"][0]["task_id"]["value"] == "seen").then_some(())
    })
    .await;
    scheduler.teardown().await.expect("teardown");
    let removed = next_of(&mut events, "FRAMEWORK_REMOVED").await;
    assert_eq!(
        removed["framework_removed"]["framework_info"]["name"],
        "watched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_an_agent_kills_its_tasks_and_can_mark_it_gone() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let client = MasterClient::new(&up.address());
    let mut scheduler = subscribe(&up.address(), framework_info("drained")).await;
    let offer = launch_on_next_offer(
        &mut scheduler,
        &[
            ("d1", "exec sleep 600", 0.1, 32.0),
            ("d2", "exec sleep 600", 0.1, 32.0),
        ],
    )
    .await;
    let mut seen = Vec::new();
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["d1", "d2"],
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let tasks = client
        .get_json("/master/tasks?order=asc")
        .await
        .expect("tasks");
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(2));
    let frameworks = client
        .get_json("/master/frameworks")
        .await
        .expect("frameworks");
    assert_eq!(framework(&frameworks, "drained")["name"], "drained");

    client
        .operator(&json!({"type": "DRAIN_AGENT", "drain_agent": {"agent_id": {"value": offer.agent_id.value}, "max_grace_period": {"nanoseconds": 100_000_000}}}))
        .await
        .expect("drain");
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["d1", "d2"],
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    let state = client.get_json("/master/state").await.expect("state");
    assert_eq!(
        state["deactivated_slaves"], 1,
        "a draining agent gets no offers"
    );
    let drain = state["slaves"][0]["drain_info"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        drain == "DRAINING" || drain == "DRAINED",
        "drain state {drain:?}"
    );
    wait_until(Duration::from_secs(5), "drain completes", || async {
        let state = client.get_json("/master/state").await.ok()?;
        (state["slaves"][0]["drain_info"]["state"] == "DRAINED").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_an_agent_gone_is_permanent() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let work_dir = path(&dir, "agent");
    let mut agent = start_agent(&master.address(), &work_dir, "cpus:2;mem:1024");
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 1).await;
    let mut info = framework_info("aware");
    info.capabilities = vec![agora_api::mesos::Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut scheduler = subscribe(&master.address(), info).await;
    let offer =
        launch_on_next_offer(&mut scheduler, &[("victim", "exec sleep 600", 0.1, 32.0)]).await;
    wait_for_state(
        &mut scheduler,
        "victim",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;

    client
        .operator(&json!({"type": "MARK_AGENT_GONE", "mark_agent_gone": {"agent_id": {"value": offer.agent_id.value}}}))
        .await
        .expect("mark gone");
    let gone = wait_for_state(
        &mut scheduler,
        "victim",
        TaskState::GoneByOperator,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(gone.source.as_deref(), Some("SOURCE_MASTER"));
    // The agent is told to stop, and a restart over the same work dir is refused.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stopped = loop {
        if let Ok(Some(status)) = agent.child.try_wait() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the gone agent kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        stopped.success(),
        "the agent stops cleanly when told to: {stopped:?}"
    );
    kill_leftovers(&work_dir);
    let state = client.get_json("/master/state").await.expect("state");
    assert_eq!(state["slaves"].as_array().map(Vec::len), Some(0));
}

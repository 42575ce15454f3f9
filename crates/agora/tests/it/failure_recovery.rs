//! Failures and restarts: an agent killed with SIGKILL has its tasks reported lost within the
//! configured timeout; an agent restarted over its work dir keeps its running tasks; a master
//! restarted over its data dir gets the framework and its tasks back.

use std::time::Duration;

use crate::common::*;
use agora_api::scheduler::Event;
use agora_client::MasterClient;
use agora_types::TaskState;

/// Launches one long-running task on the first offer and waits until it runs.
async fn launch_sleeper(
    scheduler: &mut agora_client::Scheduler,
    task_id: &str,
) -> agora_api::mesos::TaskStatus {
    let offers = next_offers(scheduler, Duration::from_secs(20)).await;
    let offer = &offers[0];
    let task = command_task(task_id, offer, "echo started; exec sleep 600", 0.5, 32.0);
    scheduler
        .launch(vec![offer.id.clone()], vec![task], None)
        .await
        .expect("launch");
    for other in &offers[1..] {
        scheduler
            .decline(vec![other.id.clone()], Some(60.0))
            .await
            .expect("decline");
    }
    wait_for_state(
        scheduler,
        task_id,
        TaskState::Running,
        Duration::from_secs(20),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_tasks_become_lost_within_the_timeout() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let mut agent = start_agent(&master.address(), &path(&dir, "agent"), "cpus:2;mem:1024");
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 1).await;
    let mut scheduler = subscribe(&master.address(), framework_info("lost")).await;
    let running = launch_sleeper(&mut scheduler, "doomed").await;
    let agent_id = running.agent_id.clone().expect("agent id").value;

    let killed_at = std::time::Instant::now();
    agent.kill9();
    // Ping timeout 300 ms × 4 = 1.2 s, checked every 75 ms.
    let mut saw_failure = false;
    let lost = loop {
        match next_event(&mut scheduler, Duration::from_secs(10)).await {
            Event::Update { update } if update.status.task_id.value == "doomed" => {
                break update.status;
            }
            Event::Failure { failure } => {
                assert_eq!(failure.agent_id.map(|id| id.value), Some(agent_id.clone()));
                saw_failure = true;
            }
            _ => {}
        }
    };
    let elapsed = killed_at.elapsed();
    assert_eq!(lost.state, TaskState::Lost, "{lost:?}");
    assert_eq!(lost.reason.as_deref(), Some("REASON_AGENT_REMOVED"));
    assert!(
        lost.uuid.is_none(),
        "master-generated updates carry no uuid"
    );
    assert!(
        elapsed >= Duration::from_millis(1000),
        "lost too early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_secs(5),
        "lost too late: {elapsed:?}"
    );
    if !saw_failure {
        loop {
            if let Event::Failure { failure } =
                next_event(&mut scheduler, Duration::from_secs(5)).await
            {
                assert_eq!(failure.agent_id.map(|id| id.value), Some(agent_id.clone()));
                break;
            }
        }
    }
    let metrics = client.get_json("/metrics/snapshot").await.expect("metrics");
    assert_eq!(metrics["master/slaves_unreachable"], 1.0);
    assert_eq!(metrics["master/tasks_lost"], 1.0);
    // The sleeper survived its agent (no pid namespace yet): clean it up via the agent's checkpoint.
    kill_leftovers(&path(&dir, "agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_agent_keeps_its_running_tasks() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let work_dir = path(&dir, "agent");
    let mut agent = start_agent(&master.address(), &work_dir, "cpus:2;mem:1024");
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 1).await;
    let mut scheduler = subscribe(&master.address(), framework_info("survivor")).await;
    let running = launch_sleeper(&mut scheduler, "keeper").await;
    let agent_id = running.agent_id.expect("agent id").value;

    let executor_pids = checkpointed_executor_pids(&work_dir);
    assert_eq!(executor_pids.len(), 1);
    let port = agent.port;
    agent.kill9();
    let agent = start_agent_on(&master.address(), &work_dir, "cpus:2;mem:1024", port);
    // Same agent id, task still running on it, before the master's timeout could call it lost.
    let state = wait_until(
        Duration::from_secs(10),
        "agent re-registered with its task",
        || async {
            let state = MasterClient::new(&agent.address())
                .get_json("/slave(1)/state")
                .await
                .ok()?;
            let executors = state["frameworks"][0]["executors"].as_array()?.clone();
            (executors.len() == 1 && executors[0]["tasks"][0]["state"] == "TASK_RUNNING")
                .then_some(state)
        },
    )
    .await;
    assert_eq!(state["id"], agent_id.as_str());
    let metrics = client.get_json("/metrics/snapshot").await.expect("metrics");
    assert_eq!(metrics["master/tasks_running"], 1.0);
    assert_eq!(metrics["master/tasks_lost"], 0.0);

    // The re-adopted executor still obeys: a kill reaches the task through the new agent process.
    scheduler.kill("keeper", None).await.expect("kill");
    let killed = wait_for_state(
        &mut scheduler,
        "keeper",
        TaskState::Killed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        killed.agent_id.as_ref().map(|id| id.value.clone()),
        Some(agent_id)
    );
    assert_eq!(
        killed.source.as_deref(),
        Some("SOURCE_EXECUTOR"),
        "the executor re-subscribed and killed it: {killed:?}"
    );
    wait_until(Duration::from_secs(10), "executor process gone", || async {
        (!process_alive(executor_pids[0])).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_master_gets_the_framework_and_its_tasks_back() {
    let dir = temp_dir();
    let data_dir = path(&dir, "master");
    let mut master = start_master(&data_dir);
    let port = master.port;
    let agent_work = path(&dir, "agent");
    let _agent = start_agent(&master.address(), &agent_work, "cpus:2;mem:1024");
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 1).await;
    let mut scheduler = subscribe(&master.address(), framework_info("phoenix")).await;
    let framework_id = scheduler.framework_id().expect("framework id");
    let weights = serde_json::json!({"type": "UPDATE_WEIGHTS", "update_weights": {"weight_infos": [{"role": "web", "weight": 2.5}]}});
    client.operator(&weights).await.expect("weights");
    launch_sleeper(&mut scheduler, "steady").await;

    master.kill9();
    let master = start_master_on(&data_dir, port);
    let client = MasterClient::new(&master.address());

    // The scheduler SDK re-subscribes with its framework id by itself.
    loop {
        if let Event::Subscribed { subscribed } =
            next_event(&mut scheduler, Duration::from_secs(20)).await
        {
            assert_eq!(subscribed.framework_id.value, framework_id);
            break;
        }
    }
    // The agent re-registers with the running task; reconciliation tells the framework.
    wait_for_agents(&client, 1).await;
    scheduler.reconcile(vec![]).await.expect("reconcile");
    // An update whose acknowledgement died with the old master may be delivered again first.
    let status = loop {
        if let Event::Update { update } = next_event(&mut scheduler, Duration::from_secs(10)).await
            && update.status.task_id.value == "steady"
        {
            assert_eq!(update.status.state, TaskState::Running);
            if update.status.reason.as_deref() == Some("REASON_RECONCILIATION") {
                break update.status;
            }
            assert!(
                update.status.uuid.is_some(),
                "only a retried agent update may come first"
            );
        }
    };
    assert!(status.uuid.is_none());
    let state = client.get_json("/master/state").await.expect("state");
    assert_eq!(framework(&state, "phoenix")["id"], framework_id.as_str());
    let weights = client
        .operator(&serde_json::json!({"type": "GET_WEIGHTS"}))
        .await
        .expect("weights");
    assert_eq!(
        weights["get_weights"]["weight_infos"],
        serde_json::json!([{"role": "web", "weight": 2.5}])
    );
    assert_eq!(
        framework(&state, "phoenix")["tasks"][0]["state"],
        "TASK_RUNNING"
    );

    scheduler.kill("steady", None).await.expect("kill");
    wait_for_state(
        &mut scheduler,
        "steady",
        TaskState::Killed,
        Duration::from_secs(20),
    )
    .await;
}

/// Freezes a process (a network partition, as far as the master can tell) and thaws it.
fn signal(process: &Process, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(process.pid()), signal).expect("signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_agent_is_reconciled() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let work_dir = path(&dir, "agent");
    let agent = start_agent(&master.address(), &work_dir, "cpus:2;mem:1024");
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 1).await;

    // One framework that knows about partitions, one that does not.
    let mut aware_info = framework_info("aware");
    aware_info.capabilities = vec![agora_api::mesos::Capability {
        kind: "PARTITION_AWARE".into(),
    }];
    let mut aware = subscribe(&master.address(), aware_info).await;
    let mut plain = subscribe(&master.address(), framework_info("plain")).await;
    launch_sleeper(&mut aware, "patient").await;
    launch_sleeper(&mut plain, "impatient").await;
    let pids_before = checkpointed_executor_pids(&work_dir);
    assert_eq!(pids_before.len(), 2);

    signal(&agent, nix::sys::signal::Signal::SIGSTOP);
    let unreachable = wait_for_state(
        &mut aware,
        "patient",
        TaskState::Unreachable,
        Duration::from_secs(10),
    )
    .await;
    assert!(unreachable.unreachable_time.is_some());
    wait_for_state(
        &mut plain,
        "impatient",
        TaskState::Lost,
        Duration::from_secs(10),
    )
    .await;
    aware
        .reconcile(vec![("patient".into(), None)])
        .await
        .expect("reconcile");
    wait_for_state(
        &mut aware,
        "patient",
        TaskState::Unreachable,
        Duration::from_secs(10),
    )
    .await;

    signal(&agent, nix::sys::signal::Signal::SIGCONT);
    // The partition-aware framework sees its task running again; the other framework's task,
    // already reported lost, is killed on the agent.
    let back = wait_for_state(
        &mut aware,
        "patient",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(back.source.as_deref(), Some("SOURCE_MASTER"));
    wait_until(
        Duration::from_secs(10),
        "the lost task's executor killed",
        || async {
            (pids_before
                .iter()
                .filter(|pid| process_alive(**pid))
                .count()
                == 1)
                .then_some(())
        },
    )
    .await;
    let state = client.get_json("/master/state").await.expect("state");
    assert_eq!(state["unreachable_slaves"], 0);
    assert_eq!(state["activated_slaves"], 1);
    aware.kill("patient", None).await.expect("kill");
    wait_for_state(
        &mut aware,
        "patient",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
}

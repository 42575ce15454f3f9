//! One master and three agents as separate processes: a framework launches 100 command tasks
//! across them through the SDK, sees every state change, and reads a task's stdout from its
//! agent's sandbox.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::common::*;
use agora_api::scheduler::Event;
use agora_client::MasterClient;
use agora_types::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tasks_across_three_agents() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let agents: Vec<Process> = (0..3)
        .map(|i| {
            start_agent(
                &master.address(),
                &path(&dir, &format!("agent{i}")),
                "cpus:4;mem:4096;ports:[31000-31100]",
            )
        })
        .collect();
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 3).await;

    let mut scheduler = subscribe(&master.address(), framework_info("hundred")).await;
    let mut launched = 0;
    let mut agents_used: HashSet<String> = HashSet::new();
    let mut states: HashMap<String, Vec<TaskState>> = HashMap::new();
    let mut uuids: HashSet<String> = HashSet::new();
    let mut task_agents: HashMap<String, String> = HashMap::new();
    let mut finished = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while finished < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "only {finished} tasks finished"
        );
        match next_event(&mut scheduler, Duration::from_secs(30)).await {
            Event::Offers { offers } => {
                for offer in offers.offers {
                    let mut tasks = Vec::new();
                    let cpus: f64 = offer
                        .resources
                        .iter()
                        .filter(|r| r.name == "cpus")
                        .filter_map(|r| r.scalar.as_ref())
                        .map(|s| s.value)
                        .sum();
                    // 0.5 cpu each: at most 8 at a time per agent, so all three agents are needed.
                    while launched < 100 && (tasks.len() as f64 + 1.0) * 0.5 <= cpus {
                        let id = format!("task-{launched}");
                        tasks.push(command_task(
                            &id,
                            &offer,
                            &format!("echo hello from {id}; sleep 0.2"),
                            0.5,
                            32.0,
                        ));
                        launched += 1;
                    }
                    if !tasks.is_empty() {
                        agents_used.insert(offer.agent_id.value.clone());
                    }
                    scheduler
                        .launch(vec![offer.id.clone()], tasks, Some(0.1))
                        .await
                        .expect("accept");
                }
            }
            Event::Update { update } => {
                let status = update.status;
                // Delivery is at least once: an update retried before its acknowledgement
                // arrived comes again with the same uuid.
                if !uuids.insert(status.uuid.clone().unwrap_or_default()) {
                    continue;
                }
                if let Some(agent) = &status.agent_id {
                    task_agents.insert(status.task_id.value.clone(), agent.value.clone());
                }
                states
                    .entry(status.task_id.value.clone())
                    .or_default()
                    .push(status.state);
                if status.state == TaskState::Finished {
                    finished += 1;
                }
                assert!(
                    !matches!(
                        status.state,
                        TaskState::Failed | TaskState::Lost | TaskState::Error
                    ),
                    "task {} ended {:?}: {:?}",
                    status.task_id.value,
                    status.state,
                    status.message
                );
            }
            _ => {}
        }
    }
    assert_eq!(agents_used.len(), 3, "tasks should spread over all agents");
    for (task, seen) in &states {
        assert_eq!(
            seen,
            &[TaskState::Starting, TaskState::Running, TaskState::Finished],
            "states of {task}"
        );
    }

    // The stdout of a task, through the agent's /files API, using the directory from its state.
    let task_agent = task_agents
        .get("task-7")
        .cloned()
        .expect("task-7 ran somewhere");
    let mut agent_address = None;
    for agent in &agents {
        let state = MasterClient::new(&agent.address())
            .get_json("/slave(1)/state")
            .await
            .expect("state");
        if state["id"] == task_agent.as_str() {
            agent_address = Some(agent.address());
        }
    }
    let stdout = task_stdout(&agent_address.expect("the agent of task-7"), "task-7").await;
    assert!(
        stdout.contains("hello from task-7"),
        "stdout was {stdout:?}"
    );

    // The master's view: 100 finished tasks, nothing left running, resources all free again.
    let metrics = client.get_json("/metrics/snapshot").await.expect("metrics");
    assert_eq!(metrics["master/tasks_finished"], 100.0);
    assert_eq!(metrics["master/tasks_running"], 0.0);
    assert_eq!(metrics["master/cpus_used"], 0.0);
    assert_eq!(metrics["master/slaves_active"], 3.0);
    scheduler.teardown().await.expect("teardown");
}

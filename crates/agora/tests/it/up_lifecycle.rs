//! `agora up`: a whole cluster in one process, ready at once, and stopped cleanly — its tasks
//! included — by SIGTERM; started again over the same data dir it is the same agent.

use std::time::{Duration, Instant};

use crate::common::*;
use agora_client::MasterClient;
use agora_types::TaskState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_tasks_and_stops_them_on_sigterm() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let started = Instant::now();
    let mut up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let client = MasterClient::new(&up.address());
    wait_until(Duration::from_secs(5), "health", || async {
        reqwest::get(format!("http://{}/health", up.address()))
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    wait_for_agents(&client, 1).await;
    let ready = started.elapsed();
    assert!(ready < Duration::from_secs(5), "ready after {ready:?}");
    let first_agent =
        client.get_json("/master/state").await.expect("state")["slaves"][0]["id"].clone();

    let mut scheduler = subscribe(&up.address(), framework_info("up")).await;
    launch_on_next_offer(
        &mut scheduler,
        &[("sleeper", "sleep 6131 & sleep 6132; wait", 0.1, 32.0)],
    )
    .await;
    wait_for_state(
        &mut scheduler,
        "sleeper",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let executor_pids = checkpointed_executor_pids(&data_dir.join("agent"));
    assert_eq!(executor_pids.len(), 1);
    // Processes running one of the task's (uniquely numbered) sleeps.
    let task_processes = || -> usize {
        std::fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
                    .filter(|cmdline| {
                        cmdline == b"sleep\x006131\x00" || cmdline == b"sleep\x006132\x00"
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until(
        Duration::from_secs(5),
        "both of the task's processes",
        || async { (task_processes() == 2).then_some(()) },
    )
    .await;

    up.terminate();
    let status = up.child.try_wait().expect("wait").expect("exited");
    assert!(status.success(), "agora up exit status {status:?}");
    assert!(
        !process_alive(executor_pids[0]),
        "executor survived agora up"
    );
    assert_eq!(
        task_processes(),
        0,
        "a process of the task survived agora up"
    );

    // Same data dir: the same agent id comes back.
    let up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let client = MasterClient::new(&up.address());
    wait_for_agents(&client, 1).await;
    let state = client.get_json("/master/state").await.expect("state");
    assert_eq!(state["slaves"][0]["id"], first_agent);
}

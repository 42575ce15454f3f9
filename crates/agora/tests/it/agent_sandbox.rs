//! The agent's guarantees: sandbox files served and confined to the work dir, status updates
//! held in order and retried until acknowledged, executors that never subscribe destroyed.

use std::time::{Duration, Instant};

use crate::common::*;
use agora_api::mesos::{CommandInfo, ExecutorInfo, Id};
use agora_api::scheduler::Event;
use agora_client::{MasterClient, Scheduler, SchedulerOptions};
use agora_types::TaskState;

async fn get(address: &str, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("get");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_files_are_served_and_confined() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("files")).await;
    let command = "printf 'line one\\nline two\\n'; ln -s /etc/hostname escape; mkdir sub; echo hidden > sub/f";
    launch_on_next_offer(&mut scheduler, &[("writer", command, 0.1, 32.0)]).await;
    wait_for_state(
        &mut scheduler,
        "writer",
        TaskState::Finished,
        Duration::from_secs(10),
    )
    .await;

    let (framework_id, directory) = executor_directory(&up.address(), "writer").await;

    let (status, body) = get(
        &up.address(),
        &format!("/files/read?path={directory}/stdout&offset=0"),
    )
    .await;
    assert_eq!(status, 200);
    let read: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(read["data"], "line one\nline two\n");
    assert_eq!(read["offset"], 0);
    let (_, body) = get(
        &up.address(),
        &format!("/files/read?path={directory}/stdout&offset=5&length=3"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json")["data"],
        "one"
    );
    let (_, body) = get(
        &up.address(),
        &format!("/files/read?path={directory}/stdout&offset=-1"),
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("json"),
        serde_json::json!({"offset": 18, "data": ""})
    );
    // The virtual path Mesos tools use.
    let virtual_path = format!("/frameworks/{framework_id}/executors/writer/runs/latest/stdout");
    let (status, body) = get(
        &up.address(),
        &format!("/files/read?path={virtual_path}&offset=0"),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = get(&up.address(), &format!("/files/browse?path={directory}")).await;
    assert_eq!(status, 200);
    let listing: serde_json::Value = serde_json::from_str(&body).expect("json");
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("/stdout")) && names.iter().any(|n| n.ends_with("/sub")),
        "{names:?}"
    );
    let (status, body) = get(
        &up.address(),
        &format!("/files/download?path={directory}/sub/f"),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "hidden\n"));

    // Nothing outside the sandboxes: not attached (404), or leaving one (403).
    let (status, _) = get(&up.address(), "/files/read?path=/etc/hostname&offset=0").await;
    assert_eq!(status, 404, "not in a sandbox");
    for path in [
        format!(
            "{directory}/../../../../../../../../../../../../../../../../../../../../etc/hostname"
        ),
        format!("{directory}/escape"),
    ] {
        let (status, _) = get(&up.address(), &format!("/files/read?path={path}&offset=0")).await;
        assert_eq!(status, 403, "{path} must be refused");
    }
    let (status, _) = get(&up.address(), "/files/read?offset=0").await;
    assert_eq!(status, 400);
    let (status, _) = get(
        &up.address(),
        &format!("/files/read?path={directory}/nope&offset=0"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = get(
        &up.address(),
        &format!("/files/read?path={directory}/stdout&offset=-5"),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_are_retried_in_order_until_acknowledged() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--status-update-retry",
            "300ms",
        ],
    );
    let options = SchedulerOptions {
        implicit_acknowledgements: false,
        ..SchedulerOptions::default()
    };
    let mut scheduler = Scheduler::subscribe(&up.address(), framework_info("acks"), options)
        .await
        .expect("subscribe");
    launch_on_next_offer(&mut scheduler, &[("quick", "true", 0.1, 32.0)]).await;

    let next_update = async |scheduler: &mut Scheduler| loop {
        if let Event::Update { update } = next_event(scheduler, Duration::from_secs(10)).await {
            return (update.status, Instant::now());
        }
    };
    let (starting, first_seen) = next_update(&mut scheduler).await;
    assert_eq!(starting.state, TaskState::Starting);
    // Not acknowledged: the same update again after the retry interval, nothing newer first.
    let (again, seen_again) = next_update(&mut scheduler).await;
    assert_eq!(
        (again.state, &again.uuid),
        (TaskState::Starting, &starting.uuid)
    );
    assert!(
        seen_again - first_seen >= Duration::from_millis(250),
        "retried after {:?}",
        seen_again - first_seen
    );
    scheduler.acknowledge(&again).await.expect("ack");
    let (running, _) = next_update(&mut scheduler).await;
    assert_eq!(running.state, TaskState::Running);
    scheduler.acknowledge(&running).await.expect("ack");
    let (finished, _) = next_update(&mut scheduler).await;
    assert_eq!(finished.state, TaskState::Finished);
    // Until the terminal update is acknowledged the master keeps the task.
    let state = MasterClient::new(&up.address())
        .get_json("/master/state")
        .await
        .expect("state");
    assert_eq!(
        framework(&state, "acks")["tasks"][0]["state"],
        "TASK_FINISHED"
    );
    scheduler.acknowledge(&finished).await.expect("ack");
    wait_until(
        Duration::from_secs(5),
        "task completed after its ack",
        || async {
            let state = MasterClient::new(&up.address())
                .get_json("/master/state")
                .await
                .ok()?;
            (framework(&state, "acks")["completed_tasks"][0]["id"] == "quick").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_executor_that_never_subscribes_fails_its_task() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--executor-registration-timeout",
            "1s",
        ],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("silent")).await;
    launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = command_task("stuck", offer, "true", 0.1, 32.0);
        task.command = None;
        task.executor = Some(ExecutorInfo {
            executor_id: Id::new("mute"),
            command: Some(CommandInfo {
                value: Some("exec sleep 60".into()),
                ..CommandInfo::default()
            }),
            ..ExecutorInfo::default()
        });
        vec![task]
    })
    .await;
    // The task's failure and the executor's end (FAILURE) travel separately: either may come
    // first.
    let (mut failed, mut failure) = (None, None);
    while failed.is_none() || failure.is_none() {
        match next_event(&mut scheduler, Duration::from_secs(10)).await {
            Event::Update { update }
                if update.status.task_id.value == "stuck"
                    && update.status.state == TaskState::Failed =>
            {
                failed = Some(update.status);
            }
            Event::Failure { failure: event } => failure = Some(event),
            _ => {}
        }
    }
    assert_eq!(
        failed.and_then(|f| f.reason).as_deref(),
        Some("REASON_EXECUTOR_REGISTRATION_TIMEOUT")
    );
    assert_eq!(
        failure
            .and_then(|f| f.executor_id)
            .map(|id| id.value)
            .as_deref(),
        Some("mute")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_run_with_shell_or_argv_and_their_environment() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("env")).await;
    launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut shell = command_task(
            "shell",
            offer,
            "echo \"$GREETING from $MESOS_TASK_ID\"; pwd; echo sandbox=$MESOS_SANDBOX",
            0.1,
            32.0,
        );
        if let Some(command) = shell.command.as_mut() {
            command.environment = Some(agora_api::mesos::Environment {
                variables: vec![agora_api::mesos::EnvironmentVariable {
                    name: "GREETING".into(),
                    value: Some("hi".into()),
                    ..Default::default()
                }],
            });
        }
        let mut argv = command_task("argv", offer, "/bin/echo", 0.1, 32.0);
        if let Some(command) = argv.command.as_mut() {
            command.shell = false;
            command.arguments = vec!["echo".into(), "two  spaces; not a shell".into()];
        }
        vec![shell, argv]
    })
    .await;
    let mut seen = Vec::new();
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["shell", "argv"],
        TaskState::Finished,
        Duration::from_secs(10),
    )
    .await;

    let shell_out = task_stdout(&up.address(), "shell").await;
    let lines: Vec<&str> = shell_out.lines().collect();
    assert_eq!(lines[0], "hi from shell", "{shell_out}");
    assert!(
        lines[1].contains("/executors/shell/runs/"),
        "cwd is the sandbox: {shell_out}"
    );
    assert_eq!(lines[2], format!("sandbox={}", lines[1]));
    assert_eq!(
        task_stdout(&up.address(), "argv").await,
        "two  spaces; not a shell\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_escalates_to_sigkill_after_the_grace_period() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("stubborn")).await;
    launch_on_next_offer(
        &mut scheduler,
        &[(
            "stubborn",
            "trap 'echo got TERM' TERM; echo trapping; while true; do sleep 0.05; done",
            0.1,
            32.0,
        )],
    )
    .await;
    wait_for_state(
        &mut scheduler,
        "stubborn",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    // The trap is set once the shell says so (RUNNING comes as the shell starts).
    assert_eq!(first_stdout(&up.address(), "stubborn").await, "trapping\n");

    let asked = Instant::now();
    scheduler
        .kill("stubborn", Some(Duration::from_millis(800)))
        .await
        .expect("kill");
    let killed = wait_for_state(
        &mut scheduler,
        "stubborn",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "SIGKILL came before the grace period ended: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(killed.message.unwrap_or_default().contains("SIGKILL"));
    assert!(
        task_stdout(&up.address(), "stubborn")
            .await
            .contains("got TERM"),
        "the task saw SIGTERM first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_follows_a_tasks_output_from_where_it_is() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v2/apps",
            serde_json::json!({"id": "/talker", "cpus": 0.1, "mem": 32,
                "cmd": "i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line-$i; sleep 0.1; done; sleep 600"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let task = up.task_id_containing("talker").await;
    let stdout = || async {
        let state: serde_json::Value =
            serde_json::from_str(&up.get_text("/slave(1)/state").await).ok()?;
        let directory = state["frameworks"]
            .as_array()?
            .iter()
            .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
            .find(|e| e["id"] == task.as_str())?["directory"]
            .as_str()?
            .to_owned();
        std::fs::read_to_string(format!("{directory}/stdout")).ok()
    };
    wait_until(Duration::from_secs(20), "its first lines", || async {
        stdout().await.filter(|text| text.contains("line-3\n"))
    })
    .await;
    // From the end: what comes after the attach, in order, and nothing from before.
    let attached = reqwest::get(format!(
        "http://{}/slave(1)/tasks/{task}/attach?from=end",
        up.address()
    ))
    .await
    .expect("attach");
    assert_eq!(attached.status(), 200);
    let mut stream = attached.bytes_stream();
    let lines = |seen: &[u8]| -> Vec<u32> {
        String::from_utf8_lossy(seen)
            .lines()
            .filter_map(|line| line.strip_prefix("line-")?.parse().ok())
            .collect()
    };
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), async {
        while lines(&seen).len() < 5 {
            match futures_util::StreamExt::next(&mut stream).await {
                Some(Ok(chunk)) => seen.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    let numbers = lines(&seen);
    let seen = String::from_utf8_lossy(&seen);
    assert!(numbers.len() >= 5, "it follows the output: {seen:?}");
    assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{seen:?}");
    assert!(
        !numbers.contains(&1),
        "nothing from before the attach: {seen:?}"
    );
}

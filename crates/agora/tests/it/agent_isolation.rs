//! Isolation of the process containerizer with cgroups (root is available here and in CI): a
//! task past its memory ends TASK_FAILED with the memory reason; a daemon a task leaves behind,
//! ignoring SIGTERM outside the task's process group, dies with the task's container; the
//! container's limits and usage are reported in `/monitor/statistics`.

use std::time::Duration;

use crate::common::*;
use agora_types::TaskState;

async fn json(address: &str, path: &str) -> serde_json::Value {
    reqwest::get(format!("http://{address}{path}"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_past_its_memory_fails_with_the_memory_reason() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let state = json(&up.address(), "/slave(1)/state").await;
    assert_eq!(
        state["isolation"]["cgroups"], true,
        "{}",
        state["isolation"]
    );
    // This machine mounts a cgroup2 tree beside the v1 controllers: the agent has its
    // favordynmods on, so moves into cgroups do not wait for the kernel.
    let detail = state["isolation"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("fast moves into cgroups"), "{detail}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let cgroup2 = mounts
        .lines()
        .find(|line| line.split(' ').nth(2) == Some("cgroup2"))
        .expect("a cgroup2 mount");
    assert!(cgroup2.contains("favordynmods"), "{cgroup2}");

    let mut scheduler = subscribe(&up.address(), framework_info("hungry")).await;
    // 32 MB asked for; 300 MB touched.
    let command = "exec python3 -c \"x = b'a' * (300 << 20); import time; time.sleep(30)\"";
    launch_on_next_offer(&mut scheduler, &[("hungry", command, 0.1, 32.0)]).await;
    let status = wait_for_state(
        &mut scheduler,
        "hungry",
        TaskState::Failed,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        status.reason.as_deref(),
        Some("REASON_CONTAINER_LIMITATION_MEMORY"),
        "{status:?}"
    );
    let message = status.message.unwrap_or_default();
    assert!(message.contains("Memory limit exceeded"), "{message}");
}

/// Processes whose command line has `marker` in it.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(marker)
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_killed_task_survives_and_limits_are_reported() {
    let dir = temp_dir();
    // Containers made when their task comes (the other tests take warm ones).
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024", "--warm-containers", "0"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("daemons")).await;
    let marker = format!("{}", 40_000 + std::process::id() % 20_000);
    // A daemon in a session of its own, deaf to SIGTERM, and the task's own process.
    let command =
        format!("setsid sh -c 'trap \"\" TERM; exec sleep {marker}1' & exec sleep {marker}2");
    launch_on_next_offer(&mut scheduler, &[("daemon", &command, 0.5, 64.0)]).await;
    wait_for_state(
        &mut scheduler,
        "daemon",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    wait_until(Duration::from_secs(5), "both processes", || async {
        (processes_with(&format!("sleep {marker}")).len() == 2).then_some(())
    })
    .await;

    let statistics = json(&up.address(), "/slave(1)/monitor/statistics").await;
    let entry = statistics
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executor_id"] == "daemon")
        .cloned()
        .unwrap_or_else(|| panic!("no statistics for the task: {statistics}"));
    let stats = &entry["statistics"];
    // The task's resources plus the command executor's own share (0.1 cpus, 32 MB).
    assert_eq!(stats["mem_limit_bytes"], (64 + 32) << 20, "{stats}");
    assert!(
        (stats["cpus_limit"].as_f64().unwrap() - 0.6).abs() < 1e-9,
        "{stats}"
    );
    assert!(stats["processes"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["mem_rss_bytes"].as_u64().unwrap() > 0, "{stats}");
    // The same by container, and as Prometheus families.
    let containers = json(&up.address(), "/containers").await;
    let container = containers
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["executor_id"] == "daemon")
        .cloned()
        .unwrap_or_else(|| panic!("no container for the task: {containers}"));
    assert!(
        container["status"]["executor_pid"].as_i64().unwrap() > 0,
        "{container}"
    );
    assert_eq!(container["statistics"]["mem_limit_bytes"], (64 + 32) << 20);
    let metrics = up.get_text("/metrics").await;
    let limit_line = metrics
        .lines()
        .find(|l| {
            l.starts_with("agora_container_memory_limit_bytes{")
                && l.contains("executor_id=\"daemon\"")
        })
        .unwrap_or_else(|| panic!("no container metrics: {metrics}"));
    assert!(
        limit_line.ends_with(&format!(" {}", (64 + 32) << 20)),
        "{limit_line}"
    );
    assert!(
        metrics.contains("agora_slave_isolation_cgroups 1")
            || metrics.contains("# TYPE agora_container_processes gauge"),
        "{metrics}"
    );

    scheduler.kill("daemon", None).await.expect("kill");
    wait_for_state(
        &mut scheduler,
        "daemon",
        TaskState::Killed,
        Duration::from_secs(20),
    )
    .await;
    wait_until(
        Duration::from_secs(10),
        "no process of the task left",
        || async {
            processes_with(&format!("sleep {marker}"))
                .is_empty()
                .then_some(())
        },
    )
    .await;
}

/// A container's cpu seconds so far, from the agent's statistics.
async fn cpu_seconds(address: &str, executor: &str) -> f64 {
    let statistics = json(address, "/slave(1)/monitor/statistics").await;
    let entry = statistics
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["executor_id"] == executor)
        .cloned()
        .unwrap_or_else(|| panic!("no statistics for {executor}: {statistics}"));
    let stats = &entry["statistics"];
    stats["cpus_user_time_secs"].as_f64().unwrap()
        + stats["cpus_system_time_secs"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_shares_follow_the_cpus_asked_for() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("busy")).await;
    // Both on the same core, so they compete and the shares decide.
    let busy = "exec taskset -c 0 sh -c 'while :; do :; done'";
    launch_on_next_offer(
        &mut scheduler,
        &[("small", busy, 0.25, 32.0), ("large", busy, 0.75, 32.0)],
    )
    .await;
    let mut seen = Vec::new();
    wait_for_all(
        &mut scheduler,
        &mut seen,
        &["small", "large"],
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (small0, large0) = (
        cpu_seconds(&up.address(), "small").await,
        cpu_seconds(&up.address(), "large").await,
    );
    // Over enough CPU time between them, not a fixed window: on a loaded machine the core
    // they share gives them less, and the ratio of little is noise.
    let (small, large) = wait_until(
        Duration::from_secs(60),
        "two CPU seconds between the tasks",
        || async {
            let small = cpu_seconds(&up.address(), "small").await - small0;
            let large = cpu_seconds(&up.address(), "large").await - large0;
            (small + large >= 2.0).then_some((small, large))
        },
    )
    .await;
    // Shares of 0.35 and 0.85 cpus (each with the executor's 0.1): about 1 : 2.4.
    let ratio = large / small;
    eprintln!("cpu seconds: large {large:.2}, small {small:.2}, ratio {ratio:.2}");
    assert!(
        (1.8..3.2).contains(&ratio),
        "large {large:.2} s, small {small:.2} s: ratio {ratio:.2}"
    );
    for task in ["small", "large"] {
        scheduler.kill(task, None).await.expect("kill");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cfs_quota_caps_a_busy_task_at_its_cpus() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024", "--cgroups-enable-cfs"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("capped")).await;
    let busy = "exec sh -c 'while :; do :; done'";
    launch_on_next_offer(&mut scheduler, &[("capped", busy, 0.4, 32.0)]).await;
    wait_for_state(
        &mut scheduler,
        "capped",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu_seconds(&up.address(), "capped").await;
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rate =
        (cpu_seconds(&up.address(), "capped").await - before) / started.elapsed().as_secs_f64();
    // 0.4 cpus and the executor's 0.1: half a core at most, where it would take a whole one.
    assert!(
        (0.3..0.6).contains(&rate),
        "a busy task capped at 0.5 cpus used {rate:.2}"
    );
    scheduler.kill("capped", None).await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_has_its_own_processes_tmp_and_user() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let state = json(&up.address(), "/slave(1)/state").await;
    assert_eq!(
        state["isolation"]["namespaces"], true,
        "{}",
        state["isolation"]
    );
    assert_eq!(
        state["isolation"]["switch_user"], true,
        "{}",
        state["isolation"]
    );
    // Two containers wait, made ahead of their tasks (--warm-containers, 2 by default).
    let warm_dir = dir.path().join("data").join("agent").join("warm");
    let warm_ids = || -> Vec<String> {
        std::fs::read_dir(&warm_dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let waiting = wait_until(Duration::from_secs(10), "two warm containers", || async {
        let ids = warm_ids();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let metrics = json(&up.address(), "/metrics/snapshot").await;
    assert_eq!(metrics["slave/warm_containers"], 2.0, "{metrics}");

    let mut scheduler = subscribe(&up.address(), framework_info("contained")).await;
    let marker = format!("agora-tmp-{}", std::process::id());
    let daemon = format!("sleep {}", 70_000 + std::process::id() % 10_000);
    // Counts the processes it can see, writes to its /tmp, says who and where it is; then a
    // daemon of its own stays behind while the task goes on.
    let command = format!(
        "echo procs=$(ls /proc | grep -c '^[0-9]'); echo mine > /tmp/{marker}; \
         echo user=$(id -un); echo cwd=$(pwd); echo sandbox=$MESOS_SANDBOX; \
         touch $MESOS_SANDBOX/written; echo tmp=$(cat /tmp/{marker}); \
         ({daemon} &) ; exec sleep 301"
    );
    launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = command_task("contained", offer, &command, 0.2, 64.0);
        if let Some(command) = task.command.as_mut() {
            command.user = Some("nobody".into());
        }
        vec![task]
    })
    .await;
    wait_for_state(
        &mut scheduler,
        "contained",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let stdout = wait_until(Duration::from_secs(5), "the whole output", || async {
        let stdout = task_stdout(&up.address(), "contained").await;
        stdout.contains("tmp=").then_some(stdout)
    })
    .await;
    let said = |key: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}=")))
            .unwrap_or_default()
            .to_owned()
    };
    // init, the executor, the task's shell and its command substitution: a handful, not the
    // machine's hundreds.
    let procs: usize = said("procs").parse().unwrap_or(usize::MAX);
    assert!(procs <= 8, "the task sees {procs} processes:\n{stdout}");
    assert_eq!(said("user"), "nobody", "{stdout}");
    let (_, sandbox) = executor_directory(&up.address(), "contained").await;
    // The task took a warm container (made as root, before its user was known): its
    // container id, the sandbox's last part, is one of those that waited; another is made
    // to take its place.
    let container_id = sandbox.rsplit('/').next().unwrap_or_default().to_owned();
    assert!(
        waiting.contains(&container_id),
        "{container_id} not in {waiting:?}"
    );
    wait_until(Duration::from_secs(10), "the pool filled again", || async {
        let ids = warm_ids();
        (ids.len() == 2 && !ids.contains(&container_id)).then_some(())
    })
    .await;
    assert_eq!(said("cwd"), sandbox, "{stdout}");
    assert_eq!(said("sandbox"), sandbox, "{stdout}");
    assert_eq!(said("tmp"), "mine", "{stdout}");
    // Its /tmp is the sandbox's `tmp`, not the machine's.
    let sandbox = std::path::Path::new(&sandbox);
    assert!(sandbox.join("tmp").join(&marker).exists(), "{stdout}");
    assert!(!std::path::Path::new("/tmp").join(&marker).exists());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(sandbox.join("written")).unwrap().uid(),
        65534
    );

    // An operator looks inside: its processes, a command among them, its output as it comes.
    let base = format!("http://{}/slave(1)/tasks/contained", up.address());
    // Once the task's shell has become `sleep 301`.
    let top: serde_json::Value = wait_until(Duration::from_secs(5), "the task in top", || async {
        let top: serde_json::Value = reqwest::get(format!("{base}/top"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        top["processes"]
            .as_array()?
            .iter()
            .any(|p| p["command"] == "sleep 301")
            .then_some(top)
    })
    .await;
    let processes = top["processes"].as_array().cloned().unwrap_or_default();
    let sleeper = processes
        .iter()
        .find(|p| p["command"] == "sleep 301")
        .unwrap_or_else(|| panic!("the task's process in top: {top}"));
    assert_eq!(sleeper["user"], "nobody", "{sleeper}");
    assert!(
        processes.iter().any(|p| p["command"]
            .as_str()
            .unwrap_or_default()
            .contains("executor")),
        "{top}"
    );
    let client = reqwest::Client::new();
    let exec: serde_json::Value = client
        .post(format!("{base}/exec"))
        .json(&serde_json::json!({"command": "id -un; pwd; ls /proc | grep -c '^[0-9]'; exit 7"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exec["exit_code"], 7, "{exec}");
    let lines: Vec<&str> = exec["stdout"]
        .as_str()
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(lines.first().copied(), Some("nobody"), "{exec}");
    assert_eq!(
        lines.get(1).copied(),
        Some(sandbox.to_str().unwrap()),
        "{exec}"
    );
    let seen: usize = lines
        .get(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(
        seen <= 10,
        "the exec sees the container's processes only: {exec}"
    );
    let unknown = reqwest::get(format!("http://{}/slave(1)/tasks/nope/top", up.address()))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let mut attached = reqwest::get(format!("{base}/attach?from=start"))
        .await
        .unwrap();
    let first = attached.chunk().await.unwrap().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(&first).contains("procs="),
        "{first:?}"
    );

    // Killing the task ends its container: the daemon goes with it.
    wait_until(Duration::from_secs(5), "the daemon", || async {
        (!processes_with(&daemon).is_empty()).then_some(())
    })
    .await;
    let before: Vec<i32> = processes_with(&daemon);
    scheduler.kill("contained", None).await.expect("kill");
    wait_for_state(
        &mut scheduler,
        "contained",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    wait_until(Duration::from_secs(5), "the daemon gone", || async {
        before.iter().all(|pid| !process_alive(*pid)).then_some(())
    })
    .await;
    // The attached stream ends with the task.
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = attached.chunk().await {}
    })
    .await;
    assert!(rest.is_ok(), "the output stream ended with the task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_namespaces_a_custom_executor_joins_its_cgroups_as_its_user() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024", "--isolation", "cgroups"],
    );
    let state = json(&up.address(), "/slave(1)/state").await;
    assert_eq!(
        state["isolation"]["namespaces"], false,
        "{}",
        state["isolation"]
    );
    let mut scheduler = subscribe(&up.address(), framework_info("custom")).await;
    // A framework's own executor (spawned, not forked) that says who and where it is.
    let executor = agora_api::mesos::ExecutorInfo {
        executor_id: agora_api::mesos::Id::new("custom-executor"),
        command: Some(agora_api::mesos::CommandInfo {
            value: Some("id -un; grep memory /proc/self/cgroup; exec sleep 30".into()),
            user: Some("nobody".into()),
            ..Default::default()
        }),
        resources: vec![scalar("cpus", 0.1), scalar("mem", 32.0)],
        ..Default::default()
    };
    launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = command_task("custom-task", offer, "unused", 0.1, 32.0);
        task.command = None;
        task.executor = Some(executor);
        vec![task]
    })
    .await;
    let (_, sandbox) = executor_directory(&up.address(), "custom-executor").await;
    let stdout = wait_until(Duration::from_secs(10), "the executor's output", || async {
        let text = std::fs::read_to_string(std::path::Path::new(&sandbox).join("stdout")).ok()?;
        text.contains("memory").then_some(text)
    })
    .await;
    let container_id = sandbox.rsplit('/').next().unwrap().to_owned();
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("nobody"), "{stdout}");
    assert!(
        lines.next().is_some_and(|l| l.ends_with(&container_id)),
        "in its container's memory cgroup: {stdout}"
    );
}

/// `agora up` with its data dir given relative to where it runs (as the README's quick start
/// does): tasks, warm or cold, run in sandboxes named by absolute paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relative_data_dir_runs_tasks() {
    let dir = temp_dir();
    let up = start_up_in(
        Some(dir.path()),
        std::path::Path::new("relative-data"),
        &["--resources", "cpus:2;mem:1024"],
        &[],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("relative")).await;
    let tasks = ["first", "second", "third"];
    let command = "echo sandbox=$MESOS_SANDBOX; exec sleep 300";
    let launches: Vec<(&str, &str, f64, f64)> = tasks
        .iter()
        .map(|task| (*task, command, 0.1, 32.0))
        .collect();
    launch_on_next_offer(&mut scheduler, &launches).await;
    let expected = dir.path().join("relative-data").join("agent");
    // Each task's output says it ran (their updates arrive interleaved).
    for task in tasks {
        let stdout = wait_until(Duration::from_secs(10), "the task's output", || async {
            let stdout = try_task_stdout(&up.address(), task).await?;
            stdout.contains("sandbox=").then_some(stdout)
        })
        .await;
        assert!(
            stdout.contains(&format!("sandbox={}/", expected.display())),
            "{stdout}"
        );
    }
}

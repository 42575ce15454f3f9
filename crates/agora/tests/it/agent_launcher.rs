//! The executor launcher: executors it forks, each under its container's init, look and behave
//! as executed ones (name, process group, environment, exit status), and an agent whose launcher dies starts executors itself
//! and still notices the ends of those the launcher started.

use std::time::Duration;

use crate::common::*;
use agora_client::Scheduler;
use agora_types::TaskState;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// (parent pid, command name) from `/proc/<pid>/stat`.
fn parent_and_name(pid: i32) -> (i32, String) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let open = stat.find('(').expect("(");
    let close = stat.rfind(')').expect(")");
    let name = stat[open + 1..close].to_owned();
    let parent = stat[close + 1..]
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .expect("ppid");
    (parent, name)
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("cmdline")
        .split(|byte| *byte == 0)
        .filter(|part| !part.is_empty())
        .map(|part| String::from_utf8_lossy(part).into_owned())
        .collect()
}

fn children_of(parent: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|_| parent_and_name(*pid).0 == parent)
        })
        .collect()
}

/// The launcher: the child of `agora up` named `agora-launcher` (it may be named an instant
/// after `agora up` listens).
async fn launcher_of(parent: i32) -> i32 {
    wait_until(
        Duration::from_secs(10),
        "a launcher child of agora up",
        || async {
            std::fs::read_dir("/proc")
                .expect("proc")
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
                .find(|pid| {
                    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|_| {
                        let (ppid, name) = parent_and_name(*pid);
                        ppid == parent && name == "agora-launcher"
                    })
                })
        },
    )
    .await
}

async fn launch(scheduler: &mut Scheduler, id: &str, command: &str) {
    launch_on_next_offer(scheduler, &[(id, command, 0.1, 32.0)]).await;
    wait_for_state(scheduler, id, TaskState::Running, Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launched_executors_look_and_end_as_executed_ones() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let up = start_up(&data, &["--resources", "cpus:2;mem:1024"]);
    let launcher = launcher_of(up.pid()).await;
    let mut scheduler = subscribe(&up.address(), framework_info("launched")).await;
    launch(
        &mut scheduler,
        "sleeper",
        "echo \"[$AGORA_LAUNCHER]\"; exec sleep 60",
    )
    .await;

    let pids = checkpointed_executor_pids(&data.join("agent"));
    assert_eq!(pids.len(), 1, "one container");
    // The agent keeps the container's init (pid 1 of its namespaces); the executor is its
    // one child.
    let container = pids[0];
    let (parent, name) = parent_and_name(container);
    assert_eq!(parent, launcher, "forked by the launcher");
    assert_eq!(name, "agora-init", "the container's init");
    let executors = children_of(container);
    assert_eq!(executors.len(), 1, "one executor in the container");
    let executor = executors[0];
    assert_eq!(
        parent_and_name(executor).1,
        "agora",
        "named as an executed executor"
    );
    let argv = cmdline(executor);
    assert!(
        argv.len() == 2 && argv[0].ends_with("agora") && argv[1] == "executor",
        "shows as `agora executor`: {argv:?}"
    );
    assert_eq!(
        nix::unistd::getpgid(Some(Pid::from_raw(executor))).expect("pgid"),
        Pid::from_raw(container),
        "in the container's process group, which the agent signals"
    );
    let stdout = first_stdout(&up.address(), "sleeper").await;
    assert_eq!(
        stdout, "[]\n",
        "the launcher's own variable does not reach tasks"
    );

    // Its end, as its init saw it, reaches the agent with the signal that ended it.
    kill(Pid::from_raw(executor), Signal::SIGKILL).expect("kill the executor");
    let failed = wait_for_state(
        &mut scheduler,
        "sleeper",
        TaskState::Failed,
        Duration::from_secs(10),
    )
    .await;
    let message = failed.message.unwrap_or_default();
    assert!(message.contains("signal 9"), "{message}");
    kill_leftovers(&data.join("agent"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_launcher_the_agent_starts_executors_itself() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let up = start_up(&data, &["--resources", "cpus:2;mem:1024"]);
    let launcher = launcher_of(up.pid()).await;
    let mut scheduler = subscribe(&up.address(), framework_info("orphaned")).await;
    launch(&mut scheduler, "before", "exec sleep 60").await;
    let before = checkpointed_executor_pids(&data.join("agent"));
    assert_eq!(before.len(), 1);

    kill(Pid::from_raw(launcher), Signal::SIGKILL).expect("kill the launcher");
    launch(&mut scheduler, "after", "exec sleep 60").await;
    let after: Vec<i32> = checkpointed_executor_pids(&data.join("agent"))
        .into_iter()
        .filter(|pid| !before.contains(pid))
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(
        parent_and_name(after[0]).0,
        up.pid(),
        "started by the agent itself"
    );

    // The launcher can no longer tell of the first executor's end: the agent still notices.
    kill(Pid::from_raw(before[0]), Signal::SIGKILL).expect("kill the first executor");
    let failed = wait_for_state(
        &mut scheduler,
        "before",
        TaskState::Failed,
        Duration::from_secs(10),
    )
    .await;
    assert!(
        failed
            .message
            .unwrap_or_default()
            .contains("Executor terminated"),
    );
    kill_leftovers(&data.join("agent"));
}

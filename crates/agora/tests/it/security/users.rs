//! Tasks run as the user their app or job names (Marathon's `user`, Chronos' `runAsUser`,
//! Metronome's `run.user`), else as `--default-task-user`, never as root by accident.

use serde_json::{Value, json};

use crate::common::{self, marathon::Marathon, temp_dir};

/// The user a task said it ran as (`user=<name>` on its stdout).
async fn user_of(up: &common::Process, task_id: &str) -> String {
    let stdout = common::first_stdout(&up.address(), task_id).await;
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("user="))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn apps_and_jobs_run_as_the_user_they_name_else_the_default() {
    let dir = temp_dir();
    let up = common::start_up(
        dir.path(),
        &[
            "--resources",
            "cpus:4;mem:2048",
            "--default-task-user",
            "daemon",
        ],
    );
    let say = "echo user=$(id -un); sleep 60";
    let marathon = Marathon::new(&up.address());
    marathon
        .create(json!({"id": "/as-nobody", "cmd": say, "user": "nobody", "cpus": 0.1, "mem": 16}))
        .await;
    marathon
        .create(json!({"id": "/as-default", "cmd": say, "cpus": 0.1, "mem": 16}))
        .await;
    let http = reqwest::Client::new();
    let chronos = http
        .post(format!("http://{}/scheduler/iso8601", up.address()))
        .json(
            &json!({"name": "chronos-nobody", "command": "echo user=$(id -un)",
                      "schedule": "R1//PT1M", "runAsUser": "nobody", "cpus": 0.1, "mem": 16}),
        )
        .send()
        .await
        .expect("chronos");
    assert!(chronos.status().is_success(), "{}", chronos.status());
    let metronome = http
        .post(format!("http://{}/v1/jobs", up.address()))
        .json(&json!({"id": "metronome-nobody",
                      "run": {"cmd": "echo user=$(id -un)", "user": "nobody", "cpus": 0.1, "mem": 16}}))
        .send()
        .await
        .expect("metronome");
    assert!(metronome.status().is_success(), "{}", metronome.status());
    let run = http
        .post(format!(
            "http://{}/v1/jobs/metronome-nobody/runs",
            up.address()
        ))
        .send()
        .await
        .expect("run");
    assert!(run.status().is_success(), "{}", run.status());

    for (part, user) in [
        ("as-nobody", "nobody"),
        ("as-default", "daemon"),
        ("chronos-nobody", "nobody"),
        ("metronome-nobody", "nobody"),
    ] {
        let task = up.task_id_containing(part).await;
        assert_eq!(user_of(&up, &task).await, user, "{part}");
    }
    // The built-in frameworks register as that user, as Marathon does with --mesos_user.
    let state: Value = serde_json::from_str(&up.get_text("/master/state").await).expect("json");
    for name in ["marathon", "chronos"] {
        assert_eq!(common::framework(&state, name)["user"], "daemon", "{name}");
    }
}

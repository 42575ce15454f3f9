//! The executor API: an executor speaks for itself only with its own token
//! (`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, as a bearer token), which the built-in executors
//! always send and every executor must send under `--authenticate-http-executors`.

use std::time::Duration;

use agora_api::mesos::{CommandInfo, ExecutorInfo, Id};
use agora_types::TaskState;
use serde_json::{Value, json};

use crate::common::{self, BIN, temp_dir};

/// Where the executor API is reached: the agent's port, or its Unix socket for executors.
enum Via<'a> {
    Port(&'a str),
    Socket(&'a std::path::Path),
}

async fn call(via: &Via<'_>, body: &Value, token: Option<&str>) -> u16 {
    let (client, url) = match via {
        Via::Port(address) => (
            reqwest::Client::new(),
            format!("http://{address}/api/v1/executor"),
        ),
        Via::Socket(path) => (
            reqwest::Client::builder()
                .unix_socket(*path)
                .build()
                .expect("client"),
            "http://localhost/api/v1/executor".to_owned(),
        ),
    };
    let mut request = client
        .post(url)
        .header("Content-Type", "application/json")
        .timeout(Duration::from_secs(10))
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    request.send().await.expect("call").status().as_u16()
}

/// What the agent's executor socket answers `request` (written whole, raw): its answer's
/// text, read until it is whole or the socket closes.
fn raw_over_socket(socket: &std::path::Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn nothing_else_speaks_for_a_builtin_executor() {
    let dir = temp_dir();
    let up = common::start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--header-read-timeout",
            "1s",
        ],
    );
    let socket = dir.path().join("data/agent/run/agent.sock");
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("owner")).await;
    // The task and its health check show their environments.
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut victim = common::command_task("victim", offer, "env; exec sleep 60", 0.1, 32.0);
        victim.health_check = Some(json!({"type": "COMMAND",
            "command": {"value": "env > \"$MESOS_SANDBOX/health-env\""},
            "delay_seconds": 0, "interval_seconds": 1, "grace_period_seconds": 10}));
        vec![victim]
    })
    .await;
    common::wait_for_state(
        &mut scheduler,
        "victim",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let framework_id = scheduler.framework_id().expect("id");
    let ids = json!({"framework_id": {"value": framework_id}, "executor_id": {"value": "victim"}});
    let mut subscribe = ids.clone();
    subscribe["type"] = json!("SUBSCRIBE");
    subscribe["subscribe"] = json!({});
    let mut update = ids.clone();
    update["type"] = json!("UPDATE");
    update["update"] = json!({"status": {"task_id": {"value": "victim"},
        "state": "TASK_FINISHED", "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}});
    // Over the agent's port and over its socket for executors alike.
    let address = up.address();
    for via in [Via::Port(&address), Via::Socket(&socket)] {
        for body in [&subscribe, &update] {
            for token in [None, Some("guessed")] {
                assert_eq!(call(&via, body, token).await, 401, "{body} {token:?}");
            }
        }
    }
    // The socket takes JSON only (a web page cannot reach it, but the rule is the API's) and
    // no body past the executor API's limit; a client that sends nothing is cut off (last).
    let text = update.to_string();
    let answer = raw_over_socket(
        &socket,
        &format!(
            "POST /api/v1/executor HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{text}",
            text.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let answer = raw_over_socket(
        &socket,
        "POST /api/v1/executor HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 17000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // The real executor still holds its stream and still runs its task: it obeys a kill.
    scheduler.kill("victim", None).await.expect("kill");
    common::wait_for_state(
        &mut scheduler,
        "victim",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    // Neither the task nor its health check saw the executor's secret.
    let stdout = common::task_stdout(&up.address(), "victim").await;
    assert!(
        stdout.contains("MESOS_SANDBOX="),
        "the task printed its environment: {stdout}"
    );
    assert!(
        !stdout.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
        "{stdout}"
    );
    let (_, sandbox) = common::executor_directory(&up.address(), "victim").await;
    let checked = std::fs::read_to_string(std::path::Path::new(&sandbox).join("health-env"))
        .expect("the health check ran");
    assert!(checked.contains("MESOS_SANDBOX="), "{checked}");
    assert!(
        !checked.contains("MESOS_EXECUTOR_AUTHENTICATION_TOKEN"),
        "{checked}"
    );
    // Last, as the header deadline also closes the scheduler's idle kept-alive connection.
    let silent = std::time::Instant::now();
    let answer = raw_over_socket(&socket, "");
    assert!(
        answer.is_empty()
            && silent.elapsed() >= Duration::from_secs(1)
            && silent.elapsed() < Duration::from_secs(15),
        "a client that sends nothing is cut off at the header deadline: {answer:?} after {:?}",
        silent.elapsed()
    );
}

/// A task run by a custom executor: the agora binary shipped by the fetcher, started by
/// `command` (it subscribes, then reports the task failed, as it has no command).
fn custom(
    offer: &agora_api::scheduler::Offer,
    id: &str,
    command: &str,
) -> agora_api::mesos::TaskInfo {
    let mut task = common::command_task(id, offer, "unused", 0.1, 32.0);
    task.command = None;
    task.executor = Some(ExecutorInfo {
        executor_id: Id::new(format!("{id}-executor")),
        command: Some(CommandInfo {
            value: Some(command.into()),
            uris: vec![
                json!({"value": format!("file://{BIN}"), "output_file": "agora-executor",
                              "executable": true, "cache": true}),
            ],
            ..CommandInfo::default()
        }),
        resources: vec![common::scalar("cpus", 0.1), common::scalar("mem", 32.0)],
        ..ExecutorInfo::default()
    });
    task
}

#[tokio::test]
async fn with_executor_authentication_every_executor_needs_its_token() {
    let dir = temp_dir();
    let up = common::start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--authenticate-http-executors",
            "--executor-registration-timeout",
            "3s",
        ],
    );
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("custom")).await;
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        vec![
            custom(offer, "honest", "./agora-executor executor"),
            custom(
                offer,
                "tokenless",
                "env -u MESOS_EXECUTOR_AUTHENTICATION_TOKEN ./agora-executor executor",
            ),
        ]
    })
    .await;
    let mut seen = Vec::new();
    let honest = common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "honest",
        TaskState::Failed,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        honest.message.as_deref(),
        Some("Task has no command"),
        "the executor with its token subscribed and spoke: {honest:?}"
    );
    let tokenless = common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "tokenless",
        TaskState::Failed,
        Duration::from_secs(15),
    )
    .await;
    // Refused, it never got its task: it gives up (or is given up on), never reporting.
    assert!(
        matches!(
            tokenless.reason.as_deref(),
            Some("REASON_EXECUTOR_TERMINATED" | "REASON_EXECUTOR_REGISTRATION_TIMEOUT")
        ),
        "{tokenless:?}"
    );
    assert_ne!(tokenless.message.as_deref(), Some("Task has no command"));
    // ... because it was refused, as its own output says.
    let (_, sandbox) = common::executor_directory(&up.address(), "tokenless-executor").await;
    let stderr =
        std::fs::read_to_string(std::path::Path::new(&sandbox).join("stderr")).unwrap_or_default();
    assert!(stderr.contains("401"), "{stderr}");
}

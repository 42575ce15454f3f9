//! Secrets from `--secrets-dir`: an app's or job's `{"secret": …}` env value reaches its task
//! and nothing else (no state document, API answer or file the cluster writes holds it); a
//! secret serves the apps and jobs under its directory; what cannot work is refused when it is
//! defined, and a framework's task names only the secrets the ACLs give it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use agora_api::mesos::{Environment, EnvironmentVariable};
use agora_types::TaskState;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, marathon::Marathon, temp_dir};

const DB_VALUE: &str = "s3cret-db-value";
const TOKEN_VALUE: &str = "tok-team-a-value";

fn reversed(text: &str) -> String {
    text.chars().rev().collect()
}

fn write_secret(dir: &Path, name: &str, value: &str, mode: u32) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every file under `dir` that holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(metadata) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                pending.push(entry.path());
            }
        } else if metadata.is_file()
            && let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        {
            found.push(path.display().to_string());
        }
    }
    found
}

/// A framework of the SDK launching one task whose `SECRET` variable names `secret`; the
/// status it ends with.
async fn framework_task(up: &common::Process, secret: &str) -> agora_api::mesos::TaskStatus {
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("direct")).await;
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let mut task = common::command_task("with-secret", offer, "env", 0.1, 32.0);
        if let Some(command) = task.command.as_mut() {
            command.environment = Some(Environment {
                variables: vec![EnvironmentVariable::secret_reference("S", secret)],
            });
        }
        vec![task]
    })
    .await;
    let ended = async {
        loop {
            let event = common::next_event(&mut scheduler, Duration::from_secs(15)).await;
            if let agora_api::scheduler::Event::Update { update } = event
                && update.status.state.is_terminal()
            {
                return update.status;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ended)
        .await
        .expect("the task ended within 30 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_its_task_and_nothing_else() {
    let dir = temp_dir();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    write_secret(&secrets, "db-password", DB_VALUE, 0o600);
    write_secret(&secrets, "team-a/token", TOKEN_VALUE, 0o400);
    write_secret(&secrets, "readable", "x", 0o644);
    // The built-in frameworks may use every secret; other frameworks none.
    let acls = dir.path().join("acls.json");
    std::fs::write(
        &acls,
        json!({"use_secrets": [
            {"principals": {"values": ["marathon", "chronos"]}, "secrets": {"type": "ANY"}},
            {"principals": {"type": "ANY"}, "secrets": {"type": "NONE"}}]})
        .to_string(),
    )
    .unwrap();
    let data = dir.path().join("data");
    let up = common::start_up(
        &data,
        &[
            "--resources",
            "cpus:4;mem:2048",
            "--secrets-dir",
            secrets.to_str().unwrap(),
            "--acls",
            acls.to_str().unwrap(),
        ],
    );

    // An app of /team-a uses a top-level secret and one of its own directory.
    // The commands hold the values reversed: a definition or TaskInfo holding a value would
    // show in the checks below.
    let check = format!(
        "if [ \"$(printf %s \"$DB\" | rev)\" = {} ] && [ \"$(printf %s \"$TOKEN\" | rev)\" = {} ]; \
         then echo secrets=match; else echo secrets=mismatch; fi; sleep 600",
        reversed(DB_VALUE),
        reversed(TOKEN_VALUE)
    );
    let app = json!({"id": "/team-a/web", "cmd": check, "cpus": 0.1, "mem": 16,
        "env": {"DB": {"secret": "db"}, "TOKEN": {"secret": "token"}, "PLAIN": "p"},
        "secrets": {"db": {"source": "db-password"}, "token": {"source": "/team-a/token"}}});
    let marathon = Marathon::new(&up.address());
    marathon.create(app.clone()).await;
    let tasks = marathon.settled("/team-a/web", 1).await;
    let task_id = tasks[0]["id"].as_str().unwrap().to_owned();
    let stdout = common::first_stdout(&up.address(), &task_id).await;
    assert_eq!(stdout.trim(), "secrets=match");
    // The definition answers with the reference, as it was given.
    let answered = marathon.get("/v2/apps/team-a/web").await;
    assert_eq!(answered["app"]["env"]["DB"], json!({"secret": "db"}));
    assert_eq!(answered["app"]["secrets"]["db"]["source"], "db-password");

    // A Metronome job of team-a, the same way.
    let job_check = format!(
        "if [ \"$(printf %s \"$T\" | rev)\" = {} ]; then echo job=match; else echo job=mismatch; fi",
        reversed(TOKEN_VALUE)
    );
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v1/jobs",
            json!({"id": "team-a.backup", "run": {"cmd": job_check, "cpus": 0.1, "mem": 16,
               "env": {"T": {"secret": "t"}}, "secrets": {"t": {"source": "team-a/token"}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v1/jobs/team-a.backup/runs",
            json!({}),
        )
        .await;
    assert!(status.is_success(), "{body}");
    let job_task = up.task_id_containing("team-a.backup").await;
    let stdout = common::first_stdout(&up.address(), &job_task).await;
    assert_eq!(stdout.trim(), "job=match");

    // What cannot work is refused when it is defined, with Marathon's and Metronome's 422.
    let refused = [
        (
            json!({"id": "/team-b/web", "cmd": "env", "env": {"T": {"secret": "t"}},
                   "secrets": {"t": {"source": "team-a/token"}}}),
            "/secrets/t/source",
            "may not use",
        ),
        (
            json!({"id": "/missing", "cmd": "env", "env": {"T": {"secret": "t"}},
                   "secrets": {"t": {"source": "nothing-here"}}}),
            "/secrets/t/source",
            "no secret",
        ),
        (
            json!({"id": "/readable", "cmd": "env", "env": {"T": {"secret": "t"}},
                   "secrets": {"t": {"source": "readable"}}}),
            "/secrets/t/source",
            "0600",
        ),
        (
            json!({"id": "/climbing", "cmd": "env", "env": {"T": {"secret": "t"}},
                   "secrets": {"t": {"source": "../data/jwt.key"}}}),
            "/secrets/t/source",
            "not a secret's name",
        ),
        (
            json!({"id": "/undeclared", "cmd": "env", "env": {"T": {"secret": "t"}}}),
            "/env/T",
            "undefined secret",
        ),
    ];
    for (app, path, words) in refused {
        let (status, body) = up.send_json(reqwest::Method::POST, "/v2/apps", app).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["details"][0]["path"], path, "{body}");
        assert!(
            body["details"][0]["errors"][0]
                .as_str()
                .unwrap_or("")
                .contains(words),
            "{body}"
        );
    }
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v1/jobs",
            json!({"id": "team-b.backup", "run": {"cmd": "env", "cpus": 0.1, "mem": 16,
               "env": {"T": {"secret": "t"}}, "secrets": {"t": {"source": "team-a/token"}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("/run/env/T"), "{body}");

    // A framework the ACLs give no secrets: TASK_ERROR, before anything runs.
    let status = framework_task(&up, "db-password").await;
    assert_eq!(status.state, TaskState::Error, "{status:?}");
    assert_eq!(status.reason.as_deref(), Some("REASON_TASK_UNAUTHORIZED"));

    // Nothing the cluster answers or writes holds a value: state, tasks, apps, jobs, the
    // agent's checkpoints and the stores.
    for path in [
        "/master/state",
        "/master/tasks",
        "/slave(1)/state",
        "/v2/apps?embed=apps.tasks",
        "/v1/jobs/team-a.backup?embed=activeRuns&embed=history",
        "/scheduler/jobs",
    ] {
        let text = up.get_text(path).await;
        assert!(
            !text.contains(DB_VALUE) && !text.contains(TOKEN_VALUE),
            "{path}: {text}"
        );
    }
    for value in [DB_VALUE, TOKEN_VALUE] {
        assert_eq!(files_holding(&data, value), Vec::<String>::new(), "{value}");
    }
}

#[tokio::test]
async fn without_a_secrets_dir_a_secret_is_refused_not_dropped() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v2/apps",
            json!({"id": "/web", "cmd": "env", "env": {"DB": {"secret": "db"}},
               "secrets": {"db": {"source": "db-password"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["details"][0]["path"], "/env/DB", "{body}");
    assert!(body.to_string().contains("--secrets-dir"), "{body}");

    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/v1/jobs",
            json!({"id": "backup", "run": {"cmd": "env", "cpus": 0.1, "mem": 16,
               "env": {"DB": {"secret": "db"}}, "secrets": {"db": {"source": "db-password"}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = up
        .send_json(
            reqwest::Method::POST,
            "/scheduler/iso8601",
            json!({"name": "chronos-secret", "command": "env", "schedule": "R1//PT1M",
               "environmentVariables": [{"name": "DB", "secret": "db-password"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("--secrets-dir"), "{body}");

    // A framework naming one: the agent has none to read, and says so.
    let status = framework_task(&up, "db-password").await;
    assert_eq!(status.state, TaskState::Failed, "{status:?}");
    assert!(
        status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("--secrets-dir"),
        "{status:?}"
    );
}

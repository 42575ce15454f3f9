//! The `agora` CLI's services commands against `agora up`: apps, groups, deployments and tasks,
//! as tables and as the API's JSON, waiting for deployments with progress, and failing with
//! one readable line.

use std::time::Duration;

use agora_client::MasterClient;
use serde_json::{Value, json};

use crate::common::cli::{Running, agora, agora_with_stdin, line_with, row};
use crate::common::marathon::{Marathon, running};
use crate::common::*;

async fn up_with(resources: &str) -> (tempfile::TempDir, Process, String) {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", resources]);
    wait_for_agents(&MasterClient::new(&up.address()), 1).await;
    let master = up.address();
    (dir, up, master)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_added_scaled_restarted_rolled_back_and_removed() {
    let (dir, _up, master) = up_with("cpus:4;mem:2048;ports:[31000-31020]").await;
    let m = master.as_str();
    let marathon = Marathon::new(m);
    let file = dir.path().join("web.json");
    std::fs::write(
        &file,
        json!({"id": "/shop/web", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
               "instances": 2, "labels": {"tier": "front"}})
        .to_string(),
    )
    .unwrap();

    // add waits for its deployment, showing progress on stderr.
    let added = agora(m, &["app", "add", file.to_str().unwrap()]).await;
    let stdout = added.ok();
    assert!(line_with(stdout, "created app /shop/web").contains("deployment "));
    assert!(stdout.contains("finished"), "{added:?}");
    assert!(added.stderr.contains("tasks healthy"), "{added:?}");
    assert_eq!(
        running(&marathon.tasks("/shop/web").await),
        2,
        "done when it says so"
    );

    let list = agora(m, &["app", "list"]).await;
    let cells = row(list.ok(), "/shop/web");
    assert_eq!(cells[1], "2/2", "running/instances: {list:?}");
    assert!(list.stdout.starts_with("ID "), "{list:?}");
    let json_list = agora(m, &["app", "list", "-o", "json"]).await.json();
    assert_eq!(json_list["apps"][0]["id"], "/shop/web");
    assert_eq!(
        json_list["apps"][0]["labels"]["tier"], "front",
        "the API's app"
    );
    let yaml = agora(m, &["app", "show", "/shop/web", "-o", "yaml"]).await;
    assert!(yaml.ok().contains("  id: /shop/web\n"), "{yaml:?}");

    let show = agora(m, &["app", "show", "shop/web"]).await;
    let text = show.ok();
    assert!(
        line_with(text, "Instances:").contains("2 running"),
        "{text}"
    );
    assert!(line_with(text, "Labels:").contains("tier=front"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("TASK_RUNNING")).count(),
        2
    );
    let shown = agora(m, &["app", "show", "/shop/web", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["app"]["instances"], 2);
    assert_eq!(shown["app"]["tasks"].as_array().unwrap().len(), 2);

    let scaled = agora(m, &["app", "scale", "/shop/web", "3"]).await;
    assert!(
        scaled.ok().contains("scaling app /shop/web to 3"),
        "{scaled:?}"
    );
    assert_eq!(running(&marathon.tasks("/shop/web").await), 3);

    let before: Vec<String> = ids(&marathon.tasks("/shop/web").await);
    agora(m, &["app", "restart", "/shop/web"]).await.ok();
    let after = ids(&marathon.tasks("/shop/web").await);
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|id| !before.contains(id)),
        "every instance replaced"
    );

    // Versions, latest first; rolling back to the first brings 2 instances back.
    let versions = agora(m, &["app", "versions", "/shop/web", "-o", "json"])
        .await
        .json();
    let versions: Vec<String> = versions["versions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(versions.len() >= 2, "{versions:?}");
    let table = agora(m, &["app", "versions", "/shop/web"]).await;
    assert!(
        line_with(table.ok(), &versions[0]).ends_with("current"),
        "{table:?}"
    );
    let first = versions.last().unwrap();
    let rolled = agora(m, &["app", "rollback", "/shop/web", first]).await;
    assert!(rolled.ok().contains("finished"), "{rolled:?}");
    assert_eq!(
        marathon.get("/v2/apps/shop/web").await["app"]["instances"],
        2
    );

    // A partial update from stdin, without waiting: the JSON answer is the API's.
    let updated = agora_with_stdin(
        m,
        &["app", "update", "/shop/web", "-", "--no-wait", "-o", "json"],
        Some(r#"{"cmd": "exec sleep 700"}"#),
    )
    .await;
    let answer = updated.json();
    assert!(answer["deploymentId"].is_string(), "{updated:?}");
    assert!(answer["version"].is_string(), "{updated:?}");
    marathon.settled("/shop/web", 2).await;
    assert_eq!(
        marathon.get("/v2/apps/shop/web").await["app"]["cmd"],
        "exec sleep 700"
    );

    let removed = agora(m, &["app", "remove", "/shop/web"]).await;
    assert!(
        removed.ok().contains("removing app /shop/web"),
        "{removed:?}"
    );
    wait_until(Duration::from_secs(20), "the app gone", || async {
        let apps = marathon.get("/v2/apps").await;
        apps["apps"].as_array()?.is_empty().then_some(())
    })
    .await;
    assert_eq!(agora(m, &["app", "list"]).await.ok().trim(), "No apps.");
}

fn ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_errors_are_one_readable_line() {
    let (dir, _up, master) = up_with("cpus:2;mem:1024;ports:[31000-31010]").await;
    let m = master.as_str();

    let unknown = agora(m, &["app", "show", "/nope"]).await;
    assert_eq!(
        unknown.error().trim(),
        "agora: cannot show app /nope: App '/nope' does not exist"
    );
    let unknown_scale = agora(m, &["app", "scale", "/nope", "2"]).await;
    assert!(unknown_scale.error().contains("/nope"), "{unknown_scale:?}");

    // A 422 shows each field's problem.
    let invalid = agora_with_stdin(
        m,
        &["app", "add", "-"],
        Some(r#"{"id": "/bad", "cmd": "true", "cpus": -1, "mem": 16}"#),
    )
    .await;
    let text = invalid.error();
    assert!(
        text.contains("cannot create the app: Object is not valid"),
        "{text}"
    );
    assert!(text.contains("/cpus:"), "{text}");

    let file = dir.path().join("broken.json");
    std::fs::write(&file, "{\"id\": ").unwrap();
    let broken = agora(m, &["app", "add", file.to_str().unwrap()]).await;
    assert!(broken.error().contains("is not valid JSON"), "{broken:?}");
    assert_eq!(broken.stderr.lines().count(), 1, "{broken:?}");
    let missing = agora(m, &["app", "add", "/no/such/file.json"]).await;
    assert!(
        missing.error().contains("cannot read /no/such/file.json"),
        "{missing:?}"
    );
    let not_object = agora_with_stdin(m, &["group", "add", "-"], Some("[1]")).await;
    assert!(not_object.error().contains("JSON object"), "{not_object:?}");

    // Usage errors are clap's, with exit code 2.
    let usage = agora(m, &["app", "scale", "/x", "many"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");
    let usage = agora(m, &["app", "frobnicate"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_added_listed_scaled_and_removed() {
    let (_dir, _up, master) = up_with("cpus:4;mem:2048;ports:[31000-31020]").await;
    let m = master.as_str();
    let marathon = Marathon::new(m);
    let group = json!({"id": "/shop", "apps": [
        {"id": "/shop/db", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16, "instances": 1},
        {"id": "/shop/api", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16, "instances": 1,
         "dependencies": ["/shop/db"]}]});
    let added = agora_with_stdin(m, &["group", "add", "-"], Some(&group.to_string())).await;
    assert!(added.ok().contains("created group /shop"), "{added:?}");
    assert!(
        added.stderr.contains("step 1/2"),
        "two steps, by dependency: {added:?}"
    );
    assert_eq!(running(&marathon.tasks("/shop/api").await), 1);

    let list = agora(m, &["group", "list"]).await;
    let cells = row(list.ok(), "/shop");
    assert_eq!(&cells[1..3], ["2", "2"], "apps, instances: {list:?}");
    let root = agora(m, &["group", "list", "-o", "json"]).await.json();
    assert_eq!(root["groups"][0]["id"], "/shop");

    let show = agora(m, &["group", "show", "/shop"]).await;
    assert_eq!(row(show.ok(), "/shop/api")[4], "/shop/db", "{show:?}");
    let shown = agora(m, &["group", "show", "/shop", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["apps"].as_array().unwrap().len(), 2);

    let scaled = agora(m, &["group", "scale", "/shop", "2"]).await;
    assert!(
        scaled.ok().contains("scaling group /shop by 2"),
        "{scaled:?}"
    );
    assert_eq!(running(&marathon.tasks("/shop/db").await), 2);
    assert_eq!(running(&marathon.tasks("/shop/api").await), 2);

    agora(m, &["group", "remove", "/shop"]).await.ok();
    wait_until(Duration::from_secs(20), "the group gone", || async {
        let apps = marathon.get("/v2/apps").await;
        apps["apps"].as_array()?.is_empty().then_some(())
    })
    .await;
    let gone = agora(m, &["group", "show", "/shop"]).await;
    assert!(gone.error().contains("/shop"), "{gone:?}");
}

/// The deployments in progress, from the API.
async fn deployments(marathon: &Marathon) -> Vec<String> {
    marathon
        .get("/v2/deployments")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_are_watched_rolled_back_and_stopped() {
    // Room for 5 instances of 0.1 cpus (with the executors' 0.1): a scale to 50 never ends.
    let (_dir, _up, master) = up_with("cpus:1;mem:2048;ports:[31000-31100]").await;
    let m = master.as_str();
    let marathon = Marathon::new(m);
    let app = r#"{"id": "/big", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16, "instances": 1}"#;
    agora_with_stdin(m, &["app", "add", "-"], Some(app))
        .await
        .ok();

    // Ctrl-C stops the waiting, not the deployment.
    let waiting = Running::start(m, &["app", "scale", "/big", "50"]);
    waiting.wait_for_stderr("tasks healthy").await;
    let deployment = deployments(&marathon).await.into_iter().next().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(waiting.pid()),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let stopped = waiting.finish().await;
    assert!(
        stopped
            .error()
            .contains(&format!("stopped waiting; deployment {deployment} goes on")),
        "{stopped:?}"
    );
    assert_eq!(
        deployments(&marathon).await,
        std::slice::from_ref(&deployment),
        "still deploying"
    );

    let list = agora(m, &["deployment", "list"]).await;
    let cells = row(list.ok(), &deployment);
    assert_eq!(cells[1], "/big", "{list:?}");
    assert_eq!(cells[2], "1/1", "{list:?}");
    let listed = agora(m, &["deployment", "list", "-o", "json"]).await.json();
    assert_eq!(listed[0]["id"], deployment.as_str());
    assert_eq!(listed[0]["affectedApps"][0], "/big");

    // Rollback: a new deployment takes the app back to 1 instance; a watch of the cancelled
    // one says it failed.
    let watch = Running::start(m, &["deployment", "watch", &deployment]);
    watch.wait_for_stderr("tasks healthy").await;
    let rolled = agora(m, &["deployment", "rollback", &deployment]).await;
    assert!(
        rolled
            .ok()
            .contains(&format!("deployment {deployment} is cancelled; deployment")),
        "{rolled:?}"
    );
    let watched = watch.finish().await;
    assert!(
        watched
            .error()
            .contains(&format!("deployment {deployment} failed")),
        "{watched:?}"
    );
    wait_until(Duration::from_secs(20), "the rollback done", || async {
        let app = marathon.get("/v2/apps/big").await;
        (deployments(&marathon).await.is_empty() && app["app"]["instances"] == 1).then_some(())
    })
    .await;

    // Stop: the app keeps the new target and what it has.
    let updated = agora(m, &["app", "scale", "/big", "60", "--no-wait"]).await;
    let id = line_with(updated.ok(), "deployment")
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    agora(m, &["deployment", "stop", &id]).await.ok();
    assert!(deployments(&marathon).await.is_empty());
    assert_eq!(marathon.get("/v2/apps/big").await["app"]["instances"], 60);
    assert_eq!(
        agora(m, &["deployment", "list"]).await.ok().trim(),
        "No deployments in progress."
    );

    let unknown = agora(m, &["deployment", "watch", "nope"]).await;
    assert!(
        unknown.error().contains("no deployment nope"),
        "{unknown:?}"
    );
    let unknown = agora(m, &["deployment", "stop", "nope"]).await;
    assert!(unknown.error().contains("nope"), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_listed_read_entered_and_killed() {
    let (_dir, _up, master) = up_with("cpus:4;mem:2048;ports:[31000-31020]").await;
    let m = master.as_str();
    let marathon = Marathon::new(m);
    let app = json!({"id": "/talk", "instances": 2, "cpus": 0.1, "mem": 16,
        "cmd": "for i in 1 2 3; do echo out$i; echo err$i >&2; done; echo 'grüße ✓' >&2; while true; do sleep 0.2; echo tick; done"});
    agora_with_stdin(m, &["app", "add", "-"], Some(&app.to_string()))
        .await
        .ok();
    let tasks = ids(&marathon.tasks("/talk").await);
    let task = tasks[0].clone();

    let list = agora(m, &["task", "list"]).await;
    assert_eq!(row(list.ok(), &task)[1], "TASK_RUNNING", "{list:?}");
    assert_eq!(
        row(&list.stdout, &task)[3],
        "marathon",
        "the framework's name"
    );
    let listed = agora(m, &["task", "list", "-o", "json"]).await.json();
    assert!(
        listed["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == task.as_str())
    );
    let of_app = agora(m, &["task", "list", "--app", "/talk", "-o", "json"])
        .await
        .json();
    assert_eq!(of_app["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(of_app["tasks"][0]["appId"], "/talk", "Marathon's tasks");
    let of_app = agora(m, &["task", "list", "--app", "/talk"]).await;
    assert_eq!(row(of_app.ok(), &task)[1], "TASK_RUNNING");

    // Logs: whole, stderr, the last lines; a unique part of the id is enough.
    let log = wait_until(Duration::from_secs(10), "the task's output", || async {
        let run = agora(m, &["task", "log", &task]).await;
        (run.code == 0 && run.stdout.contains("tick")).then_some(run.stdout)
    })
    .await;
    assert!(log.starts_with("out1\nout2\nout3\n"), "{log}");
    let short = &task[5..20];
    let stderr = agora(m, &["task", "log", short, "--stderr"]).await;
    assert_eq!(stderr.ok(), "err1\nerr2\nerr3\ngrüße ✓\n");
    let last = agora(m, &["task", "log", &task, "--stderr", "--lines", "2"]).await;
    assert_eq!(
        last.ok(),
        "err3\ngrüße ✓\n",
        "offsets count bytes, not characters"
    );

    // exec runs in the task's sandbox; its failure is the CLI's.
    let exec = agora(
        m,
        &["task", "exec", &task, "--", "sh", "-c", "echo in $PWD; ls"],
    )
    .await;
    assert!(exec.ok().contains("stdout"), "{exec:?}");
    let failed = agora(m, &["task", "exec", &task, "--", "sh", "-c", "exit 3"]).await;
    assert!(failed.error().contains("exited with code 3"), "{failed:?}");
    let json = agora(
        m,
        &["task", "exec", &task, "-o", "json", "--", "echo", "hi"],
    )
    .await;
    assert_eq!(json.json()["stdout"], "hi\n");

    // --follow prints what comes and ends when the task does.
    let follow = Running::start(m, &["task", "log", &task, "--follow", "-n", "0"]);
    follow.wait_for_stdout("tick\ntick\n").await;
    let killed = agora(m, &["task", "kill", &task, "--scale"]).await;
    assert!(killed.ok().contains("scaled down by one"), "{killed:?}");
    // (finish waits at most 20 s: the follow ends with the task.)
    let followed = follow.finish().await;
    assert!(followed.ok().contains("tick\ntick\n"), "{followed:?}");
    assert!(
        !followed.stdout.contains("out1"),
        "--lines 0 starts at the end"
    );
    marathon.settled("/talk", 1).await;
    assert_eq!(marathon.get("/v2/apps/talk").await["app"]["instances"], 1);

    // Without --scale the app replaces it.
    let other = tasks[1].clone();
    agora(m, &["task", "kill", &other]).await.ok();
    wait_until(Duration::from_secs(20), "a replacement", || async {
        let now = ids(&marathon.tasks("/talk").await);
        (now.len() == 1 && now[0] != other).then_some(())
    })
    .await;

    let unknown = agora(m, &["task", "log", "no-such-task"]).await;
    assert!(
        unknown.error().contains("no task no-such-task"),
        "{unknown:?}"
    );
    let ambiguous = agora(m, &["task", "log", "talk"]).await;
    assert!(
        ambiguous.error().contains("matches several tasks"),
        "{ambiguous:?}"
    );
}

//! The `agora` CLI's cluster commands against `agora up`: nodes, frameworks, the cluster's
//! status, jobs, the service proxy's status and DNS names, shell completions and man pages,
//! and what it says when no master answers.

use std::time::Duration;

use agora_client::MasterClient;
use serde_json::json;

use crate::common::cli::{agora, agora_with_stdin, line_with, row};
use crate::common::marathon::{Marathon, running};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_frameworks_and_the_cluster_status() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:4;mem:2048;disk:1000;ports:[31000-31010]",
            "--attributes",
            "rack:r1",
        ],
    );
    let m = up.address();
    let m = m.as_str();
    let master = MasterClient::new(m);
    wait_for_agents(&master, 1).await;
    let marathon = Marathon::new(m);
    let app = r#"{"id": "/web", "cmd": "exec sleep 600", "cpus": 0.5, "mem": 64, "instances": 2}"#;
    agora_with_stdin(m, &["app", "add", "-"], Some(app))
        .await
        .ok();

    let state = master.state().await.unwrap();
    let agent_id = state["slaves"][0]["id"].as_str().unwrap().to_owned();
    let hostname = state["slaves"][0]["hostname"].as_str().unwrap().to_owned();

    // Nodes: used/total.
    let list = agora(m, &["node", "list"]).await;
    let cells = row(list.ok(), &agent_id);
    assert_eq!(cells[1], hostname);
    assert_eq!(cells[2], "active");
    assert_eq!(cells[3], "1/4", "{list:?}");
    assert_eq!(cells[6], "2", "tasks: {list:?}");
    let listed = agora(m, &["node", "list", "-o", "json"]).await.json();
    assert_eq!(
        listed["slaves"][0]["id"],
        agent_id.as_str(),
        "the API's /master/slaves"
    );
    let show = agora(m, &["node", "show", &hostname]).await;
    assert!(
        line_with(show.ok(), "Attributes:").contains("rack:r1"),
        "{show:?}"
    );
    assert_eq!(show.stdout.matches("TASK_RUNNING").count(), 2, "{show:?}");
    let shown = agora(m, &["node", "show", &agent_id, "-o", "json"])
        .await
        .json();
    assert_eq!(shown["attributes"]["rack"], "r1");

    // Frameworks by name, with their share.
    let frameworks = agora(m, &["framework", "list"]).await;
    let marathon_row = row(
        frameworks.ok(),
        framework(&state, "marathon")["id"].as_str().unwrap(),
    );
    assert_eq!(marathon_row[1], "marathon");
    assert_eq!(marathon_row[4], "2", "tasks: {frameworks:?}");
    assert_eq!(marathon_row[7], "25.0%", "1 of 4 cpus: {frameworks:?}");
    let show = agora(m, &["framework", "show", "marathon"]).await;
    assert!(
        line_with(show.ok(), "Dominant share:").contains("25.0%"),
        "{show:?}"
    );
    let shown = agora(m, &["framework", "show", "chronos", "-o", "json"])
        .await
        .json();
    assert_eq!(shown["name"], "chronos");
    // A hostname without a port, as Mesos shows frameworks; the web UI's address beside it.
    assert_eq!(shown["hostname"], "127.0.0.1");
    assert_eq!(shown["webui_url"], format!("http://127.0.0.1:{}", up.port));
    assert_eq!(
        agora(m, &["framework", "list", "-o", "json"]).await.json()["frameworks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A framework of our own, torn down by name.
    let scheduler = subscribe(m, framework_info("doomed")).await;
    let teardown = agora(m, &["framework", "teardown", "doomed"]).await;
    assert!(teardown.ok().contains("is torn down"), "{teardown:?}");
    wait_until(Duration::from_secs(10), "the framework gone", || async {
        let state = master.state().await.ok()?;
        framework(&state, "doomed").is_null().then_some(())
    })
    .await;
    drop(scheduler);
    let unknown = agora(m, &["framework", "show", "doomed"]).await;
    assert!(
        unknown.error().contains("no framework doomed"),
        "{unknown:?}"
    );

    // The cluster at a glance.
    let status = agora(m, &["cluster", "status"]).await;
    let text = status.ok();
    assert!(line_with(text, "CPUs:").contains("1 / 4 (25%)"), "{text}");
    assert!(line_with(text, "Agents:").contains("1 active"), "{text}");
    assert!(line_with(text, "Tasks:").contains("2 running"), "{text}");
    assert!(
        line_with(text, "Leader:").contains(&format!("master@{m}")),
        "{text}"
    );
    assert!(
        line_with(text, "Frameworks:").contains("chronos, marathon"),
        "{text}"
    );
    let status = agora(m, &["cluster", "status", "-o", "json"]).await.json();
    assert_eq!(status["resources"]["mem"]["total"], 2048.0);
    assert_eq!(status["tasks"]["TASK_RUNNING"], 2);

    // Drain: no new offers, its tasks killed; undrain offers it again.
    let drained = agora(m, &["node", "drain", &agent_id, "--grace", "0.1"]).await;
    assert!(drained.ok().contains("is draining"), "{drained:?}");
    wait_until(Duration::from_secs(20), "the agent drained", || async {
        let list = agora(m, &["node", "list"]).await;
        (row(&list.stdout, &agent_id)[2] == "drained").then_some(())
    })
    .await;
    assert_eq!(running(&marathon.tasks("/web").await), 0);
    let undrained = agora(m, &["node", "undrain", &hostname]).await;
    assert!(undrained.ok().contains("is offered again"), "{undrained:?}");
    marathon.settled("/web", 2).await;
    assert_eq!(
        row(agora(m, &["node", "list"]).await.ok(), &agent_id)[2],
        "active"
    );
    let unknown = agora(m, &["node", "drain", "nope"]).await;
    assert!(unknown.error().contains("no agent nope"), "{unknown:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_added_run_shown_and_removed() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let m = up.address();
    let m = m.as_str();
    wait_for_agents(&MasterClient::new(m), 1).await;
    let file = dir.path().join("job.json");
    std::fs::write(
        &file,
        json!({"name": "report", "command": "echo made a report",
               "schedule": "R/2040-01-01T00:00:00Z/P1D", "cpus": 0.1, "mem": 16})
        .to_string(),
    )
    .unwrap();
    let added = agora(m, &["job", "add", file.to_str().unwrap()]).await;
    assert_eq!(added.ok(), "job report is saved\n");
    let child =
        json!({"name": "mail", "command": "true", "parents": ["report"], "cpus": 0.1, "mem": 16});
    let added = agora_with_stdin(
        m,
        &["job", "add", "-", "-o", "json"],
        Some(&child.to_string()),
    )
    .await;
    assert_eq!(added.json()["parents"][0], "report", "the job as stored");

    let list = agora(m, &["job", "list"]).await;
    let cells = row(list.ok(), "report");
    assert_eq!(cells[1], "R/2040-01-01T00:00:00Z/P1D", "{list:?}");
    assert_eq!(row(&list.stdout, "mail")[1..3], ["after", "report"]);
    let listed = agora(m, &["job", "list", "-o", "json"]).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let ran = agora(m, &["job", "run", "report"]).await;
    assert_eq!(ran.ok(), "job report is queued to run now\n");
    let history = wait_until(Duration::from_secs(20), "a run in the history", || async {
        let run = agora(m, &["job", "history", "report"]).await;
        run.stdout.contains("TASK_FINISHED").then_some(run)
    })
    .await;
    assert!(
        line_with(&history.stdout, "Runs:").contains('1'),
        "{history:?}"
    );
    let stat = agora(m, &["job", "history", "report", "-o", "json"])
        .await
        .json();
    assert_eq!(stat["taskStatHistory"][0]["taskState"], "TASK_FINISHED");
    let show = agora(m, &["job", "show", "report"]).await;
    assert!(
        line_with(show.ok(), "Successes:").ends_with('1'),
        "{show:?}"
    );
    assert_eq!(
        agora(m, &["job", "show", "report", "-o", "json"])
            .await
            .json()["successCount"],
        1
    );
    // Its dependent job ran after it.
    wait_until(
        Duration::from_secs(20),
        "the dependent job's run",
        || async {
            let job = agora(m, &["job", "show", "mail", "-o", "json"])
                .await
                .json();
            (job["successCount"] == 1).then_some(())
        },
    )
    .await;

    // A parent goes; its child takes its schedule, as in Chronos.
    agora(m, &["job", "remove", "report"]).await.ok();
    let mail = agora(m, &["job", "show", "mail", "-o", "json"])
        .await
        .json();
    assert_eq!(mail["schedule"], "R/2040-01-01T00:00:00Z/P1D", "{mail}");
    agora(m, &["job", "remove", "mail"]).await.ok();
    assert_eq!(agora(m, &["job", "list"]).await.ok().trim(), "No jobs.");

    let unknown = agora(m, &["job", "show", "nope"]).await;
    assert!(unknown.error().contains("nope"), "{unknown:?}");
    let invalid = agora_with_stdin(
        m,
        &["job", "add", "-"],
        Some(r#"{"name": "x", "command": "true", "schedule": "every day"}"#),
    )
    .await;
    assert!(invalid.error().contains("schedule"), "{invalid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_status_and_dns_names() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024;ports:[31000-31010]",
            "--dns-port",
            "18371",
        ],
    );
    let m = up.address();
    let m = m.as_str();
    wait_for_agents(&MasterClient::new(m), 1).await;
    let marathon = Marathon::new(m);
    let app = r#"{"id": "/echo", "cmd": "exec python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32, "instances": 2, "portDefinitions": [{"port": 10871}]}"#;
    agora_with_stdin(m, &["app", "add", "-"], Some(app))
        .await
        .ok();
    let tasks = marathon.settled("/echo", 2).await;
    // A service port of its own: tests running beside this one use the range's first ones.
    let service_port = "10871";

    let status = wait_until(Duration::from_secs(10), "both backends", || async {
        let run = agora(m, &["lb", "status"]).await;
        (run.stdout.matches("127.0.0.1:310").count() == 2).then_some(run)
    })
    .await;
    let line = line_with(status.ok(), service_port);
    assert!(
        line.contains("/echo") && line.ends_with("serving"),
        "{status:?}"
    );
    let json = agora(m, &["lb", "status", "-o", "json"]).await.json();
    assert_eq!(
        json[0]["discovery"]["proxy"]["ports"][service_port]["app"],
        "/echo"
    );

    let lookup = agora(m, &["dns", "lookup", "echo.marathon.mesos"]).await;
    assert_eq!(
        row(lookup.ok(), "echo.marathon.mesos.")[1..],
        ["A", "127.0.0.1"]
    );
    let srv = agora(
        m,
        &["dns", "lookup", "_echo._tcp.marathon.mesos", "-o", "json"],
    )
    .await;
    let answers = srv.json()["answers"].as_array().unwrap().clone();
    let mut ports: Vec<u64> = answers
        .iter()
        .map(|a| a["port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    let mut task_ports: Vec<u64> = tasks
        .iter()
        .map(|t| t["ports"][0].as_u64().unwrap())
        .collect();
    task_ports.sort_unstable();
    assert_eq!(ports, task_ports);
    let explicit = agora(
        m,
        &[
            "dns",
            "lookup",
            "leader.mesos",
            "--server",
            "127.0.0.1:18371",
        ],
    )
    .await;
    assert!(explicit.ok().contains("127.0.0.1"), "{explicit:?}");
    let missing = agora(m, &["dns", "lookup", "nope.marathon.mesos"]).await;
    assert!(missing.error().contains("no such name"), "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_master_completions_and_man_pages() {
    // Nothing listens on port 1: one line saying what to do.
    for args in [
        &["app", "list"][..],
        &["node", "list"],
        &["cluster", "status", "-o", "json"],
        &["job", "list"],
    ] {
        let run = agora("127.0.0.1:1", args).await;
        let error = run.error();
        assert!(error.contains("cannot reach http://127.0.0.1:1"), "{run:?}");
        assert!(error.contains("AGORA_MASTER"), "{run:?}");
        assert_eq!(error.lines().count(), 1, "{run:?}");
    }
    // --master wins over the environment.
    let run = agora("127.0.0.1:1", &["app", "list", "--master", "127.0.0.1:2"]).await;
    assert!(run.error().contains("127.0.0.1:2"), "{run:?}");
    // ... before the noun too, as kubectl users write it.
    let run = agora(
        "127.0.0.1:1",
        &["--master", "127.0.0.1:3", "-o", "json", "app", "list"],
    )
    .await;
    assert!(run.error().contains("127.0.0.1:3"), "{run:?}");

    for shell in ["bash", "zsh", "fish"] {
        let run = agora("127.0.0.1:1", &["completions", shell]).await;
        assert!(run.ok().contains("deployment"), "{shell}: {run:?}");
        assert!(run.stdout.contains("undrain"), "{shell}");
    }
    let usage = agora("127.0.0.1:1", &["completions", "tcsh"]).await;
    assert_eq!(usage.code, 2, "{usage:?}");

    let page = agora("127.0.0.1:1", &["man"]).await;
    assert!(page.ok().starts_with(".ie"), "roff: {page:?}");
    assert!(page.stdout.contains(".TH agora 1"), "{page:?}");
    let dir = temp_dir();
    let pages = dir.path().join("man");
    agora("127.0.0.1:1", &["man", "--dir", pages.to_str().unwrap()])
        .await
        .ok();
    let page = std::fs::read_to_string(pages.join("agora-app-scale.1")).unwrap();
    assert!(
        page.contains("no\\-wait"),
        "the same flags as --help: {page}"
    );

    let help = agora("127.0.0.1:1", &["app", "scale", "--help"]).await;
    assert!(help.ok().contains("--no-wait"), "{help:?}");
    let version = agora("127.0.0.1:1", &["--version"]).await;
    assert!(version.ok().starts_with("agora "), "{version:?}");
}

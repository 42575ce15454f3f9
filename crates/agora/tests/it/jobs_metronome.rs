//! Metronome's `/v1/jobs` on `agora up`: a job with a cron schedule (seconds-field form, so the
//! test need not wait for a minute) runs on its own; runs start on demand and show as active,
//! then in the history; schedules are managed one by one; bad input is a 422 naming the path.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

async fn send(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_jobs_runs_and_schedules() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:4;mem:2048;disk:4096"],
    );
    let base = format!("http://{}/v1/jobs", up.address());
    let (status, created) = send(
        reqwest::Method::POST,
        base.clone(),
        Some(json!({
            "id": "ops.tick",
            "description": "every two seconds",
            "run": {"cmd": "echo tick", "cpus": 0.1, "mem": 32, "disk": 0},
            "schedules": [{"id": "often", "cron": "*/2 * * * * *", "timezone": "Europe/Berlin",
                           "concurrencyPolicy": "FORBID"}]
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["schedules"][0]["startingDeadlineSeconds"], 900);

    let ran = wait_until(Duration::from_secs(20), "two scheduled runs", || async {
        let (_, job) = send(
            reqwest::Method::GET,
            format!("{base}/ops.tick?embed=history"),
            None,
        )
        .await;
        (job["history"]["successCount"].as_u64()? >= 2).then_some(job)
    })
    .await;
    assert_eq!(ran["history"]["failureCount"], 0);
    assert!(
        ran["history"]["successfulFinishedRuns"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );

    // Runs on demand: 201 with the run, visible until it ends, then in the history.
    let (status, _) = send(
        reqwest::Method::POST,
        base.clone(),
        Some(json!({"id": "ops.slow", "run": {"cmd": "sleep 2", "cpus": 0.1, "mem": 32}})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, run) = send(reqwest::Method::POST, format!("{base}/ops.slow/runs"), None).await;
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["status"], "INITIAL");
    let run_id = run["id"].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(10), "the run active", || async {
        let (_, runs) = send(reqwest::Method::GET, format!("{base}/ops.slow/runs"), None).await;
        (runs[0]["status"] == "ACTIVE").then_some(())
    })
    .await;
    let done = wait_until(Duration::from_secs(15), "the run to succeed", || async {
        let (status, run) = send(
            reqwest::Method::GET,
            format!("{base}/ops.slow/runs/{run_id}"),
            None,
        )
        .await;
        (status == 200 && run["status"] == "SUCCESS").then_some(run)
    })
    .await;
    assert_eq!(done["tasks"][0]["status"], "TASK_FINISHED");

    // Schedules one by one.
    let schedules = format!("{base}/ops.slow/schedules");
    let (status, _) = send(
        reqwest::Method::POST,
        schedules.clone(),
        Some(json!({"id": "nightly", "cron": "0 2 * * *", "timezone": "America/New_York"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, listed) = send(reqwest::Method::GET, schedules.clone(), None).await;
    assert_eq!(listed[0]["id"], "nightly");
    // 02:00 in New York is 06:00 or 07:00 UTC, depending on daylight saving.
    let next = listed[0]["nextRunAt"].as_str().expect("nextRunAt");
    assert!(
        next.contains("T06:00:00.000Z") || next.contains("T07:00:00.000Z"),
        "{next}"
    );
    let (status, _) = send(
        reqwest::Method::PUT,
        format!("{schedules}/nightly"),
        Some(json!({"id": "nightly", "cron": "0 3 * * *", "enabled": false})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, one) = send(reqwest::Method::GET, format!("{schedules}/nightly"), None).await;
    assert_eq!(
        (one["cron"].as_str(), one["enabled"].as_bool()),
        (Some("0 3 * * *"), Some(false))
    );
    let (status, _) = send(
        reqwest::Method::DELETE,
        format!("{schedules}/nightly"),
        None,
    )
    .await;
    assert_eq!(status, 200);

    // Bad input: 422 with the path at fault; nothing stored.
    for (body, path) in [
        (json!({"id": "Bad", "run": {"cmd": "x"}}), "/id"),
        (json!({"id": "ok", "run": {}}), "/run"),
        (
            json!({"id": "ok", "run": {"cmd": "x"}, "schedules": [{"id": "s", "cron": "every day"}]}),
            "/schedules[0]/cron",
        ),
        (
            json!({"id": "ok", "run": {"cmd": "x"}, "schedules": [{"id": "s", "cron": "* * * * *", "timezone": "Mars/Base"}]}),
            "/schedules[0]/cron",
        ),
    ] {
        let (status, error) = send(reqwest::Method::POST, base.clone(), Some(body.clone())).await;
        assert_eq!(status, 422, "{body} -> {error}");
        assert_eq!(error["details"][0]["path"], path, "{body} -> {error}");
    }
    let (_, all) = send(reqwest::Method::GET, base.clone(), None).await;
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ops.slow", "ops.tick"]);
    let (status, _) = send(reqwest::Method::GET, format!("{base}/nobody"), None).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        reqwest::Method::DELETE,
        format!("{base}/ops.tick?stopCurrentJobRuns=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
}

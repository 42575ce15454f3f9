//! The jobs scheduler through Chronos' API on `agora up`: repeating jobs, a dependent chain,
//! retries then an error, runs on demand with arguments and environment, bad input refused
//! whole, and a restart between two scheduled times that loses nothing and runs no slot twice.

use std::time::Duration;

use crate::common::*;
use serde_json::{Value, json};

struct Chronos {
    base: String,
    http: reqwest::Client,
}

impl Chronos {
    fn new(address: &str) -> Chronos {
        Chronos {
            base: format!("http://{address}/scheduler"),
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    async fn post(&self, path: &str, body: Value) -> (u16, String) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn job(&self, name: &str) -> Value {
        let (status, body) = self
            .send(reqwest::Method::GET, &format!("/job/{name}"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("job json")
    }

    async fn history(&self, name: &str) -> Vec<Value> {
        let (_, body) = self
            .send(reqwest::Method::GET, &format!("/job/stat/{name}"), None)
            .await;
        let stat: Value = serde_json::from_str(&body).expect("stat json");
        stat["taskStatHistory"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `name` has at least `count` successes.
    async fn successes(&self, name: &str, count: u64, timeout: Duration) -> Value {
        wait_until(timeout, &format!("{count} successes of {name}"), || async {
            let job = self.job(name).await;
            (job["successCount"].as_u64()? >= count).then_some(job)
        })
        .await
    }
}

fn now_plus(seconds: i64) -> String {
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(seconds))
        .expect("time");
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_and_dependent_jobs_run_in_order() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:4;mem:2048;disk:4096"],
    );
    let chronos = Chronos::new(&up.address());
    let every = format!("R/{}/PT2S", now_plus(1));
    for (path, job) in [
        (
            "/iso8601",
            json!({"name": "extract", "command": "echo extracted", "schedule": every, "cpus": 0.1, "mem": 32, "owner": "etl@example.com"}),
        ),
        (
            "/dependency",
            json!({"name": "transform", "command": "echo transformed", "parents": ["extract"], "cpus": 0.1, "mem": 32}),
        ),
        (
            "/dependency",
            json!({"name": "load", "command": "echo loaded", "parents": ["transform"], "cpus": 0.1, "mem": 32}),
        ),
    ] {
        let (status, body) = chronos.post(path, job).await;
        assert_eq!(
            (status, body.as_str()),
            (204, ""),
            "created with an empty 204"
        );
    }
    let load = chronos.successes("load", 2, Duration::from_secs(20)).await;
    assert_eq!(load["errorCount"], 0);
    let extract = chronos.job("extract").await;
    assert!(
        extract["successCount"].as_u64().unwrap() >= 2,
        "runs repeatedly: {extract}"
    );
    // Each load ran after the transform that triggered it, which ran after its extract.
    let start = |run: &Value| run["startTime"].as_str().unwrap().to_owned();
    let end = |run: &Value| run["endTime"].as_str().unwrap().to_owned();
    let (extracts, transforms, loads) = (
        chronos.history("extract").await,
        chronos.history("transform").await,
        chronos.history("load").await,
    );
    let first_load = loads.last().expect("a load");
    let first_transform = transforms.last().expect("a transform");
    let first_extract = extracts.last().expect("an extract");
    assert!(end(first_extract) <= start(first_transform));
    assert!(end(first_transform) <= start(first_load));
    let (_, csv) = chronos.send(reqwest::Method::GET, "/graph/csv", None).await;
    assert!(
        csv.contains("link,extract,transform\n") && csv.contains("link,transform,load\n"),
        "{csv}"
    );
    assert!(csv.contains("node,load,success,"), "{csv}");
    // The 3.x prefix serves the same jobs.
    let listed: Value = reqwest::get(format!("http://{}/v1/scheduler/jobs", up.address()))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));
    // The jobs' metrics are served with the master's.
    let metrics = up.get_text("/metrics").await;
    let successes = metrics
        .lines()
        .find_map(|line| line.strip_prefix("agora_jobs_successes_total "))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .expect("agora_jobs_successes_total");
    assert!(successes >= 6.0, "{successes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_then_count_and_runs_on_demand_take_arguments() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:4;mem:2048;disk:4096",
            "--job-failure-retry",
            "1s",
        ],
    );
    let chronos = Chronos::new(&up.address());
    let (status, _) = chronos
        .post("/iso8601", json!({"name": "flaky", "command": "exit 3", "schedule": "R1//PT1H", "retries": 2, "cpus": 0.1, "mem": 32}))
        .await;
    assert_eq!(status, 204);
    let failed = wait_until(
        Duration::from_secs(20),
        "an error after the retries",
        || async {
            let job = chronos.job("flaky").await;
            (job["errorCount"].as_u64()? == 1).then_some(job)
        },
    )
    .await;
    assert_eq!(failed["errorsSinceLastSuccess"], 1);
    assert_eq!(failed["successCount"], 0);
    let history = chronos.history("flaky").await;
    assert_eq!(history.len(), 3, "the run and two retries: {history:?}");
    assert!(history.iter().all(|run| run["taskState"] == "TASK_FAILED"));

    // A disabled job still runs when asked, with arguments and extra environment.
    let (status, _) = chronos
        .post("/iso8601", json!({"name": "report", "command": "echo \"report $WHO\"", "schedule": "R/2030-01-01T00:00:00Z/P1D", "disabled": true, "cpus": 0.1, "mem": 32}))
        .await;
    assert_eq!(status, 204);
    let (status, body) = chronos
        .send(
            reqwest::Method::PUT,
            "/job/report?arguments=--fast",
            Some(json!({"environmentVariables": [{"name": "WHO", "value": "ops"}]})),
        )
        .await;
    assert_eq!((status, body.as_str()), (204, ""));
    chronos
        .successes("report", 1, Duration::from_secs(10))
        .await;
    let task = chronos.history("report").await[0]["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        task_stdout(&up.address(), &task).await,
        "report ops --fast\n"
    );
    let (status, _) = chronos
        .send(reqwest::Method::PUT, "/job/nobody", None)
        .await;
    assert_eq!(status, 404);

    // A run in progress shows in the job's stats and can be killed; a killed run is not retried.
    chronos
        .post("/dependency", json!({"name": "long", "command": "sleep 60", "parents": ["report"], "retries": 3, "cpus": 0.1, "mem": 32}))
        .await;
    chronos.send(reqwest::Method::PUT, "/job/long", None).await;
    wait_until(Duration::from_secs(10), "the run in progress", || async {
        let (_, body) = chronos
            .send(reqwest::Method::GET, "/job/stat/long", None)
            .await;
        let stat: Value = serde_json::from_str(&body).ok()?;
        (!stat["running"].as_array()?.is_empty()).then_some(())
    })
    .await;
    let (status, body) = chronos
        .send(reqwest::Method::DELETE, "/task/kill/long", None)
        .await;
    assert_eq!((status, body.as_str()), (204, ""));
    let killed = wait_until(
        Duration::from_secs(10),
        "the killed run in the history",
        || async {
            let history = chronos.history("long").await;
            (!history.is_empty()).then_some(history)
        },
    )
    .await;
    assert_eq!(killed[0]["taskState"], "TASK_KILLED");
    tokio::time::sleep(Duration::from_secs(2)).await; // longer than --job-failure-retry
    assert_eq!(chronos.history("long").await.len(), 1, "not retried");
    assert_eq!(chronos.job("long").await["errorCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_jobs_are_refused_with_the_field_named_and_nothing_stored() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &[]);
    let chronos = Chronos::new(&up.address());
    chronos
        .post(
            "/iso8601",
            json!({"name": "a", "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D"}),
        )
        .await;
    chronos
        .post(
            "/dependency",
            json!({"name": "b", "command": "true", "parents": ["a"]}),
        )
        .await;
    for (path, job, field) in [
        (
            "/iso8601",
            json!({"name": "x", "command": "true", "schedule": "R/soon/P1D"}),
            "schedule",
        ),
        (
            "/iso8601",
            json!({"name": "x", "schedule": "R/2030-01-01T00:00:00Z/P1D"}),
            "command",
        ),
        (
            "/iso8601",
            json!({"name": "x", "command": "true"}),
            "schedule",
        ),
        (
            "/dependency",
            json!({"name": "x", "command": "true", "parents": ["ghost"]}),
            "parents",
        ),
        (
            "/dependency",
            json!({"name": "a", "command": "true", "parents": ["b"]}),
            "parents",
        ),
    ] {
        let (status, body) = chronos.post(path, job.clone()).await;
        assert_eq!(status, 400, "{job} -> {body}");
        let message: Value = serde_json::from_str(&body).expect("json error");
        let text = message["message"].as_str().unwrap_or_default();
        assert!(text.starts_with(&format!("{field}:")), "{job} -> {text}");
    }
    let (status, _) = chronos.send(reqwest::Method::POST, "/iso8601", None).await;
    assert_eq!(status, 400, "no body");
    let (_, body) = chronos.send(reqwest::Method::GET, "/jobs", None).await;
    let names: Vec<String> = serde_json::from_str::<Vec<Value>>(&body)
        .expect("jobs")
        .iter()
        .map(|job| job["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert!(
        chronos.job("a").await["parents"].is_null(),
        "the cycle stored nothing"
    );
    // a is b's parent: as in Chronos, b takes a's schedule.
    let (status, _) = chronos.send(reqwest::Method::DELETE, "/job/a", None).await;
    assert_eq!(status, 204);
    let b = chronos.job("b").await;
    assert_eq!(b["schedule"], "R/2030-01-01T00:00:00Z/P1D", "{b}");
    assert!(b["parents"].as_array().is_none_or(Vec::is_empty), "{b}");
    let (status, _) = chronos.send(reqwest::Method::DELETE, "/job/b", None).await;
    assert_eq!(status, 204);
    let (status, _) = chronos.send(reqwest::Method::DELETE, "/job/b", None).await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_slots_loses_nothing_and_runs_no_slot_twice() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut up = start_up(&data, &["--resources", "cpus:4;mem:2048;disk:4096"]);
    let chronos = Chronos::new(&up.address());
    let every = format!("R/{}/PT3S", now_plus(1));
    chronos
        .post("/iso8601", json!({"name": "tick", "command": "echo tick", "schedule": every, "cpus": 0.1, "mem": 32}))
        .await;
    chronos.successes("tick", 1, Duration::from_secs(10)).await;
    up.kill9();
    kill_leftovers(&data.join("agent"));
    let up = start_up(&data, &["--resources", "cpus:4;mem:2048;disk:4096"]);
    let chronos = Chronos::new(&up.address());
    let before = chronos.job("tick").await["successCount"].as_u64().unwrap();
    assert!(before >= 1, "the job and its counts survived");
    chronos
        .successes("tick", before + 2, Duration::from_secs(20))
        .await;
    // A run cut short by the restart may be retried for its slot; no slot succeeds twice.
    let history = chronos.history("tick").await;
    assert!(
        history.iter().all(|run| run["scheduledAt"].is_string()),
        "{history:?}"
    );
    let mut slots: Vec<&str> = history
        .iter()
        .filter(|run| run["taskState"] == "TASK_FINISHED")
        .filter_map(|run| run["scheduledAt"].as_str())
        .collect();
    slots.sort_unstable();
    let count = slots.len();
    slots.dedup();
    assert_eq!(slots.len(), count, "no slot ran twice: {history:?}");
}

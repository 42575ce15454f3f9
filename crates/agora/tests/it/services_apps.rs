//! The services scheduler's `/v2` API on `agora up`: deploy, scale, rolling restart, kill and
//! replace, delete, validation errors, and apps surviving a restart.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common;
use crate::common::marathon::Marathon;
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_scale_restart_kill_and_delete() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let up = start_up(
        &data_dir,
        &["--resources", "cpus:4;mem:2048;ports:[31000-31020]"],
    );
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    let app = json!({"id": "/prod/web", "cmd": "echo port=$PORT0 app=$MARATHON_APP_ID host=$HOST; exec sleep 600", "cpus": 0.1, "mem": 32, "instances": 2, "labels": {"tier": "front"}});
    let (status, created) = marathon
        .send(reqwest::Method::POST, "/v2/apps", Some(app.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["portDefinitions"][0]["port"], 10000,
        "the first service port of the range"
    );
    assert_eq!(created["deployments"].as_array().map(Vec::len), Some(1));
    let tasks = marathon.settled("/prod/web", 2).await;
    // The scheduler's metrics are served with the master's, in Prometheus text and JSON.
    let metrics = marathon
        .http
        .get(format!("{}/metrics", marathon.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("agora_services_apps 1\n"), "{metrics}");
    assert!(
        metrics.contains("agora_services_instances_running 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "# TYPE agora_services_launched_total counter\nagora_services_launched_total 2\n"
        ),
        "{metrics}"
    );
    assert_eq!(
        marathon.get("/metrics/snapshot").await["services/apps"],
        1.0
    );
    let task = &tasks[0];
    assert_eq!(task["servicePorts"], json!([10000]));
    let host_port = task["ports"][0].as_u64().expect("host port");
    assert!((31000..=31020).contains(&host_port));
    let stdout = first_stdout(&up.address(), task["id"].as_str().unwrap()).await;
    assert_eq!(
        stdout,
        format!(
            "port={host_port} app=/prod/web host={}\n",
            task["host"].as_str().unwrap()
        )
    );

    // A second app cannot take the same service port; duplicates and bad input are refused.
    let (status, body) = marathon
        .send(
            reqwest::Method::POST,
            "/v2/apps",
            Some(json!({"id": "/other", "cmd": "x", "portDefinitions": [{"port": 10000}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["path"], "/portDefinitions", "{body}");
    assert!(
        body["details"][0]["errors"][0]
            .as_str()
            .unwrap()
            .contains("10000"),
        "{body}"
    );
    let (status, _) = marathon
        .send(reqwest::Method::POST, "/v2/apps", Some(app.clone()))
        .await;
    assert_eq!(status, 409, "the app exists");
    let (status, body) = marathon
        .send(
            reqwest::Method::POST,
            "/v2/apps",
            Some(json!({"id": "/bad", "cpus": 0, "instances": -1})),
        )
        .await;
    assert_eq!(status, 422);
    let paths: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"/cpus") && paths.contains(&"/instances") && paths.contains(&"/"),
        "{body}"
    );
    assert_eq!(
        marathon
            .send(reqwest::Method::GET, "/v2/apps/nope", None)
            .await
            .0,
        404
    );

    // Scale with a partial update, as the marathon client does.
    let (status, body) = marathon
        .send(
            reqwest::Method::PUT,
            "/v2/apps/prod/web",
            Some(json!({"instances": 3})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string());
    let before = marathon.settled("/prod/web", 3).await;

    // A definition change is a rolling restart: every task replaced by one of the new version.
    let (status, body) = marathon
        .send(
            reqwest::Method::PUT,
            "/v2/apps/prod/web",
            Some(json!({"cmd": "echo v2; exec sleep 600"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_str().unwrap().to_owned();
    let after = marathon.settled("/prod/web", 3).await;
    assert!(
        after.iter().all(|t| t["version"] == version.as_str()),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .all(|t| !before.iter().any(|b| b["id"] == t["id"]))
    );
    let versions = marathon.get("/v2/apps/prod/web/versions").await;
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(3));

    // Killing a task replaces it; killing with scale lowers the instance count.
    let victim = after[0]["id"].as_str().unwrap().to_owned();
    let (status, _) = marathon
        .send(
            reqwest::Method::DELETE,
            &format!("/v2/apps/prod/web/tasks/{victim}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(20), "the killed task gone", || async {
        let tasks = marathon.get("/v2/apps/prod/web/tasks").await["tasks"]
            .as_array()?
            .clone();
        (!tasks.iter().any(|t| t["id"] == victim.as_str())).then_some(())
    })
    .await;
    let replaced = marathon.settled("/prod/web", 3).await;
    assert!(replaced.iter().all(|t| t["id"] != victim.as_str()));
    let victim = replaced[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = marathon
        .send(
            reqwest::Method::POST,
            "/v2/tasks/delete?scale=true",
            Some(json!({"ids": [victim]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    marathon.settled("/prod/web", 2).await;
    assert_eq!(
        marathon.get("/v2/apps/prod/web").await["app"]["instances"],
        2
    );

    // The HAProxy bridge's text form.
    let text = marathon.tasks_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("prod_web\t10000\t"))
        .expect("a line for the app");
    assert_eq!(line.matches(':').count(), 2, "{line}");

    // Delete: tasks killed, the app gone.
    let (status, _) = marathon
        .send(reqwest::Method::DELETE, "/v2/apps/prod/web", None)
        .await;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(20), "app deleted", || async {
        let apps = marathon.get("/v2/apps").await;
        apps["apps"].as_array()?.is_empty().then_some(())
    })
    .await;
    let state = agora_client::MasterClient::new(&up.address())
        .get_json("/master/state")
        .await
        .unwrap();
    let running: usize = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["tasks"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(running, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_survive_a_restart() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let mut up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let marathon = Marathon::new(&up.address());
    marathon.create(json!({"id": "/keeper", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16, "instances": 2})).await;
    marathon.settled("/keeper", 2).await;
    up.terminate();
    let up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let marathon = Marathon::new(&up.address());
    let app = marathon.get("/v2/apps/keeper").await;
    assert_eq!(app["app"]["instances"], 2);
    assert_eq!(
        app["app"]["portDefinitions"][0]["port"], 10000,
        "service ports are kept"
    );
    marathon.settled("/keeper", 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_back_off_and_the_queue_says_why() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let marathon = Marathon::new(&up.address());

    // An app that cannot fit: the queue names the missing resource.
    marathon
        .create(json!({"id": "/huge", "cmd": "sleep 1", "cpus": 64, "mem": 16}))
        .await;
    let item = wait_until(
        Duration::from_secs(10),
        "huge in the queue with a reason",
        || async {
            let item = queue_item(&marathon, "/huge").await?;
            let reasons = item["processedOffersSummary"]["rejectSummaryLastOffers"].as_array()?;
            reasons
                .iter()
                .any(|r| r["reason"] == "InsufficientCpus")
                .then_some(item)
        },
    )
    .await;
    assert_eq!(item["count"], 1);
    assert!(
        item["processedOffersSummary"]["unusedOffersCount"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(item.get("lastUnusedOffers").is_none(), "only when embedded");
    let queue = marathon.get("/v2/queue?embed=lastUnusedOffers").await;
    let item = queue["queue"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["app"]["id"] == "/huge")
        .unwrap()
        .clone();
    let unused = &item["lastUnusedOffers"][0];
    assert_eq!(unused["reason"], json!(["InsufficientCpus"]), "{item}");
    assert!(unused["offer"]["agentId"].is_string(), "{item}");
    let cpus = unused["offer"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cpus")
        .unwrap();
    assert!(cpus["scalar"].as_f64().unwrap() < 64.0, "{item}");

    // An app that keeps failing waits longer and longer before each relaunch.
    marathon.create(json!({"id": "/crashy", "cmd": "exit 1", "cpus": 0.1, "mem": 16, "backoffSeconds": 30, "backoffFactor": 2})).await;
    let delayed = wait_until(Duration::from_secs(10), "crashy delayed", || async {
        let item = queue_item(&marathon, "/crashy").await?;
        (item["delay"]["timeLeftSeconds"].as_i64()? > 20).then_some(item)
    })
    .await;
    assert_eq!(delayed["delay"]["overdue"], false);
    // Nothing is relaunched while the delay lasts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = marathon.get("/v2/apps/crashy/tasks").await;
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(0));
    // One app, without any embed, comes with its tasks and its last failure, as Marathon's.
    let app = marathon.get("/v2/apps/crashy").await;
    assert_eq!(app["app"]["tasks"], json!([]), "{app}");
    assert_eq!(
        app["app"]["lastTaskFailure"]["state"], "TASK_FAILED",
        "{app}"
    );

    // Resetting the delay launches again at once (and it fails again, with a longer delay).
    let (status, _) = marathon
        .send(reqwest::Method::DELETE, "/v2/queue/crashy/delay", None)
        .await;
    assert_eq!(status, 204);
    wait_until(
        Duration::from_secs(10),
        "crashy relaunched and delayed again",
        || async {
            let item = queue_item(&marathon, "/crashy").await?;
            (item["delay"]["timeLeftSeconds"].as_i64()? > 20).then_some(())
        },
    )
    .await;
    let (status, _) = marathon
        .send(reqwest::Method::DELETE, "/v2/queue/nope/delay", None)
        .await;
    assert_eq!(status, 404);
}

/// Reads Server-Sent Events into a channel of (event type, JSON data).
async fn sse(address: &str, query: &str) -> tokio::sync::mpsc::UnboundedReceiver<(String, Value)> {
    use futures_util::StreamExt;
    let response = reqwest::Client::new()
        .get(format!("http://{address}/v2/events{query}"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("events");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut parser = agora_client::sse::SseParser::default();
        while let Some(Ok(chunk)) = body.next().await {
            for event in parser.push(&chunk) {
                if sender.send((event.kind, event.data)).is_err() {
                    return;
                }
            }
        }
    });
    receiver
}

async fn next_of(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<(String, Value)>,
    kind: &str,
) -> Value {
    loop {
        let (event_type, data) = tokio::time::timeout(Duration::from_secs(15), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event in time"))
            .expect("event stream open");
        assert_eq!(data["eventType"], event_type.as_str());
        if event_type == kind {
            return data;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_follows_deployments_and_tasks() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let marathon = Marathon::new(&up.address());
    let mut all = sse(&up.address(), "").await;
    let mut only_success = sse(&up.address(), "?event_type=deployment_success").await;
    marathon
        .create(json!({"id": "/watched", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16}))
        .await;

    let posted = next_of(&mut all, "api_post_event").await;
    assert_eq!(posted["appDefinition"]["id"], "/watched");
    let info = next_of(&mut all, "deployment_info").await;
    assert_eq!(
        info["plan"]["target"]["apps"][0]["id"], "/watched",
        "plans carry original and target groups"
    );
    assert_eq!(
        info["plan"]["original"]["apps"].as_array().map(Vec::len),
        Some(0)
    );
    let running = loop {
        let update = next_of(&mut all, "status_update_event").await;
        if update["taskStatus"] == "TASK_RUNNING" {
            break update;
        }
    };
    assert_eq!(running["appId"], "/watched");
    let success = next_of(&mut all, "deployment_success").await;
    assert_eq!(success["id"], info["plan"]["id"]);
    let timestamp = success["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.len() == 24,
        "{timestamp}"
    );

    // A filtered stream gets only what it asked for.
    let (kind, data) = tokio::time::timeout(Duration::from_secs(10), only_success.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kind.as_str(), &data["id"]),
        ("deployment_success", &info["plan"]["id"])
    );

    marathon
        .send(reqwest::Method::DELETE, "/v2/apps/watched", None)
        .await;
    let terminated = next_of(&mut all, "app_terminated_event").await;
    assert_eq!(terminated["appId"], "/watched");
}

/// A callback receiver: records every body; refuses the first `refuse` requests with a 500.
async fn callback_receiver(
    refuse: usize,
) -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    tokio::task::JoinHandle<()>,
) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let recorded = seen.clone();
    let router = axum::Router::new().route(
        "/events",
        axum::routing::post(move |body: axum::body::Bytes| {
            let recorded = recorded.clone();
            let refused = refused.clone();
            async move {
                if refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < refuse {
                    return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                }
                recorded
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, seen, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_callbacks_are_posted_retried_and_kept() {
    let dir = temp_dir();
    let data_dir = dir.path().join("data");
    let mut up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let marathon = Marathon::new(&up.address());
    // The first two deliveries fail: the event still arrives, in order.
    let (url, seen, _server) = callback_receiver(2).await;
    let (status, body) = marathon
        .send(
            reqwest::Method::POST,
            &format!("/v2/eventSubscriptions?callbackUrl={url}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["eventType"], "subscribe_event");
    assert_eq!(body["callbackUrl"], url.as_str());
    assert_eq!(
        marathon.get("/v2/eventSubscriptions").await["callbackUrls"],
        json!([url])
    );
    marathon
        .create(json!({"id": "/called", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16}))
        .await;
    let kinds = wait_until(
        Duration::from_secs(15),
        "deployment_success posted",
        || async {
            let kinds: Vec<String> = seen
                .lock()
                .unwrap()
                .iter()
                .map(|e| e["eventType"].as_str().unwrap_or_default().to_owned())
                .collect();
            kinds
                .iter()
                .any(|k| k == "deployment_success")
                .then_some(kinds)
        },
    )
    .await;
    assert_eq!(
        &kinds[..3],
        ["subscribe_event", "api_post_event", "deployment_info"],
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|k| k == "status_update_event"),
        "{kinds:?}"
    );

    // Bad URLs are refused; subscriptions survive a restart; unsubscribing twice is a 404.
    let (status, body) = marathon
        .send(
            reqwest::Method::POST,
            "/v2/eventSubscriptions?callbackUrl=ftp://x",
            None,
        )
        .await;
    assert_eq!(status, 422, "{body}");
    up.terminate();
    let up = start_up(&data_dir, &["--resources", "cpus:2;mem:1024"]);
    let marathon = Marathon::new(&up.address());
    assert_eq!(
        marathon.get("/v2/eventSubscriptions").await["callbackUrls"],
        json!([url])
    );
    let unsubscribe = format!("/v2/eventSubscriptions?callbackUrl={url}");
    let (status, body) = marathon
        .send(reqwest::Method::DELETE, &unsubscribe, None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["eventType"], "unsubscribe_event");
    let (status, _) = marathon
        .send(reqwest::Method::DELETE, &unsubscribe, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_fetch_uris_reach_the_agent_in_mesos_shape() {
    let dir = temp_dir();
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    // Host volumes are allowed under the directories `--docker-allow` names.
    let allow = format!("host-volumes={}", shared.display());
    let up = start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024;ports:[31000-31010]",
            "--docker-allow",
            &allow,
        ],
    );
    let marathon = Marathon::new(&up.address());
    let image = common::docker::busybox_image();
    let fetched = dir.path().join("a.txt");
    std::fs::write(&fetched, "fetched\n").unwrap();
    let app = json!({"id": "/boxed", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
        "container": {"type": "DOCKER", "docker": {"image": image, "network": "BRIDGE",
            "portMappings": [{"containerPort": 80, "hostPort": 0}]},
            "volumes": [{"containerPath": "/data", "hostPath": shared, "mode": "RO"}]},
        "fetch": [{"uri": format!("file://{}", fetched.display()), "cache": true}]});
    marathon.create(app).await;
    let tasks = marathon.settled("/boxed", 1).await;
    let host_port = tasks[0]["ports"][0].as_u64().unwrap();
    assert!((31000..=31010).contains(&host_port), "{tasks:?}");
    let state = agora_client::MasterClient::new(&up.address())
        .get_json("/master/state")
        .await
        .unwrap();
    let task = &framework(&state, "marathon")["tasks"][0];
    let docker = &task["container"]["docker"];
    assert_eq!(docker["image"], image, "{task}");
    assert_eq!(docker["network"], "BRIDGE");
    assert_eq!(docker["port_mappings"][0]["host_port"], host_port);
    assert_eq!(docker["port_mappings"][0]["container_port"], 80);
    assert_eq!(
        task["container"]["volumes"][0]["host_path"],
        shared.display().to_string()
    );
    // The fetched file is in the sandbox the container sees.
    let task_id = task["id"].as_str().unwrap();
    let (_, sandbox) = executor_directory(&up.address(), task_id).await;
    assert!(std::path::Path::new(&sandbox).join("a.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_apps_change_in_one_put() {
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024;ports:[31000-31010]"],
    );
    let marathon = Marathon::new(&up.address());
    let one = json!({"id": "/one", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16});
    marathon.create(one).await;
    marathon.settled("/one", 1).await;

    // A partial update of one app and a new one, together; both get service ports of their own.
    let both = json!([
        {"id": "/one", "instances": 2},
        {"id": "/two", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16},
    ]);
    let (status, body) = marathon
        .send(reqwest::Method::PUT, "/v2/apps", Some(both))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deploymentId"].is_string());
    marathon.settled("/one", 2).await;
    marathon.settled("/two", 1).await;
    let port = |app: Value| app["app"]["portDefinitions"][0]["port"].clone();
    assert_ne!(
        port(marathon.get("/v2/apps/one").await),
        port(marathon.get("/v2/apps/two").await)
    );

    // One bad item refuses the whole request, naming the item.
    let bad = json!([{"id": "/three", "cmd": "x"}, {"id": "/four", "cmd": "x", "cpus": -1}]);
    let (status, body) = marathon
        .send(reqwest::Method::PUT, "/v2/apps", Some(bad))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"][0]["path"], "/1/cpus", "{body}");
    assert_eq!(
        marathon
            .send(reqwest::Method::GET, "/v2/apps/three", None)
            .await
            .0,
        404
    );
}

/// The queue's item for an app, if it is queued.
async fn queue_item(marathon: &Marathon, app_id: &str) -> Option<Value> {
    let queue = marathon.get("/v2/queue").await;
    queue["queue"]
        .as_array()?
        .iter()
        .find(|item| item["app"]["id"] == app_id)
        .cloned()
}

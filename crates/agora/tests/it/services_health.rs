//! Health checks on `agora up`: HTTP, HTTPS, TCP and COMMAND checks run by the agent next to the
//! task, their results in `/v2` task JSON and app counts, an instance killed and replaced after
//! failing its check, and a rolling upgrade that waits for new instances to be healthy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::marathon::{Marathon, running};
use crate::common::*;

const RESOURCES: &str = "cpus:8;mem:4096;ports:[31000-31100]";

/// An HTTP server on `$PORT0` serving the sandbox; with `tls` it makes a self-signed
/// certificate and serves HTTPS.
fn http_server(tls: bool) -> String {
    let wrap = if tls {
        "c=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); c.load_cert_chain('cert.pem','key.pem'); \
         s.socket=c.wrap_socket(s.socket, server_side=True); "
    } else {
        ""
    };
    let server = format!(
        "python3 -c \"import http.server, ssl, os; \
         s=http.server.HTTPServer(('127.0.0.1', int(os.environ['PORT0'])), http.server.SimpleHTTPRequestHandler); \
         {wrap}s.serve_forever()\""
    );
    if tls {
        format!(
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
             -subj /CN=localhost 2>/dev/null && exec {server}"
        )
    } else {
        format!("exec {server}")
    }
}

fn check(protocol: &str, extra: Value) -> Value {
    let mut check = json!({
        "protocol": protocol, "gracePeriodSeconds": 30, "intervalSeconds": 1,
        "timeoutSeconds": 1, "maxConsecutiveFailures": 3, "delaySeconds": 0,
    });
    check
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    check
}

async fn healthy_tasks(marathon: &Marathon, app: &str, count: usize) -> Vec<Value> {
    wait_until(
        Duration::from_secs(30),
        &format!("{app}: {count} healthy tasks, deployment done"),
        || async {
            let app_json = marathon.get(&format!("/v2/apps{app}")).await;
            let deployments = app_json["app"]["deployments"].as_array()?.len();
            let tasks = marathon.tasks(app).await;
            let alive = tasks
                .iter()
                .filter(|t| t["healthCheckResults"][0]["alive"] == true)
                .count();
            (deployments == 0
                && alive == count
                && tasks.len() == count
                && app_json["app"]["tasksHealthy"] == count)
                .then_some(tasks)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_reports_health_in_task_json() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", RESOURCES]);
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    let apps = [
        (
            "/http",
            http_server(false),
            check("HTTP", json!({"path": "/"})),
        ),
        ("/https", http_server(true), check("HTTPS", json!({}))),
        ("/tcp", http_server(false), check("MESOS_TCP", json!({}))),
        (
            "/command",
            "touch ok; exec sleep 600".to_owned(),
            check(
                "COMMAND",
                json!({"command": {"value": "test -f ok && test -n \"$MARATHON_APP_ID\""}}),
            ),
        ),
    ];
    for (id, cmd, health) in &apps {
        let app = json!({"id": id, "cmd": cmd, "cpus": 0.1, "mem": 32, "instances": 1,
            "portDefinitions": [{"port": 0}], "healthChecks": [health]});
        marathon.create(app).await;
    }
    for (id, _, _) in &apps {
        let tasks = healthy_tasks(&marathon, id, 1).await;
        let result = &tasks[0]["healthCheckResults"][0];
        assert_eq!(result["consecutiveFailures"], 0, "{id}: {result}");
        assert!(result["firstSuccess"].is_string(), "{id}: {result}");
        assert_eq!(result["instanceId"], tasks[0]["id"]);
    }
    // `/v2/tasks` carries the same results.
    let all = marathon.get("/v2/tasks").await;
    let all = all["tasks"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert!(
        all.iter()
            .all(|t| t["healthCheckResults"][0]["alive"] == true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_failing_its_check_is_killed_and_replaced() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", RESOURCES]);
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    let app = json!({"id": "/flaky", "cmd": "touch healthy; exec sleep 600", "cpus": 0.1,
        "mem": 32, "instances": 1, "backoffSeconds": 1,
        "healthChecks": [check("COMMAND", json!({"command": {"value": "test -f healthy"},
            "maxConsecutiveFailures": 2}))]});
    marathon.create(app).await;
    let first = healthy_tasks(&marathon, "/flaky", 1).await;
    let first_id = first[0]["id"].as_str().unwrap().to_owned();

    // The check starts failing: the agent kills the task after two failures and the services
    // scheduler starts another, which is healthy again.
    let (_, sandbox) = executor_directory(&up.address(), &first_id).await;
    std::fs::remove_file(std::path::Path::new(&sandbox).join("healthy")).unwrap();
    let unhealthy = wait_until(Duration::from_secs(15), "the failure reported", || async {
        let tasks = marathon.get("/v2/apps/flaky/tasks").await;
        let result = tasks["tasks"][0]["healthCheckResults"][0].clone();
        (result["alive"] == false).then_some(result)
    })
    .await;
    assert!(
        unhealthy["lastFailureCause"]
            .as_str()
            .unwrap()
            .contains("exit status: 1"),
        "{unhealthy}"
    );
    let replaced = wait_until(Duration::from_secs(30), "a healthy replacement", || async {
        let tasks = healthy_tasks(&marathon, "/flaky", 1).await;
        (tasks[0]["id"] != first_id.as_str()).then_some(tasks)
    })
    .await;
    assert_ne!(replaced[0]["id"], first_id.as_str());

    // The kill counts as the app's last failure.
    let app = marathon
        .get("/v2/apps/flaky?embed=app.lastTaskFailure")
        .await;
    let failure = &app["app"]["lastTaskFailure"];
    assert_eq!(failure["taskId"], first_id.as_str(), "{app}");
    assert_eq!(failure["state"], "TASK_KILLED");
    let master = agora_client::MasterClient::new(&up.address());
    let killed = wait_until(
        Duration::from_secs(10),
        "the killed task completed",
        || async {
            let state = master.get_json("/master/state").await.ok()?;
            framework(&state, "marathon")["completed_tasks"]
                .as_array()?
                .iter()
                .find(|t| t["id"] == first_id.as_str())
                .cloned()
        },
    )
    .await;
    let last = killed["statuses"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["healthy"], false, "{killed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_waits_for_new_instances_to_be_healthy() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", RESOURCES]);
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    let health = check(
        "COMMAND",
        json!({"command": {"value": "test -f ready"}, "gracePeriodSeconds": 60}),
    );
    let app = |cmd: &str| {
        json!({"id": "/web", "cmd": cmd, "cpus": 0.1, "mem": 32, "instances": 2,
            "healthChecks": [health.clone()],
            "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}})
    };
    marathon.create(app("touch ready; exec sleep 600")).await;
    let old = healthy_tasks(&marathon, "/web", 2).await;
    let old_ids: Vec<&str> = old.iter().map(|t| t["id"].as_str().unwrap()).collect();

    // A version that never becomes healthy: its instances start (over capacity) but no old
    // instance is killed, and the deployment stays.
    let (status, body) = marathon
        .send(Method::PUT, "/v2/apps/web", Some(app("exec sleep 601")))
        .await;
    assert_eq!(status, 200, "{body}");
    wait_until(Duration::from_secs(20), "new instances running", || async {
        (running(&marathon.tasks("/web").await) == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tasks = marathon.get("/v2/apps/web/tasks").await;
    for id in &old_ids {
        assert!(
            tasks["tasks"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["id"] == *id && t["state"] == "TASK_RUNNING"),
            "old instance {id} must keep running: {tasks}"
        );
    }
    let deployments = marathon.get("/v2/deployments").await;
    assert_eq!(deployments.as_array().unwrap().len(), 1, "{deployments}");
    let app_json = marathon.get("/v2/apps/web").await;
    assert_eq!(app_json["app"]["tasksHealthy"], 2, "{app_json}");

    // A healthy version, forced over the stuck deployment, completes and replaces everything.
    let (status, body) = marathon
        .send(
            Method::PUT,
            "/v2/apps/web?force=true",
            Some(app("touch ready; exec sleep 602")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let new = healthy_tasks(&marathon, "/web", 2).await;
    assert!(
        new.iter()
            .all(|t| !old_ids.contains(&t["id"].as_str().unwrap()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_one_check_or_a_bad_port_is_refused() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", RESOURCES]);
    let marathon = Marathon::new(&up.address());
    let app = json!({"id": "/two", "cmd": "sleep 1", "portDefinitions": [{"port": 0}],
        "healthChecks": [check("TCP", json!({})), check("HTTP", json!({"portIndex": 4}))]});
    let (status, body) = marathon.send(Method::POST, "/v2/apps", Some(app)).await;
    assert_eq!(status, 422, "{body}");
    let paths: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/healthChecks"), "{body}");
    assert!(paths.contains(&"/healthChecks(1)/portIndex"), "{body}");
    assert_eq!(marathon.get("/v2/apps").await["apps"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readiness_check_holds_the_deployment_until_ready() {
    let dir = temp_dir();
    let up = start_up(&dir.path().join("data"), &["--resources", RESOURCES]);
    let marathon = Marathon::new(&up.address());
    wait_for_agents(&agora_client::MasterClient::new(&up.address()), 1).await;

    // The task serves its sandbox at once, but /ready only exists after three seconds.
    let app = json!({"id": "/warming", "cpus": 0.1, "mem": 32,
        "cmd": "(sleep 3; echo yes > ready) & exec python3 -m http.server $PORT0",
        "portDefinitions": [{"port": 0, "name": "http-api"}],
        "readinessChecks": [{"path": "/ready", "portName": "http-api", "intervalSeconds": 1,
            "timeoutSeconds": 0, "preserveLastResponse": true}]});
    let (status, body) = marathon
        .send(Method::POST, "/v2/apps", Some(app.clone()))
        .await;
    assert_eq!(
        status, 422,
        "timeoutSeconds must be below intervalSeconds: {body}"
    );
    let mut app = app;
    app["readinessChecks"][0]["intervalSeconds"] = json!(2);
    app["readinessChecks"][0]["timeoutSeconds"] = json!(1);
    marathon.create(app).await;

    let waiting = wait_until(Duration::from_secs(15), "a not-ready result", || async {
        let deployments = marathon.get("/v2/deployments").await;
        let result = deployments[0]["currentActions"][0]["readinessCheckResults"][0].clone();
        (result["ready"] == false && result["lastResponse"]["status"] == 404).then_some(result)
    })
    .await;
    assert_eq!(waiting["name"], "readinessCheck");
    let tasks = marathon.get("/v2/apps/warming/tasks").await;
    assert_eq!(
        tasks["tasks"][0]["state"], "TASK_RUNNING",
        "running, not ready"
    );
    assert_eq!(waiting["taskId"], tasks["tasks"][0]["id"]);

    // Once /ready answers 200 the deployment completes.
    wait_until(Duration::from_secs(15), "the deployment done", || async {
        let deployments = marathon.get("/v2/deployments").await;
        deployments.as_array()?.is_empty().then_some(())
    })
    .await;
}

//! The Docker containerizer against the real Docker Engine, with an image made here: a
//! Marathon app's HTTP server in a BRIDGE container answers on its host port, with its env,
//! sandbox volume, parameters and logs; an agent restarted over its work dir keeps the Docker
//! task and a process task running; destroying the app removes the container. A missing image
//! fails at once, a failing container reports its status, a killed one is stopped.

use std::time::Duration;

use crate::common::docker::{busybox_image, containers_labelled, docker};
use crate::common::marathon::Marathon;
use crate::common::*;
use agora_client::MasterClient;
use agora_types::TaskState;
use serde_json::json;

const TASK_LABEL: &str = "agora.task_id";

async fn http_get(port: u64) -> Result<String, String> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}/"))
        .await
        .map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_app_serves_on_its_host_port_and_outlives_an_agent_restart() {
    let image = busybox_image();
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let work_dir = path(&dir, "agent");
    let resources = "cpus:2;mem:1024;ports:[32500-32599]";
    let mut agent = start_agent(&master.address(), &work_dir, resources);
    wait_for_agents(&MasterClient::new(&master.address()), 1).await;
    let marathon = Marathon::new(&master.address());

    marathon
        .create(json!({
            "id": "/web-docker", "instances": 1, "cpus": 0.2, "mem": 128,
            "cmd": "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null; echo started; echo \"$GREETING\" > $MESOS_SANDBOX/greeting; mkdir -p /www && echo hello-from-docker > /www/index.html && exec httpd -f -p 80 -h /www",
            "env": {"GREETING": "hi there"},
            "container": {"type": "DOCKER", "docker": {
                "image": image, "network": "BRIDGE",
                "portMappings": [{"containerPort": 80, "hostPort": 0, "servicePort": 10874},
                                 {"containerPort": 81, "hostPort": 0}],
                "parameters": [{"key": "label", "value": "team=agora"}]
            }}
        }))
        .await;
    marathon
        .create(json!({"id": "/plain", "instances": 1, "cpus": 0.1, "mem": 32, "cmd": "exec sleep 1000"}))
        .await;
    let web = marathon.settled("/web-docker", 1).await;
    let plain = marathon.settled("/plain", 1).await;
    let web_id = web[0]["id"].as_str().unwrap().to_owned();
    let plain_id = plain[0]["id"].as_str().unwrap().to_owned();
    let port = web[0]["ports"][0].as_u64().expect("a host port");
    assert!((32500..=32599).contains(&port), "{port}");

    let body = wait_until(
        Duration::from_secs(10),
        "the container's server",
        || async { http_get(port).await.ok() },
    )
    .await;
    assert_eq!(body.trim(), "hello-from-docker");
    // Each port mapping has a service port (a 0 is assigned one, as Marathon does), and the
    // agent's service proxy forwards the first to the container's host port.
    let app = marathon.get("/v2/apps/web-docker").await;
    let container = &app["app"]["container"];
    let mappings = if container["portMappings"].is_array() {
        &container["portMappings"]
    } else {
        &container["docker"]["portMappings"]
    };
    assert_eq!(mappings[0]["servicePort"], 10874, "{app}");
    let assigned = mappings[1]["servicePort"].as_u64().unwrap_or(0);
    assert!((10000..=20000).contains(&assigned), "{app}");
    assert_eq!(web[0]["servicePorts"], json!([10874, assigned]));
    let proxied = wait_until(Duration::from_secs(10), "the service port", || async {
        http_get(10874).await.ok()
    })
    .await;
    assert_eq!(proxied.trim(), "hello-from-docker");
    let containers = containers_labelled(TASK_LABEL, &web_id);
    assert_eq!(containers.len(), 1, "one container for the task");
    let container = containers[0].clone();
    let labels = docker(&["inspect", "--format", "{{json .Config.Labels}}", &container]).unwrap();
    assert!(labels.contains("\"team\":\"agora\""), "{labels}");
    // Its output reaches the sandbox, and its sandbox volume is the task's sandbox.
    let stdout = wait_until(Duration::from_secs(10), "the container's logs", || async {
        let stdout = task_stdout(&agent.address(), &web_id).await;
        stdout.contains("started").then_some(stdout)
    })
    .await;
    assert!(stdout.contains("started"));
    let (_, sandbox) = executor_directory(&agent.address(), &web_id).await;
    let greeting =
        std::fs::read_to_string(std::path::Path::new(&sandbox).join("greeting")).unwrap();
    assert_eq!(greeting.trim(), "hi there");

    // Inside the container: its processes, and a command run there.
    let base = format!("http://{}/slave(1)/tasks/{web_id}", agent.address());
    let top: serde_json::Value = reqwest::get(format!("{base}/top"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        top["processes"].as_array().is_some_and(|p| p
            .iter()
            .any(|p| p["command"].as_str().unwrap_or_default().contains("httpd"))),
        "{top}"
    );
    let exec: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/exec"))
        .json(&json!({"argv": ["cat", "/www/index.html"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(exec["exit_code"], 0, "{exec}");
    assert_eq!(exec["stdout"], "hello-from-docker\n", "{exec}");

    // The container's usage counts with its executor's: the 40 MB it wrote into its
    // /dev/shm are there (the executor alone uses a few).
    wait_until(
        Duration::from_secs(10),
        "the container's memory",
        || async {
            let containers: serde_json::Value =
                reqwest::get(format!("http://{}/containers", agent.address()))
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
            let entry = containers
                .as_array()?
                .iter()
                .find(|c| c["executor_id"] == web_id.as_str())?;
            (entry["statistics"]["mem_rss_bytes"].as_u64()? >= 40 << 20).then_some(())
        },
    )
    .await;
    // TASK_RUNNING tells where the container runs: its first process (a label) and its
    // address on the bridge (Mesos' container_status).
    let state = MasterClient::new(&master.address())
        .get_json("/master/state")
        .await
        .unwrap();
    let running = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["tasks"].as_array().unwrap().iter())
        .find(|t| t["id"] == web_id.as_str())
        .and_then(|t| {
            t["statuses"]
                .as_array()?
                .iter()
                .find(|s| s["state"] == "TASK_RUNNING")
                .cloned()
        })
        .expect("a TASK_RUNNING status");
    let pid = docker(&["inspect", "--format", "{{.State.Pid}}", &container]).unwrap();
    assert_eq!(
        running["labels"]["labels"],
        json!([{"key": "agora.docker.pid", "value": pid.trim()}]),
        "{running}"
    );
    let address = running["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"]
        .as_str()
        .unwrap_or_default();
    assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{running}");
    // Marathon lists it at that address; a task on the host network at its agent's.
    let tasks = marathon.settled("/web-docker", 1).await;
    assert_eq!(
        tasks[0]["ipAddresses"],
        json!([{"ipAddress": address, "protocol": "IPv4"}]),
        "{tasks:?}"
    );
    let plain_tasks = marathon.settled("/plain", 1).await;
    assert_eq!(
        plain_tasks[0]["ipAddresses"],
        json!([{"ipAddress": "127.0.0.1", "protocol": "IPv4"}]),
        "{plain_tasks:?}"
    );

    // The agent goes down hard and comes back over its work dir: both tasks carry on.
    let agent_port = agent.port;
    agent.kill9();
    let agent = start_agent_on(&master.address(), &work_dir, resources, agent_port);
    wait_until(
        Duration::from_secs(15),
        "the agent back with both tasks",
        || async {
            let state = MasterClient::new(&agent.address())
                .get_json("/slave(1)/state")
                .await
                .ok()?;
            let running = state["frameworks"]
                .as_array()?
                .iter()
                .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
                .filter(|e| e["tasks"][0]["state"] == "TASK_RUNNING")
                .count();
            (running == 2).then_some(())
        },
    )
    .await;
    assert_eq!(http_get(port).await.unwrap().trim(), "hello-from-docker");
    assert_eq!(
        containers_labelled(TASK_LABEL, &web_id),
        vec![container.clone()]
    );
    let after: Vec<String> = marathon
        .tasks("/web-docker")
        .await
        .iter()
        .chain(marathon.tasks("/plain").await.iter())
        .filter(|t| t["state"] == "TASK_RUNNING")
        .map(|t| t["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        after.contains(&web_id) && after.contains(&plain_id),
        "{after:?}"
    );

    // Destroying the app stops and removes its container.
    let (status, _) = marathon
        .send(reqwest::Method::DELETE, "/v2/apps/web-docker", None)
        .await;
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(20), "the container removed", || async {
        containers_labelled(TASK_LABEL, &web_id)
            .is_empty()
            .then_some(())
    })
    .await;
    kill_leftovers(&work_dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_tasks_fail_stop_and_report_clearly() {
    let image = busybox_image();
    let dir = temp_dir();
    let up = start_up(
        &dir.path().join("data"),
        &["--resources", "cpus:2;mem:1024"],
    );
    let mut scheduler = subscribe(&up.address(), framework_info("docker-tasks")).await;
    let container =
        |image: &str| json!({"type": "DOCKER", "docker": {"image": image, "network": "HOST"}});
    launch_built_on_next_offer(&mut scheduler, |offer| {
        [
            // A registry that refuses at once: the pull cannot work, and the task says so.
            ("missing", "true", "127.0.0.1:1/agora/missing:1"),
            ("failing", "echo oops >&2; exit 3", image),
            ("sleeping", "exec sleep 1000", image),
        ]
        .into_iter()
        .map(|(id, command, image)| {
            let mut task = command_task(id, offer, command, 0.1, 32.0);
            task.container = Some(container(image));
            task
        })
        .collect()
    })
    .await;

    // Updates of the three come in any order: all are kept.
    let mut seen = Vec::new();
    let missing = wait_for_status(
        &mut scheduler,
        &mut seen,
        "missing",
        TaskState::Failed,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(
        missing.reason.as_deref(),
        Some("REASON_CONTAINER_LAUNCH_FAILED")
    );
    let message = missing.message.unwrap_or_default();
    assert!(message.contains("cannot be pulled"), "{message}");

    let failing = wait_for_status(
        &mut scheduler,
        &mut seen,
        "failing",
        TaskState::Failed,
        Duration::from_secs(30),
    )
    .await;
    let message = failing.message.unwrap_or_default();
    assert!(message.contains("status 3"), "{message}");
    let (_, sandbox) = executor_directory(&up.address(), "failing").await;
    let stderr = std::fs::read_to_string(std::path::Path::new(&sandbox).join("stderr")).unwrap();
    assert!(stderr.contains("oops"), "{stderr}");
    assert!(
        containers_labelled(TASK_LABEL, "failing").is_empty(),
        "removed once ended"
    );

    wait_for_status(
        &mut scheduler,
        &mut seen,
        "sleeping",
        TaskState::Running,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(containers_labelled(TASK_LABEL, "sleeping").len(), 1);
    scheduler
        .kill("sleeping", Some(Duration::from_secs(1)))
        .await
        .expect("kill");
    wait_for_state(
        &mut scheduler,
        "sleeping",
        TaskState::Killed,
        Duration::from_secs(30),
    )
    .await;
    wait_until(Duration::from_secs(10), "the container removed", || async {
        containers_labelled(TASK_LABEL, "sleeping")
            .is_empty()
            .then_some(())
    })
    .await;
}

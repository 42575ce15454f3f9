//! Hollow agents (`agora hollow-agents`): 200 agents in one process register with a real master,
//! take tasks from a framework on the SDK and from Marathon and Chronos, report their states by
//! the real rules, and come back with their tasks when the master restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::*;
use agora_api::scheduler::Event;
use agora_client::MasterClient;
use agora_types::TaskState;

const AGENTS: usize = 200;

fn start_hollow(master: &str, count: usize, extra: &[&str]) -> Process {
    let count = count.to_string();
    let mut args = vec![
        "hollow-agents",
        "--master",
        master,
        "--count",
        &count,
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--resources",
        "cpus:4;mem:4096;disk:10000;ports:[31000-31099]",
        "--attributes",
        "rack:r{i%4}",
        "--status-update-retry",
        "500ms",
    ];
    args.extend_from_slice(extra);
    Process::start(&args)
}

/// A GET's JSON, if it answers with some.
async fn get(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

async fn summary(hollow: &Process) -> Value {
    let state: Value = serde_json::from_str(&hollow.get_text("/state").await).expect("json");
    state["summary"].clone()
}

/// Every agent's hostname and rack, from the master's state.
async fn registered(client: &MasterClient) -> BTreeMap<String, String> {
    let state = client.get_json("/master/state").await.expect("state");
    state["slaves"]
        .as_array()
        .expect("slaves")
        .iter()
        .map(|agent| {
            let host = agent["hostname"].as_str().unwrap_or_default().to_owned();
            let rack = agent["attributes"]["rack"].as_str().unwrap_or_default();
            (host, rack.to_owned())
        })
        .collect()
}

/// Tasks in each state, by the master's `/master/state`.
async fn master_task_states(client: &MasterClient) -> BTreeMap<String, usize> {
    let state = client.get_json("/master/state").await.expect("state");
    let mut counts = BTreeMap::new();
    for framework in state["frameworks"].as_array().into_iter().flatten() {
        for task in framework["tasks"].as_array().into_iter().flatten() {
            let name = task["state"].as_str().unwrap_or_default().to_owned();
            *counts.entry(name).or_default() += 1;
        }
    }
    counts
}

/// The state documents at 200 agents and tasks: streamed (chunked, no length known ahead),
/// whole, and paged where agora pages (`/master/slaves` by offset, `/master/tasks` by agent
/// and by whether a task ended). One task, `task-on-hollow-7`, was killed.
async fn state_documents_stream_and_page(master: &str) {
    let http = reqwest::Client::new();
    let answer = http
        .post(format!("http://{master}/api/v1"))
        .json(&json!({"type": "GET_STATE"}))
        .send()
        .await
        .expect("GET_STATE");
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers().get("content-length").is_none(),
        "{answer:?}"
    );
    let bytes = answer.bytes().await.expect("body");
    assert!(
        bytes.len() > 128 * 1024,
        "several chunks: {} bytes",
        bytes.len()
    );
    let state: Value = serde_json::from_slice(&bytes).expect("one JSON document");
    let tasks = &state["get_state"]["get_tasks"];
    let listed = |key: &str| tasks[key].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(
        listed("tasks") + listed("completed_tasks"),
        AGENTS,
        "{tasks}"
    );
    assert_eq!(
        state["get_state"]["get_agents"]["agents"]
            .as_array()
            .map(Vec::len),
        Some(AGENTS)
    );

    let page = |query: String| {
        let http = &http;
        async move {
            get(http, &format!("http://{master}/master/slaves?{query}"))
                .await
                .expect("slaves")["slaves"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|agent| agent["id"].as_str().unwrap_or_default().to_owned())
                .collect::<Vec<String>>()
        }
    };
    let first = page("offset=0&limit=150".into()).await;
    let second = page("offset=150&limit=150".into()).await;
    assert_eq!((first.len(), second.len()), (150, AGENTS - 150));
    let all: Vec<String> = first.iter().chain(&second).cloned().collect();
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(all, sorted, "pages in the order of the ids, none twice");
    let two = page(format!("slave_id={},{}", all[3], all[120])).await;
    assert_eq!(
        BTreeSet::from_iter(two),
        BTreeSet::from([all[3].clone(), all[120].clone()])
    );

    let tasks_where = |query: String| {
        let http = &http;
        async move {
            get(
                http,
                &format!("http://{master}/master/tasks?limit=1000&{query}"),
            )
            .await
            .expect("tasks")["tasks"]
                .as_array()
                .expect("a list")
                .iter()
                .map(|task| {
                    let id = task["id"].as_str().unwrap_or_default().to_owned();
                    (id, task["slave_id"].as_str().unwrap_or_default().to_owned())
                })
                .collect::<Vec<(String, String)>>()
        }
    };
    let ended = tasks_where("ended=true".into()).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0].0, "task-on-hollow-7");
    assert_eq!(tasks_where("ended=false".into()).await.len(), AGENTS - 1);
    let agent = &ended[0].1;
    assert_eq!(
        tasks_where(format!("slave_id={agent}")).await,
        [("task-on-hollow-7".to_owned(), agent.clone())]
    );
    assert!(
        tasks_where(format!("slave_id={agent}&ended=false"))
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_agents_register_run_tasks_and_come_back_after_a_master_restart() {
    let dir = temp_dir();
    let mut master = start_master(&path(&dir, "master"));
    let port = master.port;
    let hollow = start_hollow(&master.address(), AGENTS, &[]);
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, AGENTS).await;
    let agents = registered(&client).await;
    let expected: BTreeMap<String, String> = (0..AGENTS)
        .map(|i| (format!("hollow-{i}"), format!("r{}", i % 4)))
        .collect();
    assert_eq!(agents, expected);

    // One task on every agent, from a framework on the SDK.
    let mut scheduler = subscribe(&master.address(), framework_info("hollow")).await;
    let mut launched = BTreeSet::new();
    let mut states: BTreeMap<String, Vec<TaskState>> = BTreeMap::new();
    while launched.len() < AGENTS {
        match next_event(&mut scheduler, Duration::from_secs(20)).await {
            Event::Offers { offers } => {
                for offer in offers.offers {
                    let id = format!("task-on-{}", offer.hostname);
                    if !launched.insert(id.clone()) {
                        continue;
                    }
                    let task = command_task(&id, &offer, "sleep 1000", 0.5, 64.0);
                    scheduler
                        .launch(vec![offer.id.clone()], vec![task], None)
                        .await
                        .expect("launch");
                }
            }
            Event::Update { update } => states
                .entry(update.status.task_id.value.clone())
                .or_default()
                .push(update.status.state),
            _ => {}
        }
    }
    while states
        .values()
        .filter(|s| s.contains(&TaskState::Running))
        .count()
        < AGENTS
    {
        if let Event::Update { update } = next_event(&mut scheduler, Duration::from_secs(20)).await
        {
            states
                .entry(update.status.task_id.value.clone())
                .or_default()
                .push(update.status.state);
        }
    }
    // As an executor reports them: STARTING, then RUNNING, each once, in order.
    for (task, seen) in &states {
        assert_eq!(
            seen,
            &[TaskState::Starting, TaskState::Running],
            "the updates of {task}"
        );
    }
    let hollow_state = summary(&hollow).await;
    assert_eq!(hollow_state["tasks_running"], AGENTS);
    let metrics = hollow.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!("\nagora_hollow_tasks_running {AGENTS}\n")),
        "{metrics}"
    );
    assert!(metrics.contains("# TYPE agora_hollow_updates_total counter\n"));

    // A kill: TASK_KILLED (this framework does not know TASK_KILLING).
    scheduler
        .kill("task-on-hollow-7", None)
        .await
        .expect("kill");
    let killed = wait_for_state(
        &mut scheduler,
        "task-on-hollow-7",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(killed.source.as_deref(), Some("SOURCE_EXECUTOR"));
    state_documents_stream_and_page(&master.address()).await;

    // A storm: every running task reports again at once; each update reaches the framework.
    let storm: Value = reqwest::Client::new()
        .post(format!("http://{}/storm", hollow.address()))
        .json(&json!({}))
        .send()
        .await
        .expect("storm")
        .json()
        .await
        .expect("json");
    assert_eq!(storm["updates"], AGENTS - 1);
    let mut stormed = BTreeSet::new();
    while stormed.len() < AGENTS - 1 {
        if let Event::Update { update } = next_event(&mut scheduler, Duration::from_secs(20)).await
        {
            assert_eq!(update.status.state, TaskState::Running);
            assert_eq!(
                update.status.reason.as_deref(),
                Some("REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
            );
            stormed.insert(update.status.task_id.value);
        }
    }
    wait_until(
        Duration::from_secs(20),
        "the storm acknowledged",
        || async { (summary(&hollow).await["updates_pending"] == 0).then_some(()) },
    )
    .await;

    // The master restarts over its registry: every agent comes back with its tasks, none lost.
    master.kill9();
    let master = start_master_on(&path(&dir, "master"), port);
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, AGENTS).await;
    let counts = wait_until(
        Duration::from_secs(20),
        "every running task reported again",
        || async {
            let counts = master_task_states(&client).await;
            (counts.get("TASK_RUNNING") == Some(&(AGENTS - 1))).then_some(counts)
        },
    )
    .await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    // Each task's TaskInfo came back whole with its agent.
    let state = client.get_json("/master/state").await.expect("state");
    let task = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|framework| framework["tasks"].as_array().into_iter().flatten())
        .find(|task| task["id"] == "task-on-hollow-3")
        .cloned()
        .expect("task-on-hollow-3 is known again");
    assert_eq!(task["name"], "task-on-hollow-3");
    assert_eq!(task["resources"]["cpus"], 0.5);
    assert_eq!(task["resources"]["mem"], 64.0);
    let metrics = client.get_json("/metrics/snapshot").await.expect("metrics");
    assert_eq!(
        metrics["master/slave_removals"], 0.0,
        "no agent was removed"
    );
    assert_eq!(summary(&hollow).await["registered"], AGENTS);
    drop(hollow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marathon_and_chronos_run_on_hollow_agents() {
    let dir = temp_dir();
    // The failure rate fails job runs too: they are retried after a second, not Chronos' 60.
    let master = start_master_with(&path(&dir, "master"), 0, &["--job-failure-retry", "1s"]);
    let hollow = start_hollow(&master.address(), AGENTS, &["--failure-rate", "0.05"]);
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, AGENTS).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", master.address());

    // An app of 400 instances spread over the racks, with a health check the tasks pass.
    let app = json!({
        "id": "/hollow/web",
        "cmd": "python3 -m http.server $PORT0",
        "cpus": 0.1,
        "mem": 32,
        "instances": 400,
        // Each failure would otherwise hold the app's next launch back 15 % longer.
        "backoffSeconds": 0.1,
        "backoffFactor": 1.0,
        "constraints": [["rack", "GROUP_BY", "4"]],
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]
    });
    let created = http
        .post(format!("{base}/v2/apps"))
        .json(&app)
        .send()
        .await
        .expect("post");
    assert_eq!(created.status(), 201, "{:?}", created.text().await);
    let app = wait_until(
        Duration::from_secs(90),
        "400 healthy instances, the deployment done",
        || async {
            let app = get(
                &http,
                &format!("{base}/v2/apps/hollow/web?embed=apps.tasks"),
            )
            .await?;
            let app = app["app"].clone();
            let done = app["tasksHealthy"] == 400 && app["deployments"] == json!([]);
            done.then_some(app)
        },
    )
    .await;
    // The tasks that failed at start (5 %) were replaced.
    let failed = summary(&hollow).await["launched"].as_u64().unwrap_or(0) - 400;
    assert!(failed > 0, "no task failed at a failure rate of 5 %");
    let mut per_rack: BTreeMap<String, usize> = BTreeMap::new();
    let hosts: BTreeMap<String, String> = registered(&client).await;
    for task in app["tasks"].as_array().expect("tasks") {
        let host = task["host"].as_str().expect("host");
        *per_rack.entry(hosts[host].clone()).or_default() += 1;
    }
    assert_eq!(per_rack.values().copied().collect::<Vec<_>>(), vec![100; 4]);

    // A Chronos job whose tasks finish after 0.2 s: it runs, and its dependant after it.
    let job = json!({
        "name": "hollow-extract",
        "command": "extract",
        "schedule": "R2//PT1S",
        "cpus": 0.1,
        "mem": 32,
        "environmentVariables": [{"name": "AGORA_HOLLOW_RUNTIME_SECONDS", "value": "0.2"}]
    });
    let dependant = json!({
        "name": "hollow-load",
        "command": "load",
        "parents": ["hollow-extract"],
        "cpus": 0.1,
        "mem": 32,
        "environmentVariables": [{"name": "AGORA_HOLLOW_RUNTIME_SECONDS", "value": "0.2"}]
    });
    for (path, body) in [("iso8601", job), ("dependency", dependant)] {
        let answer = http
            .post(format!("{base}/v1/scheduler/{path}"))
            .json(&body)
            .send()
            .await
            .expect("post job");
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
    }
    wait_until(Duration::from_secs(90), "two runs of each job", || async {
        let jobs = get(&http, &format!("{base}/v1/scheduler/jobs")).await?;
        let successes = |name: &str| {
            jobs.as_array()
                .into_iter()
                .flatten()
                .find(|job| job["name"] == name)
                .and_then(|job| job["successCount"].as_u64())
                .unwrap_or(0)
        };
        (successes("hollow-extract") >= 2 && successes("hollow-load") >= 2).then_some(())
    })
    .await;

    // Scaled down, the app's tasks are killed on the agents.
    let scaled = http
        .put(format!("{base}/v2/apps/hollow/web"))
        .json(&json!({"instances": 40}))
        .send()
        .await
        .expect("put");
    assert_eq!(scaled.status(), 200);
    wait_until(Duration::from_secs(60), "360 tasks killed", || async {
        let state = summary(&hollow).await;
        (state["tasks_running"] == 40 && state["updates_pending"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hollow_agents_say_why_they_cannot_reach_their_master() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let master = closed.local_addr().expect("address").to_string();
    drop(closed);
    let hollow = start_hollow(&master, 3, &[]);
    let why = wait_until(Duration::from_secs(20), "a link error", || async {
        let state = summary(&hollow).await;
        state["link_error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(why.contains(&master) || why.contains("connect"), "{why}");
    assert_eq!(summary(&hollow).await["registered"], 0);
}

/// An operator subscriber is sent the whole state first (SUBSCRIBED), however much larger
/// than its queue's bound (which is for events it falls behind on), then the events after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_subscriber_gets_a_state_larger_than_its_queue() {
    let dir = temp_dir();
    let master = start_master_with(
        &path(&dir, "master"),
        0,
        &["--subscriber-queue-size", "16KB"],
    );
    let _hollow = start_hollow(&master.address(), 50, &[]);
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 50).await;

    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1", master.address()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/recordio")
        .body(r#"{"type":"SUBSCRIBE"}"#)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut decoder = agora_api::recordio::Decoder::new();
    let mut events: Vec<Value> = Vec::new();
    let mut more = start_hollow(&master.address(), 1, &["--hostname-prefix", "late-"]);
    while events.iter().all(|e| e["type"] != "AGENT_ADDED") {
        let next = futures_util::StreamExt::next(&mut body);
        let chunk = tokio::time::timeout(Duration::from_secs(20), next)
            .await
            .expect("events in time")
            .expect("the stream stays open")
            .expect("a chunk");
        decoder.feed(&chunk);
        while let Ok(Some(record)) = decoder.next_record() {
            events.push(serde_json::from_slice(&record).expect("JSON"));
        }
    }
    let first = &events[0];
    assert_eq!(first["type"], "SUBSCRIBED", "{first}");
    let state = serde_json::to_vec(&first["subscribed"]["get_state"]).expect("JSON");
    assert!(state.len() > 16 * 1024, "{} bytes", state.len());
    assert_eq!(
        first["subscribed"]["get_state"]["get_agents"]["agents"]
            .as_array()
            .map(Vec::len),
        Some(50)
    );
    let added = events
        .iter()
        .find(|e| e["type"] == "AGENT_ADDED")
        .expect("added");
    assert_eq!(
        added["agent_added"]["agent"]["agent_info"]["hostname"],
        "late-0"
    );
    more.kill9();
}

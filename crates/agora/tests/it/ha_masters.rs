//! Masters elected in a real ZooKeeper (Debian's package, started by the test): the first
//! leads, a standby redirects to it, and when the leader is killed the standby takes over
//! with the state the leader wrote (the registry's weights, the services' apps).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use agora_zk::testing::ZooKeeper;

use crate::common::{Process, start_agent, start_master_with, wait_until};

fn no_redirects() -> reqwest::Client {
    agora_tls::install_default_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn ha_master(dir: &std::path::Path, zk: &str) -> Process {
    start_master_with(dir, 0, &["--zk", zk, "--zk-session-timeout", "2s"])
}

/// ZooKeeper and two masters in its group `/agora`: the first leading, the second started once
/// it does.
struct Pair {
    first: Process,
    second: Process,
    client: reqwest::Client,
    zk: String,
    _zookeeper: ZooKeeper,
    dirs: [tempfile::TempDir; 2],
}

async fn pair() -> Pair {
    let zookeeper = ZooKeeper::start();
    let zk = zookeeper.url_text("/agora");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let client = no_redirects();
    let (first, second) = leader_and_standby(&client, &zk, &dirs).await;
    Pair {
        first,
        second,
        client,
        zk,
        _zookeeper: zookeeper,
        dirs,
    }
}

/// Two masters in `zk`'s group, in `dirs[0]` and `dirs[1]`: the first leading, the second
/// started once it does.
async fn leader_and_standby(
    client: &reqwest::Client,
    zk: &str,
    dirs: &[tempfile::TempDir],
) -> (Process, Process) {
    let first = ha_master(dirs[0].path(), zk);
    until_leads(client, &first, "the first master to lead").await;
    (first, ha_master(dirs[1].path(), zk))
}

/// Waits (bounded) until `master` leads and serves.
async fn until_leads(client: &reqwest::Client, master: &Process, what: &str) {
    wait_until(Duration::from_secs(30), what, || leads(client, master)).await;
}

/// Waits (bounded) until `master` stands by (redirects the Mesos APIs).
async fn until_stands_by(client: &reqwest::Client, master: &Process, what: &str) {
    wait_until(Duration::from_secs(30), what, || async {
        (status(client, master, "/master/state").await? == StatusCode::TEMPORARY_REDIRECT)
            .then_some(())
    })
    .await;
}

async fn status(client: &reqwest::Client, master: &Process, path: &str) -> Option<StatusCode> {
    let url = format!("http://{}{path}", master.address());
    client.get(url).send().await.ok().map(|r| r.status())
}

async fn leads(client: &reqwest::Client, master: &Process) -> Option<()> {
    (status(client, master, "/master/state").await? == StatusCode::OK).then_some(())
}

/// The port of the `Location` a standby answers `path` with.
async fn redirected_to(client: &reqwest::Client, master: &Process, path: &str) -> (String, u16) {
    let url = format!("http://{}{path}", master.address());
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT, "{path}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let port = location
        .trim_start_matches("http://")
        .split(['/', '?'])
        .next()
        .and_then(|host| host.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {location}"));
    (location, port)
}

async fn operator(master: &Process, call: Value) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/v1", master.address()))
        .json(&call)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_redirects_to_the_leader_and_takes_over_with_its_state() {
    let Pair {
        mut first,
        second,
        client,
        zk,
        _zookeeper,
        dirs,
    } = pair().await;
    until_stands_by(&client, &second, "the second to stand by").await;
    let (location, port) = redirected_to(&client, &second, "/master/state?jsonp=no").await;
    assert_eq!(port, first.port);
    assert!(location.ends_with("/master/state?jsonp=no"), "{location}");
    let (location, port) = redirected_to(&client, &second, "/master/redirect").await;
    assert_eq!(port, first.port);
    assert!(!location.ends_with("/master/redirect"), "{location}");
    assert_eq!(
        status(&client, &second, "/health").await,
        Some(StatusCode::OK)
    );

    // The leader writes its state into ZooKeeper: a weight, an app.
    let (code, _) = operator(
        &first,
        json!({"type": "UPDATE_WEIGHTS",
               "update_weights": {"weight_infos": [{"role": "web", "weight": 3.0}]}}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    create_app(&first, "/web", 0).await;

    // Marathon's API through the standby is the leader's: proxied, naming the leader.
    let through = client
        .get(format!("http://{}/v2/apps/web", second.address()))
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), StatusCode::OK);
    let named = through.headers()["x-marathon-leader"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(named.ends_with(&format!(":{}", first.port)), "{named}");
    assert!(through.text().await.unwrap().contains("\"sleep 1000\""));
    create_app(&second, "/api", 0).await;
    assert!(first.get_text("/v2/apps/api").await.contains("\"/api\""));
    let leader: Value = serde_json::from_str(&second.get_text("/v2/leader").await).unwrap();
    assert!(
        leader["leader"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{}", first.port)),
        "{leader}"
    );

    // The CLI given the ZooKeeper URL, or both masters, finds the leader.
    let listed = crate::common::cli::agora(&zk, &["app", "list", "-o", "json"]).await;
    assert!(listed.ok().contains("\"/api\""), "{}", listed.ok());
    let both = format!("{},{}", second.address(), first.address());
    let nodes = crate::common::cli::agora(&both, &["cluster", "status", "-o", "json"]).await;
    assert!(
        nodes.ok().contains(&format!(":{}", first.port)),
        "{}",
        nodes.ok()
    );

    // A request another standby forwarded is not forwarded again: the loop is named.
    let looped = client
        .get(format!("http://{}/v2/apps", second.address()))
        .header("x-agora-proxied-by", "10.0.0.9:5050")
        .send()
        .await
        .unwrap();
    assert_eq!(looped.status(), StatusCode::BAD_GATEWAY);
    assert!(looped.text().await.unwrap().contains("10.0.0.9:5050"));

    // The leader dies; the standby leads within its session timeout, with that state.
    first.kill9();
    until_leads(&client, &second, "the standby to take over").await;
    let (_, weights) = operator(&second, json!({"type": "GET_WEIGHTS"})).await;
    assert_eq!(
        weights["get_weights"]["weight_infos"],
        json!([{"role": "web", "weight": 3.0}]),
        "{weights}"
    );
    let app = second.get_text("/v2/apps/web").await;
    assert!(app.contains("\"sleep 1000\""), "{app}");

    // The old leader, started again by its supervisor, stands by behind the new one.
    let restarted = ha_master(dirs[0].path(), &zk);
    until_stands_by(&client, &restarted, "the old leader to stand by").await;
    let (_, port) = redirected_to(&client, &restarted, "/api/v1/scheduler").await;
    assert_eq!(port, second.port);
    assert!(
        restarted
            .get_text("/v2/apps/api")
            .await
            .contains("\"/api\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_url_without_a_path_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::common::BIN)
        .args(["master", "--port", "0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(dir.path())
        .args(["--zk", "zk://127.0.0.1:2181"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("zk://127.0.0.1:2181"), "{stderr}");
    assert!(stderr.contains("path"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_session_steps_down_when_it_wakes() {
    let Pair {
        mut first,
        second,
        client,
        zk: _zk,
        _zookeeper,
        dirs: _dirs,
    } = pair().await;

    let pid = nix::unistd::Pid::from_raw(first.pid());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    until_leads(&client, &second, "the standby to take over").await;
    let (code, _) = operator(
        &second,
        json!({"type": "UPDATE_WEIGHTS",
               "update_weights": {"weight_infos": [{"role": "web", "weight": 5.0}]}}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);

    // Woken, the old leader finds its session gone and stops: it acts on nothing more.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let exited = wait_until(Duration::from_secs(30), "the old leader to stop", || {
        std::future::ready(first.child.try_wait().unwrap())
    })
    .await;
    assert!(!exited.success(), "it stops for its supervisor: {exited}");
    let (_, weights) = operator(&second, json!({"type": "GET_WEIGHTS"})).await;
    assert_eq!(
        weights["get_weights"]["weight_infos"],
        json!([{"role": "web", "weight": 5.0}]),
        "{weights}"
    );
}

/// Creates an app of `instances` sleeping tasks through `master`.
async fn create_app(master: &Process, id: &str, instances: u32) {
    let app =
        json!({"id": id, "cmd": "sleep 1000", "instances": instances, "cpus": 0.1, "mem": 16});
    let (code, body) = master
        .send_json(reqwest::Method::POST, "/v2/apps", app)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{id}: {body}");
}

/// The app's `count` tasks, once they all run.
async fn running_tasks(master: &Process, app: &str, count: usize) -> Vec<(String, String)> {
    wait_until(Duration::from_secs(30), "the tasks to run", || async {
        let tasks = app_tasks(master, app).await?;
        (tasks.len() == count && tasks.iter().all(|t| t.1 == "TASK_RUNNING")).then_some(tasks)
    })
    .await
}

/// The app's tasks as `(id, state)`, from whichever master leads.
async fn app_tasks(master: &Process, app: &str) -> Option<Vec<(String, String)>> {
    let text = master.get_text(&format!("/v2/apps/{app}/tasks")).await;
    let tasks: Value = serde_json::from_str(&text).ok()?;
    Some(
        tasks["tasks"]
            .as_array()?
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().unwrap_or_default().to_owned(),
                    t["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_follows_the_new_leader_and_keeps_its_tasks() {
    agent_follows_the_leader(|zk, _, _| zk.to_owned(), 33100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_given_the_masters_list_follows_the_new_leader_and_keeps_its_tasks() {
    // The standby first: asked, it names the leader.
    agent_follows_the_leader(
        |_, first, second| format!("{},{}", second.address(), first.address()),
        33120,
    )
    .await;
}

/// An agent whose `--master` is `master(zk, first, second)` runs a task on the first master;
/// the first is killed; the agent is back on the second with its task.
async fn agent_follows_the_leader(master: impl Fn(&str, &Process, &Process) -> String, ports: u16) {
    let work = tempfile::tempdir().unwrap();
    let Pair {
        mut first,
        second,
        client,
        zk,
        _zookeeper,
        dirs: _dirs,
    } = pair().await;
    let agent = start_agent(
        &master(&zk, &first, &second),
        work.path(),
        &format!("cpus:2;mem:512;disk:1024;ports:[{ports}-{}]", ports + 10),
    );
    create_app(&first, "/web", 1).await;
    let before = running_tasks(&first, "web", 1).await;
    let agent_state: Value = serde_json::from_str(&agent.get_text("/state").await).unwrap();
    let agent_id = agent_state["id"].as_str().unwrap().to_owned();

    first.kill9();
    until_leads(&client, &second, "the standby to take over").await;
    // The agent re-registers with the new leader under its id, with its task, not restarted.
    wait_until(
        Duration::from_secs(30),
        "the agent back, with its task",
        || async {
            let state: Value =
                serde_json::from_str(&second.get_text("/master/state").await).ok()?;
            let agents = state["slaves"].as_array()?;
            let back = agents
                .iter()
                .any(|a| a["id"] == agent_id.as_str() && a["active"] == true);
            let tasks = app_tasks(&second, "web").await?;
            (back && tasks == before).then_some(())
        },
    )
    .await;
    let agent_state: Value = serde_json::from_str(&agent.get_text("/state").await).unwrap();
    assert_eq!(agent_state["id"], agent_id.as_str());
    assert_eq!(
        agent_state["master_link"]["connected"], true,
        "{agent_state}"
    );
    assert!(
        agent_state["master_hostname"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "the agent names its leader: {agent_state}"
    );
}

/// ZooKeeper, two masters in it, and an agent following their leader, the first leading.
struct Cluster {
    zk: String,
    first: Process,
    second: Process,
    _agent: Process,
    client: reqwest::Client,
    _zookeeper: ZooKeeper,
    // Last: the agent's work dir must outlive the agent, which stops its tasks when dropped.
    _dirs: Vec<tempfile::TempDir>,
}

async fn cluster() -> Cluster {
    let zookeeper = ZooKeeper::start();
    let zk = zookeeper.url_text("/agora");
    let dirs = vec![
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let client = no_redirects();
    let (first, second) = leader_and_standby(&client, &zk, &dirs).await;
    let agent = start_agent(
        &zk,
        dirs[2].path(),
        "cpus:4;mem:1024;disk:1024;ports:[33200-33210]",
    );
    wait_until(Duration::from_secs(30), "the agent to register", || async {
        let state: Value = serde_json::from_str(&first.get_text("/master/state").await).ok()?;
        (state["activated_slaves"].as_u64()? == 1).then_some(())
    })
    .await;
    Cluster {
        zk,
        first,
        second,
        _agent: agent,
        client,
        _zookeeper: zookeeper,
        _dirs: dirs,
    }
}

impl Cluster {
    /// Kills the leader and waits for the standby to lead.
    async fn fail_over(&mut self) {
        self.first.kill9();
        let (client, second) = (&self.client, &self.second);
        until_leads(client, second, "the standby to take over").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_under_way_completes_on_the_new_leader() {
    let mut c = cluster().await;
    // Healthy only after a few seconds: the deployment is still under way when the leader dies.
    let check = json!({"protocol": "COMMAND", "command": {"value": "test -f healthy"},
        "gracePeriodSeconds": 60, "intervalSeconds": 1, "timeoutSeconds": 1,
        "maxConsecutiveFailures": 3, "delaySeconds": 0});
    let (code, body) = c
        .first
        .send_json(
            reqwest::Method::POST,
            "/v2/apps",
            json!({"id": "/slow", "cmd": "sleep 4 && touch healthy && exec sleep 1000",
                   "instances": 2, "cpus": 0.1, "mem": 16, "healthChecks": [check]}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let launched = running_tasks(&c.first, "slow", 2).await;
    let deployments = c.first.get_text("/v2/deployments").await;
    assert!(
        deployments.contains("/slow"),
        "still deploying: {deployments}"
    );

    c.fail_over().await;
    // The new leader finishes the deployment with the same tasks.
    let second = &c.second;
    wait_until(
        Duration::from_secs(60),
        "the deployment to finish",
        || async {
            let deployments: Value =
                serde_json::from_str(&second.get_text("/v2/deployments").await).ok()?;
            let app: Value = serde_json::from_str(&second.get_text("/v2/apps/slow").await).ok()?;
            (deployments.as_array()?.is_empty() && app["app"]["tasksHealthy"] == 2).then_some(())
        },
    )
    .await;
    let mut after = app_tasks(second, "slow").await.unwrap();
    let mut before = launched;
    after.sort();
    before.sort();
    assert_eq!(after, before, "no task restarted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_running_when_the_leader_dies_runs_exactly_once() {
    let mut c = cluster().await;
    let at = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(1))
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (code, body) = c
        .first
        .send_json(
            reqwest::Method::POST,
            "/scheduler/iso8601",
            json!({"name": "nightly", "command": "sleep 3", "schedule": format!("R1/{at}/PT1H"),
                   "epsilon": "PT1M", "cpus": 0.1, "mem": 16}),
        )
        .await;
    assert!(code.is_success(), "{code}: {body}");
    let first = &c.first;
    let task = wait_until(
        Duration::from_secs(30),
        "the job's run to start",
        || async {
            let tasks: Value = serde_json::from_str(&first.get_text("/master/tasks").await).ok()?;
            tasks["tasks"]
                .as_array()?
                .iter()
                .find(|t| t["name"].as_str().unwrap_or_default().contains("nightly"))
                .and_then(|t| t["id"].as_str().map(str::to_owned))
        },
    )
    .await;

    c.fail_over().await;
    let second = &c.second;
    let job = wait_until(Duration::from_secs(60), "the run to succeed", || async {
        let job: Value =
            serde_json::from_str(&second.get_text("/scheduler/job/nightly").await).ok()?;
        (job["successCount"].as_u64()? >= 1).then_some(job)
    })
    .await;
    // Give a second launch, were there one, the time to show.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tasks: Value = serde_json::from_str(&second.get_text("/master/tasks").await).unwrap();
    let runs: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"].as_str().unwrap_or_default().contains("nightly"))
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(
        runs,
        vec![task.as_str()],
        "one run, the one started before: {tasks}"
    );
    let job: Value =
        serde_json::from_str(&second.get_text("/scheduler/job/nightly").await).unwrap_or(job);
    assert_eq!(job["successCount"], 1, "{job}");
    assert_eq!(job["errorCount"], 0, "{job}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_proxy_carries_every_request_through_a_leader_kill() {
    use crate::common::marathon::Marathon;
    use crate::common::traffic::{Traffic, answered_by, healthy, web_app};

    let mut c = cluster().await;
    let marathon = Marathon::new(&c.first.address());
    marathon.create(web_app("/ha-web", 18401, 2)).await;
    let tasks = healthy(&marathon, "/ha-web", 2).await;
    let traffic = Traffic::start("127.0.0.1:18401", "ha-web");
    answered_by(&traffic, &tasks).await;
    let before = traffic.answered();

    c.fail_over().await;
    // The new leader has the app, its tasks healthy; the agent's proxy followed it.
    let marathon = Marathon::new(&c.second.address());
    assert_eq!(healthy(&marathon, "/ha-web", 2).await, tasks);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tally = traffic.stop().await;
    tally.assert_clean(before + 20);

    // The HAProxy bridge given the ZooKeeper URL renders the new leader's routes.
    let out = tempfile::tempdir().unwrap();
    let config = out.path().join("haproxy.cfg");
    let bridge = tokio::process::Command::new(crate::common::BIN)
        .args(["lb", "haproxy", "--master", &c.zk, "--once", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(
        bridge.status.success(),
        "{}",
        String::from_utf8_lossy(&bridge.stderr)
    );
    let rendered = std::fs::read_to_string(&config).unwrap();
    assert!(rendered.contains(":18401"), "{rendered}");
    assert_eq!(rendered.matches("\n    server ").count(), 2, "{rendered}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zookeeper_member_restarting_goes_unnoticed() {
    let mut ensemble = agora_zk::testing::Ensemble::start();
    let zk = ensemble.url_text("/agora");
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let client = no_redirects();
    let ha = |dir: &std::path::Path| {
        start_master_with(dir, 0, &["--zk", &zk, "--zk-session-timeout", "4s"])
    };
    let mut first = ha(dirs[0].path());
    until_leads(&client, &first, "the first master to lead").await;
    let mut second = ha(dirs[1].path());
    let agent = start_agent(&zk, dirs[2].path(), "cpus:2;mem:512;ports:[33400-33410]");
    create_app(&first, "/calm", 1).await;
    let running = running_tasks(&first, "calm", 1).await;

    // Every member in turn (so also the ones the masters' sessions are on) goes and comes back.
    for member in 0..3 {
        tokio::task::block_in_place(|| {
            ensemble.restart_member_after(member, Duration::from_millis(500))
        });
    }

    assert!(
        first.child.try_wait().unwrap().is_none(),
        "the leader still runs"
    );
    assert!(
        second.child.try_wait().unwrap().is_none(),
        "the standby still runs"
    );
    leads(&client, &first)
        .await
        .expect("the first master still leads");
    assert_eq!(
        status(&client, &second, "/master/state").await,
        Some(StatusCode::TEMPORARY_REDIRECT)
    );
    create_app(&first, "/after", 0).await;
    assert_eq!(app_tasks(&first, "calm").await.unwrap(), running);
    let state: Value = serde_json::from_str(&first.get_text("/master/state").await).unwrap();
    assert_eq!(state["activated_slaves"], 1, "the agent stayed");
    drop(agent);
    first.kill9();
    second.kill9();
}

/// `agora <args>`: whether it succeeded, and its stderr.
fn agora_command(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(crate::common::BIN)
        .args(args)
        .env_remove("AGORA_LOG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_masters_state_moves_into_zookeeper() {
    let single = tempfile::tempdir().unwrap();
    let mut master = start_master_with(single.path(), 0, &[]);
    let (code, _) = operator(
        &master,
        json!({"type": "UPDATE_WEIGHTS",
               "update_weights": {"weight_infos": [{"role": "web", "weight": 2.0}]}}),
    )
    .await;
    assert_eq!(code, StatusCode::ACCEPTED);
    create_app(&master, "/moved", 0).await;
    let data_dir = single.path().to_str().unwrap();
    let (ok, stderr) = agora_command(&["registry", "export", "--data-dir", data_dir]);
    assert!(!ok, "a running master's store is not read");
    assert!(stderr.contains("stop it first"), "{stderr}");
    master.terminate();

    let file = single.path().join("state.json");
    let file = file.to_str().unwrap();
    let (ok, stderr) = agora_command(&["registry", "export", "--data-dir", data_dir, "-o", file]);
    assert!(ok, "{stderr}");
    let zookeeper = ZooKeeper::start();
    let zk = zookeeper.url_text("/agora");
    let (ok, stderr) = agora_command(&["registry", "import", "--zk", &zk, "-i", file]);
    assert!(ok, "{stderr}");
    let (ok, stderr) = agora_command(&["registry", "import", "--zk", &zk, "-i", file]);
    assert!(!ok && stderr.contains("--replace"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let client = no_redirects();
    let ha = ha_master(dir.path(), &zk);
    until_leads(&client, &ha, "the master to lead").await;
    let (_, weights) = operator(&ha, json!({"type": "GET_WEIGHTS"})).await;
    assert_eq!(
        weights["get_weights"]["weight_infos"],
        json!([{"role": "web", "weight": 2.0}]),
        "{weights}"
    );
    assert!(ha.get_text("/v2/apps/moved").await.contains("\"/moved\""));
    let (ok, stderr) = agora_command(&["registry", "export", "--zk", &zk]);
    assert!(!ok && stderr.contains("masters are running"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_on_the_sdk_given_both_masters_follows_the_leader() {
    // The standby first: it redirects to the leader.
    sdk_follows_the_leader(|c| format!("{},{}", c.second.address(), c.first.address())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_framework_on_the_sdk_given_zookeeper_follows_the_leader() {
    sdk_follows_the_leader(|c| c.zk.clone()).await;
}

/// A framework on the SDK given `masters(cluster)` is offered, the leader is killed, and it is
/// re-subscribed with its id and offered again by the new one.
async fn sdk_follows_the_leader(masters: impl Fn(&Cluster) -> String) {
    use agora_api::scheduler::Event;

    let mut c = cluster().await;
    let masters = masters(&c);
    let info = agora_api::mesos::FrameworkInfo {
        failover_timeout: 3600.0,
        ..crate::common::framework_info("sdk-ha")
    };
    let mut scheduler = agora_client::Scheduler::subscribe(&masters, info, Default::default())
        .await
        .unwrap();
    let id = scheduler.framework_id().unwrap();
    let offers = |scheduler: &mut agora_client::Scheduler| {
        let mut seen = Vec::new();
        while let Some(event) = scheduler.try_next_event() {
            seen.push(event);
        }
        seen
    };
    wait_until(Duration::from_secs(20), "an offer", || {
        let seen = offers(&mut scheduler);
        std::future::ready(
            seen.iter()
                .any(|e| matches!(e, Event::Offers { .. }))
                .then_some(()),
        )
    })
    .await;

    c.fail_over().await;
    // Re-subscribed with its id through the other master, offered again.
    let mut subscribed = false;
    wait_until(
        Duration::from_secs(30),
        "an offer from the new leader",
        || {
            let seen = offers(&mut scheduler);
            subscribed |= seen.iter().any(|e| matches!(e, Event::Subscribed { .. }));
            std::future::ready(
                (subscribed && seen.iter().any(|e| matches!(e, Event::Offers { .. })))
                    .then_some(()),
            )
        },
    )
    .await;
    assert_eq!(scheduler.framework_id().unwrap(), id);
    let state: Value = serde_json::from_str(&c.second.get_text("/master/state").await).unwrap();
    let active: Vec<&str> = state["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["active"] == true)
        .filter_map(|f| f["id"].as_str())
        .collect();
    assert!(active.contains(&id.as_str()), "{active:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_name_of_the_leader_follows_a_failover() {
    use crate::common::dns::{resolver, services};

    let work = tempfile::tempdir().unwrap();
    let Pair {
        mut first,
        second,
        client,
        zk,
        _zookeeper,
        dirs: _dirs,
    } = pair().await;
    let dns_port = agora_zk::testing::free_port();
    let _agent = crate::common::start_agent_with(
        &zk,
        work.path(),
        "cpus:1;mem:256;ports:[33140-33145]",
        0,
        &["--dns-port", &dns_port.to_string()],
    );
    let dns = resolver(dns_port, false);
    let leader_port = |port: u16| {
        let dns = &dns;
        move || async move {
            let answers = services(dns, "_leader._tcp.mesos.").await;
            answers.iter().any(|(p, _)| *p == port).then_some(())
        }
    };
    wait_until(
        Duration::from_secs(20),
        "_leader._tcp at the first",
        leader_port(first.port),
    )
    .await;
    first.kill9();
    until_leads(&client, &second, "the standby to take over").await;
    wait_until(
        Duration::from_secs(10),
        "_leader._tcp at the second",
        leader_port(second.port),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_waits_for_an_unreachable_zookeeper_and_says_so() {
    use std::io::BufRead;

    let port = agora_zk::testing::free_port();
    let zk = format!("zk://127.0.0.1:{port}/agora");
    let dir = tempfile::tempdir().unwrap();
    let mut master = std::process::Command::new(crate::common::BIN)
        .args(["master", "--port", "0", "--bind", "127.0.0.1", "--zk", &zk])
        .args(["--zk-session-timeout", "2s"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = master.stdout.take().unwrap();
    let stderr = master.stderr.take().unwrap();
    let said = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok);
        let said = lines.find(|line| line.contains("trying again"));
        // Keep reading: a master is no worse for a reader that goes, but the test reads on.
        std::thread::spawn(move || for _ in lines {});
        said
    })
    .await
    .unwrap()
    .expect("a message that ZooKeeper is unreachable");
    assert!(said.contains(&format!("127.0.0.1:{port}")), "{said}");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let address = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap()
        .to_owned();
    std::thread::spawn(move || for _ in lines {});

    // ZooKeeper comes: the master joins and leads.
    let _zookeeper = tokio::task::block_in_place(|| ZooKeeper::start_on(port));
    let client = no_redirects();
    wait_until(Duration::from_secs(30), "the master to lead", || async {
        let state = client
            .get(format!("http://{address}/master/state"))
            .send()
            .await
            .ok()?;
        (state.status() == StatusCode::OK).then_some(())
    })
    .await;
    let _ = master.kill();
    let _ = master.wait();
}

//! The services scheduler on a cluster of processes (a master and three agents): a master
//! restart in the middle of a rolling upgrade resumes it with no duplicate launch and no orphan,
//! a lost agent's instances are replaced elsewhere, and rolling upgrades honour every
//! combination of the two upgrade knobs at their edges.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::marathon::{Marathon, running};
use crate::common::*;
use agora_client::MasterClient;

const AGENT: &str = "cpus:2;mem:1024;ports:[31000-31100]";

/// Every task of the `marathon` framework the master knows, running or completed.
/// Agent `i` of the cluster, on a host of its own as placement constraints see it.
fn node(master: &str, dir: &tempfile::TempDir, i: usize) -> Process {
    let hostname = format!("node{i}");
    start_agent_with(
        master,
        &path(dir, &format!("agent{i}")),
        AGENT,
        0,
        &["--hostname", &hostname],
    )
}

async fn master_tasks(master: &MasterClient) -> Vec<Value> {
    let state = master.get_json("/master/state").await.unwrap();
    let framework = framework(&state, "marathon");
    framework["tasks"]
        .as_array()
        .into_iter()
        .chain(framework["completed_tasks"].as_array())
        .flatten()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restart_mid_deployment_resumes_it_without_duplicates() {
    let dir = temp_dir();
    let data_dir = path(&dir, "master");
    let mut master = start_master_on(&data_dir, 0);
    let port = master.port;
    let _agents: Vec<Process> = (0..3).map(|i| node(&master.address(), &dir, i)).collect();
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 3).await;
    let marathon = Marathon::new(&master.address());

    let v1 = json!({"id": "/steady", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
        "instances": 3});
    marathon.create(v1).await;
    let old = marathon
        .settled_within("/steady", 3, Duration::from_secs(30))
        .await;
    let old_ids: BTreeSet<String> = old
        .iter()
        .map(|t| t["id"].as_str().unwrap().into())
        .collect();

    // Each new instance turns healthy two seconds after it starts, and only one new instance
    // may exist beyond the three: the upgrade takes several seconds, one instance at a time.
    let v2 = json!({"id": "/steady", "cmd": "sleep 2; touch ready; exec sleep 600", "cpus": 0.1,
        "mem": 16, "instances": 3,
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 0.34},
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "test -f ready"},
            "gracePeriodSeconds": 60, "intervalSeconds": 1, "timeoutSeconds": 1, "delaySeconds": 0}]});
    let (status, body) = marathon
        .send(Method::PUT, "/v2/apps/steady", Some(v2))
        .await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_str().unwrap().to_owned();
    wait_until(
        Duration::from_secs(20),
        "the first new instance running",
        || async {
            let tasks = marathon.get("/v2/apps/steady/tasks").await;
            tasks["tasks"]
                .as_array()?
                .iter()
                .any(|t| t["version"] == version.as_str() && t["state"] == "TASK_RUNNING")
                .then_some(())
        },
    )
    .await;

    // The master (and the services scheduler inside it) dies mid-deployment.
    master.kill9();
    let master = start_master_on(&data_dir, port);
    let client = MasterClient::new(&master.address());
    let marathon = Marathon::new(&master.address());
    assert_eq!(
        marathon
            .get("/v2/deployments")
            .await
            .as_array()
            .unwrap()
            .len(),
        1,
        "the deployment survives the restart"
    );

    let new = marathon
        .settled_within("/steady", 3, Duration::from_secs(60))
        .await;
    assert!(new.iter().all(|t| t["version"] == version.as_str()));
    assert!(
        new.iter()
            .all(|t| !old_ids.contains(t["id"].as_str().unwrap()))
    );
    // No duplicate launch: exactly three tasks of the new version ever existed, and every
    // old one was killed; nothing else runs.
    let tasks = master_tasks(&client).await;
    let new_ids: BTreeSet<&str> = new.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let launched_new: BTreeSet<&str> = tasks
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .filter(|id| !old_ids.contains(*id))
        .collect();
    assert_eq!(launched_new, new_ids, "tasks the master saw: {tasks:?}");
    assert_eq!(running(&tasks), 3, "{tasks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_s_instances_are_replaced_on_the_others() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let mut agents: Vec<Process> = (0..3).map(|i| node(&master.address(), &dir, i)).collect();
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 3).await;
    let marathon = Marathon::new(&master.address());
    let app = json!({"id": "/spread", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
        "instances": 4, "constraints": [["hostname", "MAX_PER", "2"]]});
    marathon.create(app).await;
    let before = marathon
        .settled_within("/spread", 4, Duration::from_secs(30))
        .await;

    // Kill the agent holding the most instances (and its tasks with it).
    let on = |tasks: &[Value], agent: &str| tasks.iter().filter(|t| t["slaveId"] == agent).count();
    let state = client.get_json("/master/state").await.unwrap();
    let agent_ids: Vec<(String, u16)> = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let pid = a["pid"].as_str().unwrap();
            let port = pid.rsplit(':').next().unwrap().parse().unwrap();
            (a["id"].as_str().unwrap().to_owned(), port)
        })
        .collect();
    let (victim_id, victim_port) = agent_ids
        .iter()
        .max_by_key(|(id, _)| on(&before, id))
        .cloned()
        .unwrap();
    let lost = on(&before, &victim_id);
    assert!(lost > 0);
    let victim = agents.iter().position(|a| a.port == victim_port).unwrap();
    agents.remove(victim); // dropping kills the agent and its executors

    let after = wait_until(Duration::from_secs(40), "replacements running", || async {
        let tasks = marathon.tasks("/spread").await;
        (running(&tasks) == 4 && on(&tasks, &victim_id) == 0).then_some(tasks)
    })
    .await;
    // MAX_PER 2 still holds on the two agents left.
    for (id, _) in agent_ids.iter().filter(|(id, _)| *id != victim_id) {
        assert_eq!(on(&after, id), 2, "{after:?}");
    }
}

/// One rolling upgrade of four instances with the given knobs, watched throughout: never more
/// than `instances × (1 + maximumOverCapacity)` tasks and never fewer than
/// `minimumHealthCapacity × instances` healthy ones (old or new).
async fn upgrade_within_bounds(marathon: &Marathon, id: &str, min: f64, over: f64) {
    let health = json!([{"protocol": "COMMAND", "command": {"value": "test -f ready"},
        "gracePeriodSeconds": 60, "intervalSeconds": 1, "timeoutSeconds": 1, "delaySeconds": 0}]);
    let definition = |cmd: &str| {
        json!({"id": id, "cmd": cmd, "cpus": 0.1, "mem": 16, "instances": 4,
            "healthChecks": health,
            "upgradeStrategy": {"minimumHealthCapacity": min, "maximumOverCapacity": over}})
    };
    marathon
        .create(definition("touch ready; exec sleep 600"))
        .await;
    marathon
        .settled_within(id, 4, Duration::from_secs(30))
        .await;
    let (status, body) = marathon
        .send(
            Method::PUT,
            &format!("/v2/apps{id}"),
            Some(definition("sleep 1; touch ready; exec sleep 601")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let version = body["version"].as_str().unwrap().to_owned();
    let mut max_tasks = (4.0 * (1.0 + over)).floor() as usize;
    // With no room either way, Marathon starts one instance beyond the limit to make progress.
    if min == 1.0 && over == 0.0 {
        max_tasks += 1;
    }
    let min_healthy = (4.0 * min).ceil() as usize;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let tasks = marathon.tasks(id).await;
        let live: Vec<&Value> = tasks
            .iter()
            .filter(|t| {
                matches!(
                    t["state"].as_str(),
                    Some("TASK_STAGING" | "TASK_STARTING" | "TASK_RUNNING")
                )
            })
            .collect();
        let healthy = live
            .iter()
            .filter(|t| t["healthCheckResults"][0]["alive"] == true)
            .count();
        assert!(
            live.len() <= max_tasks,
            "{id} (min {min}, over {over}): {} tasks > {max_tasks}",
            live.len()
        );
        assert!(
            healthy >= min_healthy,
            "{id} (min {min}, over {over}): {healthy} healthy < {min_healthy}"
        );
        let deployments = marathon.get("/v2/deployments").await;
        let done = deployments.as_array().is_some_and(|d| {
            d.iter()
                .all(|d| !d["affectedApps"].as_array().unwrap().contains(&json!(id)))
        });
        if done
            && live.len() == 4
            && healthy == 4
            && live.iter().all(|t| t["version"] == version.as_str())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} (min {min}, over {over}) did not finish: {tasks:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_upgrades_honour_both_knobs_at_their_edges() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let _agents: Vec<Process> = (0..3).map(|i| node(&master.address(), &dir, i)).collect();
    wait_for_agents(&MasterClient::new(&master.address()), 3).await;
    let marathon = Marathon::new(&master.address());
    for (index, (min, over)) in [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
        .into_iter()
        .enumerate()
    {
        upgrade_within_bounds(&marathon, &format!("/edge{index}"), min, over).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_instance_is_replaced_and_killed_when_it_returns() {
    let dir = temp_dir();
    let master = start_master(&path(&dir, "master"));
    let agents: Vec<Process> = (0..2).map(|i| node(&master.address(), &dir, i)).collect();
    let client = MasterClient::new(&master.address());
    wait_for_agents(&client, 2).await;
    let marathon = Marathon::new(&master.address());
    // Marathon's default strategy: replaced and forgotten as soon as it is unreachable.
    let app = json!({"id": "/partitioned", "cmd": "exec sleep 600", "cpus": 0.1, "mem": 16,
        "instances": 1, "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}});
    marathon.create(app).await;
    let first = marathon
        .settled_within("/partitioned", 1, Duration::from_secs(30))
        .await;
    let first_id = first[0]["id"].as_str().unwrap().to_owned();
    let first_agent = first[0]["slaveId"].as_str().unwrap().to_owned();
    let state = client.get_json("/master/state").await.unwrap();
    let port: u16 = state["slaves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == first_agent.as_str())
        .and_then(|a| a["pid"].as_str()?.rsplit(':').next()?.parse().ok())
        .unwrap();
    let frozen = agents.iter().find(|a| a.port == port).unwrap();
    let pid = nix::unistd::Pid::from_raw(frozen.pid());

    // The agent stops answering (its task keeps running): the instance is replaced.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let replacement = wait_until(Duration::from_secs(20), "a replacement", || async {
        let tasks = marathon.get("/v2/apps/partitioned/tasks").await["tasks"]
            .as_array()?
            .clone();
        tasks
            .into_iter()
            .find(|t| t["id"] != first_id.as_str() && t["state"] == "TASK_RUNNING")
    })
    .await;
    assert_ne!(replacement["slaveId"], first_agent.as_str());

    // It comes back with its task: the expunged instance is killed, the replacement stays.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_until(
        Duration::from_secs(20),
        "the returning task killed",
        || async {
            let tasks = master_tasks(&client).await;
            tasks
                .iter()
                .any(|t| t["id"] == first_id.as_str() && t["state"] == "TASK_KILLED")
                .then_some(())
        },
    )
    .await;
    let tasks = marathon.get("/v2/apps/partitioned/tasks").await;
    let ids: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![replacement["id"].as_str().unwrap()]);
}

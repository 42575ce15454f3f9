//! Master↔agent: an agent id is taken over only by the agent holding its secret, and a status
//! update counts only when it comes from the agent that runs the task.

use std::time::Duration;

use agora_api::agent_protocol::{AGENT_TOKEN_HEADER, AgentCommand};
use agora_api::recordio;
use agora_types::TaskState;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::common::{self, temp_dir};

/// A registration as a rogue process would send it, claiming `agent_id` (or none).
fn registration(agent_id: Option<&str>) -> Value {
    json!({
        "agent_id": agent_id,
        "info": {"hostname": "rogue", "port": 1, "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 8.0}, "role": "*"}]},
        "endpoint": "127.0.0.1:1",
        "version": "0",
    })
}

/// Subscribes as an agent and returns the first command (REGISTERED), or `None` when the
/// master closes the stream without one.
async fn subscribe(address: &str, body: &Value, token: Option<&str>) -> Option<AgentCommand> {
    let mut request = reqwest::Client::new()
        .post(format!("http://{address}/internal/agent/subscribe"))
        .json(body);
    if let Some(token) = token {
        request = request.header(AGENT_TOKEN_HEADER, token);
    }
    let response = request.send().await.expect("subscribe");
    let mut stream = response.bytes_stream();
    let mut decoder = recordio::Decoder::new();
    let read = async {
        while let Some(Ok(chunk)) = stream.next().await {
            decoder.feed(&chunk);
            if let Ok(Some(record)) = decoder.next_record() {
                return serde_json::from_slice(&record).ok();
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

async fn post(address: &str, path: &str, body: &Value, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new()
        .post(format!("http://{address}{path}"))
        .json(body);
    if let Some(token) = token {
        request = request.header(AGENT_TOKEN_HEADER, token);
    }
    request.send().await.expect("post").status().as_u16()
}

async fn state(up: &common::Process) -> Value {
    serde_json::from_str(&up.get_text("/master/state").await).expect("json")
}

fn task_state(state: &Value, task: &str) -> Value {
    common::framework(state, "victim")["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == task)
        .map(|t| t["state"].clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_rogue_agent_takes_no_id_and_speaks_for_no_task() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let mut scheduler = common::subscribe(&up.address(), common::framework_info("victim")).await;
    common::launch_on_next_offer(&mut scheduler, &[("kept", "sleep 60", 0.1, 32.0)]).await;
    common::wait_for_state(
        &mut scheduler,
        "kept",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;
    let real_id = state(&up).await["slaves"][0]["id"]
        .as_str()
        .expect("an agent")
        .to_owned();
    let framework_id = scheduler.framework_id().expect("id");

    // Taking the real agent's id over, without its secret or with a wrong one.
    for token in [None, Some("guessed")] {
        let answer = subscribe(&up.address(), &registration(Some(&real_id)), token).await;
        assert!(answer.is_none(), "{answer:?}");
    }
    // Reporting as the real agent without its secret.
    let finished = json!({"agent_id": real_id, "updates": [{"framework_id": framework_id,
        "status": {"task_id": {"value": "kept"}, "state": "TASK_FINISHED",
                   "uuid": "AAAAAAAAAAAAAAAAAAAAAA=="}}]});
    assert_eq!(
        post(&up.address(), "/internal/agent/statuses", &finished, None).await,
        403
    );
    assert_eq!(
        post(
            &up.address(),
            "/internal/agent/ping",
            &json!({"agent_id": real_id}),
            Some("guessed")
        )
        .await,
        403
    );
    // A rogue that registers as an agent of its own gets its own id and secret...
    let Some(AgentCommand::Registered {
        agent_id: rogue_id,
        token: Some(rogue_token),
        ..
    }) = subscribe(&up.address(), &registration(None), None).await
    else {
        panic!("a new agent is registered and given a secret");
    };
    assert_ne!(rogue_id, real_id);
    // ...and speaks for its own tasks only: an update for a task of the real agent is dropped.
    let mut from_rogue = finished.clone();
    from_rogue["agent_id"] = json!(rogue_id);
    assert_eq!(
        post(
            &up.address(),
            "/internal/agent/statuses",
            &from_rogue,
            Some(&rogue_token)
        )
        .await,
        200
    );
    // The real agent is still connected, and its task still runs: a kill (which it obeys)
    // shows both.
    let metrics = up.get_text("/metrics/snapshot").await;
    let metrics: Value = serde_json::from_str(&metrics).expect("json");
    assert_eq!(metrics["master/invalid_agent_registrations"], 2.0);
    assert!(metrics["master/invalid_status_updates"].as_f64() >= Some(1.0));
    assert_eq!(task_state(&state(&up).await, "kept"), "TASK_RUNNING");
    scheduler.kill("kept", None).await.expect("kill");
    common::wait_for_state(
        &mut scheduler,
        "kept",
        TaskState::Killed,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn an_agent_keeps_its_id_across_restarts_with_its_secret() {
    let dir = temp_dir();
    let master = common::start_master(&dir.path().join("master"));
    let work = dir.path().join("agent");
    let mut agent = common::start_agent(&master.address(), &work, "cpus:2;mem:1024");
    let client = agora_client::MasterClient::new(&master.address());
    common::wait_for_agents(&client, 1).await;
    let id = state(&master).await["slaves"][0]["id"].clone();
    let checkpoint: Value = serde_json::from_str(
        &std::fs::read_to_string(work.join("meta/agent.json")).expect("checkpoint"),
    )
    .expect("json");
    assert!(
        checkpoint["agent_token"]
            .as_str()
            .is_some_and(|t| t.len() >= 40),
        "the secret is checkpointed"
    );
    // The restarted agent listens elsewhere (another port): its pid tells it from the old.
    let old_pid = state(&master).await["slaves"][0]["pid"].clone();
    agent.kill9();
    let _agent = common::start_agent(&master.address(), &work, "cpus:2;mem:1024");
    common::wait_until(Duration::from_secs(20), "the agent back", || async {
        let state = state(&master).await;
        let slave = &state["slaves"][0];
        (state["activated_slaves"] == 1.0 && slave["id"] == id && slave["pid"] != old_pid)
            .then_some(())
    })
    .await;
}

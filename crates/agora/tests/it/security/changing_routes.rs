//! The routes that change state whose handlers the typed-errors-and-queries rework rewrote
//! (Marathon's, Chronos', Metronome's, the operator API, teardown, a task's exec): each asks
//! who calls (401 without credentials), refuses a body a web page can post (`text/plain`,
//! 415, before anything else), is bounded in body size (413 on a declared length past its
//! API's, before the body is read; the listener's deadlines bound the time — `limits.rs`),
//! and the operator calls the rework gave a function each are held to their ACLs. A standby
//! master (masters in ZooKeeper) holds what it forwards or redirects the same way, and so do
//! the hollow agents' own listener (`POST /storm`).

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::authorization::{ANALYTICS, OPS, call, framework, up};
use crate::common::temp_dir;

/// (method, path) of every such route, with ids that need not exist: the refusals come first.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/v2/apps"),
    ("PUT", "/v2/apps"),
    ("PUT", "/v2/apps/web"),
    ("PATCH", "/v2/apps/web"),
    ("DELETE", "/v2/apps/web"),
    ("POST", "/v2/apps/web/restart"),
    ("DELETE", "/v2/apps/web/tasks"),
    ("DELETE", "/v2/apps/web/tasks/web.1"),
    ("POST", "/v2/tasks/delete"),
    ("DELETE", "/v2/deployments/d1"),
    (
        "POST",
        "/v2/eventSubscriptions?callbackUrl=http://127.0.0.1:1/",
    ),
    (
        "DELETE",
        "/v2/eventSubscriptions?callbackUrl=http://127.0.0.1:1/",
    ),
    ("DELETE", "/v2/queue/web/delay"),
    ("POST", "/v2/groups"),
    ("PUT", "/v2/groups/g"),
    ("DELETE", "/v2/groups/g"),
    ("POST", "/scheduler/iso8601"),
    ("POST", "/scheduler/dependency"),
    ("PUT", "/scheduler/job/j"),
    ("DELETE", "/scheduler/job/j"),
    ("DELETE", "/scheduler/task/kill/j"),
    ("POST", "/v1/jobs"),
    ("PUT", "/v1/jobs/j"),
    ("DELETE", "/v1/jobs/j"),
    ("POST", "/v1/jobs/j/schedules"),
    ("PUT", "/v1/jobs/j/schedules/s"),
    ("DELETE", "/v1/jobs/j/schedules/s"),
    ("POST", "/v1/jobs/j/runs"),
    ("POST", "/v1/jobs/j/runs/r/actions/stop"),
    ("POST", "/api/v1"),
    ("POST", "/api/v1/scheduler"),
    ("POST", "/master/teardown"),
    ("POST", "/slave(1)/tasks/web.1/exec"),
];

/// The status of one request sent raw: its head only, declaring a body of `length` bytes.
async fn declared(address: &str, method: &str, path: &str, length: u64) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer before the body")
        .expect("read");
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

#[tokio::test]
async fn changing_routes_ask_who_calls_refuse_pages_and_bound_bodies() {
    let dir = temp_dir();
    let up = up(dir.path());
    refused_unless_authorised_json_and_bounded(&up.address(), ROUTES).await;
    let (_, apps) = call(&up, OPS, Method::GET, "/v2/apps", None).await;
    assert_eq!(apps["apps"], json!([]), "nothing was created");
}

/// A standby (masters in ZooKeeper) changes nothing itself, and refuses what the leader would
/// before it forwards or redirects anything: an anonymous call, a page's `text/plain` body, an
/// oversized body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_refuses_and_forwards_as_the_leader_would() {
    let dir = temp_dir();
    let zookeeper = agora_zk::testing::ZooKeeper::start();
    let zk = zookeeper.url_text("/agora");
    let mut flags = super::authorization::secured(dir.path());
    flags.extend(["--zk", &zk, "--zk-session-timeout", "2s"].map(str::to_owned));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let leader = crate::common::start_master_with(&dir.path().join("m1"), 0, &flags);
    crate::common::wait_until(std::time::Duration::from_secs(30), "the leader", || async {
        (call(&leader, OPS, Method::GET, "/master/state", None)
            .await
            .0
            == 200)
            .then_some(())
    })
    .await;
    let standby = crate::common::start_master_with(&dir.path().join("m2"), 0, &flags);
    crate::common::wait_until(
        std::time::Duration::from_secs(30),
        "the standby",
        || async {
            let (status, _) = call(&standby, OPS, Method::GET, "/v2/info", None).await;
            (status == 200).then_some(())
        },
    )
    .await;
    refused_unless_authorised_json_and_bounded(&standby.address(), ROUTES).await;
    let (_, apps) = call(&leader, OPS, Method::GET, "/v2/apps", None).await;
    assert_eq!(apps["apps"], json!([]), "nothing was created");
}

/// Every route of `routes` at `address`: an anonymous call is refused with 401, a
/// `text/plain` body with 415, a declared body past every API's limit with 413 before it is
/// read.
async fn refused_unless_authorised_json_and_bounded(address: &str, routes: &[(&str, &str)]) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (method, path) in routes {
        let method_of = || Method::from_bytes(method.as_bytes()).expect("method");
        let url = format!("http://{address}{path}");

        let unknown = client
            .request(method_of(), &url)
            .json(&json!({}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            unknown.status().as_u16(),
            401,
            "{method} {path} without credentials"
        );

        let page = client
            .request(method_of(), &url)
            .basic_auth(OPS.0, Some(OPS.1))
            .header("Content-Type", "text/plain")
            .body("{}")
            .send()
            .await
            .expect("request");
        assert_eq!(
            page.status().as_u16(),
            415,
            "{method} {path} with a text/plain body"
        );

        // Past every API's limit (the scheduler API's 64 MB is the largest).
        let answer = declared(address, method, path, 65 << 20).await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "{method} {path}: {answer}"
        );
    }
}

/// The hollow agents' storm changes what their tasks report: with the listener's
/// `--authenticate-http-readwrite` it is held as every API is, and made only for a caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hollow_agents_storm_asks_who_calls_refuses_pages_and_bounds_bodies() {
    let dir = temp_dir();
    let master = crate::common::start_master(&dir.path().join("master"));
    let flags = super::authorization::secured(dir.path());
    let credentials = &flags[1];
    let hollow = crate::common::Process::start(&[
        "hollow-agents",
        "--master",
        &master.address(),
        "--count",
        "2",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--credentials",
        credentials,
        "--authenticate-http-readwrite",
    ]);
    refused_unless_authorised_json_and_bounded(&hollow.address(), &[("POST", "/storm")]).await;
    let stormed = reqwest::Client::new()
        .post(format!("http://{}/storm", hollow.address()))
        .basic_auth(OPS.0, Some(OPS.1))
        .json(&json!({}))
        .send()
        .await
        .expect("storm");
    assert_eq!(stormed.status().as_u16(), 200);
    assert_eq!(
        stormed.json::<serde_json::Value>().await.expect("json"),
        json!({"updates": 0}),
        "no task runs yet"
    );
}

#[tokio::test]
async fn operator_quota_maintenance_and_teardown_calls_are_held_to_the_acls() {
    let dir = temp_dir();
    let up = up(dir.path());
    // A framework of analytics' own, which only ops may tear down.
    let scheduler = framework(&up, "analytics").await.expect("subscribed");
    let framework_id = scheduler.framework_id().expect("an id").to_owned();
    let quota = json!({"type": "UPDATE_QUOTA", "update_quota": {"quota_configs": [
        {"role": "web", "guarantees": {"cpus": {"value": 1}}}]}});
    let agent =
        |kind: &str| json!({"type": kind, kind.to_lowercase(): {"agent_id": {"value": "S9"}}});
    let teardown =
        json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}});
    let calls = [
        quota.clone(),
        agent("DRAIN_AGENT"),
        agent("DEACTIVATE_AGENT"),
        agent("REACTIVATE_AGENT"),
        agent("MARK_AGENT_GONE"),
        teardown.clone(),
    ];
    for body in &calls {
        let (status, answer) =
            call(&up, ANALYTICS, Method::POST, "/api/v1", Some(body.clone())).await;
        assert_eq!(status, 403, "{body}: {answer}");
        assert!(
            answer.as_str().is_some_and(|a| a.contains("in the ACLs")),
            "{body}: {answer}"
        );
    }
    assert_eq!(quotas(&up).await, json!([]), "unchanged");

    // Allowed to ops: the quota is set, an unknown agent is answered as such (past the ACL),
    // and the framework is torn down.
    let (status, answer) = call(&up, OPS, Method::POST, "/api/v1", Some(quota)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(quotas(&up).await[0]["role"], "web");
    let (status, answer) = call(
        &up,
        OPS,
        Method::POST,
        "/api/v1",
        Some(agent("DRAIN_AGENT")),
    )
    .await;
    assert_eq!((status, answer), (400, json!("Agent S9 is not registered")));
    let (status, answer) = call(&up, OPS, Method::POST, "/api/v1", Some(teardown)).await;
    assert_eq!(status, 200, "{answer}");
    let (_, frameworks) = call(&up, OPS, Method::GET, "/master/frameworks", None).await;
    assert!(
        frameworks["frameworks"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["id"] != framework_id.as_str())),
        "{frameworks}"
    );
}

/// The quota configurations, as ops reads them.
async fn quotas(up: &crate::common::Process) -> serde_json::Value {
    let get = json!({"type": "GET_QUOTA"});
    let (_, answer) = call(up, OPS, Method::POST, "/api/v1", Some(get)).await;
    answer["get_quota"]["status"]["configs"].clone()
}

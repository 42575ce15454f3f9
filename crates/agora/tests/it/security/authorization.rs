//! Authorization: Mesos' ACLs (`--acls`) and agora's own for apps and jobs, each action
//! allowed to whom the rules say and refused to others, with nothing changed; read-only views
//! show a principal only what it may see.

use std::time::Duration;

use agora_api::mesos::CommandInfo;
use agora_client::{Access, Auth, Scheduler, SchedulerOptions};
use agora_types::TaskState;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, temp_dir};

const CREDENTIALS: &str = r#"{"credentials": [
    {"principal": "ops", "secret": "s1"},
    {"principal": "analytics", "secret": "s2"},
    {"principal": "team-a", "secret": "s3"}]}"#;

const ACLS: &str = r#"{
  "permissive": false,
  "register_frameworks": [
    {"principals": {"values": ["marathon", "chronos"]}, "roles": {"type": "ANY"}},
    {"principals": {"values": ["analytics"]}, "roles": {"values": ["analytics"]}}],
  "run_tasks": [
    {"principals": {"values": ["marathon", "chronos"]}, "users": {"type": "ANY"}},
    {"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
  "teardown_frameworks": [
    {"principals": {"values": ["ops"]}, "framework_principals": {"type": "ANY"}}],
  "view_frameworks": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
    {"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
  "view_tasks": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
    {"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
  "view_executors": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "get_endpoints": [{"principals": {"values": ["ops"]}, "paths": {"type": "ANY"}}],
  "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "update_quotas": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
  "drain_agents": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "mark_agents_gone": [{"principals": {"values": ["ops"]}, "agents": {"type": "ANY"}}],
  "launch_nested_container_sessions": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "attach_container_output": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
  "access_sandboxes": [
    {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
    {"principals": {"values": ["analytics"]}, "users": {"values": ["nobody"]}}],
  "view_apps": [
    {"principals": {"values": ["ops"]}, "paths": {"values": ["/"]}},
    {"principals": {"values": ["team-a"]}, "paths": {"values": ["/team-a"]}}],
  "manage_apps": [
    {"principals": {"values": ["ops"]}, "paths": {"values": ["/"]}},
    {"principals": {"values": ["team-a"]}, "paths": {"values": ["/team-a"]}}],
  "view_jobs": [
    {"principals": {"values": ["ops"]}, "jobs": {"type": "ANY"}},
    {"principals": {"values": ["team-a"]}, "jobs": {"values": ["team-a"]}}],
  "manage_jobs": [
    {"principals": {"values": ["ops"]}, "jobs": {"type": "ANY"}},
    {"principals": {"values": ["team-a"]}, "jobs": {"values": ["team-a"]}}]
}"#;

fn access(principal: &str, secret: &str) -> Access {
    Access::new(Some(Auth::Basic {
        principal: principal.into(),
        secret: secret.into(),
    }))
}

pub(super) fn up(dir: &std::path::Path) -> common::Process {
    let mut args = vec!["--resources".to_owned(), "cpus:4;mem:2048".to_owned()];
    args.extend(secured(dir));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::start_up(&dir.join("data"), &args)
}

/// The flags of a master whose every API asks who calls, with the credentials and ACLs of
/// these tests written into `dir`.
pub(super) fn secured(dir: &std::path::Path) -> Vec<String> {
    std::fs::write(dir.join("credentials.json"), CREDENTIALS).expect("write");
    std::fs::write(dir.join("acls.json"), ACLS).expect("write");
    let path = |name: &str| dir.join(name).display().to_string();
    [
        "--credentials",
        &path("credentials.json"),
        "--acls",
        &path("acls.json"),
        "--authenticate-frameworks",
        "--authenticate-http-readwrite",
        "--authenticate-http-readonly",
    ]
    .map(str::to_owned)
    .to_vec()
}

pub(super) async fn call(
    up: &common::Process,
    who: (&str, &str),
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("http://{}{path}", up.address()))
        .basic_auth(who.0, Some(who.1));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(super) const OPS: (&str, &str) = ("ops", "s1");
pub(super) const ANALYTICS: (&str, &str) = ("analytics", "s2");
const TEAM_A: (&str, &str) = ("team-a", "s3");

pub(super) async fn framework(
    up: &common::Process,
    role: &str,
) -> Result<Scheduler, agora_client::ClientError> {
    let mut info = common::framework_info("analytics");
    info.user = "nobody".into();
    info.role = Some(role.into());
    let options = SchedulerOptions {
        access: access(ANALYTICS.0, ANALYTICS.1),
        ..SchedulerOptions::default()
    };
    Scheduler::subscribe(&up.address(), info, options).await
}

#[tokio::test]
async fn frameworks_get_the_roles_and_users_the_acls_give_them() {
    let dir = temp_dir();
    let up = up(dir.path());
    let refused = framework(&up, "web").await;
    assert!(
        refused
            .as_ref()
            .err()
            .is_some_and(|e| e.to_string().contains("Not authorized to use role 'web'")),
        "{:?}",
        refused.err()
    );
    let mut scheduler = framework(&up, "analytics").await.expect("subscribed");
    common::launch_built_on_next_offer(&mut scheduler, |offer| {
        let as_nobody = common::command_task("as-nobody", offer, "sleep 60", 0.1, 32.0);
        let mut as_root = common::command_task("as-root", offer, "sleep 60", 0.1, 32.0);
        as_root.command = Some(CommandInfo {
            user: Some("root".into()),
            ..as_root.command.unwrap_or_default()
        });
        vec![as_nobody, as_root]
    })
    .await;
    let mut seen = Vec::new();
    let refused = common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "as-root",
        TaskState::Error,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(refused.reason.as_deref(), Some("REASON_TASK_UNAUTHORIZED"));
    common::wait_for_status(
        &mut scheduler,
        &mut seen,
        "as-nobody",
        TaskState::Running,
        Duration::from_secs(10),
    )
    .await;

    // Views: analytics sees its own framework and task, not the built-in ones; ops sees all.
    let (_, state) = call(&up, ANALYTICS, Method::GET, "/master/state", None).await;
    let names: Vec<&str> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["analytics"], "{state}");
    let (_, state) = call(&up, OPS, Method::GET, "/master/state", None).await;
    assert!(
        state["frameworks"].as_array().map(Vec::len) >= Some(3),
        "{state}"
    );
    let (_, tasks) = call(&up, ANALYTICS, Method::GET, "/master/tasks", None).await;
    let ids: Vec<&str> = tasks["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, ["as-nobody"]);

    // An app of ops' runs too: the summary and the dashboard name it to ops, not to analytics.
    let (status, _) = call(
        &up,
        OPS,
        Method::POST,
        "/v2/apps",
        Some(json!({"id": "/ops-app", "cmd": "sleep 60", "cpus": 0.1, "mem": 16})),
    )
    .await;
    assert_eq!(status, 201);
    let summary_of = |who: (&'static str, &'static str)| {
        let up = &up;
        async move {
            let (_, summary) = call(up, who, Method::GET, "/master/state-summary", None).await;
            let slave = summary["slaves"][0].clone();
            (
                slave["framework_ids"].clone(),
                slave["TASK_RUNNING"].clone(),
            )
        }
    };
    common::wait_until(Duration::from_secs(20), "ops' app running", || async {
        (summary_of(OPS).await.1 == json!(2)).then_some(())
    })
    .await;
    let (ids, running) = summary_of(ANALYTICS).await;
    assert_eq!(running, json!(1), "analytics counts only its own task");
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "{ids}");
    let page = |who: (&'static str, &'static str)| {
        let up = &up;
        async move {
            reqwest::Client::new()
                .get(format!("http://{}/", up.address()))
                .basic_auth(who.0, Some(who.1))
                .send()
                .await
                .expect("dashboard")
                .text()
                .await
                .unwrap_or_default()
        }
    };
    let theirs = page(ANALYTICS).await;
    assert!(
        theirs.contains(">analytics<") && !theirs.contains(">marathon<"),
        "{theirs}"
    );
    assert!(page(OPS).await.contains(">marathon<"));

    // The agent's state, alike: analytics sees its framework, not its executors (only ops
    // may see those), and ops sees the task.
    let (_, state) = call(&up, ANALYTICS, Method::GET, "/slave(1)/state", None).await;
    let frameworks = state["frameworks"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = frameworks
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(names, ["analytics"], "{state}");
    assert_eq!(frameworks[0]["executors"], json!([]), "{state}");
    let (_, state) = call(&up, OPS, Method::GET, "/slave(1)/state", None).await;
    let seen = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
        .flat_map(|e| e["tasks"].as_array().cloned().unwrap_or_default())
        .any(|t| t["id"] == "as-nobody");
    assert!(seen, "{state}");

    // Its sandbox, as the ACLs say; a task's insides (exec, attach) only for ops.
    let exec = json!({"command": "echo inside"});
    let (status, _) = call(
        &up,
        ANALYTICS,
        Method::POST,
        "/slave(1)/tasks/as-nobody/exec",
        Some(exec.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, answer) = call(
        &up,
        OPS,
        Method::POST,
        "/slave(1)/tasks/as-nobody/exec",
        Some(exec),
    )
    .await;
    assert_eq!((status, answer["stdout"].as_str()), (200, Some("inside\n")));
    let (status, _) = call(
        &up,
        ANALYTICS,
        Method::GET,
        "/slave(1)/tasks/as-nobody/attach",
        None,
    )
    .await;
    assert_eq!(status, 403);

    // Tearing down: ops only.
    let framework_id = scheduler.framework_id().expect("id");
    let teardown =
        json!({"type": "TEARDOWN", "teardown": {"framework_id": {"value": framework_id}}});
    let (status, _) = call(
        &up,
        ANALYTICS,
        Method::POST,
        "/api/v1",
        Some(teardown.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&up, OPS, Method::POST, "/api/v1", Some(teardown)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn operators_are_held_to_their_endpoints_roles_and_streams() {
    let dir = temp_dir();
    let up = up(dir.path());
    for (who, expected) in [(ANALYTICS, 403), (OPS, 200)] {
        for method in [Method::GET, Method::HEAD] {
            let (status, _) = call(&up, who, method.clone(), "/metrics/snapshot", None).await;
            assert_eq!(status, expected, "{who:?} {method}");
        }
    }
    let weights = json!({"type": "UPDATE_WEIGHTS",
                         "update_weights": {"weight_infos": [{"role": "web", "weight": 5.0}]}});
    let (status, _) = call(
        &up,
        ANALYTICS,
        Method::POST,
        "/api/v1",
        Some(weights.clone()),
    )
    .await;
    assert_eq!(status, 403);
    let (status, weights_now) = call(&up, OPS, Method::GET, "/master/weights", None).await;
    assert_eq!(status, 200);
    assert!(
        !weights_now.to_string().contains("web"),
        "unchanged: {weights_now}"
    );
    let (status, _) = call(
        &up,
        ANALYTICS,
        Method::POST,
        "/api/v1",
        Some(json!({"type": "SUBSCRIBE"})),
    )
    .await;
    assert_eq!(status, 403, "the operator stream shows everything");
}

#[tokio::test]
async fn apps_and_jobs_belong_to_the_paths_and_names_the_acls_give() {
    let dir = temp_dir();
    let up = up(dir.path());
    let app = |id: &str| json!({"id": id, "cmd": "sleep 60", "cpus": 0.1, "mem": 16});
    let (status, answer) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/v2/apps",
        Some(app("/team-a/web")),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let (status, answer) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/v2/apps",
        Some(app("/team-b/web")),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("manage_apps"))
    );
    let (status, _) = call(&up, OPS, Method::POST, "/v2/apps", Some(app("/other"))).await;
    assert_eq!(status, 201);
    let (_, apps) = call(&up, TEAM_A, Method::GET, "/v2/apps", None).await;
    let ids: Vec<&str> = apps["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["/team-a/web"]);
    let (status, _) = call(&up, TEAM_A, Method::GET, "/v2/apps/other", None).await;
    assert_eq!(status, 404, "not even told it exists");
    let (status, _) = call(&up, TEAM_A, Method::DELETE, "/v2/apps/other", None).await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/v2/groups",
        Some(json!({"id": "/", "apps": [app("/sneaky")]})),
    )
    .await;
    assert_eq!(status, 403, "a group naming an app elsewhere");
    // An id is checked as the handlers read it: `..` resolved, the path percent-decoded.
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/v2/apps",
        Some(app("/team-a/../team-b/web")),
    )
    .await;
    assert_eq!(status, 403, "out of team-a through '..'");
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::PUT,
        "/v2/apps/team-a/x%2F..%2F..%2Fteam-b%2Fweb",
        Some(json!({"cmd": "sleep 60", "cpus": 0.1, "mem": 16})),
    )
    .await;
    assert_eq!(status, 403, "out of team-a through an encoded path");
    let (_, apps) = call(&up, OPS, Method::GET, "/v2/apps", None).await;
    assert_eq!(apps["apps"].as_array().map(Vec::len), Some(2), "{apps}");

    let job = |name: &str| {
        json!({"name": name, "command": "true", "schedule": "R/2030-01-01T00:00:00Z/P1D",
               "cpus": 0.1, "mem": 16})
    };
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/scheduler/iso8601",
        Some(job("team-a.nightly")),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::POST,
        "/scheduler/iso8601",
        Some(job("payroll")),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &up,
        OPS,
        Method::POST,
        "/scheduler/iso8601",
        Some(job("payroll")),
    )
    .await;
    assert_eq!(status, 204);
    let (_, jobs) = call(&up, TEAM_A, Method::GET, "/scheduler/jobs", None).await;
    let names: Vec<&str> = jobs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["name"].as_str())
        .collect();
    assert_eq!(names, ["team-a.nightly"]);
    let (status, _) = call(&up, TEAM_A, Method::DELETE, "/scheduler/job/payroll", None).await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::DELETE,
        "/scheduler/job/%70ayroll",
        None,
    )
    .await;
    assert_eq!(status, 403, "an encoded name is the same job");
    let (status, _) = call(&up, TEAM_A, Method::GET, "/scheduler/graph/csv", None).await;
    assert_eq!(status, 403, "the graph shows every job");

    // Deleting a job changes its children (they take its schedule): they must be the
    // caller's too.
    let child = json!({"name": "payroll.after-nightly", "command": "true",
                       "parents": ["team-a.nightly"], "cpus": 0.1, "mem": 16});
    let (status, _) = call(&up, OPS, Method::POST, "/scheduler/dependency", Some(child)).await;
    assert_eq!(status, 204);
    let (status, body) = call(
        &up,
        TEAM_A,
        Method::DELETE,
        "/scheduler/job/team-a.nightly",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.to_string().contains("payroll.after-nightly"), "{body}");
    let (_, jobs) = call(&up, OPS, Method::GET, "/scheduler/jobs", None).await;
    let parents_of_child = jobs
        .as_array()
        .into_iter()
        .flatten()
        .find(|j| j["name"] == "payroll.after-nightly")
        .map(|j| j["parents"].clone());
    assert_eq!(
        parents_of_child,
        Some(json!(["team-a.nightly"])),
        "nothing changed: {jobs}"
    );
    let (status, _) = call(
        &up,
        TEAM_A,
        Method::DELETE,
        "/scheduler/task/kill/team-a.nightly",
        None,
    )
    .await;
    assert_eq!(status, 204, "killing its runs changes no other job");
    let (status, _) = call(
        &up,
        OPS,
        Method::DELETE,
        "/scheduler/job/team-a.nightly",
        None,
    )
    .await;
    assert_eq!(status, 204);
}

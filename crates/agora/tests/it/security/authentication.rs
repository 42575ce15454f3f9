//! Authentication against the real binary: who may call what once the flags ask for callers,
//! the UI's sign-in and its session cookie, frameworks held to their principal, agents that
//! must authenticate, the CLI's credentials and tokens, and what the state says when nothing
//! is asked.

use std::time::Duration;

use agora_client::{Access, Auth, MasterClient, Scheduler, SchedulerOptions, ServicesClient};
use serde_json::{Value, json};

use crate::common::{self, cli, marathon::running, temp_dir};

const CREDENTIALS: &str = r#"{"credentials": [
    {"principal": "ops", "secret": "ops-secret"},
    {"principal": "agent", "secret": "agent-secret"}]}"#;

fn credentials_file(dir: &std::path::Path) -> String {
    let path = dir.join("credentials.json");
    std::fs::write(&path, CREDENTIALS).expect("credentials");
    path.display().to_string()
}

fn ops() -> Access {
    Access::new(Some(Auth::Basic {
        principal: "ops".into(),
        secret: "ops-secret".into(),
    }))
}

/// `agora up` asking every caller who it is.
fn secured_up(dir: &std::path::Path) -> common::Process {
    let credentials = credentials_file(dir);
    common::start_up(
        &dir.join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--credentials",
            &credentials,
            "--authenticate-frameworks",
            "--authenticate-agents",
            "--authenticate-http-readwrite",
            "--authenticate-http-readonly",
        ],
    )
}

async fn status_of(request: reqwest::RequestBuilder) -> (u16, reqwest::header::HeaderMap, String) {
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn with_authentication_on_the_cluster_still_runs_itself() {
    let dir = temp_dir();
    let up = secured_up(dir.path());
    // The built-in frameworks, the agent and discovery authenticate as the process itself:
    // an app deploys, runs and is routed.
    let services = ServicesClient::with_access(&up.address(), &ops());
    services
        .create_app(
            &json!({"id": "/inside", "cmd": "sleep 60", "cpus": 0.1, "mem": 16,
                    "portDefinitions": [{"port": 17345}]}),
            false,
        )
        .await
        .expect("created by ops");
    common::wait_until(Duration::from_secs(20), "the app running", || async {
        let tasks = services.tasks(Some("/inside")).await.ok()?;
        (running(tasks["tasks"].as_array()?) == 1).then_some(())
    })
    .await;
    let master = MasterClient::with_access(&up.address(), &ops());
    common::wait_until(
        Duration::from_secs(20),
        "the service port routed",
        || async {
            let state = master.get_json("/slave(1)/state").await.ok()?;
            state["discovery"]["proxy"]["listening"]
                .as_array()?
                .contains(&json!(17345))
                .then_some(())
        },
    )
    .await;
    let state = master.state().await.expect("state");
    assert_eq!(state["flags"]["authenticate_http_readwrite"], "true");
    assert_eq!(state["security"]["authentication"], "on");
    let frameworks: Vec<&Value> = state["frameworks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| &f["principal"])
        .collect();
    assert!(frameworks.contains(&&json!("marathon")), "{frameworks:?}");
}

#[tokio::test]
async fn callers_are_asked_who_they_are_and_refused_when_wrong() {
    let dir = temp_dir();
    let up = secured_up(dir.path());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", up.address());
    // Nobody, or a wrong secret: 401 with a challenge, in each API's shape.
    for request in [
        http.get(url("/master/state")),
        http.get(url("/v2/apps")),
        http.post(url("/v2/apps"))
            .header("Content-Type", "application/json")
            .body(r#"{"id":"/x","cmd":"true"}"#),
        http.get(url("/master/state"))
            .basic_auth("ops", Some("guessed")),
        http.get(url("/master/state"))
            .bearer_auth("forged.token.here"),
    ] {
        let (status, headers, _) = status_of(request).await;
        assert_eq!(status, 401);
        assert!(
            headers["www-authenticate"]
                .to_str()
                .unwrap_or("")
                .starts_with("Basic")
        );
    }
    let (_, _, body) = status_of(http.get(url("/v2/apps"))).await;
    assert!(serde_json::from_str::<Value>(&body).is_ok_and(|v| v["message"].is_string()));
    // Open whatever the flags: health and version.
    let (status, _, _) = status_of(http.get(url("/health"))).await;
    assert_eq!(status, 200);
    // A principal and its secret, or a token signed for it.
    let (status, _, _) = status_of(
        http.get(url("/master/state"))
            .basic_auth("ops", Some("ops-secret")),
    )
    .await;
    assert_eq!(status, 200);
    let token = MasterClient::new(&up.address())
        .login("ops", "ops-secret")
        .await
        .expect("a token");
    let (status, _, _) = status_of(http.get(url("/v2/apps")).bearer_auth(&token)).await;
    assert_eq!(status, 200);
    // A secret buys a token; a token does not buy itself a new one.
    let (status, _, _) = status_of(
        http.post(url("/acs/api/v1/auth/login"))
            .basic_auth("ops", Some("ops-secret")),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) =
        status_of(http.post(url("/acs/api/v1/auth/login")).bearer_auth(&token)).await;
    assert_eq!(status, 401, "a token renewed itself");
    // An app id ending like a Mesos API is still Marathon's: it needs a caller.
    let (status, _, _) = status_of(
        http.put(url("/v2/apps/x/api/v1/executor"))
            .header("Content-Type", "application/json")
            .body(r#"{"cmd":"true"}"#),
    )
    .await;
    assert_eq!(status, 401, "an app created through the executors' realm");
    assert!(
        MasterClient::new(&up.address())
            .login("ops", "guessed")
            .await
            .is_err()
    );
    // Nothing was created by the refused post.
    let apps = ServicesClient::with_access(&up.address(), &ops())
        .apps(&[])
        .await
        .expect("apps");
    assert_eq!(apps["apps"], json!([]));
}

#[tokio::test]
async fn a_framework_is_held_to_its_principal() {
    let dir = temp_dir();
    let up = secured_up(dir.path());
    let subscribe = |principal: Option<&str>, access: Access| {
        let mut info = common::framework_info("held");
        info.principal = principal.map(str::to_owned);
        let options = SchedulerOptions {
            access,
            ..SchedulerOptions::default()
        };
        let address = up.address();
        async move { Scheduler::subscribe(&address, info, options).await }
    };
    let refused = subscribe(Some("ops"), Access::default()).await;
    assert!(
        matches!(refused, Err(ref e) if e.status() == Some(401)),
        "{:?}",
        refused.err()
    );
    let mismatched = subscribe(Some("someone-else"), ops()).await;
    assert!(
        matches!(mismatched, Err(ref e) if e.status() == Some(403)),
        "{:?}",
        mismatched.err()
    );
    // One naming no principal is given its authenticated one.
    let scheduler = subscribe(None, ops()).await.expect("subscribed");
    let state = MasterClient::with_access(&up.address(), &ops())
        .state()
        .await
        .expect("state");
    assert_eq!(common::framework(&state, "held")["principal"], "ops");
    // Another principal cannot fail it over and take its tasks and offers.
    let mut info = common::framework_info("held");
    info.id = scheduler.framework_id().map(agora_api::mesos::Id::new);
    let other = Access::new(Some(Auth::Basic {
        principal: "agent".into(),
        secret: "agent-secret".into(),
    }));
    let options = SchedulerOptions {
        access: other,
        ..SchedulerOptions::default()
    };
    let takeover = Scheduler::subscribe(&up.address(), info, options).await;
    assert!(
        takeover.is_err(),
        "another principal took the framework over"
    );
    let state = MasterClient::with_access(&up.address(), &ops())
        .state()
        .await
        .expect("state");
    let held = common::framework(&state, "held");
    assert_eq!(
        (held["principal"].as_str(), held["active"].as_bool()),
        (Some("ops"), Some(true))
    );
    drop(scheduler);
}

#[tokio::test]
async fn the_ui_signs_people_in_with_a_strict_session_cookie() {
    let dir = temp_dir();
    let up = secured_up(dir.path());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let url = |path: &str| format!("http://{}{path}", up.address());
    let (status, headers, _) = status_of(http.get(url("/ui/apps"))).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/login?next=/ui/apps");
    let (status, _, page) = status_of(http.get(url("/ui/login?next=/ui/apps"))).await;
    assert_eq!(status, 200);
    assert!(page.contains("type=\"password\""), "{page}");
    let sign_in = |secret: &str| {
        http.post(url("/ui/login"))
            .header("Origin", format!("http://{}", up.address()))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(format!("principal=ops&secret={secret}&next=%2Fui%2Fapps"))
    };
    let (status, headers, _) = status_of(sign_in("guessed")).await;
    assert_eq!(status, 303);
    assert!(
        headers["location"]
            .to_str()
            .unwrap_or("")
            .starts_with("/ui/login?"),
        "back to the form"
    );
    assert!(!headers.contains_key("set-cookie"));
    let (status, headers, _) = status_of(sign_in("ops-secret")).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/ui/apps");
    let cookie = headers["set-cookie"].to_str().expect("a cookie").to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("name=value").to_owned();
    let (status, _, page) = status_of(http.get(url("/ui/apps")).header("Cookie", &session)).await;
    assert_eq!(status, 200, "{page}");
    // The cookie opens the UI's pages only: an API wants Authorization.
    let (status, _, _) = status_of(http.get(url("/master/state")).header("Cookie", &session)).await;
    assert_eq!(status, 401);
    // A session the server no longer takes (its key changed, say) does not keep anyone from
    // the sign-in page or from signing in.
    let stale = "agora_session=forged.token.here";
    let (status, _, page) = status_of(http.get(url("/ui/login")).header("Cookie", stale)).await;
    assert_eq!(status, 200, "{page}");
    let (status, headers, _) = status_of(sign_in("ops-secret").header("Cookie", stale)).await;
    assert_eq!(
        (
            status,
            headers.get("location").and_then(|v| v.to_str().ok())
        ),
        (303, Some("/ui/apps"))
    );
    // Signing out forgets it.
    let (_, headers, _) = status_of(
        http.post(url("/ui/logout"))
            .header("Origin", format!("http://{}", up.address()))
            .header("Cookie", &session),
    )
    .await;
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap_or("")
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn agents_must_authenticate_when_the_master_says() {
    let dir = temp_dir();
    let credentials = credentials_file(dir.path());
    let master = common::start_master_with(
        &dir.path().join("master"),
        0,
        &["--credentials", &credentials, "--authenticate-agents"],
    );
    let good = dir.path().join("agent.json");
    std::fs::write(&good, r#"{"principal": "agent", "secret": "agent-secret"}"#).expect("write");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "agent guessed\n").expect("write");
    let stranger = common::start_agent_with(
        &master.address(),
        &dir.path().join("stranger"),
        "cpus:1;mem:256",
        0,
        &["--credential", bad.to_str().expect("utf8")],
    );
    let error = common::wait_until(Duration::from_secs(20), "the refusal", || async {
        let state = MasterClient::new(&stranger.address())
            .get_json("/slave(1)/state")
            .await
            .ok()?;
        state["master_link"]["error"].as_str().map(str::to_owned)
    })
    .await;
    assert!(error.contains("401"), "{error}");
    let _agent = common::start_agent_with(
        &master.address(),
        &dir.path().join("agent"),
        "cpus:1;mem:256",
        0,
        &["--credential", good.to_str().expect("utf8")],
    );
    common::wait_for_agents(&MasterClient::new(&master.address()), 1).await;
    let state = MasterClient::new(&master.address())
        .state()
        .await
        .expect("state");
    assert_eq!(
        state["slaves"].as_array().map(Vec::len),
        Some(1),
        "only the good one"
    );
}

#[tokio::test]
async fn the_cli_authenticates_with_a_secret_or_a_token() {
    let dir = temp_dir();
    let up = secured_up(dir.path());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "ops-secret\n").expect("write");
    let secret = secret.to_str().expect("utf8");
    let refused = cli::agora(&up.address(), &["app", "list"]).await;
    let error = refused.error();
    assert!(
        error.contains("needs an authenticated caller") && error.contains("agora login"),
        "{error}"
    );
    let listed = cli::agora(
        &up.address(),
        &["app", "list", "--principal", "ops", "--secret-file", secret],
    )
    .await;
    listed.ok();
    let token = cli::agora(
        &up.address(),
        &["login", "--principal", "ops", "--secret-file", secret],
    )
    .await;
    let token = token.ok().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a token: {token}");
    let from_stdin = cli::agora_with_stdin(
        &up.address(),
        &["login", "--principal", "ops"],
        Some("ops-secret\n"),
    )
    .await;
    assert_eq!(
        from_stdin.ok().trim().split('.').count(),
        3,
        "{from_stdin:?}"
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).expect("write");
    let listed = cli::agora(
        &up.address(),
        &[
            "cluster",
            "status",
            "--token-file",
            token_file.to_str().expect("utf8"),
        ],
    )
    .await;
    listed.ok();
}

#[tokio::test]
async fn without_authentication_the_state_says_so() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let state = MasterClient::new(&up.address())
        .state()
        .await
        .expect("state");
    assert_eq!(state["security"]["authentication"], "off");
    let warnings = state["security"]["warnings"].to_string();
    assert!(
        warnings.contains("anyone who reaches this master"),
        "{warnings}"
    );
    let agent = MasterClient::new(&up.address())
        .get_json("/slave(1)/state")
        .await
        .expect("agent state");
    assert_eq!(agent["security"]["authentication"], "off");
}

/// What `agora master` with `flags` says on stderr while it starts (until it has said
/// `until`, or for two seconds).
async fn start_up_warnings(dir: &std::path::Path, flags: &[&str], until: &str) -> String {
    use tokio::io::AsyncBufReadExt;
    let data = dir.join(format!("master-{}", flags.len()));
    let mut master = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["master", "--port", "0", "--bind", "127.0.0.1", "--data-dir"])
        .arg(&data)
        .args(flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("agora master");
    let mut lines = tokio::io::BufReader::new(master.stderr.take().expect("stderr")).lines();
    let mut said = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Ok(Some(line)) = lines.next_line().await {
            said.push_str(&line);
            said.push('\n');
            if line.contains(until) {
                break;
            }
        }
    })
    .await;
    said
}

#[tokio::test]
async fn a_master_that_checks_callers_but_not_agents_says_so() {
    let dir = temp_dir();
    let credentials = credentials_file(dir.path());
    let warning = "authenticates requests but not agents";
    let open = [
        "--credentials",
        &credentials,
        "--authenticate-http-readwrite",
    ];
    let said = start_up_warnings(dir.path(), &open, warning).await;
    assert!(said.contains(warning), "{said}");
    assert!(said.contains("--authenticate-agents"), "{said}");
    let mut closed = open.to_vec();
    closed.push("--authenticate-agents");
    let said = start_up_warnings(dir.path(), &closed, warning).await;
    assert!(!said.contains(warning), "{said}");
}

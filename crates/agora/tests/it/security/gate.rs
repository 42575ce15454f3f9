//! The gate every request passes: nothing changes state from another site's page (a
//! `text/plain` or form post, a body-less post), JSONP is gone, browsers must use a name the
//! server serves (DNS rebinding), and `agora up` listens on loopback unless told otherwise.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, Process, marathon::Marathon, temp_dir};

/// One raw request (redirects not followed): the status and the body as JSON (or a string,
/// or for a redirect its `Location`).
async fn raw(
    process: &Process,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client.request(method, format!("http://{}{path}", process.address()));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    if response.status().is_redirection() {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        return (status, Value::String(location.to_owned()));
    }
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

const APP: &str =
    r#"{"id":"/pwned","cmd":"id > $MESOS_SANDBOX/who; sleep 60","cpus":0.1,"mem":16}"#;
const JOB: &str = r#"{"name":"pwned","command":"id","schedule":"R1//PT1M","cpus":0.1,"mem":16}"#;
const METRONOME_JOB: &str = r#"{"id":"pwned","run":{"cmd":"id","cpus":0.1,"mem":16}}"#;

#[tokio::test]
async fn no_api_takes_a_body_a_web_page_can_post() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let plain = [("Content-Type", "text/plain")];
    for (path, body) in [
        ("/v2/apps", APP),
        ("/v2/groups", r#"{"id":"/g","apps":[]}"#),
        ("/scheduler/iso8601", JOB),
        ("/v1/scheduler/iso8601", JOB),
        ("/v1/jobs", METRONOME_JOB),
        ("/slave(1)/tasks/any/exec", r#"{"command":"id"}"#),
    ] {
        let (status, answer) = raw(&up, Method::POST, path, &plain, Some(body)).await;
        assert_eq!(status, 415, "{path}: {answer}");
        if path.starts_with("/v2") || path.contains("scheduler") || path.starts_with("/v1/jobs") {
            let message = answer["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("application/json"),
                "{path} answers in its API's shape: {answer}"
            );
        }
    }
    // Mesos' v1 APIs keep their own answers.
    let (status, _) = raw(
        &up,
        Method::POST,
        "/api/v1/scheduler",
        &plain,
        Some(r#"{"type":"SUBSCRIBE"}"#),
    )
    .await;
    assert_eq!(status, 415);
    let marathon = Marathon::new(&up.address());
    assert_eq!(marathon.get("/v2/apps").await["apps"], json!([]));
    let jobs = up.get_text("/scheduler/jobs").await;
    assert!(!jobs.contains("pwned"), "{jobs}");
    let metronome = up.get_text("/v1/jobs").await;
    assert!(!metronome.contains("pwned"), "{metronome}");
}

#[tokio::test]
async fn teardown_takes_json_not_a_form() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let scheduler = common::subscribe(&up.address(), common::framework_info("doomed")).await;
    let framework_id = scheduler.framework_id().expect("subscribed").to_owned();
    let form = format!("frameworkId={framework_id}");
    let (status, answer) = raw(
        &up,
        Method::POST,
        "/master/teardown",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        Some(&form),
    )
    .await;
    assert_eq!(status, 415, "{answer}");
    let active = |state: &Value| {
        state["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|f| f["id"] == framework_id.as_str())
    };
    let state: Value = serde_json::from_str(&up.get_text("/master/state").await).expect("json");
    assert!(active(&state), "a form post tore nothing down");
    let body = json!({ "frameworkId": framework_id }).to_string();
    let (status, answer) = raw(
        &up,
        Method::POST,
        "/master/teardown",
        &[("Content-Type", "application/json")],
        Some(&body),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let state: Value = serde_json::from_str(&up.get_text("/master/state").await).expect("json");
    assert!(!active(&state), "torn down by JSON");
}

#[tokio::test]
async fn nothing_changes_from_another_sites_page() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let host = up.address();
    let cross = [
        ("Origin", "http://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Host", host.as_str()),
    ];
    // Body-less posts: no content type to refuse, only where they come from.
    for (method, path) in [
        (
            Method::POST,
            "/v2/eventSubscriptions?callbackUrl=http://evil.example/steal",
        ),
        (Method::POST, "/master/teardown?frameworkId=anything"),
        (Method::PUT, "/scheduler/job/anything"),
        (Method::DELETE, "/v2/apps/anything"),
    ] {
        let (status, answer) = raw(&up, method, path, &cross, None).await;
        assert_eq!(status, 403, "{path}: {answer}");
    }
    // JSON from another site is refused too (a browser would not send it without asking,
    // but nothing relies on that).
    let mut json_cross = cross.to_vec();
    json_cross.push(("Content-Type", "application/json"));
    let (status, _) = raw(&up, Method::POST, "/v2/apps", &json_cross, Some(APP)).await;
    assert_eq!(status, 403);
    let subscriptions = up.get_text("/v2/eventSubscriptions").await;
    assert!(!subscriptions.contains("evil"), "{subscriptions}");
    assert_eq!(
        Marathon::new(&up.address()).get("/v2/apps").await["apps"],
        json!([])
    );
    // The same post from the UI's own page is a UI action (here: running an unknown job, which
    // leads back to its page with the error).
    let own = [
        ("Origin", &*format!("http://{host}")),
        ("Sec-Fetch-Site", "same-origin"),
        ("Host", host.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (status, answer) = raw(&up, Method::POST, "/ui/jobs/none/run", &own, Some("x=1")).await;
    assert_eq!(status, 303, "{answer}");
    assert!(
        answer
            .as_str()
            .is_some_and(|l| l.starts_with("/ui/jobs/none")),
        "{answer}"
    );
}

#[tokio::test]
async fn jsonp_is_gone_and_browsers_must_name_this_server() {
    let dir = temp_dir();
    let up = common::start_up(dir.path(), &["--resources", "cpus:2;mem:1024"]);
    let response = reqwest::get(format!("http://{}/master/state?jsonp=steal", up.address()))
        .await
        .expect("get");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = response.text().await.expect("text");
    assert!(
        body.starts_with('{'),
        "plain JSON, no callback: {}",
        &body[..20.min(body.len())]
    );
    // A page whose name was made to resolve to this server (DNS rebinding).
    let rebound = format!("evil.example:{}", up.port);
    for path in ["/", "/master/state", "/ui/apps"] {
        let (status, _) = raw(
            &up,
            Method::GET,
            path,
            &[("Host", &rebound), ("Sec-Fetch-Site", "same-origin")],
            None,
        )
        .await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = raw(
        &up,
        Method::GET,
        "/",
        &[("Host", &up.address()), ("Sec-Fetch-Site", "none")],
        None,
    )
    .await;
    assert_eq!(status, 200, "reached by its address");
    let (status, _) = raw(
        &up,
        Method::GET,
        "/master/state",
        &[("Host", &rebound)],
        None,
    )
    .await;
    assert_eq!(status, 200, "a script may use any name");
    // A name listed with --allowed-hosts serves browsers.
    let dir = temp_dir();
    let named = common::start_up(
        dir.path(),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--allowed-hosts",
            "agora.example.com",
        ],
    );
    let (status, _) = raw(
        &named,
        Method::GET,
        "/",
        &[
            ("Host", &format!("agora.example.com:{}", named.port)),
            ("Sec-Fetch-Site", "none"),
        ],
        None,
    )
    .await;
    assert_eq!(status, 200);
}

/// Listening sockets (address, port) from `/proc/net/tcp` and `tcp6`.
fn listening() -> Vec<(String, u16)> {
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                continue;
            }
            let Some((address, port)) = fields.get(1).and_then(|f| f.split_once(':')) else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            sockets.push((address.to_owned(), port));
        }
    }
    sockets
}

#[tokio::test]
async fn agora_up_listens_on_loopback_unless_told() {
    let dir = temp_dir();
    // No --bind: the default.
    let up = Process::start(&[
        "up",
        "--port",
        "0",
        "--data-dir",
        dir.path().to_str().expect("utf8"),
        "--resources",
        "cpus:2;mem:1024;ports:[31000-31100]",
        "--proxy-http-port",
        "0",
        "--dns-port",
        "0",
    ]);
    let marathon = Marathon::new(&up.address());
    let service_port: u16 = 18473;
    marathon
        .create(
            json!({"id": "/web", "cmd": "sleep 60", "cpus": 0.1, "mem": 16,
                       "portDefinitions": [{"port": service_port}]}),
        )
        .await;
    // This node's own proxy listens on the service port (not another test's).
    let proxy = common::wait_until(
        Duration::from_secs(20),
        "the service port listening",
        || async {
            let state: Value = serde_json::from_str(&up.get_text("/slave(1)/state").await).ok()?;
            let proxy = state["discovery"]["proxy"].clone();
            proxy["listening"]
                .as_array()?
                .contains(&json!(service_port))
                .then_some(proxy)
        },
    )
    .await;
    assert_eq!(proxy["bind"], "127.0.0.1");
    let sockets = listening();
    for port in [up.port, service_port] {
        let addresses: Vec<&String> = sockets
            .iter()
            .filter(|(_, p)| *p == port)
            .map(|(address, _)| address)
            .collect();
        assert!(
            !addresses.is_empty() && addresses.iter().all(|a| *a == "0100007F"),
            "port {port} listens on 127.0.0.1 only: {addresses:?}"
        );
    }
}

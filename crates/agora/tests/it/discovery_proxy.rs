//! The service proxy: apps reached on `127.0.0.1:<servicePort>` while their tasks are killed,
//! replaced and scaled, with no failed request; an agent lost takes its tasks out of rotation;
//! a port that cannot be bound is reported and the others keep working.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::marathon::Marathon;
use crate::common::traffic::{Traffic, agent_state, answered_by, get, healthy, resources, web_app};
use crate::common::*;

/// `agora up` with its proxy on 127.0.0.1 and task ports of its own from `first_port`.
fn proxied_up(data: &std::path::Path, first_port: u16, extra: &[&str]) -> Process {
    let resources = resources(first_port);
    let mut args = vec!["--resources", &resources, "--proxy-bind", "127.0.0.1"];
    args.extend_from_slice(extra);
    start_up(data, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_traffic_survives_kills_and_scaling() {
    let dir = tempfile::tempdir().unwrap();
    let up = proxied_up(dir.path(), 32000, &[]);
    let marathon = Marathon::new(&up.address());
    marathon.create(web_app("/web", 18201, 3)).await;
    let mut tasks = healthy(&marathon, "/web", 3).await;
    let traffic = Traffic::start("127.0.0.1:18201", "web");
    answered_by(&traffic, &tasks).await;

    // Kill tasks one by one, each replaced, until at least 4,000 requests went through
    // meanwhile. The servers exit at once on SIGTERM: only the drain between TASK_KILLING
    // and the signal keeps a request from reaching one that is gone.
    let before = traffic.answered();
    let mut kills = 0;
    while kills < 3 || traffic.answered() - before < 4000 {
        let victim = tasks.iter().next().cloned().unwrap();
        kills += 1;
        marathon.kill_task("/web", &victim, false).await;
        tasks = wait_until(Duration::from_secs(40), "a replacement", || async {
            let now = healthy(&marathon, "/web", 3).await;
            (!now.contains(&victim)).then_some(now)
        })
        .await;
        answered_by(&traffic, &tasks).await;
    }

    // Scale up, then down past the start.
    for count in [5, 2] {
        let (status, body) = marathon
            .send(
                Method::PUT,
                "/v2/apps/web",
                Some(json!({"instances": count})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        tasks = healthy(&marathon, "/web", count).await;
        answered_by(&traffic, &tasks).await;
    }

    let tally = traffic.stop().await;
    tally.assert_clean(4000);

    // The proxy serves what `/v2/tasks` lists for the port.
    let text = marathon.tasks_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with("web\t"))
        .expect("web's line");
    let mut listed: Vec<&str> = line.split('\t').skip(2).filter(|s| !s.is_empty()).collect();
    listed.sort();
    assert!(line.starts_with("web\t18201\t"), "{line}");
    for task in marathon.tasks("/web").await {
        assert_eq!(task["servicePorts"], json!([18201]), "{task}");
    }
    let state = agent_state(&up.address()).await.unwrap();
    let proxy = &state["discovery"]["proxy"];
    let mut served: Vec<String> = proxy["ports"]["18201"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().replace("127.0.0.1", ""))
        .collect();
    served.sort();
    let listed_ports: Vec<String> = listed
        .iter()
        .map(|hp| format!(":{}", hp.rsplit_once(':').unwrap().1))
        .collect();
    assert_eq!(served, listed_ports, "{state}");
    assert_eq!(proxy["listening"], json!([18201]), "{proxy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_is_reported_and_the_rest_work() {
    let dir = tempfile::tempdir().unwrap();
    // Something else holds 18212 on the proxy's address.
    let squatter = std::net::TcpListener::bind("127.0.0.1:18212").unwrap();
    let up = proxied_up(dir.path(), 32050, &[]);
    let marathon = Marathon::new(&up.address());
    marathon.create(web_app("/blocked", 18212, 1)).await;
    marathon.create(web_app("/open", 18211, 1)).await;
    let open = healthy(&marathon, "/open", 1).await;
    healthy(&marathon, "/blocked", 1).await;
    let body = wait_until(
        Duration::from_secs(10),
        "the open app through the proxy",
        || async { get("127.0.0.1:18211", "open").await.ok() },
    )
    .await;
    assert!(open.contains(&body), "{body} not in {open:?}");
    let state = wait_until(
        Duration::from_secs(10),
        "the bind error in the state",
        || async {
            let state = agent_state(&up.address()).await?;
            state["discovery"]["proxy"]["bind_errors"]["18212"]
                .is_string()
                .then_some(state)
        },
    )
    .await;
    assert_eq!(
        state["discovery"]["proxy"]["listening"],
        json!([18211]),
        "{state}"
    );
    let metrics = up.get_text("/metrics").await;
    assert!(
        metrics.contains("agora_discovery_proxy_bind_errors 1"),
        "{metrics}"
    );
    // Freed, the port is taken up on the next retry.
    drop(squatter);
    wait_until(Duration::from_secs(15), "the freed port served", || async {
        get("127.0.0.1:18212", "blocked").await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_agent_takes_its_tasks_out_of_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let master = start_master(&dir.path().join("master"));
    // Two agents with their own addresses (and, as they share a machine, their own ports);
    // only the first runs a proxy.
    let near = start_agent_with(
        &master.address(),
        &dir.path().join("near"),
        &resources(32100),
        0,
        &["--hostname", "127.0.0.1", "--proxy-bind", "127.0.0.1"],
    );
    let mut far = start_agent_with(
        &master.address(),
        &dir.path().join("far"),
        &resources(32150),
        0,
        &["--hostname", "127.0.0.2", "--proxy-bind", "off"],
    );
    let marathon = Marathon::new(&master.address());
    let mut app = web_app("/spread", 18221, 2);
    app["constraints"] = json!([["hostname", "UNIQUE"]]);
    marathon.create(app).await;
    let tasks = healthy(&marathon, "/spread", 2).await;
    let traffic = Traffic::start("127.0.0.1:18221", "spread");
    answered_by(&traffic, &tasks).await;

    let far_task: String = marathon
        .tasks("/spread")
        .await
        .iter()
        .find(|t| t["host"] == "127.0.0.2")
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .expect("a task on the far agent");
    // The far agent dies; its task (still serving, as executors outlive their agent) leaves
    // rotation once the master declares the agent unreachable.
    far.kill9();
    wait_until(
        Duration::from_secs(20),
        "the far task out of rotation",
        || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let seen = traffic.take_bodies();
            (!seen.is_empty() && !seen.contains_key(&far_task)).then_some(())
        },
    )
    .await;
    let tally = traffic.stop().await;
    assert!(
        tally.failures.is_empty(),
        "failed requests: {:?}",
        tally.failures
    );
    drop(near);
}

/// An HTTP server on `$PORT0` that answers with its app's name, the `X-Forwarded-For` it was
/// sent and the port the request came from, over HTTP/1.1 keep-alive.
fn echo_app(id: &str, service_port: u16, vhost: &str) -> Value {
    let server = r#"exec python3 -c '
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = "%s %s %d" % (os.environ["MARATHON_APP_ID"], self.headers.get("X-Forwarded-For", "-"), self.client_address[1])
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT0"])), H).serve_forever()
'"#;
    json!({
        "id": id, "cmd": server, "cpus": 0.1, "mem": 32, "instances": 1,
        "portDefinitions": [{"port": service_port}],
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": vhost},
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0,
            "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
            "maxConsecutiveFailures": 3}],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_hosts_route_by_host_on_the_shared_port() {
    let dir = tempfile::tempdir().unwrap();
    let up = proxied_up(dir.path(), 32250, &["--proxy-http-port", "18280"]);
    let marathon = Marathon::new(&up.address());
    marathon
        .create(echo_app("/shop", 18231, "shop.example.com"))
        .await;
    marathon
        .create(echo_app(
            "/blog",
            18232,
            "blog.example.com,www.blog.example.com",
        ))
        .await;
    healthy(&marathon, "/shop", 1).await;
    healthy(&marathon, "/blog", 1).await;

    // One keep-alive client for every request: the proxy keeps the connection open.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let ask = |host: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get("http://127.0.0.1:18280/")
                .header("Host", host)
                .send()
                .await
                .ok()?;
            let status = response.status().as_u16();
            let text = response.text().await.ok()?;
            // An app's answer without the port it came from.
            let answer = match text.rsplit_once(' ') {
                Some((answer, _port)) if status == 200 => answer.to_owned(),
                _ => text,
            };
            Some((status, answer))
        }
    };
    let (status, body) = wait_until(
        Duration::from_secs(10),
        "the shop's virtual host",
        || async { ask("shop.example.com").await.filter(|(s, _)| *s == 200) },
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "/shop 127.0.0.1"));
    for _ in 0..20 {
        assert_eq!(
            ask("Blog.Example.com:18280").await,
            Some((200, "/blog 127.0.0.1".to_owned()))
        );
        assert_eq!(
            ask("www.blog.example.com").await,
            Some((200, "/blog 127.0.0.1".to_owned()))
        );
        assert_eq!(
            ask("shop.example.com").await,
            Some((200, "/shop 127.0.0.1".to_owned()))
        );
    }
    let (status, body) = ask("nobody.example.com").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("nobody.example.com"), "{body}");
    // Connections to the backends are kept alive: many requests, few backend connections.
    let mut ports = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let text = client
            .get("http://127.0.0.1:18280/")
            .header("Host", "shop.example.com")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        ports.insert(text.rsplit_once(' ').unwrap().1.to_owned());
    }
    assert!(
        ports.len() <= 2,
        "a backend connection per request: {ports:?}"
    );
    // The service ports still forward TCP as they are, and a connection established through
    // one outlives route changes: scaling the app swaps the port's backends, not its
    // connections.
    let direct = |client: reqwest::Client| async move {
        client
            .get("http://127.0.0.1:18231/")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let kept = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let before = direct(kept.clone()).await;
    assert!(before.starts_with("/shop - "), "{before}");
    let (status, body) = marathon
        .send(Method::PUT, "/v2/apps/shop", Some(json!({"instances": 2})))
        .await;
    assert_eq!(status, 200, "{body}");
    healthy(&marathon, "/shop", 2).await;
    wait_until(
        Duration::from_secs(10),
        "the second shop task routed",
        || async {
            let state = agent_state(&up.address()).await?;
            (state["discovery"]["proxy"]["ports"]["18231"]["backends"]
                .as_array()?
                .len()
                == 2)
                .then_some(())
        },
    )
    .await;
    // Same backend connection (its port is in the answer), so the same proxied connection.
    assert_eq!(direct(kept).await, before);
}

/// Prints when SIGTERM reaches it (epoch nanoseconds), then exits.
const TERM_REPORTER: &str =
    r#"trap 'echo "TERM $(date +%s%N)"; exit 0' TERM; while :; do sleep 0.05; done"#;

fn epoch_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Kills the app's one task (without a replacement) and returns how long after the kill
/// SIGTERM reached it; meanwhile the task is TASK_KILLING.
async fn signal_delay(up: &Process, marathon: &Marathon, app: &str) -> Duration {
    let task = wait_until(Duration::from_secs(30), "the task running", || async {
        let tasks = marathon.tasks(app).await;
        let task = tasks.first()?;
        (task["state"] == "TASK_RUNNING").then(|| task["id"].as_str().unwrap().to_owned())
    })
    .await;
    let killed_at = epoch_nanos();
    marathon.kill_task(app, &task, true).await;
    let stdout = wait_until(Duration::from_secs(20), "SIGTERM", || async {
        let out = try_task_stdout(&up.address(), &task).await?;
        out.contains("TERM ").then_some(out)
    })
    .await;
    let term: u128 = stdout
        .split("TERM ")
        .nth(1)
        .and_then(|rest| rest.trim().parse().ok())
        .expect("a time");
    Duration::from_nanos((term.saturating_sub(killed_at)) as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_task_gets_its_signal_after_the_drain_delay() {
    let dir = tempfile::tempdir().unwrap();
    let up = proxied_up(dir.path(), 32400, &["--kill-drain", "0s"]);
    let marathon = Marathon::new(&up.address());
    let app = |id: &str, port: u16, labels: Value| {
        json!({"id": id, "cmd": TERM_REPORTER, "cpus": 0.1, "mem": 32, "instances": 1,
            "portDefinitions": [{"port": port}], "labels": labels})
    };
    let (status, body) = marathon
        .send(
            Method::POST,
            "/v2/apps",
            Some(app(
                "/bad",
                18241,
                json!({"AGORA_KILL_DRAIN_SECONDS": "soon"}),
            )),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("AGORA_KILL_DRAIN_SECONDS"),
        "{body}"
    );

    // The app's label: three seconds between TASK_KILLING and SIGTERM.
    marathon
        .create(app(
            "/slow",
            18242,
            json!({"AGORA_KILL_DRAIN_SECONDS": "3"}),
        ))
        .await;
    let killing = tokio::spawn({
        let marathon = Marathon::new(&up.address());
        async move {
            wait_until(Duration::from_secs(30), "TASK_KILLING", || async {
                let tasks = marathon.tasks("/slow").await;
                tasks
                    .iter()
                    .any(|t| t["state"] == "TASK_KILLING")
                    .then_some(())
            })
            .await
        }
    });
    let delay = signal_delay(&up, &marathon, "/slow").await;
    killing.await.unwrap();
    assert!(
        delay >= Duration::from_secs(3) && delay < Duration::from_secs(6),
        "{delay:?}"
    );
    // The agent's --kill-drain (0 s here) for an app without the label.
    marathon.create(app("/quick", 18243, json!({}))).await;
    let delay = signal_delay(&up, &marathon, "/quick").await;
    assert!(delay < Duration::from_millis(2500), "{delay:?}");
}

//! Apps behind a proxy and steady HTTP traffic to them: a server answering with its task id,
//! one request per new connection, back to back, each answer checked; failures are kept with
//! what went wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::marathon::Marathon;
use super::wait_until;

/// An HTTP/1.0 server on `$PORT0` answering every GET with its task id. SIGTERM ends it at
/// once, as it does most programs: a request that reaches it after that fails.
pub const TASK_ID_SERVER: &str = r#"exec python3 -c '
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = os.environ.get("MESOS_TASK_ID", "?").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT0"])), H)
s.serve_forever()
'"#;

/// One GET through a fresh connection to `address`, with `host` as its Host header; the
/// body of a 200 answer, or what went wrong.
pub async fn get(address: &str, host: &str) -> Result<String, String> {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let request = format!("GET / HTTP/1.0\r\nHost: {host}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        if !text.starts_with("HTTP/1.0 200") && !text.starts_with("HTTP/1.1 200") {
            return Err(format!("answer: {text:?}"));
        }
        Ok(text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .unwrap_or_else(|_| Err("no answer within 10 s".into()))
}

#[derive(Default, Debug)]
pub struct Tally {
    pub ok: u64,
    pub failures: Vec<String>,
    /// Answers per body (the answering task's id).
    pub bodies: BTreeMap<String, u64>,
}

impl Tally {
    /// No request failed, and at least `at_least` were answered (fewer tell nothing).
    pub fn assert_clean(&self, at_least: u64) {
        assert!(
            self.failures.is_empty(),
            "failed requests: {:?}",
            self.failures
        );
        assert!(
            self.ok >= at_least,
            "too little traffic to tell: {} answered",
            self.ok
        );
    }
}

/// Requests sent back to back until dropped or stopped.
pub struct Traffic {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    pub fn start(address: &str, host: &str) -> Traffic {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (address, host) = (address.to_owned(), host.to_owned());
        let task = tokio::spawn({
            let (tally, stop) = (tally.clone(), stop.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    let result = get(&address, &host).await;
                    let mut tally = tally.lock().unwrap();
                    match result {
                        Ok(body) => {
                            tally.ok += 1;
                            *tally.bodies.entry(body).or_default() += 1;
                        }
                        Err(error) => tally.failures.push(error),
                    }
                }
            }
        });
        Traffic { tally, stop, task }
    }

    /// Bodies seen since the last call, and clears them.
    pub fn take_bodies(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut self.tally.lock().unwrap().bodies)
    }

    /// Requests answered so far.
    pub fn answered(&self) -> u64 {
        self.tally.lock().unwrap().ok
    }

    pub fn failures(&self) -> usize {
        self.tally.lock().unwrap().failures.len()
    }

    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

/// Host ports of their own: tasks of every test share the machine, and a health check or a
/// proxy reaching another test's task on a shared port would prove nothing.
pub fn resources(first: u16) -> String {
    format!("cpus:8;mem:4096;ports:[{first}-{}]", first + 49)
}

pub fn web_app(id: &str, service_port: u16, instances: u32) -> Value {
    json!({
        "id": id, "cmd": TASK_ID_SERVER, "cpus": 0.1, "mem": 32, "instances": instances,
        "portDefinitions": [{"port": service_port}],
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0,
            "gracePeriodSeconds": 30, "intervalSeconds": 1, "timeoutSeconds": 1,
            "maxConsecutiveFailures": 3}],
    })
}

/// The ids of the app's tasks that are healthy, once there are `count` and no deployment runs.
pub async fn healthy(marathon: &Marathon, app: &str, count: usize) -> BTreeSet<String> {
    wait_until(
        Duration::from_secs(40),
        &format!("{app}: {count} healthy tasks"),
        || async {
            let deployments = marathon.get("/v2/deployments").await;
            let tasks = marathon.tasks(app).await;
            let ids: BTreeSet<String> = tasks
                .iter()
                .filter(|t| {
                    t["state"] == "TASK_RUNNING" && t["healthCheckResults"][0]["alive"] == true
                })
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect();
            (deployments.as_array()?.is_empty() && ids.len() == count && tasks.len() == count)
                .then_some(ids)
        },
    )
    .await
}

/// Waits until requests through the proxy are answered by exactly these tasks.
pub async fn answered_by(traffic: &Traffic, tasks: &BTreeSet<String>) {
    traffic.take_bodies();
    wait_until(
        Duration::from_secs(10),
        &format!("the proxy to answer from {tasks:?}"),
        || async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let seen: BTreeSet<String> = traffic.take_bodies().into_keys().collect();
            (seen == *tasks).then_some(())
        },
    )
    .await
}

/// The agent's `/slave(1)/state` at `address`, if it answers.
pub async fn agent_state(address: &str) -> Option<Value> {
    reqwest::get(format!("http://{address}/slave(1)/state"))
        .await
        .ok()?
        .json()
        .await
        .ok()
}

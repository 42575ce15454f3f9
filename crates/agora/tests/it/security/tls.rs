//! TLS end to end with a throw-away CA: a master and agents that speak only https (mutual TLS
//! between them), the CLI, the UI's secure session cookie, executors, discovery and the HAProxy
//! bridge over it; an agent without a certificate refused; `agora up` serving https with no CA
//! at all (its own components trust its certificate); executors on the agent's Unix socket, and
//! over TLS when it has none.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{self, cli, temp_dir, tls::TestCa, wait_until};

/// GETs `path` of `address` over https, as JSON.
async fn get_json(client: &reqwest::Client, address: &str, path: &str) -> Option<Value> {
    client
        .get(format!("https://{address}{path}"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()
}

async fn agents_of(client: &reqwest::Client, master: &str) -> usize {
    get_json(client, master, "/master/slaves")
        .await
        .and_then(|s| s["slaves"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The app's first running task (its JSON from `/v2/apps/{id}/tasks`).
async fn running_task(client: &reqwest::Client, master: &str, app: &str) -> Value {
    wait_until(Duration::from_secs(30), "the app's task", || async {
        let tasks = get_json(client, master, &format!("/v2/apps{app}/tasks")).await?;
        tasks["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["state"] == "TASK_RUNNING")
            .cloned()
    })
    .await
}

fn tls_flags<'a>(ca: &'a Path, cert: &'a Path, key: &'a Path) -> Vec<&'a str> {
    vec![
        "--tls-ca",
        ca.to_str().unwrap(),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_tls_from_agents_to_the_cli() {
    let dir = temp_dir();
    let ca = TestCa::new(&dir.path().join("ca"));
    let master_cert = ca.issue("master", "DNS:localhost,IP:127.0.0.1");
    let agent_cert = ca.issue("agent", "DNS:localhost,IP:127.0.0.1");
    let credentials = dir.path().join("credentials.json");
    std::fs::write(
        &credentials,
        json!({"credentials": [{"principal": "ops", "secret": "ops-secret"}]}).to_string(),
    )
    .unwrap();
    let mut flags = vec![
        "--credentials",
        credentials.to_str().unwrap(),
        "--tls-require-agent-cert",
    ];
    flags.extend(tls_flags(&ca.cert, &master_cert.cert, &master_cert.key));
    let master = common::start_master_with(&dir.path().join("master"), 0, &flags);
    let address = master.address();
    let https = ca.client();

    // Only https: a plain request gets no answer, a client that does not trust the CA none.
    // (A connection that does not open with a handshake is closed: no answer at all.)
    let plain = reqwest::get(format!("http://{address}/master/state")).await;
    assert!(plain.is_err(), "{plain:?}");
    let untrusting = reqwest::get(format!("https://{address}/master/state")).await;
    assert!(untrusting.is_err(), "the CA is the test's own");
    let state = get_json(&https, &address, "/master/state")
        .await
        .expect("state");
    assert_eq!(state["security"]["tls"], "on", "{}", state["security"]);

    // An agent with a certificate registers (mutual TLS); one without is refused.
    let agent = common::start_agent_with(
        &address,
        &dir.path().join("agent"),
        "cpus:2;mem:1024;ports:[31500-31599]",
        0,
        &tls_flags(&ca.cert, &agent_cert.cert, &agent_cert.key),
    );
    wait_until(Duration::from_secs(15), "the agent", || async {
        (agents_of(&https, &address).await == 1).then_some(())
    })
    .await;
    let rogue = common::start_agent_with(
        &address,
        &dir.path().join("rogue"),
        "cpus:1;mem:256",
        0,
        &["--tls-ca", ca.cert.to_str().unwrap()],
    );
    let refused = wait_until(Duration::from_secs(15), "the rogue's refusal", || async {
        let state: Value = serde_json::from_str(&rogue.get_text("/slave(1)/state").await).ok()?;
        let error = state["master_link"]["error"].as_str()?.to_owned();
        error.contains("403").then_some(error)
    })
    .await;
    assert!(refused.contains("certificate"), "{refused}");
    assert_eq!(agents_of(&https, &address).await, 1);

    // An app, by the CLI over https: its executor reaches its agent over TLS, discovery
    // follows the master over TLS and proxies its service port.
    let app = json!({"id": "/web", "instances": 1, "cpus": 0.1, "mem": 32,
        "cmd": "echo serving-over-tls; exec python3 -m http.server --bind 127.0.0.1 $PORT0",
        "portDefinitions": [{"port": 17461}]});
    let ca_flag = ca.cert.to_str().unwrap();
    let added = cli::agora_with_stdin(
        &address,
        &["app", "add", "-", "--tls-ca", ca_flag],
        Some(&app.to_string()),
    )
    .await;
    assert_eq!(added.code, 0, "{added:?}");
    let without_ca = cli::agora(&address, &["app", "list"]).await;
    let error = without_ca.error().to_lowercase();
    assert!(error.contains("cannot reach"), "{error}");
    let task = running_task(&https, &address, "/web").await;
    let agent_address = agent.address();
    let task_id = task["id"].as_str().unwrap();
    // Its output, read from its agent over https (its executor reached the agent over the
    // agent's socket; the next test follows one over TLS).
    wait_until(Duration::from_secs(15), "the task's output", || async {
        let state = get_json(&https, &agent_address, "/slave(1)/state").await?;
        let directory = state["frameworks"]
            .as_array()?
            .iter()
            .flat_map(|f| f["executors"].as_array().cloned().unwrap_or_default())
            .find(|e| e["id"] == task_id)?["directory"]
            .as_str()?
            .to_owned();
        let read = get_json(
            &https,
            &agent_address,
            &format!("/files/read?path={directory}/stdout&offset=0"),
        )
        .await?;
        read["data"]
            .as_str()?
            .contains("serving-over-tls")
            .then_some(())
    })
    .await;
    wait_until(Duration::from_secs(15), "the service port", || async {
        let response = reqwest::get("http://127.0.0.1:17461/").await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
    let listed = cli::agora(&address, &["app", "list", "--tls-ca", ca_flag]).await;
    assert!(listed.ok().contains("/web"), "{listed:?}");

    // The UI's session cookie is for https only.
    let no_redirects = ca
        .client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = no_redirects
        .post(format!("https://{address}/ui/login"))
        .header("Origin", format!("https://{address}"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("principal=ops&secret=ops-secret")
        .send()
        .await
        .expect("sign in");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        cookie.contains("Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // The HAProxy bridge reads the master over https.
    let config = dir.path().join("haproxy.cfg");
    let bridge = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["lb", "haproxy", "--master", &address, "--tls-ca", ca_flag])
        .arg("--config")
        .arg(&config)
        .args(["--once", "--admin-socket", "none", "--stats", "none"])
        .args(["--http-port", "0", "--bind", "127.0.0.1"])
        .output()
        .await
        .expect("agora lb haproxy");
    assert!(
        bridge.status.success(),
        "{}",
        String::from_utf8_lossy(&bridge.stderr)
    );
    let written = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(written.contains(":17461"), "{written}");
}

/// What a process and its descendants hold open: (their Unix socket inodes, the remote ports
/// of their established TCP connections).
fn sockets_of(root: i32) -> (Vec<u64>, Vec<u16>) {
    let mut tree = vec![root];
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // pid (comm) state ppid ...: the command may hold spaces, so read after its ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid) in &parents {
            if tree.contains(ppid) && !tree.contains(pid) {
                tree.push(*pid);
                grew = true;
            }
        }
    }
    let mut inodes = Vec::new();
    for pid in &tree {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let link = std::fs::read_link(fd.path()).unwrap_or_default();
            let link = link.to_string_lossy();
            if let Some(inode) = link
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inode| inode.parse::<u64>().ok())
            {
                inodes.push(inode);
            }
        }
    }
    let table = |file: &str| -> Vec<Vec<String>> {
        std::fs::read_to_string(format!("/proc/{root}/net/{file}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .map(|line| line.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let unix = table("unix")
        .into_iter()
        .filter_map(|row| row.get(6)?.parse::<u64>().ok())
        .filter(|inode| inodes.contains(inode))
        .collect();
    let mut tcp = Vec::new();
    for row in table("tcp").into_iter().chain(table("tcp6")) {
        // sl local rem st ... inode: established (01) connections of the tree's sockets.
        let (Some(remote), Some(state), Some(inode)) = (row.get(2), row.get(3), row.get(9)) else {
            continue;
        };
        let mine = inode.parse::<u64>().is_ok_and(|i| inodes.contains(&i));
        if mine
            && state == "01"
            && let Some(port) = remote
                .rsplit_once(':')
                .and_then(|(_, port)| u16::from_str_radix(port, 16).ok())
        {
            tcp.push(port);
        }
    }
    (unix, tcp)
}

/// Connected sockets whose address is `path` (a listener's accepted connections carry it).
fn connections_to(path: &Path) -> usize {
    let path = path.to_string_lossy();
    std::fs::read_to_string("/proc/net/unix")
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            let row: Vec<&str> = line.split_whitespace().collect();
            row.get(5) == Some(&"03") && row.get(7) == Some(&path.as_ref())
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executors_reach_their_agent_over_its_socket_and_over_tls_without_it() {
    let dir = temp_dir();
    let ca = TestCa::new(&dir.path().join("ca"));
    let node = ca.issue("node", "DNS:localhost,IP:127.0.0.1");
    let tls = tls_flags(&ca.cert, &node.cert, &node.key);
    let master = common::start_master_with(&dir.path().join("master"), 0, &tls);
    let address = master.address();
    let https = ca.client();
    let work = dir.path().join("agent");
    let resources = "cpus:2;mem:1024";
    let mut agent = common::start_agent_with(&address, &work, resources, 0, &tls);
    wait_until(Duration::from_secs(15), "the agent", || async {
        (agents_of(&https, &address).await == 1).then_some(())
    })
    .await;
    let created = https
        .post(format!("https://{address}/v2/apps"))
        .json(&json!({"id": "/near", "cmd": "sleep 600", "cpus": 0.1, "mem": 16}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    running_task(&https, &address, "/near").await;

    // The executor holds a connection on the agent's socket, none to its port.
    let socket = work.join("run/agent.sock");
    let executor = common::checkpointed_executor_pids(&work)[0];
    let (unix, tcp) = sockets_of(executor);
    assert!(!unix.is_empty(), "the executor holds no Unix socket");
    assert!(!tcp.contains(&agent.port), "{tcp:?}");
    assert!(
        connections_to(&socket) >= 1,
        "nothing is connected to {socket:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666, "executors of any user may connect");

    // Restarted without the socket (its file left behind), the agent is reached over TLS: the
    // executor re-subscribes on the port, and still obeys.
    let port = agent.port;
    agent.kill9();
    let mut flags = tls.clone();
    flags.extend(["--http-executor-domain-sockets", "false"]);
    let _agent = common::start_agent_with(&address, &work, resources, port, &flags);
    wait_until(
        Duration::from_secs(20),
        "the executor back over TLS",
        || async { sockets_of(executor).1.contains(&port).then_some(()) },
    )
    .await;
    let removed = https
        .delete(format!("https://{address}/v2/apps/near"))
        .send()
        .await
        .expect("remove");
    assert!(removed.status().is_success(), "{}", removed.status());
    wait_until(Duration::from_secs(20), "the executor gone", || async {
        (!common::process_alive(executor)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_second_agent_on_the_same_work_dir_does_not_take_the_first_ones_socket() {
    let dir = temp_dir();
    let master = common::start_master(&dir.path().join("master"));
    let work = dir.path().join("agent");
    let _first = common::start_agent(&master.address(), &work, "cpus:1;mem:256");
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["agent", "--master", &master.address(), "--port", "0"])
        .args([
            "--bind",
            "127.0.0.1",
            "--proxy-http-port",
            "0",
            "--dns-port",
            "0",
        ])
        .arg("--work-dir")
        .arg(&work)
        .output();
    let second = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second agent stops")
        .expect("agora agent");
    assert!(!second.status.success());
    let error = String::from_utf8_lossy(&second.stderr);
    assert!(error.contains("another agent serves"), "{error}");
    assert!(
        std::os::unix::net::UnixStream::connect(work.join("run/agent.sock")).is_ok(),
        "the first agent's socket is still there"
    );
}

#[tokio::test]
async fn agora_up_serves_https_and_its_own_parts_trust_its_certificate() {
    let dir = temp_dir();
    let ca = TestCa::new(&dir.path().join("ca"));
    // Named for localhost only: the process's own clients dial 127.0.0.1 and still trust it.
    let cert = ca.issue("node", "DNS:localhost");
    let up = common::start_up(
        &dir.path().join("data"),
        &[
            "--resources",
            "cpus:2;mem:1024",
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
        ],
    );
    let port = up.address().rsplit_once(':').unwrap().1.to_owned();
    let https = ca.client();
    let created = https
        .post(format!("https://localhost:{port}/v2/apps"))
        .json(&json!({"id": "/tls-up", "cmd": "sleep 600", "cpus": 0.1, "mem": 16}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    running_task(&https, &format!("localhost:{port}"), "/tls-up").await;
    let state = get_json(&https, &format!("localhost:{port}"), "/slave(1)/state")
        .await
        .expect("the agent's state over https");
    assert_eq!(state["security"]["tls"], "on", "{}", state["security"]);
    let plain = reqwest::get(format!("http://{}/v2/apps", up.address())).await;
    assert!(plain.is_err(), "{plain:?}");
}

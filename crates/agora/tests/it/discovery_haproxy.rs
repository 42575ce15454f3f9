//! The HAProxy bridge with real HAProxy (Debian's package): `agora lb haproxy` renders a
//! configuration that `haproxy -c` accepts, HAProxy in master-worker mode serves the app on its
//! service port, a scale-up rewrites the configuration and reloads HAProxy with no failed
//! request, and a server whose task is being killed is put in maintenance through the admin
//! socket before the task's signal, without waiting for a reload.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::common::marathon::Marathon;
use crate::common::traffic::{Traffic, answered_by, healthy, resources, web_app};
use crate::common::*;

/// A process group killed when dropped (HAProxy's master and workers, the bridge).
struct Group(Child);

impl Group {
    fn spawn(command: &mut Command) -> Group {
        use std::os::unix::process::CommandExt;
        Group(
            command
                .process_group(0)
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn"),
        )
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

fn haproxy_check(config: &Path) {
    let output = Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(config)
        .output()
        .expect("haproxy is installed (scripts/install-test-deps.sh installs it)");
    assert!(
        output.status.success(),
        "haproxy -c refused the configuration: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(config).unwrap_or_default()
    );
}

fn server_lines(config: &Path) -> usize {
    std::fs::read_to_string(config)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.trim_start().starts_with("server "))
        .count()
}

/// `agora up` (task ports from `first_port`; HAProxy takes the service ports, so the built-in
/// proxy stays off) with `app`'s two web tasks healthy on `service_port`.
async fn cluster_with_app(
    dir: &Path,
    first_port: u16,
    app: &str,
    service_port: u16,
) -> (Process, Marathon, std::collections::BTreeSet<String>) {
    let up = start_up(
        dir,
        &["--resources", &resources(first_port), "--proxy-bind", "off"],
    );
    let marathon = Marathon::new(&up.address());
    marathon.create(web_app(app, service_port, 2)).await;
    let tasks = healthy(&marathon, app, 2).await;
    (up, marathon, tasks)
}

/// The bridge (reloads at most once per `interval`) and HAProxy in master-worker mode, once the
/// configuration has `servers` servers; returns them and the configuration's path.
async fn bridge_and_haproxy(
    up: &Process,
    dir: &Path,
    interval: &str,
    servers: usize,
) -> (Group, Group, std::path::PathBuf) {
    let config = dir.join("haproxy.cfg");
    let pid_file = dir.join("haproxy.pid");
    let bridge = Group::spawn(
        Command::new(BIN)
            .args(["lb", "haproxy", "--master", &up.address()])
            .arg("--config")
            .arg(&config)
            .arg("--reload-cmd")
            .arg(format!("kill -USR2 $(cat {})", pid_file.display()))
            .arg("--admin-socket")
            .arg(dir.join("admin.sock"))
            .args(["--stats", "none", "--http-port", "0", "--bind", "127.0.0.1"])
            .args(["--min-reload-interval", interval])
            .env("AGORA_LOG", "warn"),
    );
    wait_until(
        Duration::from_secs(10),
        "the bridge's configuration",
        || async { (server_lines(&config) == servers).then_some(()) },
    )
    .await;
    haproxy_check(&config);
    let haproxy = Group::spawn(
        Command::new("haproxy")
            .arg("-W")
            .arg("-f")
            .arg(&config)
            .arg("-p")
            .arg(&pid_file)
            .stderr(Stdio::null()),
    );
    wait_until(Duration::from_secs(10), "haproxy's pid file", || async {
        pid_file.exists().then_some(())
    })
    .await;
    (bridge, haproxy, config)
}

/// `show servers state` over the admin socket: (server name, admin state) of every server;
/// none while HAProxy does not answer (it may be reloading).
fn server_states(socket: &Path) -> Vec<(String, u32)> {
    use std::io::{Read, Write};
    let mut answer = String::new();
    let asked = std::os::unix::net::UnixStream::connect(socket).and_then(|mut stream| {
        stream.write_all(b"show servers state\n")?;
        stream.read_to_string(&mut answer)
    });
    if asked.is_err() {
        return Vec::new();
    }
    // Fields: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state …
    answer
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some((fields.get(3)?.to_string(), fields.get(6)?.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_leaves_is_in_maintenance_before_its_task_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (up, marathon, tasks) = cluster_with_app(dir.path(), 32450, "/hapkill", 18311).await;
    // No reload for a minute: only the admin socket can take the server out in time.
    let (_bridge, _haproxy, _) = bridge_and_haproxy(&up, dir.path(), "60s", 2).await;
    let socket = dir.path().join("admin.sock");
    let traffic = Traffic::start("127.0.0.1:18311", "hapkill");
    answered_by(&traffic, &tasks).await;

    let victim = tasks.iter().next().unwrap().clone();
    marathon.kill_task("/hapkill", &victim, true).await;
    // The bridge names a server after its task: letters, digits, `-_.` kept, others escaped.
    let server = victim.clone();
    wait_until(
        Duration::from_secs(5),
        "the server in maintenance",
        || async {
            server_states(&socket)
                .iter()
                .any(|(name, admin)| *name == server && admin & 1 == 1)
                .then_some(())
        },
    )
    .await;
    let still_killing = marathon
        .tasks("/hapkill")
        .await
        .iter()
        .any(|t| t["id"] == victim.as_str() && t["state"] == "TASK_KILLING");
    assert!(still_killing, "in maintenance before the task's signal");
    healthy(&marathon, "/hapkill", 1).await;
    // Traffic goes on after the task is gone: a request HAProxy still sent it would fail.
    let gone = traffic.answered();
    wait_until(
        Duration::from_secs(10),
        "traffic after the kill",
        || async { (traffic.answered() >= gone + 100).then_some(()) },
    )
    .await;
    let tally = traffic.stop().await;
    tally.assert_clean(50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_serves_the_app_and_survives_a_scale_up() {
    let dir = tempfile::tempdir().unwrap();
    let (up, marathon, tasks) = cluster_with_app(dir.path(), 32200, "/hap", 18301).await;

    let (_bridge, _haproxy, config) = bridge_and_haproxy(&up, dir.path(), "200ms", 2).await;

    let traffic = Traffic::start("127.0.0.1:18301", "hap");
    answered_by(&traffic, &tasks).await;
    let (status, body) = marathon
        .send(Method::PUT, "/v2/apps/hap", Some(json!({"instances": 4})))
        .await;
    assert_eq!(status, 200, "{body}");
    let tasks = healthy(&marathon, "/hap", 4).await;
    // The new tasks are served after the bridge rewrote the file and HAProxy reloaded.
    answered_by(&traffic, &tasks).await;
    assert_eq!(server_lines(&config), 4);
    haproxy_check(&config);
    let tally = traffic.stop().await;
    tally.assert_clean(50);
}

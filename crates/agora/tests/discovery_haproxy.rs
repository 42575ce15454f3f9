//! The HAProxy bridge with real HAProxy (Debian's package): `agora lb haproxy` renders a
//! configuration that `haproxy -c` accepts, HAProxy in master-worker mode serves the app on its
//! service port, and a scale-up rewrites the configuration and reloads HAProxy with no failed
//! request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed test may panic

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use common::marathon::Marathon;
use common::traffic::{Traffic, answered_by, healthy, resources, web_app};
use common::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_serves_the_app_and_survives_a_scale_up() {
    let dir = tempfile::tempdir().unwrap();
    // HAProxy takes the service port: the built-in proxy stays off.
    let up = start_up(
        dir.path(),
        &["--resources", &resources(32200), "--proxy-bind", "off"],
    );
    let marathon = Marathon::new(&up.address());
    marathon.create(web_app("/hap", 18301, 2)).await;
    let tasks = healthy(&marathon, "/hap", 2).await;

    let config = dir.path().join("haproxy.cfg");
    let pid_file = dir.path().join("haproxy.pid");
    let _bridge = Group::spawn(
        Command::new(BIN)
            .args(["lb", "haproxy", "--master", &up.address()])
            .arg("--config")
            .arg(&config)
            .arg("--reload-cmd")
            .arg(format!("kill -USR2 $(cat {})", pid_file.display()))
            .arg("--admin-socket")
            .arg(dir.path().join("admin.sock"))
            .args(["--stats", "none", "--http-port", "0", "--bind", "127.0.0.1"])
            .args(["--min-reload-interval", "200ms"])
            .env("AGORA_LOG", "warn"),
    );
    wait_until(
        Duration::from_secs(10),
        "the bridge's configuration",
        || async { (server_lines(&config) == 2).then_some(()) },
    )
    .await;
    haproxy_check(&config);
    let _haproxy = Group::spawn(
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
    assert!(
        tally.failures.is_empty(),
        "failed requests: {:?}",
        tally.failures
    );
    assert!(tally.ok > 50, "too little traffic to tell: {}", tally.ok);
}

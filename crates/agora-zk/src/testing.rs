//! A real ZooKeeper for tests (this crate's and the binary's): Debian's package, started as a
//! standalone server on a free loopback port in a temporary directory, no system service.
//! Built with the `testing` feature only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a harness: a failure fails the test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ZkUrl;

/// Debian's `zookeeper` package puts the server (and its dependencies, by the jar's class
/// path) here.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// A standalone ZooKeeper server in a temporary directory, stopped when dropped.
pub struct ZooKeeper {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ZooKeeper {
    pub fn start() -> ZooKeeper {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut zk = ZooKeeper {
            child: spawn(dir.path(), port),
            port,
            dir,
        };
        zk.wait_ready();
        zk
    }

    pub fn url(&self, path: &str) -> ZkUrl {
        ZkUrl::parse(&self.url_text(path)).unwrap()
    }

    /// `zk://127.0.0.1:<port><path>`.
    pub fn url_text(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (its data stays) and starts it again after `pause`.
    pub fn restart_after(&mut self, pause: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(pause);
        self.child = spawn(self.dir.path(), self.port);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("ZooKeeper exited at start ({status}); is Debian's zookeeper installed?");
            }
            let address = SocketAddr::from(([127, 0, 0, 1], self.port));
            if let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) {
                // A server still starting may take the connection and say nothing.
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = String::new();
                if stream.write_all(b"ruok").is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer == "imok"
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "ZooKeeper did not answer on port {} within a minute",
            self.port
        );
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(dir: &Path, port: u16) -> Child {
    let config = dir.join("zoo.cfg");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        &config,
        format!(
            "tickTime=250\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nminSessionTimeout=500\nmaxSessionTimeout=60000\n\
             4lw.commands.whitelist=ruok\n",
            data.display()
        ),
    )
    .unwrap();
    Command::new("java")
        .args(["-Xmx128m", "-cp", ZOOKEEPER_JAR])
        .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("java, to run ZooKeeper (scripts/install-test-deps.sh installs it)")
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

//! A real ZooKeeper for tests (this crate's and the binary's): Debian's package, started as a
//! standalone server — or a 3-member ensemble — on free loopback ports in temporary
//! directories, no system service. Built with the `testing` feature only.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a harness: a failure fails the test

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ZkUrl;

/// Debian's `zookeeper` package puts the server (and its dependencies, by the jar's class
/// path) here.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// One server process and where it keeps its data.
struct Server {
    child: Child,
    port: u16,
    config: PathBuf,
    dir: PathBuf,
}

impl Server {
    fn spawn(&mut self) {
        self.child = spawn(&self.dir, &self.config);
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits until the server answers `what` (a four-letter command) with text holding
    /// `wanted`.
    fn wait_for(&mut self, what: &[u8], wanted: &str) {
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
                if stream.write_all(what).is_ok()
                    && stream.read_to_string(&mut answer).is_ok()
                    && answer.contains(wanted)
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

/// A standalone ZooKeeper server in a temporary directory, stopped when dropped.
pub struct ZooKeeper {
    server: Server,
    _dir: tempfile::TempDir,
}

impl ZooKeeper {
    pub fn start() -> ZooKeeper {
        ZooKeeper::start_on(free_port())
    }

    /// A server on a given port (one a client was told of before the server was up).
    pub fn start_on(port: u16) -> ZooKeeper {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), port, "");
        let mut server = Server {
            child: spawn(dir.path(), &config),
            port,
            config,
            dir: dir.path().to_path_buf(),
        };
        server.wait_for(b"ruok", "imok");
        ZooKeeper { server, _dir: dir }
    }

    pub fn url(&self, path: &str) -> ZkUrl {
        ZkUrl::parse(&self.url_text(path)).unwrap()
    }

    /// `zk://127.0.0.1:<port><path>`.
    pub fn url_text(&self, path: &str) -> String {
        format!("zk://127.0.0.1:{}{path}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// Kills the server (its data stays) and starts it again after `pause`.
    pub fn restart_after(&mut self, pause: Duration) {
        self.server.stop();
        std::thread::sleep(pause);
        self.server.spawn();
        self.server.wait_for(b"ruok", "imok");
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.server.stop();
    }
}

/// A 3-member ensemble, each member in a directory of its own, stopped when dropped.
pub struct Ensemble {
    servers: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl Ensemble {
    pub fn start() -> Ensemble {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let members: String = ports
            .iter()
            .enumerate()
            .map(|(index, (_, quorum, election))| {
                format!("server.{}=127.0.0.1:{quorum}:{election}\n", index + 1)
            })
            .collect();
        let servers = ports
            .iter()
            .enumerate()
            .map(|(index, (client, _, _))| {
                let member = dir.path().join(format!("member-{}", index + 1));
                std::fs::create_dir_all(member.join("data")).unwrap();
                std::fs::write(member.join("data/myid"), format!("{}\n", index + 1)).unwrap();
                let extra = format!("initLimit=40\nsyncLimit=20\n{members}");
                let config = write_config(&member, *client, &extra);
                Server {
                    child: spawn(&member, &config),
                    port: *client,
                    config,
                    dir: member,
                }
            })
            .collect();
        let mut ensemble = Ensemble { servers, _dir: dir };
        for server in &mut ensemble.servers {
            server.wait_for(b"srvr", "Mode:");
        }
        ensemble
    }

    /// `zk://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3><path>`.
    pub fn url_text(&self, path: &str) -> String {
        let hosts: Vec<String> = self
            .servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("zk://{}{path}", hosts.join(","))
    }

    /// Kills member `index` (0-based; its data stays), starts it again after `pause` and waits
    /// until it serves in the ensemble again.
    pub fn restart_member_after(&mut self, index: usize, pause: Duration) {
        let server = &mut self.servers[index];
        server.stop();
        std::thread::sleep(pause);
        server.spawn();
        server.wait_for(b"srvr", "Mode:");
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for server in &mut self.servers {
            server.stop();
        }
    }
}

fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let config = dir.join("zoo.cfg");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        &config,
        format!(
            "tickTime=250\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\nminSessionTimeout=500\nmaxSessionTimeout=60000\n\
             4lw.commands.whitelist=ruok,srvr\n{extra}",
            data.display()
        ),
    )
    .unwrap();
    config
}

fn spawn(dir: &Path, config: &Path) -> Child {
    Command::new("java")
        .args(["-Xmx128m", "-cp", ZOOKEEPER_JAR])
        .arg(format!("-Dzookeeper.log.dir={}", dir.display()))
        .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
        .arg(config)
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

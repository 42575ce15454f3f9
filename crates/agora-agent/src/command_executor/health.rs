//! Health checks run next to the task, as Mesos' executors run them: a probe (command, HTTP(S)
//! or TCP on the loopback address) every interval after an initial delay; failures during the
//! grace period are ignored until the first success; after `consecutive_failures` failures in a
//! row the task is killed. The verdicts are pure ([`HealthTracker`]); [`run_probe`] does the I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use agora_api::health::{HealthCheck, Probe};
use agora_api::mesos::CommandInfo;

use crate::spawn::signal_group;
use agora_probe::HttpProber;

/// What the executor does with one probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Nothing to report (a failure within the grace period, or healthy as before).
    Quiet,
    /// Send a TASK_RUNNING update with this health; `kill` once failures reached the limit.
    Report { healthy: bool, kill: bool },
}

/// The health of one task as its probes come in.
#[derive(Debug)]
pub(super) struct HealthTracker {
    started: Instant,
    grace: Duration,
    max_failures: u32,
    consecutive_failures: u32,
    ever_healthy: bool,
}

impl HealthTracker {
    pub fn new(check: &HealthCheck, started: Instant) -> HealthTracker {
        HealthTracker {
            started,
            grace: seconds(check.grace_period_seconds),
            max_failures: check.consecutive_failures,
            consecutive_failures: 0,
            ever_healthy: false,
        }
    }

    pub fn record(&mut self, passed: bool, now: Instant) -> Verdict {
        if passed {
            let changed = !self.ever_healthy || self.consecutive_failures > 0;
            self.ever_healthy = true;
            self.consecutive_failures = 0;
            return if changed {
                Verdict::Report {
                    healthy: true,
                    kill: false,
                }
            } else {
                Verdict::Quiet
            };
        }
        if !self.ever_healthy && now.duration_since(self.started) < self.grace {
            return Verdict::Quiet;
        }
        self.consecutive_failures += 1;
        Verdict::Report {
            healthy: false,
            kill: self.max_failures > 0 && self.consecutive_failures >= self.max_failures,
        }
    }
}

pub(super) fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::ZERO)
}

/// Where a task runs, for probes that need its environment.
pub(super) struct TaskContext {
    pub task_id: String,
    pub directory: PathBuf,
    pub command: Option<CommandInfo>,
}

/// Why a health check failed, as the message of the TASK_RUNNING update that says so.
#[derive(Debug, thiserror::Error)]
pub(super) enum Unhealthy {
    #[error("HTTP health check to {url} failed: {reason}")]
    HttpFailed { url: String, reason: String },
    #[error("HTTP health check to {url} timed out after {timeout:?}")]
    HttpTimedOut { url: String, timeout: Duration },
    #[error("HTTP health check to {url} returned status {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("TCP health check to {address} failed: {source}")]
    TcpFailed {
        address: String,
        source: std::io::Error,
    },
    #[error("TCP health check to {address} timed out after {timeout:?}")]
    TcpTimedOut { address: String, timeout: Duration },
    #[error("Command health check could not start: {0}")]
    CommandStart(#[source] std::io::Error),
    #[error("Command health check failed: {0}")]
    CommandExit(std::process::ExitStatus),
    #[error("Command health check failed: {0}")]
    CommandWait(#[source] std::io::Error),
    #[error("Command health check timed out after {0:?}")]
    CommandTimedOut(Duration),
}

/// Runs one probe with the check's timeout: `Ok` when it passed, otherwise why it failed.
pub(super) async fn run_probe(
    probe: &Probe,
    timeout: Duration,
    http: &HttpProber,
    task: &TaskContext,
) -> Result<(), Unhealthy> {
    let timeout = if timeout.is_zero() {
        Duration::from_secs(20)
    } else {
        timeout
    };
    match probe {
        Probe::Command(command) => run_command(command, timeout, task).await,
        Probe::Http {
            https,
            ipv6,
            port,
            path,
        } => {
            let ip = loopback(*ipv6);
            let scheme = if *https { "https" } else { "http" };
            let url = match ip {
                IpAddr::V6(_) => format!("{scheme}://[{ip}]:{port}{path}"),
                IpAddr::V4(_) => format!("{scheme}://{ip}:{port}{path}"),
            };
            let status =
                match tokio::time::timeout(timeout, http.status(*https, ip, *port, path)).await {
                    Ok(Ok(status)) => status,
                    Ok(Err(error)) => {
                        return Err(Unhealthy::HttpFailed {
                            url,
                            reason: error.to_string(),
                        });
                    }
                    Err(_) => return Err(Unhealthy::HttpTimedOut { url, timeout }),
                };
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(Unhealthy::HttpStatus { url, status })
            }
        }
        Probe::Tcp { ipv6, port } => {
            let host = loopback(*ipv6);
            match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, *port))).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(source)) => Err(Unhealthy::TcpFailed {
                    address: format!("{host}:{port}"),
                    source,
                }),
                Err(_) => Err(Unhealthy::TcpTimedOut {
                    address: format!("{host}:{port}"),
                    timeout,
                }),
            }
        }
    }
}

fn loopback(ipv6: bool) -> IpAddr {
    if ipv6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// A command check runs in the task's sandbox with the task's environment (and the check's own
/// on top); it passes on exit status 0.
async fn run_command(
    command: &CommandInfo,
    timeout: Duration,
    task: &TaskContext,
) -> Result<(), Unhealthy> {
    let mut process = super::task_process(command);
    let environments = [
        task.command.as_ref().and_then(|c| c.environment.as_ref()),
        command.environment.as_ref(),
    ];
    for environment in environments.into_iter().flatten() {
        for variable in &environment.variables {
            process.env(&variable.name, variable.value.clone().unwrap_or_default());
        }
    }
    process
        .env("MESOS_SANDBOX", &task.directory)
        .env("MESOS_TASK_ID", &task.task_id)
        .current_dir(&task.directory)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = process.spawn().map_err(Unhealthy::CommandStart)?;
    let pid = child.id().map(|p| p as i32);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(Unhealthy::CommandExit(status)),
        Ok(Err(error)) => Err(Unhealthy::CommandWait(error)),
        Err(_) => {
            if let Some(pid) = pid {
                signal_group(pid, Signal::SIGKILL);
            }
            Err(Unhealthy::CommandTimedOut(timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tracker(grace: f64, failures: u32) -> (HealthTracker, Instant) {
        let check = HealthCheck::parse(&json!({
            "type": "TCP", "tcp": {"port": 1},
            "grace_period_seconds": grace, "consecutive_failures": failures
        }))
        .unwrap();
        let start = Instant::now();
        (HealthTracker::new(&check, start), start)
    }

    fn context(dir: &tempfile::TempDir) -> TaskContext {
        TaskContext {
            task_id: "t".into(),
            directory: dir.path().to_owned(),
            command: None,
        }
    }

    const HEALTHY: Verdict = Verdict::Report {
        healthy: true,
        kill: false,
    };
    const UNHEALTHY: Verdict = Verdict::Report {
        healthy: false,
        kill: false,
    };
    const KILL: Verdict = Verdict::Report {
        healthy: false,
        kill: true,
    };

    #[test]
    fn failures_in_the_grace_period_are_ignored_until_the_first_success() {
        let (mut t, start) = tracker(10.0, 2);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(t.record(false, at(1)), Verdict::Quiet);
        assert_eq!(t.record(false, at(5)), Verdict::Quiet);
        assert_eq!(t.record(true, at(6)), HEALTHY);
        assert_eq!(t.record(true, at(7)), Verdict::Quiet, "no news, no update");
        // After a first success the grace period no longer shields failures.
        assert_eq!(t.record(false, at(8)), UNHEALTHY);
        assert_eq!(t.record(false, at(9)), KILL);
    }

    #[test]
    fn failures_after_the_grace_period_count_and_a_success_resets_them() {
        let (mut t, start) = tracker(1.0, 3);
        let at = |s: u64| start + Duration::from_secs(s);
        assert_eq!(t.record(false, at(2)), UNHEALTHY);
        assert_eq!(t.record(false, at(3)), UNHEALTHY);
        assert_eq!(t.record(true, at(4)), HEALTHY);
        assert_eq!(t.record(false, at(5)), UNHEALTHY);
        assert_eq!(t.record(false, at(6)), UNHEALTHY);
        assert_eq!(t.record(false, at(7)), KILL);
    }

    #[test]
    fn zero_consecutive_failures_never_kills() {
        let (mut t, start) = tracker(0.0, 0);
        for s in 1..20 {
            assert_eq!(t.record(false, start + Duration::from_secs(s)), UNHEALTHY);
        }
    }

    #[tokio::test]
    async fn probes_pass_and_fail_for_real() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let task = context(&dir);
        let client = HttpProber::new().unwrap();
        let second = Duration::from_secs(1);
        let tcp = Probe::Tcp { ipv6: false, port };
        assert!(run_probe(&tcp, second, &client, &task).await.is_ok());
        drop(listener);
        assert!(run_probe(&tcp, second, &client, &task).await.is_err());
        let command = |value: &str| {
            Probe::Command(CommandInfo {
                value: Some(value.into()),
                ..CommandInfo::default()
            })
        };
        assert!(
            run_probe(
                &command("test -d \"$MESOS_SANDBOX\""),
                second,
                &client,
                &task
            )
            .await
            .is_ok()
        );
        assert!(
            run_probe(&command("exit 3"), second, &client, &task)
                .await
                .unwrap_err()
                .to_string()
                .contains("exit status: 3")
        );
        let slow = command("sleep 5");
        let slow = run_probe(&slow, Duration::from_millis(100), &client, &task).await;
        assert!(slow.unwrap_err().to_string().contains("timed out"));
    }

    #[tokio::test]
    async fn http_probes_pass_on_2xx_and_3xx_only() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let read = socket.read(&mut request).await.unwrap_or(0);
                let path = String::from_utf8_lossy(&request[..read]).to_string();
                let status = if path.starts_with("GET /ok ") {
                    "302 Found"
                } else {
                    "503 Service Unavailable"
                };
                let response =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let task = context(&dir);
        let client = HttpProber::new().unwrap();
        let probe = |path: &str| Probe::Http {
            https: false,
            ipv6: false,
            port,
            path: path.into(),
        };
        let second = Duration::from_secs(2);
        assert!(
            run_probe(&probe("/ok"), second, &client, &task)
                .await
                .is_ok()
        );
        let failed = run_probe(&probe("/bad"), second, &client, &task).await;
        assert!(failed.unwrap_err().to_string().contains("status 503"));
    }
}

//! The agent's end of the launcher: starts it, asks it to start processes, and hands each
//! process's end to whoever holds it.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::protocol::{Action, Assignment, LAUNCHER_ENV, LaunchRequest, Reply, Request};

/// Who waits for a request's answer.
enum Waiter {
    Start(oneshot::Sender<Result<Launched, LaunchError>>),
    Assign(oneshot::Sender<Result<(), LaunchError>>),
}

impl Waiter {
    fn fail(self, error: LaunchError) {
        match self {
            Waiter::Start(reply) => {
                let _ = reply.send(Err(error));
            }
            Waiter::Assign(reply) => {
                let _ = reply.send(Err(error));
            }
        }
    }
}

/// A process the launcher started: its pid, and its raw wait status once it ends (`None` when
/// the launcher went away first and cannot tell).
pub(crate) struct Launched {
    pub pid: i32,
    pub exit: oneshot::Receiver<i32>,
}

/// Why the launcher did not start a process.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// It cannot be asked: the agent then starts executors itself.
    #[error("the launcher is gone")]
    Gone,
    /// It was asked and says why it could not.
    #[error("{0}")]
    Refused(String),
}

type Pending = (Request, Waiter);

/// The agent's end of the launcher.
#[derive(Clone)]
pub(crate) struct Launcher {
    requests: mpsc::UnboundedSender<Pending>,
    next_id: Arc<Mutex<u64>>,
}

impl Launcher {
    /// Starts the launcher: `binary executor` with [`LAUNCHER_ENV`] set and one end of a socket
    /// pair as its stdin. Must run inside the agent's runtime.
    pub(crate) fn spawn(binary: &Path) -> std::io::Result<Launcher> {
        let (agent_end, launcher_end) = UnixStream::pair()?;
        let mut child = tokio::process::Command::new(binary)
            .arg("executor")
            .env(LAUNCHER_ENV, "1")
            .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
                launcher_end,
            )))
            .kill_on_drop(false)
            .spawn()?;
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => tracing::debug!(%status, "executor launcher exited"),
                Err(error) => tracing::warn!(%error, "cannot wait for the executor launcher"),
            }
        });
        agent_end.set_nonblocking(true)?;
        let stream = tokio::net::UnixStream::from_std(agent_end)?;
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(converse(stream, receiver));
        Ok(Launcher {
            requests,
            next_id: Arc::new(Mutex::new(0)),
        })
    }

    /// Starts a process through the launcher.
    pub(crate) async fn launch(&self, launch: LaunchRequest) -> Result<Launched, LaunchError> {
        self.start(Action::Launch(launch)).await
    }

    /// Prepares a built-in executor's container ahead of its task; it waits for
    /// [`Launcher::assign`] (and ends, as does everything the launcher started, if the
    /// launcher goes away first).
    pub(crate) async fn warm(&self, launch: LaunchRequest) -> Result<Launched, LaunchError> {
        self.start(Action::Warm(launch)).await
    }

    /// Gives a warm container its task: it becomes the executor in `directory`.
    pub(crate) async fn assign(&self, assignment: Assignment) -> Result<(), LaunchError> {
        let (reply, answer) = oneshot::channel();
        self.ask(Action::Assign(assignment), Waiter::Assign(reply))?;
        answer.await.map_err(|_| LaunchError::Gone)?
    }

    async fn start(&self, action: Action) -> Result<Launched, LaunchError> {
        let (reply, answer) = oneshot::channel();
        self.ask(action, Waiter::Start(reply))?;
        answer.await.map_err(|_| LaunchError::Gone)?
    }

    fn ask(&self, action: Action, waiter: Waiter) -> Result<(), LaunchError> {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        self.requests
            .send((Request { id, action }, waiter))
            .map_err(|_| LaunchError::Gone)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The agent's side of the conversation: sends requests, matches replies to them, and hands
/// each exit to whoever holds the process.
async fn converse(stream: tokio::net::UnixStream, mut requests: mpsc::UnboundedReceiver<Pending>) {
    let (reader, mut writer) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(reader).lines();
    let mut waiting: HashMap<u64, Waiter> = HashMap::new();
    let mut exits: HashMap<i32, oneshot::Sender<i32>> = HashMap::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((request, reply)) = request else { return };
                let mut line = match serde_json::to_vec(&request) {
                    Ok(line) => line,
                    Err(error) => {
                        reply.fail(LaunchError::Refused(error.to_string()));
                        continue;
                    }
                };
                line.push(b'\n');
                if writer.write_all(&line).await.is_err() {
                    reply.fail(LaunchError::Gone);
                    break;
                }
                waiting.insert(request.id, reply);
            }
            line = lines.next_line() => {
                let Ok(Some(line)) = line else { break };
                match serde_json::from_str::<Reply>(&line) {
                    Ok(Reply::Started { id, pid }) => {
                        let (sender, exit) = oneshot::channel();
                        exits.insert(pid, sender);
                        if let Some(Waiter::Start(reply)) = waiting.remove(&id) {
                            let _ = reply.send(Ok(Launched { pid, exit }));
                        }
                    }
                    Ok(Reply::Assigned { id }) => {
                        if let Some(Waiter::Assign(reply)) = waiting.remove(&id) {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Ok(Reply::Failed { id, error }) => {
                        if let Some(waiter) = waiting.remove(&id) {
                            waiter.fail(LaunchError::Refused(error));
                        }
                    }
                    Ok(Reply::Exited { pid, status }) => {
                        if let Some(exit) = exits.remove(&pid) {
                            let _ = exit.send(status);
                        }
                    }
                    Err(error) => tracing::warn!(%error, "unreadable launcher reply"),
                }
            }
        }
    }
    // Dropping the senders tells every waiter the launcher is gone.
    tracing::warn!("the executor launcher is gone; the agent starts executors itself");
    requests.close();
    while let Ok((_, reply)) = requests.try_recv() {
        reply.fail(LaunchError::Gone);
    }
}

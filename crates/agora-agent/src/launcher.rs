//! The launcher: one helper process per agent that starts executors on the agent's behalf.
//!
//! Starting the built-in executor by `exec` costs every task the loading and relocating of the
//! whole `agora` binary, and every spawn from the agent itself copies, then closes, the agent's
//! file table (thousands of connections with thousands of executors). The launcher is the
//! `agora executor` binary started once, with `AGORA_LAUNCHER` set and a socket as its stdin:
//! it forks the built-in executor without `exec` (so executors still show as `agora executor`
//! in `ps`), and spawns framework executors from its small file table. It reaps its children
//! and reports their raw wait status, as the agent would for its own children.
//!
//! The two speak one JSON object a line. When the agent goes, the launcher sees end-of-file
//! and exits; the executors it started live on, as they do when the agent starts them itself,
//! for the agent to recover. If the launcher goes, the agent starts executors itself.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid, fork, setpgid};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use agora_api::mesos::CommandInfo;

use crate::namespaces::{self, RunAs};
use crate::process;

/// Set in the launcher's environment: `agora executor` then serves as the launcher.
pub const LAUNCHER_ENV: &str = "AGORA_LAUNCHER";

/// What to start: the built-in executor (forked) or a command (spawned), in a sandbox.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LaunchRequest {
    pub builtin: bool,
    pub command: CommandInfo,
    pub environment: BTreeMap<String, String>,
    pub directory: PathBuf,
    /// `cgroup.procs` files the process joins before it runs anything (its container's).
    #[serde(default)]
    pub cgroup_procs: Vec<PathBuf>,
    /// In its own pid and mount namespaces, under a reaping init (see [`crate::namespaces`]).
    #[serde(default)]
    pub namespaces: bool,
    /// The user it runs as, when not the agent's.
    #[serde(default)]
    pub user: Option<RunAs>,
}

/// Moves the calling process into the cgroups whose `cgroup.procs` files are given.
fn join_cgroups(files: &[PathBuf]) -> std::io::Result<()> {
    for file in files {
        std::fs::write(file, b"0")?;
    }
    Ok(())
}

/// Makes `command`'s process join the cgroups (their `cgroup.procs` files) between fork and
/// exec, so nothing it starts can be outside them, and then become `user` (groups, gid, uid:
/// the cgroup files are root's, so the switch comes after). Safe to spawn from a
/// multi-threaded process: the child only makes raw system calls on paths and ids prepared
/// beforehand.
pub(crate) fn prepare_on_spawn(
    command: &mut std::process::Command,
    files: &[PathBuf],
    user: Option<&RunAs>,
) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let paths: Vec<std::ffi::CString> = files
        .iter()
        .map(|f| std::ffi::CString::new(f.as_os_str().as_bytes()).map_err(std::io::Error::other))
        .collect::<Result<_, _>>()?;
    let ids: Option<(Vec<nix::libc::gid_t>, nix::libc::gid_t, nix::libc::uid_t)> =
        user.map(|u| (u.groups.clone(), u.gid, u.uid));
    // SAFETY: between fork and exec the closure calls only open, write, close, setgroups,
    // setgid and setuid (async-signal safe) on data made before the fork, and allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            for path in &paths {
                let fd = nix::libc::open(path.as_ptr(), nix::libc::O_WRONLY | nix::libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let written = nix::libc::write(fd, b"0".as_ptr().cast(), 1);
                nix::libc::close(fd);
                if written != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some((groups, gid, uid)) = &ids
                && (nix::libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || nix::libc::setgid(*gid) != 0
                    || nix::libc::setuid(*uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Request {
    id: u64,
    launch: LaunchRequest,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Started { id: u64, pid: i32 },
    Failed { id: u64, error: String },
    Exited { pid: i32, status: i32 },
}

/// A process the launcher started: its pid, and its raw wait status once it ends (`None` when
/// the launcher went away first and cannot tell).
pub(crate) struct Launched {
    pub pid: i32,
    pub exit: oneshot::Receiver<i32>,
}

/// The error when the launcher cannot be asked: the agent then starts executors itself.
pub(crate) const GONE: &str = "the launcher is gone";

type Pending = (Request, oneshot::Sender<Result<Launched, String>>);

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

    /// Starts a process through the launcher. An error is [`GONE`] when the launcher cannot be
    /// asked, otherwise why it could not start the process.
    pub(crate) async fn launch(&self, launch: LaunchRequest) -> Result<Launched, String> {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((Request { id, launch }, reply))
            .map_err(|_| GONE.to_owned())?;
        answer.await.map_err(|_| GONE.to_owned())?
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
    let mut waiting: HashMap<u64, oneshot::Sender<Result<Launched, String>>> = HashMap::new();
    let mut exits: HashMap<i32, oneshot::Sender<i32>> = HashMap::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some((request, reply)) = request else { return };
                let mut line = match serde_json::to_vec(&request) {
                    Ok(line) => line,
                    Err(error) => {
                        let _ = reply.send(Err(error.to_string()));
                        continue;
                    }
                };
                line.push(b'\n');
                if writer.write_all(&line).await.is_err() {
                    let _ = reply.send(Err(GONE.into()));
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
                        if let Some(reply) = waiting.remove(&id) {
                            let _ = reply.send(Ok(Launched { pid, exit }));
                        }
                    }
                    Ok(Reply::Failed { id, error }) => {
                        if let Some(reply) = waiting.remove(&id) {
                            let _ = reply.send(Err(error));
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
        let _ = reply.send(Err(GONE.into()));
    }
}

/// Runs the launcher (`agora executor` with [`LAUNCHER_ENV`] set) on the socket it has as its
/// stdin, until the agent closes its end. `builtin` runs the built-in executor in a forked
/// child (it sets up its own runtime and logging) and returns its exit code. Call it before
/// any other thread starts: the launcher forks, and must have a single thread when it does.
pub fn serve_launcher(builtin: fn() -> i32) -> i32 {
    let stream = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(error) => {
            eprintln!("agora launcher: no socket on stdin: {error}");
            return 1;
        }
    };
    match serve(stream, builtin) {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("agora launcher: {error}");
            1
        }
    }
}

/// The launcher's loop: starts what it is asked to and reports what ends.
fn serve(mut stream: UnixStream, builtin: fn() -> i32) -> std::io::Result<()> {
    let _ = nix::sys::prctl::set_name(c"agora-launcher");
    let mut children = SigSet::empty();
    children.add(Signal::SIGCHLD);
    children.thread_block()?;
    let signals = SignalFd::with_flags(&children, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
    stream.set_nonblocking(true)?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Containers' inits, by pid: each tells its executor's real end on this pipe.
    let mut inits: HashMap<i32, std::fs::File> = HashMap::new();
    loop {
        let mut fds = [
            PollFd::new(stream.as_fd(), PollFlags::POLLIN),
            PollFd::new(signals.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(error) => return Err(error.into()),
        }
        while let Ok(Some(_)) = signals.read_signal() {}
        reap(&mut stream, &mut inits)?;
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            let reply = match serde_json::from_slice::<Request>(&line) {
                Ok(request) => match start(request.launch, &stream, &signals, &children, builtin) {
                    Ok((pid, status)) => {
                        if let Some(status) = status {
                            inits.insert(pid, status);
                        }
                        Reply::Started {
                            id: request.id,
                            pid,
                        }
                    }
                    Err(error) => Reply::Failed {
                        id: request.id,
                        error,
                    },
                },
                Err(error) => {
                    eprintln!("agora launcher: unreadable request: {error}");
                    continue;
                }
            };
            send(&mut stream, &reply)?;
        }
    }
}

/// Reports every child that has ended, with its raw wait status: for a container's init, that
/// of the executor it ran.
fn reap(stream: &mut UnixStream, inits: &mut HashMap<i32, std::fs::File>) -> std::io::Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { nix::libc::waitpid(-1, &mut status, nix::libc::WNOHANG) };
        if pid <= 0 {
            return Ok(());
        }
        if let Some(mut told) = inits.remove(&pid) {
            let mut raw = [0u8; 4];
            if told.read_exact(&mut raw).is_ok() {
                status = i32::from_ne_bytes(raw);
            }
        }
        send(stream, &Reply::Exited { pid, status })?;
    }
}

fn send(stream: &mut UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut written = 0;
    while written < line.len() {
        match stream.write(&line[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::NONE);
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Starts one process; returns its pid, and for a container's init (when it has namespaces)
/// the pipe on which it tells how its executor ended.
fn start(
    launch: LaunchRequest,
    stream: &UnixStream,
    signals: &SignalFd,
    children: &SigSet,
    builtin: fn() -> i32,
) -> Result<(i32, Option<std::fs::File>), String> {
    let failed = |error: &dyn std::fmt::Display| format!("Failed to launch executor: {error}");
    if !launch.builtin && !launch.namespaces {
        let mut command = process::command(process::Launch {
            command: &launch.command,
            environment: launch.environment,
            directory: &launch.directory,
        })
        .map_err(|e| failed(&e))?;
        command.env_remove(LAUNCHER_ENV);
        prepare_on_spawn(&mut command, &launch.cgroup_procs, launch.user.as_ref())
            .map_err(|e| failed(&e))?;
        // The child must not start with SIGCHLD blocked, as the launcher runs.
        let child = {
            children.thread_unblock().map_err(|e| e.to_string())?;
            let spawned = command.spawn();
            children.thread_block().map_err(|e| e.to_string())?;
            spawned.map_err(|e| failed(&e))?
        };
        return Ok((child.id() as i32, None));
    }
    let (stdout, stderr) = process::sandbox_output(&launch.directory).map_err(|e| failed(&e))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let told = if launch.namespaces {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| failed(&e))?;
        Some((std::fs::File::from(read), write))
    } else {
        None
    };
    let forked = if launch.namespaces {
        namespaces::fork_into_namespaces().map_err(|e| failed(&e))?
    } else {
        // SAFETY: the launcher has a single thread.
        match unsafe { fork() }.map_err(|e| failed(&e))? {
            ForkResult::Parent { child } => Some(child),
            ForkResult::Child => None,
        }
    };
    if let Some(child) = forked {
        return Ok((child.as_raw(), told.map(|(read, _)| read)));
    }
    let tell = told.map(|(read, write)| {
        drop(read);
        write
    });
    let prepared = (|| -> std::io::Result<()> {
        // Into its container before anything else: whatever it starts is inside.
        join_cgroups(&launch.cgroup_procs)?;
        children.thread_unblock()?;
        setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
        nix::unistd::dup2_stdin(&null)?;
        nix::unistd::dup2_stdout(&stdout)?;
        nix::unistd::dup2_stderr(&stderr)?;
        if launch.namespaces {
            // A framework's own executor is a program of the framework's, which may live in
            // the machine's /tmp: only the built-in executors' containers get their own.
            namespaces::private_mounts(&launch.directory, launch.user.as_ref(), launch.builtin)?;
        }
        std::env::set_current_dir(&launch.directory)?;
        Ok(())
    })();
    // The executor holds nothing of the launcher's.
    for fd in [stream.as_raw_fd(), signals.as_raw_fd()] {
        // SAFETY: the process exits without touching these again.
        unsafe { nix::libc::close(fd) };
    }
    drop((null, stdout, stderr));
    // The launcher renamed itself; an executor goes by the name it always had.
    let _ = nix::sys::prctl::set_name(c"agora");
    if let Err(error) = prepared {
        eprintln!("agora executor: cannot prepare the container: {error}");
        std::process::exit(1);
    }
    if launch.namespaces {
        // This process is the container's init; the executor is its child.
        // SAFETY: this child has a single thread.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => namespaces::reap_until(child, tell),
            Ok(ForkResult::Child) => drop(tell),
            Err(error) => {
                eprintln!("agora executor: cannot fork the executor: {error}");
                std::process::exit(1);
            }
        }
    }
    if let Some(user) = &launch.user
        && let Err(error) = user.switch()
    {
        eprintln!(
            "agora executor: cannot run as user '{}': {error}",
            user.name
        );
        std::process::exit(1);
    }
    // SAFETY: this child has a single thread.
    unsafe {
        std::env::remove_var(LAUNCHER_ENV);
        for (key, value) in &launch.environment {
            std::env::set_var(key, value);
        }
    }
    if launch.builtin {
        std::process::exit(builtin());
    }
    // A framework's executor, in the init's process group so the agent's signals reach it.
    use std::os::unix::process::CommandExt;
    let error = process::command_of(&launch.command).exec();
    eprintln!("agora executor: cannot run the executor: {error}");
    std::process::exit(127)
}

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
use crate::spawn;

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
    /// What stays reachable at its own path when it lies under `/tmp` (which the container
    /// replaces): the sandbox, or for a warm container the agent's work dir, where its
    /// sandbox will be moved.
    #[serde(default)]
    pub keep_visible: Option<PathBuf>,
    /// The directory of the agent's executor socket, kept reachable likewise.
    #[serde(default)]
    pub socket_dir: Option<PathBuf>,
}

/// A warm container's task: who it becomes and where its sandbox went.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Assignment {
    /// The warm container's pid, as [`Launcher::warm`] answered it.
    pub pid: i32,
    pub environment: BTreeMap<String, String>,
    pub directory: PathBuf,
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
    action: Action,
}

#[derive(Serialize, Deserialize)]
enum Action {
    Launch(LaunchRequest),
    /// A built-in executor prepared in its container up to the point where it needs its task
    /// (its cgroups joined, namespaces and mounts made), then waiting for [`Action::Assign`].
    Warm(LaunchRequest),
    Assign(Assignment),
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Started { id: u64, pid: i32 },
    Assigned { id: u64 },
    Failed { id: u64, error: String },
    Exited { pid: i32, status: i32 },
}

/// Who waits for a request's answer.
enum Waiter {
    Start(oneshot::Sender<Result<Launched, String>>),
    Assign(oneshot::Sender<Result<(), String>>),
}

impl Waiter {
    fn fail(self, error: String) {
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

/// The error when the launcher cannot be asked: the agent then starts executors itself.
pub(crate) const GONE: &str = "the launcher is gone";

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

    /// Starts a process through the launcher. An error is [`GONE`] when the launcher cannot be
    /// asked, otherwise why it could not start the process.
    pub(crate) async fn launch(&self, launch: LaunchRequest) -> Result<Launched, String> {
        self.start(Action::Launch(launch)).await
    }

    /// Prepares a built-in executor's container ahead of its task; it waits for
    /// [`Launcher::assign`] (and ends, as does everything the launcher started, if the
    /// launcher goes away first).
    pub(crate) async fn warm(&self, launch: LaunchRequest) -> Result<Launched, String> {
        self.start(Action::Warm(launch)).await
    }

    /// Gives a warm container its task: it becomes the executor in `directory`.
    pub(crate) async fn assign(&self, assignment: Assignment) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.ask(Action::Assign(assignment), Waiter::Assign(reply))?;
        answer.await.map_err(|_| GONE.to_owned())?
    }

    async fn start(&self, action: Action) -> Result<Launched, String> {
        let (reply, answer) = oneshot::channel();
        self.ask(action, Waiter::Start(reply))?;
        answer.await.map_err(|_| GONE.to_owned())?
    }

    fn ask(&self, action: Action, waiter: Waiter) -> Result<(), String> {
        let id = {
            let mut next = lock(&self.next_id);
            *next += 1;
            *next
        };
        self.requests
            .send((Request { id, action }, waiter))
            .map_err(|_| GONE.to_owned())
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
                        reply.fail(error.to_string());
                        continue;
                    }
                };
                line.push(b'\n');
                if writer.write_all(&line).await.is_err() {
                    reply.fail(GONE.into());
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
                            waiter.fail(error);
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
        reply.fail(GONE.into());
    }
}

/// The built-in executor, in two steps: getting ready (logging, its runtime; no thread may be
/// started) and then, once its environment and user are set, running to its exit code.
pub type Builtin = fn() -> Box<dyn FnOnce() -> i32>;

/// Runs the launcher (`agora executor` with [`LAUNCHER_ENV`] set) on the socket it has as its
/// stdin, until the agent closes its end. `builtin` runs the built-in executor in a forked
/// child. Call it before any other thread starts: the launcher forks, and must have a single
/// thread when it does.
pub fn serve_launcher(builtin: Builtin) -> i32 {
    let stream = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => UnixStream::from(fd),
        Err(error) => {
            eprintln!("agora launcher: no socket on stdin: {error}");
            return 1;
        }
    };
    match serve(stream, builtin) {
        Ok(()) => 0,
        // The agent went away while the launcher told it something: the same end as its
        // closing the socket, nothing to report.
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            0
        }
        Err(error) => {
            eprintln!("agora launcher: {error}");
            1
        }
    }
}

/// The launcher's loop: starts what it is asked to and reports what ends.
fn serve(mut stream: UnixStream, builtin: Builtin) -> std::io::Result<()> {
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
    // Warm containers, by pid: each waits for its assignment on this pipe.
    let mut warm: HashMap<i32, std::fs::File> = HashMap::new();
    // Warm containers still being prepared: the request to answer once the container says it
    // is ready on the first pipe; the second is its assignment pipe.
    let mut preparing: HashMap<i32, (u64, std::fs::File, std::fs::File)> = HashMap::new();
    loop {
        let ready: Vec<(i32, bool)> = {
            let mut fds = vec![
                PollFd::new(stream.as_fd(), PollFlags::POLLIN),
                PollFd::new(signals.as_fd(), PollFlags::POLLIN),
            ];
            let pids: Vec<i32> = preparing.keys().copied().collect();
            fds.extend(
                pids.iter()
                    .filter_map(|pid| preparing.get(pid))
                    .map(|(_, ready, _)| PollFd::new(ready.as_fd(), PollFlags::POLLIN)),
            );
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(error) => return Err(error.into()),
            }
            pids.iter()
                .zip(&fds[2..])
                .filter_map(|(pid, fd)| {
                    let events = fd.revents().unwrap_or(PollFlags::empty());
                    (!events.is_empty()).then_some((*pid, events.contains(PollFlags::POLLIN)))
                })
                .collect()
        };
        for (pid, _) in ready {
            let Some((id, mut ready, assignment)) = preparing.remove(&pid) else {
                continue;
            };
            let mut byte = [0u8; 1];
            let reply = if matches!(ready.read(&mut byte), Ok(1)) {
                warm.insert(pid, assignment);
                Reply::Started { id, pid }
            } else {
                Reply::Failed {
                    id,
                    error: "the warm container could not be prepared (its stderr says why)".into(),
                }
            };
            send(&mut stream, &reply)?;
        }
        while let Ok(Some(_)) = signals.read_signal() {}
        reap(&mut stream, &mut inits, &mut warm, &mut preparing)?;
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
            let request = match serde_json::from_slice::<Request>(&line) {
                Ok(request) => request,
                Err(error) => {
                    eprintln!("agora launcher: unreadable request: {error}");
                    continue;
                }
            };
            let id = request.id;
            let (launch, warming) = match request.action {
                Action::Launch(launch) => (launch, false),
                Action::Warm(launch) => (launch, true),
                Action::Assign(assignment) => {
                    send(&mut stream, &assign(&mut warm, id, &assignment))?;
                    continue;
                }
            };
            // What a forked child must not keep: the launcher's own ends of everything.
            let mut theirs: Vec<i32> = vec![stream.as_raw_fd(), signals.as_raw_fd()];
            theirs.extend(inits.values().chain(warm.values()).map(AsRawFd::as_raw_fd));
            for (_, ready, assignment) in preparing.values() {
                theirs.extend([ready.as_raw_fd(), assignment.as_raw_fd()]);
            }
            let started = Children {
                mask: &children,
                close: &theirs,
                builtin,
            };
            let reply = match start(launch, warming, &started) {
                Ok(started) => {
                    if let Some(status) = started.told {
                        inits.insert(started.pid, status);
                    }
                    if let Some((ready, assignment)) = started.warm {
                        // Answered once it is ready: until then its sandbox must stay put.
                        preparing.insert(started.pid, (id, ready, assignment));
                        continue;
                    }
                    Reply::Started {
                        id,
                        pid: started.pid,
                    }
                }
                Err(error) => Reply::Failed { id, error },
            };
            send(&mut stream, &reply)?;
        }
    }
}

/// Hands a warm container its assignment: one JSON line on its pipe, which then closes.
fn assign(warm: &mut HashMap<i32, std::fs::File>, id: u64, assignment: &Assignment) -> Reply {
    let Some(mut pipe) = warm.remove(&assignment.pid) else {
        return Reply::Failed {
            id,
            error: format!("no warm container {} (it ended)", assignment.pid),
        };
    };
    let written = serde_json::to_vec(assignment)
        .map_err(std::io::Error::other)
        .and_then(|mut line| {
            line.push(b'\n');
            pipe.write_all(&line)
        });
    match written {
        Ok(()) => Reply::Assigned { id },
        Err(error) => Reply::Failed {
            id,
            error: format!("the warm container {} is gone: {error}", assignment.pid),
        },
    }
}

/// Reports every child that has ended, with its raw wait status: for a container's init, that
/// of the executor it ran.
fn reap(
    stream: &mut UnixStream,
    inits: &mut HashMap<i32, std::fs::File>,
    warm: &mut HashMap<i32, std::fs::File>,
    preparing: &mut HashMap<i32, (u64, std::fs::File, std::fs::File)>,
) -> std::io::Result<()> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { nix::libc::waitpid(-1, &mut status, nix::libc::WNOHANG) };
        if pid <= 0 {
            return Ok(());
        }
        warm.remove(&pid);
        if let Some((id, _, _)) = preparing.remove(&pid) {
            // Ended before it was answered (even if it said it was ready): never handed out.
            send(
                stream,
                &Reply::Failed {
                    id,
                    error: "the warm container ended while it was prepared (its stderr says why)"
                        .into(),
                },
            )?;
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

/// What the launcher's children are started with.
struct Children<'a> {
    /// SIGCHLD, blocked in the launcher and unblocked in every child.
    mask: &'a SigSet,
    /// The launcher's descriptors, closed in a forked child.
    close: &'a [i32],
    builtin: Builtin,
}

/// A started process: its pid; for a container's init, the pipe on which it tells how its
/// executor ended; for a warm container, the pipe on which it says it is ready and the one
/// its assignment goes down.
struct Started {
    pid: i32,
    told: Option<std::fs::File>,
    warm: Option<(std::fs::File, std::fs::File)>,
}

/// Starts one process, or with `warming` prepares a built-in executor that waits for its
/// assignment.
fn start(launch: LaunchRequest, warming: bool, with: &Children) -> Result<Started, String> {
    let failed = |error: &dyn std::fmt::Display| format!("Failed to launch executor: {error}");
    if !launch.builtin && !launch.namespaces {
        let mut command = spawn::command(spawn::Launch {
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
            with.mask.thread_unblock().map_err(|e| e.to_string())?;
            let spawned = command.spawn();
            with.mask.thread_block().map_err(|e| e.to_string())?;
            spawned.map_err(|e| failed(&e))?
        };
        return Ok(Started {
            pid: child.id() as i32,
            told: None,
            warm: None,
        });
    }
    let (stdout, stderr) = spawn::sandbox_output(&launch.directory).map_err(|e| failed(&e))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
    let pipe = || -> Result<(std::fs::File, std::fs::File), String> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| failed(&e))?;
        Ok((std::fs::File::from(read), std::fs::File::from(write)))
    };
    let told = if launch.namespaces {
        let (read, write) = pipe()?;
        // The launcher only reads what an init told once it has reaped it.
        nix::fcntl::fcntl(
            &read,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .map_err(|e| failed(&e))?;
        Some((read, write))
    } else {
        None
    };
    // (ready: child → launcher, assignment: launcher → child)
    let waiting = if warming {
        Some((pipe()?, pipe()?))
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
        return Ok(Started {
            pid: child.as_raw(),
            told: told.map(|(read, _)| read),
            warm: waiting.map(|((ready, _), (_, assignment))| (ready, assignment)),
        });
    }
    let tell = told.map(|(read, write)| {
        drop(read);
        write
    });
    let waiting = waiting.map(|((ready_read, ready), (assignment, assignment_write))| {
        drop((ready_read, assignment_write));
        (ready, assignment)
    });
    let mut visible = vec![launch.keep_visible.as_deref().unwrap_or(&launch.directory)];
    visible.extend(launch.socket_dir.as_deref());
    let prepared = (|| -> std::io::Result<()> {
        if warming {
            // A warm container makes its cgroups itself: off the agent's threads, which
            // serve tasks starting meanwhile.
            for file in &launch.cgroup_procs {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
            }
        }
        // Into its container before anything else: whatever it starts is inside.
        join_cgroups(&launch.cgroup_procs)?;
        with.mask.thread_unblock()?;
        setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
        nix::unistd::dup2_stdin(&null)?;
        nix::unistd::dup2_stdout(&stdout)?;
        nix::unistd::dup2_stderr(&stderr)?;
        if launch.namespaces {
            // A framework's own executor is a program of the framework's, which may live in
            // the machine's /tmp: only the built-in executors' containers get their own.
            namespaces::private_mounts(
                &launch.directory,
                launch.user.as_ref(),
                launch.builtin,
                &visible,
            )?;
        }
        std::env::set_current_dir(&launch.directory)?;
        Ok(())
    })();
    // The executor holds nothing of the launcher's.
    for fd in with.close {
        // SAFETY: the process exits without touching these again.
        unsafe { nix::libc::close(*fd) };
    }
    drop((null, stdout, stderr));
    // The launcher renamed itself; an executor goes by the name it always had.
    let _ = nix::sys::prctl::set_name(c"agora");
    if let Err(error) = prepared {
        eprintln!("agora executor: cannot prepare the container: {error}");
        std::process::exit(1);
    }
    let mut waiting = waiting;
    if launch.namespaces {
        // This process is the container's init; the executor is its child.
        // SAFETY: this child has a single thread.
        match unsafe { fork() } {
            Ok(ForkResult::Parent { child }) => {
                drop(waiting.take());
                namespaces::reap_until(child, tell.map(std::os::fd::OwnedFd::from))
            }
            Ok(ForkResult::Child) => drop(tell),
            Err(error) => {
                eprintln!("agora executor: cannot fork the executor: {error}");
                std::process::exit(1);
            }
        }
    }
    // A warm executor gets ready before it waits: what is left after its assignment is its
    // task's own work.
    let ready_to_run = match (&waiting, launch.builtin) {
        (Some(_), true) => Some((with.builtin)()),
        _ => None,
    };
    let (environment, user) = match waiting {
        None => (launch.environment, launch.user),
        Some((mut ready, pipe)) => {
            // Warm: say so (the agent may move the sandbox from now on), then wait for the
            // task. The launcher going away ends the wait, and this container with it.
            if ready.write_all(b"r").is_err() {
                std::process::exit(1);
            }
            drop(ready);
            let Some(assignment) = read_assignment(pipe) else {
                std::process::exit(0);
            };
            if let Err(error) = std::env::set_current_dir(&assignment.directory) {
                eprintln!(
                    "agora executor: cannot enter the sandbox {}: {error}",
                    assignment.directory.display()
                );
                std::process::exit(1);
            }
            (assignment.environment, assignment.user)
        }
    };
    if let Some(user) = &user
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
        for (key, value) in &environment {
            std::env::set_var(key, value);
        }
    }
    if launch.builtin {
        let run = ready_to_run.unwrap_or_else(|| (with.builtin)());
        std::process::exit(run());
    }
    // A framework's executor, in the init's process group so the agent's signals reach it.
    use std::os::unix::process::CommandExt;
    let error = spawn::command_of(&launch.command).exec();
    eprintln!("agora executor: cannot run the executor: {error}");
    std::process::exit(127)
}

/// A warm container's assignment: one JSON line; `None` at end-of-file (the launcher went).
fn read_assignment(mut pipe: std::fs::File) -> Option<Assignment> {
    let mut line = Vec::new();
    let mut byte = [0u8; 4096];
    loop {
        match pipe.read(&mut byte) {
            Ok(0) => return None,
            Ok(read) => {
                line.extend_from_slice(&byte[..read]);
                if line.ends_with(b"\n") {
                    break;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    match serde_json::from_slice(&line) {
        Ok(assignment) => Some(assignment),
        Err(error) => {
            eprintln!("agora executor: unreadable assignment: {error}");
            None
        }
    }
}

//! The launcher process itself, and what runs between fork and exec: every `unsafe` call
//! the agent makes to start processes is here, each with its SAFETY note.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::{ForkResult, Pid, fork, setpgid};

use super::protocol::{Action, Assignment, LAUNCHER_ENV, LaunchRequest, Reply, Request};
use crate::namespaces::{self, RunAs};
use crate::spawn;

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

//! Namespaces and users for a container: a pid namespace whose init is a small reaper (so
//! when the executor ends, the kernel kills everything left in the container, and orphans
//! never pile up as zombies), a private mount namespace with the sandbox's `tmp` as `/tmp`
//! and its own `/proc`, and the switch to the task's user.
//!
//! Everything here runs in the launcher, a single-threaded process, between fork and exec.

use crate::unavailable::Unavailable;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::unistd::{Gid, Pid, Uid};
use serde::{Deserialize, Serialize};

/// Whom a container runs as, resolved by the agent from the task's `user`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary one included.
    pub groups: Vec<u32>,
}

/// Why a task's user cannot be run as (Mesos' words: "Failed to get user information for").
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnknownUser {
    #[error("Failed to get user information for '{name}': {source}")]
    Lookup {
        name: String,
        source: nix::errno::Errno,
    },
    #[error("Failed to get user information for '{0}': no such user")]
    NoSuchUser(String),
    #[error("Failed to get user information for '{0}': the name holds a NUL byte")]
    BadName(String),
    #[error("Failed to look the user up: {0}")]
    Interrupted(#[from] tokio::task::JoinError),
}

impl RunAs {
    /// Looks `name` up in the user database.
    pub(crate) fn lookup(name: &str) -> Result<RunAs, UnknownUser> {
        let user = nix::unistd::User::from_name(name)
            .map_err(|source| UnknownUser::Lookup {
                name: name.to_owned(),
                source,
            })?
            .ok_or_else(|| UnknownUser::NoSuchUser(name.to_owned()))?;
        let c_name = CString::new(name).map_err(|_| UnknownUser::BadName(name.to_owned()))?;
        let groups = nix::unistd::getgrouplist(&c_name, user.gid)
            .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
            .unwrap_or_else(|_| vec![user.gid.as_raw()]);
        Ok(RunAs {
            name: name.to_owned(),
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups,
        })
    }

    /// The user to switch to for `name`, looked up off the async workers (the user database
    /// may be remote): `None` for no name, or for the agent's own user.
    pub(crate) async fn switch_to(name: Option<&str>) -> Result<Option<RunAs>, UnknownUser> {
        let Some(name) = name.map(str::to_owned) else {
            return Ok(None);
        };
        let user = tokio::task::spawn_blocking(move || RunAs::lookup(&name)).await??;
        Ok((!user.is_current()).then_some(user))
    }

    /// Whether running as this user needs a switch at all (it is the agent's own).
    pub(crate) fn is_current(&self) -> bool {
        Uid::effective().as_raw() == self.uid && Gid::effective().as_raw() == self.gid
    }

    /// Becomes this user: groups, then group, then user (the order that keeps the rights to
    /// make the next change).
    pub(crate) fn switch(&self) -> std::io::Result<()> {
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&groups)?;
        nix::unistd::setgid(Gid::from_raw(self.gid))?;
        nix::unistd::setuid(Uid::from_raw(self.uid))?;
        Ok(())
    }

    /// Gives the user the sandbox (Mesos does the same), so the task can write there.
    pub(crate) fn own(&self, directory: &Path) -> std::io::Result<()> {
        let owner = (Some(Uid::from_raw(self.uid)), Some(Gid::from_raw(self.gid)));
        nix::unistd::chown(directory, owner.0, owner.1)?;
        for name in ["stdout", "stderr"] {
            // Never through a link another process of the user's may have put there.
            match std::os::unix::fs::lchown(directory.join(name), Some(self.uid), Some(self.gid)) {
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                done => done?,
            }
        }
        Ok(())
    }

    /// Gives this user the directory `path` (and sets its `mode`), through a descriptor
    /// opened without following a link: whatever else may write where it lies, root's chown
    /// and chmod reach that directory and nothing else.
    pub(crate) fn own_dir(&self, path: &Path, mode: Option<u32>) -> std::io::Result<()> {
        own_dir_as(path, Some(self), mode)
    }
}

/// Sets a directory's `mode` and owner through a descriptor opened without following a link
/// (see [`RunAs::own_dir`]).
fn own_dir_as(path: &Path, owner: Option<&RunAs>, mode: Option<u32>) -> std::io::Result<()> {
    use nix::fcntl::OFlag;
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    if let Some(mode) = mode {
        nix::sys::stat::fchmod(&fd, nix::sys::stat::Mode::from_bits_truncate(mode))?;
    }
    if let Some(owner) = owner {
        nix::unistd::fchown(
            &fd,
            Some(Uid::from_raw(owner.uid)),
            Some(Gid::from_raw(owner.gid)),
        )?;
    }
    Ok(())
}

/// Whether this process may make pid and mount namespaces (it runs as root and the kernel has
/// them). Checked once by the agent, which says so at start.
pub(crate) fn available() -> Result<(), Unavailable> {
    if !Uid::effective().is_root() {
        return Err(Unavailable::NotRoot);
    }
    for kind in ["pid", "mnt"] {
        if !Path::new("/proc/self/ns").join(kind).exists() {
            return Err(Unavailable::NoNamespace(kind));
        }
    }
    // Root in a container without the rights (no CAP_SYS_ADMIN, seccomp) is refused only
    // when it tries: try once, as a task would need (util-linux's unshare; without it, the
    // first launch tells).
    match std::process::Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "--mount-proc", "true"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
    {
        Ok(output) if !output.status.success() => Err(Unavailable::NamespacesRefused(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )),
        _ => Ok(()),
    }
}

/// Forks into a new pid and mount namespace: like `fork`, the child (pid 1 in its namespace)
/// gets `Ok(None)` and the parent the child's pid.
pub(crate) fn fork_into_namespaces() -> std::io::Result<Option<Pid>> {
    let flags = nix::libc::CLONE_NEWPID | nix::libc::CLONE_NEWNS | nix::libc::SIGCHLD;
    // SAFETY: clone without a new stack behaves as fork (the child continues on a copy of the
    // caller's stack); the launcher is single-threaded, so no lock can be held by another
    // thread in the child.
    let pid = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_clone,
            nix::libc::c_long::from(flags),
            0 as nix::libc::c_long,
            0 as nix::libc::c_long,
            0 as nix::libc::c_long,
            0 as nix::libc::c_long,
        )
    };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// Makes the container's mounts private to it: nothing mounted here shows outside; with
/// `private_tmp`, `/tmp` is the sandbox's `tmp` (what `visible` names — the sandbox, the
/// agent's socket directory — stays reachable at its own path when it lies under `/tmp`);
/// `/proc` shows the container's processes only. Call as pid 1 of the new namespaces.
pub(crate) fn private_mounts(
    sandbox: &Path,
    owner: Option<&RunAs>,
    private_tmp: bool,
    visible: &[&Path],
) -> std::io::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    if private_tmp {
        sandbox_tmp(sandbox, owner, visible)?;
    }
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    Ok(())
}

/// Binds the sandbox's `tmp` over `/tmp`, and each of the `visible` directories back at its
/// own path when it lies under `/tmp` (never `/tmp` itself, which would undo the first).
fn sandbox_tmp(sandbox: &Path, owner: Option<&RunAs>, visible: &[&Path]) -> std::io::Result<()> {
    let tmp = sandbox.join("tmp");
    // A fetched archive may have left `tmp` as a link: the agent's chmod and chown below must
    // not reach through it.
    if std::fs::symlink_metadata(&tmp).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    own_dir_as(&tmp, owner, Some(0o1777))?;
    // What lies under /tmp would vanish under the new /tmp: hold it open, and bind it back.
    let mut kept: Vec<(OwnedFd, PathBuf)> = Vec::new();
    for dir in visible {
        let Ok(relative) = dir.strip_prefix("/tmp") else {
            continue;
        };
        // `/tmp` itself, or inside another one bound back already (a warm container's work
        // dir holds the agent's socket directory): nothing to bind.
        let bound_back = |other: &Path| {
            other
                .strip_prefix("/tmp")
                .is_ok_and(|inside| !inside.as_os_str().is_empty())
        };
        let inside_another = visible
            .iter()
            .any(|other| other != dir && bound_back(other) && dir.starts_with(other));
        if relative.as_os_str().is_empty() || inside_another {
            continue;
        }
        let opened = nix::fcntl::open(
            *dir,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        );
        match opened {
            Ok(fd) => kept.push((fd, relative.to_path_buf())),
            // Gone (an agent socket's directory removed by hand): nothing to keep.
            Err(nix::errno::Errno::ENOENT) => {}
            Err(error) => return Err(error.into()),
        }
    }
    bind(&tmp, Path::new("/tmp"))?;
    for (fd, relative) in kept {
        let target = Path::new("/tmp").join(relative);
        std::fs::create_dir_all(&target)?;
        let source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        bind(&source, &target)?;
    }
    Ok(())
}

fn bind(source: &Path, target: &Path) -> std::io::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )?;
    Ok(())
}

/// The container's init: reaps every process that ends in the container, and when `main`
/// (the executor) ends, writes its raw wait status on `tell` (for the launcher: a pid 1 cannot
/// die of a signal it sends itself, so its own exit could not say) and exits, 128 + the
/// signal if one killed it. Leaving makes the kernel kill whatever is left in the container.
pub(crate) fn reap_until(main: Pid, tell: Option<OwnedFd>) -> ! {
    let _ = nix::sys::prctl::set_name(c"agora-init");
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { nix::libc::waitpid(-1, &mut status, 0) };
        if pid == main.as_raw() {
            if let Some(tell) = &tell {
                let _ = nix::unistd::write(tell, &status.to_ne_bytes());
            }
            let code = if nix::libc::WIFEXITED(status) {
                nix::libc::WEXITSTATUS(status)
            } else if nix::libc::WIFSIGNALED(status) {
                128 + nix::libc::WTERMSIG(status)
            } else {
                1
            };
            // SAFETY: leaving at once, as a forked child must.
            unsafe { nix::libc::_exit(code) };
        }
        if pid < 0 && std::io::Error::last_os_error().raw_os_error() != Some(nix::libc::EINTR) {
            // SAFETY: as above.
            unsafe { nix::libc::_exit(1) };
        }
    }
}

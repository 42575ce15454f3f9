//! Opening what lies in a sandbox, as root, without ever leaving it. A task owns its sandbox:
//! it can plant symbolic links and swap files between a check and an open. So nothing here
//! checks a path and then opens it: every open starts from a descriptor of the sandbox and the
//! kernel resolves the rest beneath it (`openat2` with `RESOLVE_BENEATH`: a link may point
//! within the sandbox, never out of it, and `..` cannot climb above it). The sandbox itself is
//! reached from the work dir without following any link (its directories are the agent's).

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

/// A sandbox (or a directory in one), opened as a directory descriptor.
pub(crate) struct Sandbox {
    root: OwnedFd,
}

impl Sandbox {
    /// Opens `directory`, which lies under `work_dir`, following no link below the work dir.
    pub(crate) fn open(work_dir: &Path, directory: &Path) -> io::Result<Sandbox> {
        let relative = directory.strip_prefix(work_dir).map_err(|_| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{} is not in the work dir", directory.display()),
            )
        })?;
        let work = File::open(work_dir)?;
        let root = openat2(
            &work,
            &dot_if_empty(relative),
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS),
        )?;
        Ok(Sandbox { root })
    }

    /// A regular file at `relative` (never a FIFO or device a task put there), for reading.
    pub(crate) fn file(&self, relative: &Path) -> io::Result<File> {
        let fd = self.open_beneath(
            relative,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        )?;
        let file = File::from(fd);
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// The directory or file at `relative`, opened for reading what it is (a file) or lists
    /// (a directory).
    pub(crate) fn entry(&self, relative: &Path) -> io::Result<OwnedFd> {
        self.open_beneath(
            relative,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        )
    }

    /// The directory at `relative` (made, with its parents, when missing) as the path it
    /// really is: a link a task planted resolves within the sandbox or is refused. For handing
    /// a sandbox directory to another process (Docker's bind mounts), which would otherwise
    /// follow the link wherever it points.
    pub(crate) fn directory(&self, relative: &Path) -> io::Result<PathBuf> {
        let relative = relative_inside(relative)?;
        let mut built = PathBuf::new();
        for part in relative.components() {
            built.push(part);
            let parent = self.open_beneath(
                built.parent().unwrap_or(Path::new("")),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            )?;
            match nix::sys::stat::mkdirat(
                &parent,
                part.as_os_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let opened = self.open_beneath(
            &relative,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        )?;
        std::fs::read_link(format!("/proc/self/fd/{}", opened.as_raw_fd()))
    }

    fn open_beneath(&self, relative: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let relative = relative_inside(relative)?;
        Ok(openat2(
            &self.root,
            &dot_if_empty(&relative),
            OpenHow::new()
                .flags(flags)
                .mode(Mode::empty())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS),
        )?)
    }
}

fn dot_if_empty(path: &Path) -> PathBuf {
    if path.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        path.to_path_buf()
    }
}

/// A path relative to a sandbox, with no `..` and no root (the kernel refuses those too; this
/// gives a clear error first).
pub(crate) fn relative_inside(path: &Path) -> io::Result<PathBuf> {
    let mut relative = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => relative.push(part),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) | Component::ParentDir => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("'{}' leaves the sandbox", path.display()),
                ));
            }
        }
    }
    Ok(relative)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn nothing_outside_the_sandbox_can_be_opened() {
        let work = tempfile::tempdir().unwrap();
        let sandbox = work.path().join("slaves/a/runs/c");
        std::fs::create_dir_all(sandbox.join("sub")).unwrap();
        std::fs::write(sandbox.join("stdout"), "out").unwrap();
        std::fs::write(work.path().join("secret"), "secret").unwrap();
        symlink("/etc/passwd", sandbox.join("absolute")).unwrap();
        symlink("../../../../secret", sandbox.join("climbing")).unwrap();
        symlink("stdout", sandbox.join("inside")).unwrap();
        nix::unistd::mkfifo(&sandbox.join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();

        let opened = Sandbox::open(work.path(), &sandbox).unwrap();
        let mut text = String::new();
        opened
            .file(Path::new("stdout"))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "out");
        assert!(opened.file(Path::new("inside")).is_ok(), "a link within");
        for escape in [
            "absolute",
            "climbing",
            "../../../../secret",
            "/etc/passwd",
            "sub/../../x",
        ] {
            assert!(opened.file(Path::new(escape)).is_err(), "{escape}");
        }
        assert!(
            opened.file(Path::new("fifo")).is_err(),
            "a FIFO would block the reader"
        );
        assert!(opened.entry(Path::new("sub")).is_ok());

        // Directories for other processes: made when missing, links resolved within.
        symlink("/", sandbox.join("root")).unwrap();
        symlink("sub", sandbox.join("sublink")).unwrap();
        let real = std::fs::canonicalize(&sandbox).unwrap();
        assert_eq!(
            opened.directory(Path::new("sub")).unwrap(),
            real.join("sub")
        );
        assert_eq!(
            opened.directory(Path::new("sublink")).unwrap(),
            real.join("sub")
        );
        assert_eq!(
            opened.directory(Path::new("new/deeper")).unwrap(),
            real.join("new/deeper")
        );
        assert!(sandbox.join("new/deeper").is_dir());
        for escape in ["root", "root/etc", "absolute", "../x", "stdout"] {
            assert!(opened.directory(Path::new(escape)).is_err(), "{escape}");
        }

        // The sandbox itself is reached through no link.
        let elsewhere = work.path().join("slaves/a/runs/linked");
        symlink(&sandbox, &elsewhere).unwrap();
        assert!(Sandbox::open(work.path(), &elsewhere).is_err());
        assert!(Sandbox::open(work.path(), Path::new("/etc")).is_err());
    }
}

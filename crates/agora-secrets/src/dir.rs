//! Reading secrets from their directory. A name comes from an app, a job or a framework, so
//! every file is opened beneath the directory (`openat2(RESOLVE_BENEATH)`: a link may point
//! within it, as Kubernetes' mounted secrets do, never out of it), and only a regular file that
//! nobody but its owner can read is a secret.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::Mode;

use crate::{SecretError, validate_name};

/// The largest secret (DC/OS' limit): an environment variable, not a file store.
pub const MAX_SECRET_BYTES: u64 = 1 << 20;

/// An open secrets directory.
#[derive(Debug)]
pub struct SecretsDir {
    root: OwnedFd,
}

impl SecretsDir {
    /// Opens `path`, which must be a directory. One that others may enter gets a warning: the
    /// files' own modes still keep them out.
    pub fn open(path: &Path) -> Result<SecretsDir, SecretError> {
        let directory = |source| SecretError::Directory {
            path: path.display().to_string(),
            source,
        };
        let file = File::open(path).map_err(directory)?;
        let metadata = file.metadata().map_err(directory)?;
        if !metadata.is_dir() {
            return Err(directory(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            )));
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:04o}", metadata.permissions().mode() & 0o7777),
                "the secrets directory is open to others: make it 0700"
            );
        }
        Ok(SecretsDir {
            root: OwnedFd::from(file),
        })
    }

    /// Whether the secret `name` is there for the reading: a regular file beneath the
    /// directory, its owner's alone, not too large (what a master checks when an app or job
    /// names it; its value is not read — whether it is text, the agent finds when it reads it).
    pub fn check(&self, name: &str) -> Result<(), SecretError> {
        self.open_secret(name).map(drop)
    }

    /// The secret's value.
    pub fn read(&self, name: &str) -> Result<String, SecretError> {
        let (file, name) = self.open_secret(name)?;
        let mut bytes = Vec::new();
        file.take(MAX_SECRET_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| SecretError::Io {
                name: name.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge(name));
        }
        match String::from_utf8(bytes) {
            Ok(text) if !text.contains('\0') => Ok(text),
            _ => Err(SecretError::NotText(name)),
        }
    }

    /// The secret's file, opened beneath the directory and checked, and its valid name.
    fn open_secret(&self, name: &str) -> Result<(File, String), SecretError> {
        let name = validate_name(name)?;
        let io = |source: std::io::Error| SecretError::Io {
            name: name.clone(),
            source,
        };
        let fd = openat2(
            &self.root,
            name.as_str(),
            OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
                .mode(Mode::empty())
                .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS),
        )
        .map_err(|errno| match errno {
            nix::errno::Errno::ENOENT | nix::errno::Errno::ENOTDIR => {
                SecretError::Missing(name.clone())
            }
            // A link out of the directory.
            nix::errno::Errno::EXDEV => SecretError::BadName(name.clone()),
            other => io(other.into()),
        })?;
        let file = File::from(fd);
        let metadata = file.metadata().map_err(io)?;
        if !metadata.is_file() {
            return Err(SecretError::NotAFile(name));
        }
        let mode = metadata.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(SecretError::Exposed {
                name,
                mode: mode & 0o7777,
            });
        }
        if metadata.len() > MAX_SECRET_BYTES {
            return Err(SecretError::TooLarge(name));
        }
        Ok((file, name))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn write(path: &Path, text: &[u8], mode: u32) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn only_owner_readable_files_beneath_the_directory_are_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("secrets");
        write(&root.join("db"), b"s3cret", 0o600);
        write(&root.join("team-a/token"), b"tok\n", 0o400);
        write(&root.join("open"), b"x", 0o644);
        write(&dir.path().join("outside"), b"x", 0o600);
        write(&root.join("binary"), b"a\0b", 0o600);
        write(
            &root.join("big"),
            &vec![b'x'; MAX_SECRET_BYTES as usize + 1],
            0o600,
        );
        symlink("../outside", root.join("escape")).unwrap();
        symlink("/etc/shadow", root.join("absolute")).unwrap();
        symlink("team-a/token", root.join("alias")).unwrap();
        std::fs::create_dir_all(root.join("subdir")).unwrap();

        let secrets = SecretsDir::open(&root).unwrap();
        assert_eq!(secrets.read("db").unwrap(), "s3cret");
        assert_eq!(secrets.read("/team-a/token").unwrap(), "tok\n");
        assert_eq!(secrets.read("alias").unwrap(), "tok\n", "a link within");
        let error = |name: &str| secrets.read(name).unwrap_err();
        assert!(matches!(error("nothing"), SecretError::Missing(_)));
        assert!(matches!(error("db/x"), SecretError::Missing(_)));
        assert!(matches!(
            error("open"),
            SecretError::Exposed { mode: 0o644, .. }
        ));
        assert!(matches!(error("binary"), SecretError::NotText(_)));
        assert!(matches!(error("big"), SecretError::TooLarge(_)));
        assert!(matches!(error("subdir"), SecretError::NotAFile(_)));
        assert!(matches!(error("../outside"), SecretError::BadName(_)));
        assert!(matches!(error("escape"), SecretError::BadName(_)));
        assert!(matches!(error("absolute"), SecretError::BadName(_)));
        assert!(secrets.check("db").is_ok());
        assert!(SecretsDir::open(&root.join("db")).is_err());
        assert!(SecretsDir::open(&dir.path().join("none")).is_err());
    }
}

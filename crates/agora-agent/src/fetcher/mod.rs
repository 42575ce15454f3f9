//! The fetcher: before an executor starts, each URI of its `CommandInfo.uris` is put into
//! the sandbox — downloaded (http, https) or copied (file) — then made executable or
//! extracted (by `tar`, `unzip` or `gzip`, as Mesos' fetcher), and given to the task's user.
//! URIs marked `cache` come through a per-agent cache keyed by user and URI, kept under a
//! size limit by evicting the least recently used.

mod download;
mod error;
mod uri;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::Value;
use tokio_rustls::TlsConnector;

use crate::namespaces::RunAs;
pub(crate) use error::FetchError;
use error::{DownloadError, FetchFailure};
use uri::{Archive, FetchUri, Source};

/// Mesos' reason for a task whose URIs could not be fetched.
pub(crate) const FETCHER_FAILED: &str = "REASON_FETCHER_FAILED";

pub(crate) struct Fetcher {
    cache_dir: PathBuf,
    cache_limit_bytes: u64,
    /// The most a download may bring (`--fetcher-max-size`).
    max_bytes: u64,
    /// Loaded at the first https URI: reading the machine's roots takes milliseconds.
    tls: OnceLock<Result<TlsConnector, Arc<agora_tls::TlsError>>>,
    /// One fill of a cache entry at a time (others wait for it and then copy it).
    filling: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Fetcher {
    pub(crate) fn new(cache_dir: PathBuf, cache_limit_bytes: u64, max_bytes: u64) -> Fetcher {
        Fetcher {
            cache_dir,
            cache_limit_bytes,
            max_bytes,
            tls: OnceLock::new(),
            filling: Mutex::new(HashMap::new()),
        }
    }

    /// Fetches every URI into `sandbox`, in order; the first failure says which and why.
    pub(crate) async fn fetch_all(
        &self,
        uris: &[Value],
        sandbox: &Path,
        user: Option<&RunAs>,
    ) -> Result<(), FetchError> {
        for value in uris {
            let uri = FetchUri::parse(value)?;
            self.fetch(&uri, sandbox, user)
                .await
                .map_err(|reason| FetchError::Failed {
                    uri: uri.value.clone(),
                    reason,
                })?;
        }
        if let Some(user) = user
            && !uris.is_empty()
        {
            let (sandbox, user) = (sandbox.to_path_buf(), user.clone());
            tokio::task::spawn_blocking(move || give_tree(&sandbox, &user))
                .await
                .map_err(std::io::Error::other)
                .and_then(|given| given)
                .map_err(FetchError::GiveToUser)?;
        }
        Ok(())
    }

    async fn fetch(
        &self,
        uri: &FetchUri,
        sandbox: &Path,
        user: Option<&RunAs>,
    ) -> Result<(), FetchFailure> {
        let source = uri.source()?;
        let relative = uri.destination()?;
        let destination = inside(sandbox, &relative, user).await?;
        if uri.cache {
            let user_name = user.map_or("", |u| u.name.as_str());
            let key = uri::cache_key(user_name, &uri.value, &relative);
            // Copied while its fill lock is held: no eviction can take it meanwhile.
            let lock = self.fill_lock(&key);
            let _held = lock.lock().await;
            let cached = self.cached(&key, &source, user).await?;
            copy_file(&cached, &destination, None, self.max_bytes).await?;
        } else {
            self.get(&source, &destination, user).await?;
        }
        if uri.executable {
            use std::os::unix::fs::PermissionsExt;
            tokio::fs::set_permissions(&destination, std::fs::Permissions::from_mode(0o755))
                .await
                .map_err(FetchFailure::Executable)?;
        }
        if let Some(archive) = uri.archive(&relative) {
            extract(archive, &destination, user).await?;
        }
        tracing::debug!(uri = %uri.value, file = %destination.display(), "fetched");
        Ok(())
    }

    /// Puts the source's bytes in `file` (a local file is read as `user`, who must be allowed
    /// to read it).
    async fn get(
        &self,
        source: &Source,
        file: &Path,
        user: Option<&RunAs>,
    ) -> Result<u64, FetchFailure> {
        match source {
            Source::Http(url) => {
                let tls = self
                    .tls
                    .get_or_init(download::verifying_connector)
                    .as_ref()
                    .map_err(|e| DownloadError::Roots(e.clone()))?;
                Ok(download::download(tls, url, file, self.max_bytes).await?)
            }
            Source::File(path) => copy_file(path, file, user, self.max_bytes).await,
        }
    }

    fn fill_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
        filling.entry(key.to_owned()).or_default().clone()
    }

    /// The cache's copy of a URI, fetched first when it has none.
    /// Call with the key's fill lock held.
    async fn cached(
        &self,
        key: &str,
        source: &Source,
        user: Option<&RunAs>,
    ) -> Result<PathBuf, FetchFailure> {
        let cached = self.cache_dir.join(key);
        if tokio::fs::try_exists(&cached).await.unwrap_or(false) {
            // Used now: the last to be evicted.
            let touched = std::fs::File::options()
                .append(true)
                .open(&cached)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            if let Err(error) = touched {
                tracing::debug!(%error, "cannot mark a cache entry used");
            }
            return Ok(cached);
        }
        let cache_dir = self.cache_dir.clone();
        tokio::task::spawn_blocking(move || {
            crate::modes::make_dir_with(&cache_dir, crate::modes::PRIVATE_DIR)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
        .map_err(|source| FetchFailure::CacheDir {
            dir: self.cache_dir.clone(),
            source,
        })?;
        let partial = self.cache_dir.join(format!(".{key}.partial"));
        let fetched = self.get(source, &partial, user).await;
        if let Err(error) = fetched {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(error);
        }
        tokio::fs::rename(&partial, &cached)
            .await
            .map_err(FetchFailure::FillCache)?;
        // Entries being filled or copied right now (their locks are held) stay.
        let busy: Vec<PathBuf> = {
            let filling = self.filling.lock().unwrap_or_else(|e| e.into_inner());
            filling
                .iter()
                .filter(|(_, lock)| lock.try_lock().is_err())
                .map(|(key, _)| self.cache_dir.join(key))
                .collect()
        };
        let (directory, limit) = (self.cache_dir.clone(), self.cache_limit_bytes);
        let _ = tokio::task::spawn_blocking(move || evict(&directory, limit, &busy)).await;
        Ok(cached)
    }
}

/// Removes the least recently used entries until the cache fits in `limit` (never those in
/// `keep`, in use, even when one alone is larger).
fn evict(directory: &Path, limit: u64, keep: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let metadata = entry.metadata().ok()?;
            let name = entry.file_name();
            if !metadata.is_file() || name.to_string_lossy().starts_with('.') {
                return None;
            }
            Some((metadata.modified().ok()?, metadata.len(), entry.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|(_, size, _)| size).sum();
    files.sort();
    for (_, size, path) in files {
        if total <= limit {
            break;
        }
        if keep.contains(&path) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => total -= size,
            Err(error) => {
                tracing::warn!(file = %path.display(), %error, "cannot evict from the fetcher cache")
            }
        }
    }
}

/// Unpacks an archive next to it, with the tool Mesos' fetcher uses for it, as the task's
/// user (an archive's links and modes are then the user's to make, never root's).
async fn extract(archive: Archive, file: &Path, user: Option<&RunAs>) -> Result<(), FetchFailure> {
    let directory = file.parent().unwrap_or(Path::new("."));
    let (tool, mut command) = match archive {
        Archive::Tar => {
            let mut command = tokio::process::Command::new("tar");
            command.arg("-C").arg(directory).arg("-xf").arg(file);
            ("tar", command)
        }
        Archive::Zip => {
            let mut command = tokio::process::Command::new("unzip");
            command.args(["-o", "-q", "-d"]).arg(directory).arg(file);
            ("unzip", command)
        }
        Archive::Gzip => {
            let target = file.with_extension("");
            let out = create_nofollow(&target).map_err(|source| FetchFailure::Create {
                path: target.clone(),
                source,
            })?;
            let mut command = tokio::process::Command::new("gzip");
            command.arg("-dc").arg(file).stdout(out);
            ("gzip", command)
        }
    };
    command.stderr(std::process::Stdio::piped());
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    let output = run(&mut command)
        .await
        .map_err(|source| FetchFailure::RunExtractor { tool, source })?;
    if !output.status.success() {
        return Err(FetchFailure::Extract {
            tool,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// The file `relative` names under `sandbox`, its directories made beneath the sandbox (and
/// given to `user`): a link an earlier archive left may lead within the sandbox, never out of
/// it, and the file itself may not be a link (the fetcher writes it as root).
async fn inside(
    sandbox: &Path,
    relative: &Path,
    user: Option<&RunAs>,
) -> Result<PathBuf, FetchFailure> {
    let (sandbox, relative, user) = (sandbox.to_path_buf(), relative.to_path_buf(), user.cloned());
    tokio::task::spawn_blocking(move || {
        let out = |source: std::io::Error| FetchFailure::LeadsOut {
            path: relative.clone(),
            source,
        };
        let opened = crate::beneath::Sandbox::open(sandbox.parent().unwrap_or(&sandbox), &sandbox)
            .map_err(FetchFailure::Sandbox)?;
        let real_sandbox = opened.directory(Path::new("")).map_err(out)?;
        let real_parent = opened
            .directory(relative.parent().unwrap_or(Path::new("")))
            .map_err(out)?;
        let Some(name) = relative.file_name() else {
            return Err(FetchFailure::NoFile(relative.clone()));
        };
        let destination = real_parent.join(name);
        if std::fs::symlink_metadata(&destination).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(FetchFailure::Link(relative.clone()));
        }
        if let Some(user) = &user {
            let mut directory = real_parent.as_path();
            while directory != real_sandbox {
                nix::unistd::chown(
                    directory,
                    Some(nix::unistd::Uid::from_raw(user.uid)),
                    Some(nix::unistd::Gid::from_raw(user.gid)),
                )
                .map_err(|source| FetchFailure::GiveDir {
                    dir: directory.to_owned(),
                    source,
                })?;
                let Some(up) = directory.parent() else { break };
                directory = up;
            }
        }
        Ok(destination)
    })
    .await?
}

/// Runs a command with the stdio it was given (tokio's `output()` would pipe stdout over a
/// file given), its stderr collected.
async fn run(command: &mut tokio::process::Command) -> std::io::Result<std::process::Output> {
    command.stdin(std::process::Stdio::null());
    command.spawn()?.wait_with_output().await
}

/// Creates (or truncates) a file, never through a symbolic link.
pub(super) fn create_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Copies a local file into `target` (never through a link there); read as `user` when given,
/// so a task gets only what its user may read.
async fn copy_file(
    source: &Path,
    target: &Path,
    user: Option<&RunAs>,
    max_bytes: u64,
) -> Result<u64, FetchFailure> {
    let out = create_nofollow(target).map_err(|source| FetchFailure::Create {
        path: target.to_owned(),
        source,
    })?;
    // At most one byte past the limit is read (a file that never ends, /dev/zero, ends it).
    let mut command = tokio::process::Command::new("head");
    command
        .arg("-c")
        .arg(max_bytes.saturating_add(1).to_string())
        .arg("--")
        .arg(source)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(std::process::Stdio::piped());
    if let Some(user) = user {
        command.uid(user.uid).gid(user.gid);
    }
    let output = run(&mut command)
        .await
        .map_err(|error| FetchFailure::Copy {
            path: source.to_owned(),
            source: error,
        })?;
    if !output.status.success() {
        return Err(FetchFailure::CopyRefused {
            path: source.to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let copied = tokio::fs::metadata(target).await.map(|m| m.len())?;
    if copied > max_bytes {
        return Err(FetchFailure::TooLarge(max_bytes));
    }
    Ok(copied)
}

/// Gives `root` and everything under it to `user` (symbolic links themselves, not their
/// targets).
fn give_tree(root: &Path, user: &RunAs) -> std::io::Result<()> {
    let uid = Some(nix::unistd::Uid::from_raw(user.uid));
    let gid = Some(nix::unistd::Gid::from_raw(user.gid));
    let mut pending = vec![root.to_path_buf()];
    while let Some(path) = pending.pop() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &path,
            uid,
            gid,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if std::fs::symlink_metadata(&path)?.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
    }
    Ok(())
}

//! The agent's Unix socket for executors (`--http-executor-domain-sockets`, Mesos'
//! `MESOS_DOMAIN_SOCKET`): the executor API without TCP or TLS for the processes of this
//! machine, so a task's launch waits for no handshake.

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::cli::AgentOptions;

/// The longest path a Unix socket may have: `sun_path` holds 108 bytes with its NUL.
const MAX_PATH: usize = 107;

/// Binds the socket and names it in `config`, before the agent starts so that every executor
/// it launches or recovers is told where it is. A socket an earlier agent left is replaced;
/// one that still answers is refused (another agent runs on the same work dir). `None` when
/// turned off, or when the default path is longer than a socket's may be (executors then
/// reach the agent by its address; a path given with `--domain-socket-location` must fit).
pub fn bind(
    options: &AgentOptions,
    config: &mut agora_agent::AgentConfig,
) -> anyhow::Result<Option<UnixListener>> {
    let bound = bind_at(options, &config.work_dir)?;
    config.executor_socket = bound.as_ref().map(|(_, path)| path.clone());
    Ok(bound.map(|(listener, _)| listener))
}

fn bind_at(
    options: &AgentOptions,
    work_dir: &Path,
) -> anyhow::Result<Option<(UnixListener, PathBuf)>> {
    if !options.http_executor_domain_sockets {
        return Ok(None);
    }
    let given = options.domain_socket_location.is_some();
    let path = match &options.domain_socket_location {
        Some(path) if path.is_absolute() => path.clone(),
        Some(path) => bail!(
            "--domain-socket-location {} is not an absolute path: executors start elsewhere",
            path.display()
        ),
        None => std::path::absolute(work_dir)
            .context("cannot resolve the work dir")?
            .join("run")
            .join("agent.sock"),
    };
    if path.as_os_str().len() > MAX_PATH {
        if given {
            bail!(
                "--domain-socket-location {} is longer than the {MAX_PATH} bytes a socket path may have",
                path.display()
            );
        }
        tracing::warn!(
            path = %path.display(),
            "the executor socket's path is longer than a socket path may be: executors reach \
             the agent by its address (set --domain-socket-location)"
        );
        return Ok(None);
    }
    if let Some(dir) = path.parent() {
        // Executors run as their tasks' users: they pass through, no one lists or writes.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(&path) {
        // One that answers belongs to an agent still running on this work dir: taking it
        // would cut that agent's executors off.
        Ok(found)
            if found.file_type().is_socket()
                && std::os::unix::net::UnixStream::connect(&path).is_ok() =>
        {
            bail!(
                "another agent serves {}: is one already running on this work dir?",
                path.display()
            )
        }
        Ok(found) if found.file_type().is_socket() => std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove the old socket {}", path.display()))?,
        Ok(_) => bail!(
            "{} exists and is not a socket: remove it or set --domain-socket-location",
            path.display()
        ),
        Err(_) => {}
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    // Any local user may connect, as to the agent's port: what a caller may do is the executor
    // API's to say (each executor speaks only for itself, with its token).
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("cannot open {} to executors", path.display()))?;
    Ok(Some((listener, path)))
}

/// Serves the agent's executor API on the socket, behind the same gate and limits as its
/// port, until `shutdown`.
pub fn serve(
    listener: UnixListener,
    executor_router: axum::Router,
    gate: agora_http::GateConfig,
    limits: agora_http::Limits,
    refused: std::sync::Arc<agora_http::Refused>,
    shutdown: CancellationToken,
) {
    let router = agora_http::protect(executor_router, gate);
    tokio::spawn(async move {
        if let Err(error) =
            agora_http::serve_local(listener, router, limits, refused, shutdown).await
        {
            tracing::error!(%error, "the executor socket stopped serving");
        }
    });
}

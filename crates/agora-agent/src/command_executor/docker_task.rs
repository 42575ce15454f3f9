//! A task in a Docker container, run by the built-in executor as Mesos' docker executor
//! does: the image made present (pulled when absent or `force_pull_image`; a pull that cannot
//! work fails the task instead of hanging), the container created and started, its logs
//! streamed into the sandbox's `stdout`/`stderr`, its end (exit code, OOM kill) reported, and
//! the container removed. A kill is `docker stop` with the task's grace period.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, LogsOptionsBuilder,
    StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use agora_api::mesos::TaskInfo;

use crate::docker::spec::{self, Owner, SpecError};
use crate::docker::{DockerError, PullError};

/// A pull that has not finished by then has failed: the task fails rather than waits on.
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// A started container.
#[derive(Clone)]
pub(super) struct DockerTask {
    docker: Docker,
    pub name: String,
    /// The host pid of its first process, as the Engine said once it started.
    pub pid: Option<i32>,
    /// Its addresses on its networks (none with HOST networking).
    pub ip_addresses: Vec<String>,
}

/// How a container ended.
pub(super) struct Ended {
    pub code: Option<i64>,
    pub oom_killed: bool,
    pub error: Option<String>,
}

/// Creates and starts `task`'s container; `ended` gets its end once it is gone.
pub(super) async fn start(
    task: &TaskInfo,
    sandbox: &Path,
    directory: PathBuf,
    owner: &Owner,
    name: &str,
    ended: impl FnOnce(Ended) + Send + 'static,
) -> Result<DockerTask, DockerError> {
    let opened = crate::beneath::Sandbox::open(sandbox.parent().unwrap_or(sandbox), sandbox)
        .map_err(DockerError::Sandbox)?;
    let in_sandbox = |relative: &Path| {
        opened
            .directory(relative)
            .map_err(|source| SpecError::Volume {
                path: relative.to_owned(),
                source,
            })
    };
    let spec = spec::build(task, sandbox, in_sandbox, owner, name)?;
    let docker = crate::docker::connect().await?;
    ensure_image(&docker, &spec.image, spec.force_pull).await?;
    // A container of the same name is a leftover of this very task's earlier attempt.
    crate::docker::remove(&docker, name).await?;
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(options), spec.body)
        .await
        .map_err(|source| DockerError::Container {
            action: "create",
            source,
        })?;
    if let Err(source) = docker.start_container(name, None).await {
        let _ = crate::docker::remove(&docker, name).await;
        return Err(DockerError::Container {
            action: "start",
            source,
        });
    }
    let logs = tokio::spawn(stream_logs(docker.clone(), name.to_owned(), directory));
    // Where it runs, for the agent (its cgroups, by pid) and for schedulers (its addresses).
    let inspected = docker.inspect_container(name, None).await.ok();
    let pid = inspected
        .as_ref()
        .and_then(|i| i.state.as_ref())
        .and_then(|state| state.pid)
        .filter(|pid| *pid > 0)
        .and_then(|pid| i32::try_from(pid).ok());
    let ip_addresses = inspected
        .as_ref()
        .and_then(|i| i.network_settings.as_ref())
        .and_then(|settings| settings.networks.as_ref())
        .map(|networks| {
            networks
                .values()
                .filter_map(|endpoint| endpoint.ip_address.clone())
                .filter(|ip| !ip.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let running = DockerTask {
        docker: docker.clone(),
        name: name.to_owned(),
        pid,
        ip_addresses,
    };
    let watched = running.clone();
    tokio::spawn(async move {
        let end = watched.wait().await;
        // The log stream ends with the container; its last lines land before the end is told.
        let _ = tokio::time::timeout(Duration::from_secs(5), logs).await;
        if let Err(error) = crate::docker::remove(&watched.docker, &watched.name).await {
            eprintln!("agora executor: {error}");
        }
        ended(end);
    });
    Ok(running)
}

impl DockerTask {
    /// `docker stop`: SIGTERM (or the image's stop signal), SIGKILL after `grace`.
    pub(super) fn stop(&self, grace: Duration) {
        let task = self.clone();
        tokio::spawn(async move {
            let seconds = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::default().t(seconds).build();
            if let Err(error) = task.docker.stop_container(&task.name, Some(options)).await {
                eprintln!(
                    "agora executor: cannot stop container {}: {error}",
                    task.name
                );
            }
        });
    }

    /// Kills and removes the container at once.
    pub(super) async fn destroy(&self) {
        if let Err(error) = crate::docker::remove(&self.docker, &self.name).await {
            eprintln!("agora executor: {error}");
        }
    }

    async fn wait(&self) -> Ended {
        let code = match self.docker.wait_container(&self.name, None).next().await {
            Some(Ok(response)) => Ok(response.status_code),
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
            Some(Err(error)) => Err(error.to_string()),
            None => Err("the engine stopped answering".to_owned()),
        };
        let oom_killed = self
            .docker
            .inspect_container(&self.name, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.oom_killed)
            .unwrap_or(false);
        match code {
            Ok(code) => Ended {
                code: Some(code),
                oom_killed,
                error: None,
            },
            Err(error) => Ended {
                code: None,
                oom_killed,
                error: Some(format!("cannot wait for the container: {error}")),
            },
        }
    }
}

/// Makes `image` present: pulled when absent, or always with `force_pull`.
async fn ensure_image(docker: &Docker, image: &str, force_pull: bool) -> Result<(), DockerError> {
    let present = docker.inspect_image(image).await.is_ok();
    if present && !force_pull {
        return Ok(());
    }
    let (from, tag) = split_reference(image);
    let mut options = CreateImageOptionsBuilder::default().from_image(from);
    if let Some(tag) = tag {
        options = options.tag(tag);
    }
    let pull = async {
        let mut progress = docker.create_image(Some(options.build()), None, None);
        while let Some(item) = progress.next().await {
            item?;
        }
        Ok::<(), PullError>(())
    };
    let pulled = match tokio::time::timeout(PULL_TIMEOUT, pull).await {
        Ok(result) => result,
        Err(_) => Err(PullError::TimedOut(PULL_TIMEOUT.as_secs())),
    };
    match pulled {
        Ok(()) => Ok(()),
        Err(error) if present => {
            eprintln!("agora executor: cannot pull {image} ({error}); using the local image");
            Ok(())
        }
        Err(reason) => Err(DockerError::Pull {
            image: image.to_owned(),
            reason,
        }),
    }
}

/// `repo[:tag]` or `repo@digest` as the pull API wants it: the name, and the tag when the
/// reference has one (a port in the registry's address is not a tag).
fn split_reference(image: &str) -> (&str, Option<&str>) {
    if image.contains('@') {
        return (image, None);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let at = last_slash + colon;
            (&image[..at], Some(&image[at + 1..]))
        }
        None => (image, Some("latest")),
    }
}

/// Appends the container's output to the task's `stdout` and `stderr`.
async fn stream_logs(docker: Docker, name: String, directory: PathBuf) {
    let open = |file: &str| {
        let path = directory.join(file);
        async move {
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .custom_flags(nix::libc::O_NOFOLLOW)
                .open(&path)
                .await
        }
    };
    let (Ok(mut stdout), Ok(mut stderr)) = (open("stdout").await, open("stderr").await) else {
        eprintln!("agora executor: cannot open the sandbox's output files");
        return;
    };
    let options = LogsOptionsBuilder::default()
        .follow(true)
        .stdout(true)
        .stderr(true)
        .tail("all")
        .build();
    let mut logs = docker.logs(&name, Some(options));
    while let Some(item) = logs.next().await {
        let written = match item {
            Ok(LogOutput::StdErr { message }) => stderr.write_all(&message).await,
            Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                stdout.write_all(&message).await
            }
            Ok(LogOutput::StdIn { .. }) => Ok(()),
            Err(error) => {
                eprintln!("agora executor: the container's log stream broke: {error}");
                break;
            }
        };
        if written.is_err() {
            break;
        }
    }
    let _ = stdout.flush().await;
    let _ = stderr.flush().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_split_into_name_and_tag() {
        assert_eq!(split_reference("busybox"), ("busybox", Some("latest")));
        assert_eq!(split_reference("web:1.2"), ("web", Some("1.2")));
        assert_eq!(
            split_reference("reg:5000/team/web"),
            ("reg:5000/team/web", Some("latest"))
        );
        assert_eq!(
            split_reference("reg:5000/web:2"),
            ("reg:5000/web", Some("2"))
        );
        assert_eq!(split_reference("web@sha256:abc"), ("web@sha256:abc", None));
    }
}

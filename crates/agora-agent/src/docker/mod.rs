//! The Docker containerizer's shared parts: the Engine API client (bollard, over the local
//! socket or `DOCKER_HOST`, at the version the engine speaks), the container spec
//! (`spec.rs`), and the agent's clean-up of containers whose executor is gone.

pub(crate) mod spec;

use std::collections::HashMap;

use bollard::Docker;
use bollard::query_parameters::{ListContainersOptionsBuilder, RemoveContainerOptionsBuilder};

/// What went wrong with a Docker task's container or the Engine.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DockerError {
    #[error("cannot reach the Docker Engine: {0}")]
    Unreachable(#[source] bollard::errors::Error),
    #[error("cannot list Docker containers: {0}")]
    List(#[source] bollard::errors::Error),
    #[error("cannot remove Docker container {id}: {source}")]
    Remove {
        id: String,
        source: bollard::errors::Error,
    },
    #[error("cannot {action} the container: {source}")]
    Container {
        action: &'static str,
        source: bollard::errors::Error,
    },
    #[error("the task's Docker container is gone")]
    Gone,
    #[error("the container is not running")]
    NotRunning,
    #[error("cannot open the sandbox: {0}")]
    Sandbox(#[source] std::io::Error),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error("image '{image}' is not on this agent and cannot be pulled: {reason}")]
    Pull { image: String, reason: PullError },
}

/// Why an image could not be pulled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error(transparent)]
    Engine(#[from] bollard::errors::Error),
    #[error("no answer in {0} s")]
    TimedOut(u64),
}

/// A client for the local Docker Engine, at the API version it speaks.
pub(crate) async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_local_defaults().map_err(DockerError::Unreachable)?;
    docker
        .negotiate_version()
        .await
        .map_err(DockerError::Unreachable)
}

/// Containers labelled with `label=value`: (name or id, the container id label's value).
pub(crate) async fn labelled(
    docker: &Docker,
    label: &str,
    value: &str,
) -> Result<Vec<(String, String)>, DockerError> {
    let filters = HashMap::from([("label".to_owned(), vec![format!("{label}={value}")])]);
    let options = ListContainersOptionsBuilder::default()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(DockerError::List)?;
    Ok(containers
        .into_iter()
        .filter_map(|c| {
            let id = c.id?;
            let container = c
                .labels
                .and_then(|l| l.get(spec::labels::CONTAINER).cloned())
                .unwrap_or_default();
            Some((id, container))
        })
        .collect())
}

/// Removes (killing first) a container; one already gone is not an error.
pub(crate) async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptionsBuilder::default().force(true).build();
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(source) => Err(DockerError::Remove {
            id: id.to_owned(),
            source,
        }),
    }
}

/// Removes this agent's containers that belong to no live executor container (`keep`): left
/// by an executor that died, or by one that ended while the agent was down.
pub(crate) async fn remove_orphans(agent_id: &str, keep: &[String]) {
    let docker = match connect().await {
        Ok(docker) => docker,
        Err(error) => {
            tracing::debug!(%error, "no Docker Engine: no Docker containers to clean up");
            return;
        }
    };
    let found = match labelled(&docker, spec::labels::AGENT, agent_id).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "cannot look for orphaned Docker containers");
            return;
        }
    };
    for (id, container) in found {
        if keep.contains(&container) {
            continue;
        }
        tracing::info!(docker = %id, container = %container, "removing an orphaned Docker container");
        if let Err(error) = remove(&docker, &id).await {
            tracing::warn!(%error, "cannot remove an orphaned Docker container");
        }
    }
}

/// Removes the Docker containers of one executor container (its executor has ended).
pub(crate) async fn remove_container_of(container_id: &str) {
    let Ok(docker) = connect().await else { return };
    match labelled(&docker, spec::labels::CONTAINER, container_id).await {
        Ok(found) => {
            for (id, _) in found {
                if let Err(error) = remove(&docker, &id).await {
                    tracing::warn!(%error, "cannot remove a finished executor's Docker container");
                }
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot look for a finished executor's Docker containers")
        }
    }
}

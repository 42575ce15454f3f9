//! Keeps a `Cluster` current from the services API: the event stream (`/v2/events`, opened
//! first so nothing between the two is missed), a snapshot of `/v2/apps?embed=apps.tasks`,
//! then every event applied as it arrives. A change in apps (or a task of an app not yet
//! known) fetches the apps again; a broken stream reconnects and starts from a fresh snapshot,
//! since Marathon's event order is not a contract to rebuild state from.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::model::{Applied, Cluster};

const EVENT_TYPES: &[&str] = &[
    "status_update_event",
    "health_status_changed_event",
    "api_post_event",
    "app_terminated_event",
    "deployment_success",
    "deployment_failed",
    "group_change_success",
];

/// A full snapshot this often even when the stream is quiet, as marathon-lb does.
const RESYNC_EVERY: Duration = Duration::from_secs(300);

/// What the follower publishes: the cluster and whether it has ever been loaded.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub cluster: Arc<Cluster>,
    pub synced: bool,
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Client(#[from] agora_client::ClientError),
    #[error("the apps did not come within {0:?}")]
    SnapshotTimeout(Duration),
    #[error(transparent)]
    Snapshot(#[from] crate::model::SnapshotError),
    #[error("the event stream ended")]
    Ended,
}

/// How long a snapshot of the apps may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Follows the services API at `master` (HOST:PORT) until `shutdown`, publishing every change.
/// Which master serves the services API: one, or the leader of several.
#[derive(Clone)]
pub struct Masters {
    pub fixed: String,
    pub leader: Option<watch::Receiver<Option<String>>>,
}

impl Masters {
    /// The master to follow now (`None` while no master leads).
    pub fn current(&mut self) -> Option<String> {
        match &mut self.leader {
            Some(leader) => leader.borrow_and_update().clone(),
            None => Some(self.fixed.clone()),
        }
    }

    /// Resolves when the leader changes (never, with one master).
    pub async fn changed(&mut self) {
        let Some(leader) = &mut self.leader else {
            return std::future::pending().await;
        };
        if leader.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

pub async fn follow(
    mut masters: Masters,
    access: agora_client::Access,
    publish: watch::Sender<View>,
    shutdown: CancellationToken,
) {
    let mut cluster = Cluster::default();
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    loop {
        // While no master leads, the proxies route on what they last knew.
        let Some(master) = masters.current() else {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = masters.changed() => {}
            }
            continue;
        };
        let services = agora_client::ServicesClient::with_access(&master, &access);
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            // A new leader: follow it from a fresh snapshot.
            () = masters.changed() => continue,
            result = follow_once(&services, &mut cluster, &publish) => result,
        };
        match result {
            Err(error) if !reported => {
                tracing::warn!(%error, master = services.base(), "discovery lost the services event stream; retrying");
                reported = true;
            }
            Err(error) => tracing::debug!(%error, "discovery still cannot follow the services API"),
            Ok(()) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => backoff = (backoff * 2).min(Duration::from_secs(5)),
            () = masters.changed() => backoff = Duration::from_millis(100),
        }
        if publish.borrow().synced {
            backoff = Duration::from_millis(100);
            reported = false;
        }
    }
}

async fn snapshot(
    services: &agora_client::ServicesClient,
    cluster: &mut Cluster,
) -> Result<(), FollowError> {
    let apps = tokio::time::timeout(SNAPSHOT_TIMEOUT, services.apps(&["apps.tasks"]))
        .await
        .map_err(|_| FollowError::SnapshotTimeout(SNAPSHOT_TIMEOUT))??;
    cluster.load_apps(apps)?;
    Ok(())
}

fn publish_now(publish: &watch::Sender<View>, cluster: &Cluster) {
    publish.send_replace(View {
        cluster: Arc::new(cluster.clone()),
        synced: true,
    });
}

async fn follow_once(
    services: &agora_client::ServicesClient,
    cluster: &mut Cluster,
    publish: &watch::Sender<View>,
) -> Result<(), FollowError> {
    let stream = services.events(EVENT_TYPES).await?;
    let mut stream = std::pin::pin!(stream);
    snapshot(services, cluster).await?;
    publish_now(publish, cluster);
    tracing::info!(
        apps = cluster.apps.len(),
        tasks = cluster.tasks.len(),
        "discovery following the services API"
    );
    let mut last_snapshot = tokio::time::Instant::now();
    loop {
        let event = match tokio::time::timeout(RESYNC_EVERY, stream.next()).await {
            Ok(Some(event)) => event?,
            Ok(None) => return Err(FollowError::Ended),
            Err(_) => {
                snapshot(services, cluster).await?;
                publish_now(publish, cluster);
                last_snapshot = tokio::time::Instant::now();
                continue;
            }
        };
        // The events already here go in one publication: a burst (a thousand tasks
        // starting) must not copy the cluster once per event.
        let mut batch = vec![event];
        while let Some(Some(next)) = stream.next().now_or_never() {
            batch.push(next?);
        }
        let mut changed = false;
        let mut resync = false;
        for event in batch {
            if let Value::String(_) = event.data {
                tracing::debug!(event.kind, "discovery skipped an event that is not JSON");
                continue;
            }
            match cluster.apply(&event.kind, &event.data) {
                Applied::Unchanged => {}
                Applied::Changed => changed = true,
                Applied::Resync => resync = true,
            }
        }
        if resync || last_snapshot.elapsed() > RESYNC_EVERY {
            snapshot(services, cluster).await?;
            last_snapshot = tokio::time::Instant::now();
            changed = true;
        }
        if changed {
            publish_now(publish, cluster);
        }
    }
}

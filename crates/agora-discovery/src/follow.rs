//! Keeps a `Cluster` current from the services API: the event stream (`/v2/events`, opened
//! first so nothing between the two is missed), a snapshot of `/v2/apps?embed=apps.tasks`,
//! then every event applied as it arrives. A change in apps (or a task of an app not yet
//! known) fetches the apps again; a broken stream reconnects and starts from a fresh snapshot,
//! since Marathon's event order is not a contract to rebuild state from.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
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
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("{url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error(transparent)]
    Snapshot(#[from] crate::model::SnapshotError),
    #[error("the event stream ended")]
    Ended,
}

/// Follows the services API at `master` (HOST:PORT) until `shutdown`, publishing every change.
pub async fn follow(
    master: String,
    access: agora_client::Access,
    publish: watch::Sender<View>,
    shutdown: CancellationToken,
) {
    let client = match access
        .client_builder()
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "discovery cannot build an HTTP client");
            return;
        }
    };
    let master = access.base_url(&master);
    let mut cluster = Cluster::default();
    let mut backoff = Duration::from_millis(100);
    let mut reported = false;
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => return,
            result = follow_once(&client, &master, &mut cluster, &publish) => result,
        };
        match result {
            Err(error) if !reported => {
                tracing::warn!(%error, master, "discovery lost the services event stream; retrying");
                reported = true;
            }
            Err(error) => tracing::debug!(%error, "discovery still cannot follow the services API"),
            Ok(()) => {}
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
        if publish.borrow().synced {
            backoff = Duration::from_millis(100);
            reported = false;
        }
    }
}

/// Sends the request; an answer other than 2xx is an error naming `url`.
async fn successful(
    request: reqwest::RequestBuilder,
    url: String,
) -> Result<reqwest::Response, FollowError> {
    let response = request.send().await?;
    if !response.status().is_success() {
        return Err(FollowError::Status {
            url,
            status: response.status(),
        });
    }
    Ok(response)
}

async fn snapshot(
    client: &reqwest::Client,
    master: &str,
    cluster: &mut Cluster,
) -> Result<(), FollowError> {
    let url = format!("{master}/v2/apps?embed=apps.tasks");
    let response = successful(client.get(&url).timeout(Duration::from_secs(30)), url).await?;
    let body = response.bytes().await?;
    cluster.load_snapshot(&body)?;
    Ok(())
}

fn publish_now(publish: &watch::Sender<View>, cluster: &Cluster) {
    publish.send_replace(View {
        cluster: Arc::new(cluster.clone()),
        synced: true,
    });
}

async fn follow_once(
    client: &reqwest::Client,
    master: &str,
    cluster: &mut Cluster,
    publish: &watch::Sender<View>,
) -> Result<(), FollowError> {
    let query: Vec<(&str, &str)> = EVENT_TYPES.iter().map(|t| ("event_type", *t)).collect();
    let url = format!("{master}/v2/events");
    let request = client
        .get(&url)
        .query(&query)
        .header("Accept", "text/event-stream");
    let response = successful(request, url).await?;
    snapshot(client, master, cluster).await?;
    publish_now(publish, cluster);
    tracing::info!(
        apps = cluster.apps.len(),
        tasks = cluster.tasks.len(),
        "discovery following the services API"
    );
    let mut stream = response.bytes_stream();
    let mut parser = agora_client::sse::SseParser::default();
    let mut last_snapshot = tokio::time::Instant::now();
    loop {
        let chunk = match tokio::time::timeout(RESYNC_EVERY, stream.next()).await {
            Ok(Some(chunk)) => chunk?,
            Ok(None) => return Err(FollowError::Ended),
            Err(_) => {
                snapshot(client, master, cluster).await?;
                publish_now(publish, cluster);
                last_snapshot = tokio::time::Instant::now();
                continue;
            }
        };
        let mut changed = false;
        let mut resync = false;
        for event in parser.push(&chunk) {
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
            snapshot(client, master, cluster).await?;
            last_snapshot = tokio::time::Instant::now();
            changed = true;
        }
        if changed {
            publish_now(publish, cluster);
        }
    }
}

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
    let mut buffer: Vec<u8> = Vec::new();
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
        buffer.extend_from_slice(&chunk);
        let mut changed = false;
        let mut resync = false;
        while let Some((event_type, data)) = next_event(&mut buffer) {
            match cluster.apply(&event_type, &data) {
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

/// Takes the first complete server-sent event off `buffer`: its `event:` name (or the data's
/// `eventType`) and its JSON data. Comments and keep-alives are skipped.
fn next_event(buffer: &mut Vec<u8>) -> Option<(String, Value)> {
    loop {
        let end = find_blank_line(buffer)?;
        let block: Vec<u8> = buffer.drain(..end.0 + end.1).collect();
        let text = String::from_utf8_lossy(&block[..end.0]);
        let mut name = String::new();
        let mut data = String::new();
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("event:") {
                name = value.trim().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        if data.is_empty() {
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&data) else {
            tracing::debug!(name, "discovery skipped an event that is not JSON");
            continue;
        };
        if name.is_empty() {
            name = value
                .get("eventType")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
        }
        return Some((name, value));
    }
}

/// The end of the first event block: (its length, the length of the blank line after it).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buffer.len() {
        if buffer[i] == b'\n' && buffer[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if buffer[i] == b'\n' && buffer[i + 1] == b'\r' && buffer.get(i + 2) == Some(&b'\n') {
            return Some((i, 3));
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cut_from_a_stream_in_pieces() {
        let stream = b"event: status_update_event\ndata: {\"taskId\": \"a\"}\n\n: keep-alive\n\ndata: {\"eventType\": \"api_post_event\"}\r\n\r\nevent: x\ndata: {";
        let mut buffer = stream.to_vec();
        let first = next_event(&mut buffer).expect("first");
        assert_eq!(first.0, "status_update_event");
        assert_eq!(first.1["taskId"], "a");
        let second = next_event(&mut buffer).expect("second");
        assert_eq!(second.0, "api_post_event");
        assert!(next_event(&mut buffer).is_none());
        buffer.extend_from_slice(b"}\n\n");
        let third = next_event(&mut buffer).expect("third");
        assert_eq!(third.0, "x");
        assert!(buffer.is_empty());
    }
}

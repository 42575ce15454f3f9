//! Marathon's HTTP callback subscribers (`/v2/eventSubscriptions`): every event of the bus is
//! POSTed as JSON to each subscribed URL, in order, by one worker per URL. A failed delivery is
//! retried with a growing pause before the worker moves on; a subscriber too slow to keep a
//! bounded backlog loses the overflow, never the scheduler's memory.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::core::BusEvent;

const BACKLOG: usize = 1024;
const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_millis(250);
const TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let mut events = shared.lock().events.subscribe();
    let client = match agora_client::plain_client_builder()
        .timeout(TIMEOUT)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "event callbacks disabled: no HTTP client");
            return;
        }
    };
    let mut workers: HashMap<String, mpsc::Sender<BusEvent>> = HashMap::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.recv() => event,
        };
        let event = match event {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "event callbacks fell behind the event bus");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let urls = shared.lock().subscriptions.clone();
        // Dropping an unsubscribed URL's sender lets its worker drain and end.
        workers.retain(|url, _| urls.contains(url));
        for url in urls {
            let worker = workers
                .entry(url.clone())
                .or_insert_with(|| spawn_worker(url.clone(), client.clone()));
            if worker.try_send(event.clone()).is_err() {
                tracing::warn!(callback = %url, event = event.kind, "callback backlog full: event dropped");
            }
        }
    }
}

fn spawn_worker(url: String, client: reqwest::Client) -> mpsc::Sender<BusEvent> {
    let (sender, mut receiver) = mpsc::channel::<BusEvent>(BACKLOG);
    tokio::spawn(async move {
        while let Some(event) = receiver.recv().await {
            deliver(&client, &url, &event).await;
        }
    });
    sender
}

async fn deliver(client: &reqwest::Client, url: &str, event: &BusEvent) {
    let body = agora_api::scheduler::ascii_json(&event.data);
    let mut pause = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let result = client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => return,
            Ok(response) => {
                tracing::debug!(callback = url, status = %response.status(), attempt, "callback refused an event")
            }
            Err(error) => tracing::debug!(callback = url, %error, attempt, "callback unreachable"),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
    tracing::warn!(
        callback = url,
        event = event.kind,
        "event not delivered after {ATTEMPTS} attempts"
    );
}

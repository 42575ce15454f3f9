//! Streaming response bodies for the scheduler, operator and agent subscriptions: a bounded
//! queue of RecordIO frames (`agora_http::events`: a subscriber that falls too far behind is
//! told why and cut off) whose end — the client going away, or cut off — is reported back to
//! the master.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use agora_http::events::{EventSender, EventStream};
use bytes::Bytes;
use futures_util::Stream;

/// Yields frames until the sender side is dropped; runs `on_close` when the body is dropped
/// (normal end or the connection closed).
pub(crate) struct ClosingStream {
    receiver: EventStream,
    on_close: Option<Box<dyn FnOnce() + Send>>,
}

impl ClosingStream {
    pub fn new(receiver: EventStream, on_close: impl FnOnce() + Send + 'static) -> ClosingStream {
        ClosingStream {
            receiver,
            on_close: Some(Box::new(on_close)),
        }
    }
}

impl Stream for ClosingStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.receiver).poll_next(cx)
    }
}

impl Drop for ClosingStream {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
    }
}

/// For one agent: the tasks it is to run.
const AGENT_QUEUE: usize = 64 << 20;

fn fell_behind(limit: usize) -> String {
    format!("this subscriber fell more than {limit} bytes of events behind; subscribe again")
}

/// A framework's event stream (at most `limit` bytes queued); one that falls behind gets a
/// last ERROR saying so.
pub(crate) fn scheduler_stream(
    limit: usize,
    overflows: Arc<AtomicU64>,
) -> (EventSender, EventStream) {
    let farewell = agora_api::scheduler::Event::error(fell_behind(limit));
    agora_http::events::bounded(
        limit,
        agora_api::recordio::encode(&farewell.to_json()),
        overflows,
    )
}

/// An operator's event stream (SUBSCRIBE of the operator API).
pub(crate) fn operator_stream(
    limit: usize,
    overflows: Arc<AtomicU64>,
) -> (EventSender, EventStream) {
    let farewell = serde_json::json!({"type": "ERROR", "error": {"message": fell_behind(limit)}});
    agora_http::events::bounded(
        limit,
        agora_api::recordio::encode(&agora_api::scheduler::ascii_json(&farewell)),
        overflows,
    )
}

/// An agent's command stream; an agent that falls behind reconnects, as after any break.
pub(crate) fn agent_stream(overflows: Arc<AtomicU64>) -> (EventSender, EventStream) {
    agora_http::events::bounded(AGENT_QUEUE, Bytes::new(), overflows)
}

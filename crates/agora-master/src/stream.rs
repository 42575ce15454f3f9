//! Streaming response bodies for the scheduler, operator and agent subscriptions: a channel of
//! RecordIO frames whose end (the client going away) is reported back to the master.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// Yields frames until the sender side is dropped; runs `on_close` when the body is dropped
/// (normal end or the connection closed).
pub(crate) struct ClosingStream {
    receiver: mpsc::UnboundedReceiver<Bytes>,
    on_close: Option<Box<dyn FnOnce() + Send>>,
}

impl ClosingStream {
    pub fn new(
        receiver: mpsc::UnboundedReceiver<Bytes>,
        on_close: impl FnOnce() + Send + 'static,
    ) -> ClosingStream {
        ClosingStream {
            receiver,
            on_close: Some(Box::new(on_close)),
        }
    }
}

impl Stream for ClosingStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.receiver.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

impl Drop for ClosingStream {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
    }
}

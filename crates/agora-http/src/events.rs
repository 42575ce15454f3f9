//! Event streams to one subscriber each (a framework, an operator, an agent, an executor):
//! the server queues frames as things happen and the subscriber's connection takes them as
//! fast as it reads. The queue is bounded: a subscriber that falls too far behind (one that
//! never reads, say) would otherwise grow the server's memory without end. When a frame
//! would take the queue past its limit, what is queued is dropped, the subscriber gets one
//! last frame saying why, and its stream ends — it may subscribe again and catch up from the
//! current state, as after any disconnection. A frame larger than the limit still goes to a
//! subscriber that has nothing queued.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Bytes queued for one subscriber, at most, unless it has read all but one frame.
pub const DEFAULT_QUEUE_BYTES: usize = 8 << 20;

/// Makes a stream whose queue holds at most `limit` bytes; `farewell` is the frame a
/// subscriber that falls behind gets last, and `overflows` counts those cut off.
pub fn bounded(
    limit: usize,
    farewell: Bytes,
    overflows: Arc<AtomicU64>,
) -> (EventSender, EventStream) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            frames: VecDeque::new(),
            bytes: 0,
            ended: false,
            overflowed: false,
            reader_gone: false,
            senders: 1,
            waker: None,
        }),
        limit,
        farewell,
        overflows,
    });
    (
        EventSender {
            shared: shared.clone(),
        },
        EventStream { shared },
    )
}

struct Shared {
    queue: Mutex<Queue>,
    limit: usize,
    farewell: Bytes,
    overflows: Arc<AtomicU64>,
}

struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    /// No frame comes after what is queued (every sender gone, or the reader fell behind).
    ended: bool,
    overflowed: bool,
    reader_gone: bool,
    senders: usize,
    waker: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Queue {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

/// The stream is over: its reader went away, or fell behind and was told so.
#[derive(Debug, PartialEq, Eq)]
pub struct Gone;

/// The server's end of one subscriber's stream.
pub struct EventSender {
    shared: Arc<Shared>,
}

impl EventSender {
    /// Queues a frame; `Err(Gone)` once the stream is over (its reader is gone, or this frame
    /// would have taken it past its limit: it is told so and its stream ends).
    pub fn send(&self, frame: Bytes) -> Result<(), Gone> {
        let mut queue = self.shared.lock();
        if queue.ended || queue.reader_gone {
            return Err(Gone);
        }
        if !queue.frames.is_empty() && queue.bytes + frame.len() > self.shared.limit {
            queue.frames.clear();
            queue.bytes = 0;
            queue.frames.push_back(self.shared.farewell.clone());
            queue.ended = true;
            queue.overflowed = true;
            queue.wake();
            self.shared.overflows.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                limit = self.shared.limit,
                "a subscriber fell too far behind its event stream and was cut off"
            );
            return Err(Gone);
        }
        queue.bytes += frame.len();
        queue.frames.push_back(frame);
        queue.wake();
        Ok(())
    }

    /// Whether nothing sent now would reach the subscriber.
    pub fn is_closed(&self) -> bool {
        let queue = self.shared.lock();
        queue.ended || queue.reader_gone
    }

    /// Whether the subscriber fell too far behind and was cut off.
    pub fn overflowed(&self) -> bool {
        self.shared.lock().overflowed
    }
}

impl Clone for EventSender {
    fn clone(&self) -> EventSender {
        self.shared.lock().senders += 1;
        EventSender {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for EventSender {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.senders -= 1;
        if queue.senders == 0 {
            queue.ended = true;
            queue.wake();
        }
    }
}

impl std::fmt::Debug for EventSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSender").finish_non_exhaustive()
    }
}

/// The subscriber's end: the frames, in order, until the stream is over.
pub struct EventStream {
    shared: Arc<Shared>,
}

impl futures_core::Stream for EventStream {
    type Item = Result<Bytes, std::convert::Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut queue = self.shared.lock();
        if let Some(frame) = queue.frames.pop_front() {
            queue.bytes = queue.bytes.saturating_sub(frame.len());
            return Poll::Ready(Some(Ok(frame)));
        }
        if queue.ended {
            return Poll::Ready(None);
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.reader_gone = true;
        queue.frames.clear();
        queue.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn a_reader_that_keeps_up_gets_everything_in_order() {
        let (sender, mut stream) = bounded(10, Bytes::from_static(b"bye"), Arc::default());
        for frame in [b"ab", b"cd", b"ef"] {
            sender.send(Bytes::from_static(frame)).unwrap();
            assert_eq!(stream.next().await, Some(Ok(Bytes::from_static(frame))));
        }
        drop(sender);
        assert_eq!(stream.next().await, None, "ends with its senders");
    }

    #[tokio::test]
    async fn a_reader_that_falls_behind_is_told_and_cut_off() {
        let (sender, mut stream) = bounded(10, Bytes::from_static(b"bye"), Arc::default());
        let copy = sender.clone();
        assert!(sender.send(Bytes::from_static(b"12345")).is_ok());
        assert!(sender.send(Bytes::from_static(b"12345")).is_ok());
        assert_eq!(copy.send(Bytes::from_static(b"x")), Err(Gone));
        assert!(sender.is_closed() && sender.overflowed());
        assert_eq!(sender.send(Bytes::from_static(b"y")), Err(Gone));
        assert_eq!(stream.next().await, Some(Ok(Bytes::from_static(b"bye"))));
        assert_eq!(stream.next().await, None, "even while senders remain");
    }

    #[tokio::test]
    async fn a_large_frame_reaches_a_reader_with_nothing_queued() {
        let (sender, mut stream) = bounded(4, Bytes::from_static(b"bye"), Arc::default());
        assert!(sender.send(Bytes::from(vec![1u8; 100])).is_ok());
        assert_eq!(
            stream.next().await.map(|f| f.map(|b| b.len())),
            Some(Ok(100))
        );
    }

    #[test]
    fn senders_learn_when_the_reader_is_gone() {
        let (sender, stream) = bounded(10, Bytes::new(), Arc::default());
        drop(stream);
        assert!(sender.is_closed());
        assert_eq!(sender.send(Bytes::from_static(b"a")), Err(Gone));
    }
}

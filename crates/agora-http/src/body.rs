//! What a request body may cost: its size, by the API it is for, and the time it may take to
//! arrive (a client that trickles a body holds a connection and a task: it is cut off).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};

use crate::ApiFamily;
use crate::family::MesosV1;

const MB: usize = 1 << 20;

/// The largest body a path takes. Agents register with everything they run and frameworks
/// launch thousands of tasks in one call, so those take the most.
pub(crate) fn limit(path: &str) -> usize {
    match ApiFamily::of(path) {
        ApiFamily::Marathon => 8 * MB,
        ApiFamily::Chronos | ApiFamily::Metronome | ApiFamily::Ui => MB,
        ApiFamily::Mesos => match MesosV1::of(path) {
            Some(MesosV1::Scheduler) => 64 * MB,
            Some(MesosV1::Executor) => 16 * MB,
            _ if path == "/internal/agent/subscribe" => 64 * MB,
            _ if path.starts_with("/internal/agent/") => 16 * MB,
            _ => MB,
        },
    }
}

/// `body`, failing once it is larger than `limit` bytes or still arriving after `deadline`.
pub(crate) fn bounded(body: Body, limit: usize, deadline: Duration) -> Body {
    let timed = Deadline {
        inner: body,
        sleep: Box::pin(tokio::time::sleep(deadline)),
        deadline,
    };
    Body::new(http_body_util::Limited::new(timed, limit))
}

struct Deadline {
    inner: Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    deadline: Duration,
}

#[derive(Debug)]
struct TooSlow(Duration);

impl std::fmt::Display for TooSlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body did not arrive within {} s",
            self.0.as_secs()
        )
    }
}

impl std::error::Error for TooSlow {}

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(TooSlow(self.deadline)))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn apis_that_take_much_get_room_for_it() {
        assert_eq!(limit("/internal/agent/subscribe"), 64 * MB);
        assert_eq!(limit("/api/v1/scheduler"), 64 * MB);
        assert_eq!(limit("/internal/agent/statuses"), 16 * MB);
        assert_eq!(limit("/api/v1"), MB);
        assert_eq!(limit("/v2/groups"), 8 * MB);
        assert_eq!(limit("/scheduler/iso8601"), MB);
    }

    #[tokio::test]
    async fn a_body_past_its_size_or_deadline_fails() {
        let big = bounded(Body::from(vec![0u8; 100]), 10, Duration::from_secs(5));
        assert!(big.collect().await.is_err());
        let fits = bounded(Body::from(vec![0u8; 10]), 10, Duration::from_secs(5));
        assert_eq!(
            fits.collect().await.map(|b| b.to_bytes().len()).ok(),
            Some(10)
        );
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let trickle = Body::from_stream(tokio_stream_of(receiver));
        let slow = bounded(trickle, 100, Duration::from_millis(50));
        let _keep = sender;
        assert!(slow.collect().await.is_err(), "never finished: cut off");
    }

    fn tokio_stream_of(
        receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
    }
}

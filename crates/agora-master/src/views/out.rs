//! A JSON document written piece by piece: into memory, or in chunks to a response body as it
//! is rendered, so that a state of 100,000 tasks is never whole in memory and its first bytes
//! leave at once.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use agora_api::scheduler::ascii_json;

/// A chunk is sent once this much is written.
const CHUNK: usize = 64 * 1024;

/// A reader who takes no chunk for this long is given up on (the rendering thread and what the
/// view holds are freed).
const STALLED_READER: Duration = Duration::from_secs(60);

/// The reader went away (or stopped reading): stop rendering.
#[derive(Debug)]
pub(crate) struct Gone;

pub(crate) type Written = Result<(), Gone>;

/// Where chunks go: a bounded channel to the response body, waited on from a blocking thread.
struct Sink {
    chunks: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
}

pub(crate) struct Out {
    buffer: Vec<u8>,
    sink: Option<Sink>,
}

impl Out {
    /// A document kept whole in memory ([`Out::into_bytes`]).
    pub fn memory() -> Out {
        Out {
            buffer: Vec::new(),
            sink: None,
        }
    }

    /// A document sent as it is written; `runtime` is the runtime the body is read on (this
    /// writer must run outside it, e.g. in `spawn_blocking`).
    pub fn streaming(chunks: mpsc::Sender<Bytes>, runtime: tokio::runtime::Handle) -> Out {
        Out {
            buffer: Vec::with_capacity(CHUNK + CHUNK / 4),
            sink: Some(Sink { chunks, runtime }),
        }
    }

    pub fn raw(&mut self, text: &str) -> Written {
        self.buffer.extend_from_slice(text.as_bytes());
        self.maybe_send()
    }

    /// A value as the APIs write JSON (compact, non-ASCII escaped).
    pub fn value<T: Serialize>(&mut self, value: &T) -> Written {
        self.buffer.extend_from_slice(&ascii_json(value));
        self.maybe_send()
    }

    /// `"key":`, after a comma unless it is an object's first member.
    pub fn key(&mut self, key: &str, first: bool) -> Written {
        if !first {
            self.buffer.push(b',');
        }
        self.value(&key)?;
        self.raw(":")
    }

    /// The members of `object` without its braces; more can follow (`first` = false).
    pub fn members(&mut self, object: &serde_json::Map<String, Value>) -> Written {
        for (index, (key, value)) in object.iter().enumerate() {
            self.key(key, index == 0)?;
            self.value(value)?;
        }
        Ok(())
    }

    /// `[a,b,…]`, each item written by `each`.
    pub fn array<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Out, T) -> Written,
    ) -> Written {
        self.raw("[")?;
        for (index, item) in items.into_iter().enumerate() {
            if index > 0 {
                self.raw(",")?;
            }
            each(self, item)?;
        }
        self.raw("]")
    }

    /// Sends what is left.
    pub fn finish(mut self) -> Written {
        self.send()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buffer
    }

    fn maybe_send(&mut self) -> Written {
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Written {
        let Some(sink) = &self.sink else {
            return Ok(());
        };
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK + CHUNK / 4),
        ));
        match sink.runtime.block_on(tokio::time::timeout(
            STALLED_READER,
            sink.chunks.send(chunk),
        )) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_document_arrives_in_bounded_chunks_and_whole() {
        let (sender, mut receiver) = mpsc::channel(2);
        let runtime = tokio::runtime::Handle::current();
        let writer = tokio::task::spawn_blocking(move || {
            let mut out = Out::streaming(sender, runtime);
            out.array(0..50_000, |out, n| {
                out.value(&json!({"n": n, "name": "grüße"}))
            })?;
            out.finish()
        });
        let mut chunks = 0;
        let mut document = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            assert!(
                chunk.len() < CHUNK + 1024,
                "a chunk of {} bytes",
                chunk.len()
            );
            chunks += 1;
            document.extend_from_slice(&chunk);
        }
        writer.await.unwrap().unwrap();
        assert!(chunks > 10, "{chunks} chunks");
        assert!(document.is_ascii());
        let items: Vec<Value> = serde_json::from_slice(&document).unwrap();
        assert_eq!(items.len(), 50_000);
        assert_eq!(items[49_999], json!({"n": 49_999, "name": "grüße"}));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rendering_stops_when_the_reader_goes_away() {
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let runtime = tokio::runtime::Handle::current();
        // Endless: only the reader's going ends it.
        let written = tokio::task::spawn_blocking(move || {
            let mut out = Out::streaming(sender, runtime);
            out.array(0u64.., |out, n| out.value(&n))
        })
        .await
        .unwrap();
        assert!(written.is_err());
    }

    #[test]
    fn members_and_keys_make_one_object() {
        let mut out = Out::memory();
        let head = json!({"a": 1, "b": [true]});
        out.raw("{").unwrap();
        if let Value::Object(head) = &head {
            out.members(head).unwrap();
        }
        out.key("c", false).unwrap();
        out.array(["x", "y"], |out, s| out.value(&s)).unwrap();
        out.raw("}").unwrap();
        let value: Value = serde_json::from_slice(&out.into_bytes()).unwrap();
        assert_eq!(value, json!({"a": 1, "b": [true], "c": ["x", "y"]}));
    }
}

//! Server-Sent Events, as the services API's `/v2/events` sends them: one parser for every
//! follower (the client's stream, discovery, tests).

use serde_json::Value;

/// One event: its type (`event:`, else the data's `eventType`, else `message`) and its data
/// (JSON, or the text when it is not).
#[derive(Debug, Clone)]
pub struct ServiceEvent {
    pub kind: String,
    pub data: Value,
}

/// Server-Sent Events framing: lines `event:` and `data:` until an empty line; comments
/// (keep-alives) skipped; data that is not JSON kept as a string.
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    kind: String,
    data: String,
}

impl SseParser {
    /// Takes the next bytes of the stream; returns the events they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<ServiceEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut events = Vec::new();
        // Lines are read where they lie and the buffer shortened once: a chunk of many
        // events (a deployment's burst) must not move what follows for every line.
        let mut start = 0;
        while let Some(length) = self.buffer[start..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&self.buffer[start..start + length]);
            let line = line.trim_end_matches('\r');
            start += length + 1;
            if line.is_empty() {
                if !self.data.is_empty() || !self.kind.is_empty() {
                    let data = std::mem::take(&mut self.data);
                    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    let kind = std::mem::take(&mut self.kind);
                    let kind = if kind.is_empty() {
                        data["eventType"].as_str().unwrap_or("message").to_owned()
                    } else {
                        kind
                    };
                    events.push(ServiceEvent { kind, data });
                }
            } else if let Some(value) = line.strip_prefix("event:") {
                self.kind = value.trim_start().to_owned();
            } else if let Some(value) = line.strip_prefix("data:") {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value.strip_prefix(' ').unwrap_or(value));
            }
        }
        self.buffer.drain(..start);
        events
    }
}

#[cfg(test)]
mod tests {
    use super::SseParser;
    use serde_json::Value;

    #[test]
    fn events_split_across_chunks() {
        let mut parser = SseParser::default();
        assert!(
            parser
                .push(b": keep-alive\n\nevent: deployment_su")
                .is_empty()
        );
        let events =
            parser.push(b"ccess\ndata: {\"id\":\"d1\"}\r\n\r\ndata: {\"eventType\":\"x\"}\n\n");
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "deployment_success");
        assert_eq!(events[0].data["id"], "d1");
        assert_eq!(events[1].kind, "x");
    }

    #[test]
    fn keep_alives_are_skipped_and_data_that_is_not_json_is_kept_as_text() {
        let mut parser = SseParser::default();
        let events = parser.push(
            b"event: status_update_event\ndata: {\"taskId\": \"a\"}\n\n: keep-alive\n\n\
              data: {\"eventType\": \"api_post_event\"}\r\n\r\nevent: x\ndata: {",
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].kind, "status_update_event");
        assert_eq!(events[0].data["taskId"], "a");
        assert_eq!(events[1].kind, "api_post_event");
        let events = parser.push(b"\ndata: two lines\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "x");
        assert_eq!(events[0].data, Value::String("{\ntwo lines".into()));
    }
}

//! RecordIO framing (`<decimal length>\n<bytes>`), as every Mesos event stream uses it.

use bytes::{Buf, Bytes, BytesMut};

use crate::ApiError;

/// Frames one record.
pub fn encode(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 12);
    out.extend_from_slice(record.len().to_string().as_bytes());
    out.extend_from_slice(b"\n");
    out.extend_from_slice(record);
    out.freeze()
}

/// Incremental decoder: feed bytes as they arrive, take complete records out.
#[derive(Debug, Default)]
pub struct Decoder {
    buffer: BytesMut,
}

/// Longest record accepted (a guard against a corrupt length eating all memory).
pub const MAX_RECORD_BYTES: usize = 256 * 1024 * 1024;

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ApiError> {
        let Some(newline) = self.buffer.iter().position(|&b| b == b'\n') else {
            if self.buffer.len() > 20 {
                return Err(ApiError::RecordIo("length prefix too long"));
            }
            return Ok(None);
        };
        let digits = &self.buffer[..newline];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || digits.len() > 20 {
            return Err(ApiError::RecordIo("length prefix is not a decimal number"));
        }
        let length: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or(ApiError::RecordIo("length prefix out of range"))?;
        if length > MAX_RECORD_BYTES {
            return Err(ApiError::RecordIo("record too large"));
        }
        if self.buffer.len() < newline + 1 + length {
            return Ok(None);
        }
        self.buffer.advance(newline + 1);
        Ok(Some(self.buffer.split_to(length).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_and_decodes_across_chunk_boundaries() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&encode(br#"{"type":"SUBSCRIBED"}"#));
        wire.extend_from_slice(&encode(br#"{"type":"HEARTBEAT"}"#));
        assert!(wire.starts_with(b"21\n{\"type\":\"SUBSCRIBED\"}20\n"));
        let mut decoder = Decoder::new();
        let mut records = Vec::new();
        for byte in wire {
            decoder.feed(&[byte]);
            while let Some(record) = decoder.next_record().unwrap() {
                records.push(record);
            }
        }
        assert_eq!(records.len(), 2);
        assert_eq!(&records[1][..], br#"{"type":"HEARTBEAT"}"#);
    }

    proptest! {
        #[test]
        fn garbage_never_panics(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut decoder = Decoder::new();
            for chunk in chunks {
                decoder.feed(&chunk);
                while let Ok(Some(_)) = decoder.next_record() {}
            }
        }

        #[test]
        fn round_trips(records in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..100), 0..10)) {
            let mut decoder = Decoder::new();
            for record in &records {
                decoder.feed(&encode(record));
            }
            for record in &records {
                let decoded = decoder.next_record();
                prop_assert_eq!(decoded.ok().flatten().map(|b| b.to_vec()), Some(record.clone()));
            }
        }
    }
}

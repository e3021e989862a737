//! Where delivered batches go. One private implementation per file, all behind [`Sink`].

mod exec;
mod null;
mod stdout;

pub use exec::ExecSink;
pub use null::NullSink;
pub use stdout::StdoutSink;

use std::io::Write;

use crate::client::Hit;
use crate::error::Result;

/// A page of one shard's events in `_seq_no` order, ready to be delivered.
#[derive(Debug)]
pub struct Batch {
    pub group: String,
    pub index: String,
    pub index_uuid: String,
    pub shard: u32,
    pub events: Vec<Hit>,
    /// The position committed once the batch is accepted: the last event's `_seq_no`, or the
    /// snapshot checkpoint when the batch exhausts the shard's range.
    pub commit_to: i64,
}

impl Batch {
    pub fn first_seq_no(&self) -> Option<i64> {
        self.events.first().map(|e| e.seq_no)
    }

    pub fn last_seq_no(&self) -> Option<i64> {
        self.events.last().map(|e| e.seq_no)
    }

    /// Writes one NDJSON envelope line per event (DESIGN.md §6); `source` is copied verbatim.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        let index = json_string(&self.index);
        let uuid = json_string(&self.index_uuid);
        for e in &self.events {
            out.extend_from_slice(b"{\"index\":");
            out.extend_from_slice(index.as_bytes());
            out.extend_from_slice(b",\"index_uuid\":");
            out.extend_from_slice(uuid.as_bytes());
            let _ = write!(out, ",\"shard\":{},\"id\":", self.shard);
            out.extend_from_slice(json_string(&e.id).as_bytes());
            let _ = write!(
                out,
                ",\"seq_no\":{},\"primary_term\":{},\"source\":",
                e.seq_no, e.primary_term
            );
            if let Some(source) = &e.source {
                out.extend_from_slice(source.get().as_bytes());
            } else {
                out.extend_from_slice(b"null");
            }
            out.extend_from_slice(b"}\n");
        }
    }
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// A destination for batches. `deliver` returns only once the batch is durable on the other
/// side (flushed, accepted by the child process): only then is it committed.
pub trait Sink {
    fn deliver(&mut self, batch: &Batch) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    #[test]
    fn envelope_passes_source_bytes_through() {
        let raw = r#"{"b": 1.50, "a":"x"}"#;
        let batch = Batch {
            group: "g".into(),
            index: "events".into(),
            index_uuid: "u\"1".into(),
            shard: 3,
            events: vec![Hit {
                id: "id-1".into(),
                seq_no: 7,
                primary_term: 2,
                source: Some(RawValue::from_string(raw.into()).unwrap()),
                routing: None,
            }],
            commit_to: 7,
        };
        let mut out = Vec::new();
        batch.write_ndjson(&mut out);
        let line = String::from_utf8(out).unwrap();
        assert_eq!(
            line,
            "{\"index\":\"events\",\"index_uuid\":\"u\\\"1\",\"shard\":3,\"id\":\"id-1\",\
             \"seq_no\":7,\"primary_term\":2,\"source\":{\"b\": 1.50, \"a\":\"x\"}}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
        assert_eq!(parsed["source"]["a"], "x");
    }
}

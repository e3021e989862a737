//! `--sink stdout`: NDJSON envelopes on standard output, flushed before the commit.

use std::io::Write;

use super::{Batch, Sink};
use crate::error::{Error, Result};

/// Writes each batch to a writer (standard output by default) and flushes it.
pub struct StdoutSink<W: Write = std::io::Stdout> {
    out: W,
    buffer: Vec<u8>,
}

impl StdoutSink<std::io::Stdout> {
    pub fn new() -> Self {
        StdoutSink::with_writer(std::io::stdout())
    }
}

impl Default for StdoutSink<std::io::Stdout> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W: Write> StdoutSink<W> {
    pub fn with_writer(out: W) -> Self {
        StdoutSink {
            out,
            buffer: Vec::with_capacity(1 << 20),
        }
    }
}

impl<W: Write> Sink for StdoutSink<W> {
    fn deliver(&mut self, batch: &Batch) -> Result<()> {
        self.buffer.clear();
        batch.write_ndjson(&mut self.buffer);
        self.out
            .write_all(&self.buffer)
            .and_then(|_| self.out.flush())
            .map_err(|e| {
                Error::Sink(format!(
                    "writing shard {} events {}..{} to standard output: {e}",
                    batch.shard,
                    batch.first_seq_no().unwrap_or(-1),
                    batch.last_seq_no().unwrap_or(-1)
                ))
            })
    }
}

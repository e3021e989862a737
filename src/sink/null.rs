//! `--sink null`: accepts and discards every batch (for benchmarks and for skipping ahead).

use super::{Batch, Sink};
use crate::error::Result;

/// Discards batches. The envelope is still built, so a benchmark measures the real work.
#[derive(Default)]
pub struct NullSink {
    buffer: Vec<u8>,
    /// Bytes that would have been written, so the work cannot be optimised away.
    pub bytes: u64,
}

impl Sink for NullSink {
    fn deliver(&mut self, batch: &Batch) -> Result<()> {
        self.buffer.clear();
        batch.write_ndjson(&mut self.buffer);
        self.bytes += self.buffer.len() as u64;
        Ok(())
    }
}

//! The stop request raised by SIGINT/SIGTERM and read between batches and between retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A shared "please stop" flag, raised by the signal handler and read between batches.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicUsize>);

impl StopFlag {
    pub fn new() -> StopFlag {
        StopFlag::default()
    }

    /// Raises the flag; returns how many times it has been raised, this one included.
    pub fn raise(&self) -> usize {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst) > 0
    }
}

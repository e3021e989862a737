//! A small non-cryptographic generator for retry jitter and run ids (no `rand` dependency).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    (nanos ^ (u64::from(std::process::id()) << 32) ^ addr.rotate_left(17)) | 1
}

/// Next value of a xorshift64* sequence.
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A value in `0..n` (0 when `n` is 0).
pub fn below(n: u64) -> u64 {
    if n == 0 { 0 } else { next_u64() % n }
}

/// A run id: 16 hex digits, unique enough to tell runs apart in audit fields.
pub fn run_id() -> String {
    format!("{:016x}", next_u64())
}

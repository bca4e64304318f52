//! Simulated monotonic clock: real time since start plus a manual offset (`advance`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gmhsm_platform::Clock;

pub struct SimClock {
    start: Instant,
    offset_ms: AtomicU64,
}

impl Default for SimClock {
    fn default() -> Self {
        Self { start: Instant::now(), offset_ms: AtomicU64::new(0) }
    }
}

impl SimClock {
    pub fn advance(&self, ms: u64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64 + self.offset_ms.load(Ordering::Relaxed)
    }
}

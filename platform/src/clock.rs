//! Time as the card sees it: a monotonic millisecond counter.

/// A monotonic clock. Simulated clocks can be advanced by hand, so tests are deterministic.
pub trait Clock {
    /// Milliseconds since an arbitrary origin; never goes backwards.
    fn now_ms(&self) -> u64;
}

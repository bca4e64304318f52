//! The entropy pipeline's front half: raw noise samples, SP 800-90B continuous health tests
//! (repetition count and adaptive proportion, §4.4), the start-up test, and SM3 conditioning.
//!
//! Cutoffs use α = 2^-20 and the source's claimed min-entropy per sample `H`. The adaptive
//! proportion window is 1024 samples (8-bit samples). Any failure is latched: the source stays
//! failed until the card reboots, and the card generates nothing from it.

pub mod stats;

use gmhsm_platform::NoiseSource;
use sm3::{Digest, Sm3};
use zeroize::Zeroize;

/// Samples tested at start-up before any output (SP 800-90B §4.3 asks for at least 1024).
pub const STARTUP_SAMPLES: usize = 1024;
/// Adaptive proportion test window.
pub const APT_WINDOW: usize = 1024;

/// Repetition-count cutoff `1 + ⌈20 / H⌉` and adaptive-proportion cutoff
/// `1 + CRITBINOM(1024, 2^-H, 1 - 2^-20)` for H = 1..=8.
const CUTOFFS: [(u16, u16); 8] = [(21, 589), (11, 325), (8, 182), (6, 105), (5, 63), (5, 39), (4, 26), (4, 18)];

/// Why the entropy source is unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntropyError {
    /// One value repeated `cutoff` times in a row: a stuck source.
    RepetitionCount,
    /// One value filled too much of a 1024-sample window: a biased source.
    AdaptiveProportion,
    /// The noise source device did not deliver samples.
    SourceUnavailable,
    /// The GM/T 0005-style statistical tests failed (power-up or periodic).
    Statistical,
}

impl EntropyError {
    pub fn describe(&self) -> &'static str {
        match self {
            EntropyError::RepetitionCount => "entropy: repetition count test failed (stuck source)",
            EntropyError::AdaptiveProportion => "entropy: adaptive proportion test failed (biased source)",
            EntropyError::SourceUnavailable => "entropy: noise source unavailable",
            EntropyError::Statistical => "entropy: statistical test failed (poker/monobit/runs)",
        }
    }
}

/// Continuous health tests over a stream of 8-bit samples.
#[derive(Debug, Clone)]
pub struct HealthTests {
    rct_cutoff: u16,
    apt_cutoff: u16,
    last: Option<u8>,
    run: u16,
    apt_ref: u8,
    apt_count: u16,
    apt_seen: usize,
    failed: Option<EntropyError>,
}

impl HealthTests {
    /// Tests for a source claiming `h` bits of min-entropy per sample (clamped to 1..=8).
    pub fn new(h: u8) -> Self {
        let (rct_cutoff, apt_cutoff) = CUTOFFS[(h.clamp(1, 8) - 1) as usize];
        Self { rct_cutoff, apt_cutoff, last: None, run: 0, apt_ref: 0, apt_count: 0, apt_seen: 0, failed: None }
    }

    /// Feed samples; returns the first failure (latched).
    pub fn feed(&mut self, samples: &[u8]) -> Result<(), EntropyError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        for &s in samples {
            // Repetition count test.
            if self.last == Some(s) {
                self.run += 1;
                if self.run >= self.rct_cutoff {
                    self.failed = Some(EntropyError::RepetitionCount);
                }
            } else {
                self.last = Some(s);
                self.run = 1;
            }
            // Adaptive proportion test.
            if self.apt_seen == 0 {
                self.apt_ref = s;
                self.apt_count = 1;
            } else if s == self.apt_ref {
                self.apt_count += 1;
                if self.apt_count >= self.apt_cutoff {
                    self.failed = Some(EntropyError::AdaptiveProportion);
                }
            }
            self.apt_seen = (self.apt_seen + 1) % APT_WINDOW;
            if let Some(e) = self.failed {
                return Err(e);
            }
        }
        Ok(())
    }

    pub fn failure(&self) -> Option<EntropyError> {
        self.failed
    }
}

/// A noise source behind its health tests, delivering conditioned full-entropy seed material.
pub struct EntropySource<N: NoiseSource> {
    noise: N,
    health: HealthTests,
    h: u8,
    started: bool,
    stat_failed: bool,
}

/// Groups tested at power-up, and how many may fail.
const POWER_UP_GROUPS: usize = 20;
const POWER_UP_MAX_FAIL: usize = 3;
/// Groups tested at each reseed, and how many may fail.
const PERIODIC_GROUPS: usize = 5;
const PERIODIC_MAX_FAIL: usize = 2;

impl<N: NoiseSource> EntropySource<N> {
    pub fn new(noise: N) -> Self {
        let h = noise.min_entropy_bits().clamp(1, 8);
        Self { noise, health: HealthTests::new(h), h, started: false, stat_failed: false }
    }

    /// Run `groups` statistical groups (retried once); latch a failure.
    fn statistical(&mut self, groups: usize, max_fail: usize) -> Result<(), EntropyError> {
        let mut group = [0u8; stats::GROUP_BYTES];
        for _attempt in 0..2 {
            let mut failed = 0;
            for _ in 0..groups {
                self.pull(&mut group)?;
                if !stats::group_passes(&group) {
                    failed += 1;
                }
            }
            if failed <= max_fail {
                group.zeroize();
                return Ok(());
            }
        }
        group.zeroize();
        self.stat_failed = true;
        Err(EntropyError::Statistical)
    }

    /// The periodic statistical test (run by the RNG at each reseed).
    pub fn periodic_test(&mut self) -> Result<(), EntropyError> {
        self.statistical(PERIODIC_GROUPS, PERIODIC_MAX_FAIL)
    }

    fn pull(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        if self.stat_failed {
            return Err(EntropyError::Statistical);
        }
        if let Some(e) = self.health.failure() {
            return Err(e);
        }
        self.noise.fill_raw(buf).map_err(|_| EntropyError::SourceUnavailable)?;
        self.health.feed(buf)
    }

    /// Start-up test: 1024 samples through the health tests, then the power-up statistical
    /// test; all samples discarded.
    pub fn startup(&mut self) -> Result<(), EntropyError> {
        let mut buf = [0u8; STARTUP_SAMPLES];
        self.pull(&mut buf)?;
        buf.zeroize();
        self.statistical(POWER_UP_GROUPS, POWER_UP_MAX_FAIL)?;
        self.started = true;
        Ok(())
    }

    /// Fill `out` with conditioned seed material: each 32-byte block is SM3 over enough raw
    /// samples for 256 + 64 bits of min-entropy (SP 800-90B §3.1.5.1: n_in ≥ n_out + 64).
    pub fn seed(&mut self, out: &mut [u8]) -> Result<(), EntropyError> {
        if !self.started {
            self.startup()?;
        }
        let per_block = 320_usize.div_ceil(self.h as usize);
        let mut raw = [0u8; 320];
        for chunk in out.chunks_mut(32) {
            self.pull(&mut raw[..per_block])?;
            let d = Sm3::new().chain_update(&raw[..per_block]).finalize();
            chunk.copy_from_slice(&d[..chunk.len()]);
        }
        raw.zeroize();
        Ok(())
    }

    pub fn failure(&self) -> Option<EntropyError> {
        if self.stat_failed {
            return Some(EntropyError::Statistical);
        }
        self.health.failure()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_source_fails_rct() {
        let mut t = HealthTests::new(4);
        assert_eq!(t.feed(&[1, 2, 3, 4, 5]), Ok(()));
        assert_eq!(t.feed(&[9; 5]), Ok(()));
        assert_eq!(t.feed(&[9]), Err(EntropyError::RepetitionCount));
        // Latched.
        assert_eq!(t.feed(&[1, 2, 3]), Err(EntropyError::RepetitionCount));
    }

    #[test]
    fn biased_source_fails_apt_but_not_rct() {
        let mut t = HealthTests::new(4);
        // Value 7 on every other sample: never 6 in a row, but 512 of 1024.
        let s: alloc::vec::Vec<u8> = (0..1024u32).map(|i| if i % 2 == 0 { 7 } else { (i % 251) as u8 }).collect();
        assert_eq!(t.feed(&s), Err(EntropyError::AdaptiveProportion));
    }

    #[test]
    fn uniform_source_passes() {
        let mut t = HealthTests::new(4);
        let mut x: u32 = 0x1234_5678;
        let s: alloc::vec::Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        assert_eq!(t.feed(&s), Ok(()));
    }
}

//! The physical noise source: raw, unconditioned samples.

/// Why the noise source produced nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseError {
    /// The device did not answer; no samples were written.
    Unavailable,
}

/// A physical noise source delivering raw 8-bit samples. The firmware health-tests and
/// conditions them; the source itself must not whiten or post-process.
pub trait NoiseSource {
    /// Claimed min-entropy per sample in bits (1..=8), from the source's entropy assessment.
    /// The health-test cutoffs (SP 800-90B §4.4) are derived from it.
    fn min_entropy_bits(&self) -> u8;

    /// Fill `out` with raw samples, one per byte.
    fn fill_raw(&mut self, out: &mut [u8]) -> Result<(), NoiseError>;
}

//! GM/T 0005-style statistical tests on raw noise samples: monobit frequency, poker (m = 4)
//! and runs, each at significance α = 0.01 over groups of 10,000 bits, as GM/T 0062 asks of
//! class-E (server) devices at power-up and periodically.
//!
//! Critical values are precomputed so no `erfc` or square root is needed at run time:
//! erfc(x) < 0.01 ⇔ x > 1.82139; √(2n) = 141.421 for n = 10,000; χ²(15) at 0.01 = 30.578.
//!
//! Decision rules (false-alarm rates for a perfect source, per-group failure ≈ 0.03):
//! power-up tests 20 groups and fails when 4 or more fail (p ≈ 0.0027), retried once;
//! the periodic test takes 5 groups and fails when 3 or more fail (p ≈ 2.6e-4), retried once.

/// Bits per group.
pub const GROUP_BITS: usize = 10_000;
/// Bytes per group.
pub const GROUP_BYTES: usize = GROUP_BITS / 8;

const ERFC_CRIT: f64 = 1.82139;
const SQRT_2N: f64 = 141.421_356;
const CHI2_15_CRIT: f64 = 30.578;

/// Monobit frequency: |Σ(2b − 1)| / √(2n) must not exceed the critical value.
pub fn monobit(group: &[u8]) -> bool {
    let ones: u32 = group.iter().map(|b| b.count_ones()).sum();
    let s = 2 * ones as i64 - GROUP_BITS as i64;
    (s.unsigned_abs() as f64) / SQRT_2N <= ERFC_CRIT
}

/// Poker test with 4-bit patterns: V = 16/N · Σ nᵢ² − N against χ²(15).
pub fn poker(group: &[u8]) -> bool {
    let mut counts = [0u32; 16];
    for b in group {
        counts[(b >> 4) as usize] += 1;
        counts[(b & 0xf) as usize] += 1;
    }
    let n = (group.len() * 2) as f64;
    let sum_sq: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    16.0 / n * sum_sq - n <= CHI2_15_CRIT
}

/// Runs test: the number of runs must be close to 2nπ(1 − π).
pub fn runs(group: &[u8]) -> bool {
    let n = GROUP_BITS as f64;
    let ones: u32 = group.iter().map(|b| b.count_ones()).sum();
    let pi = ones as f64 / n;
    // Prerequisite frequency check: |π − ½| < 2/√n.
    if (pi - 0.5).abs() >= 0.02 {
        return false;
    }
    let mut runs = 1u32;
    let mut prev = group[0] >> 7 & 1;
    for (i, byte) in group.iter().enumerate() {
        for bit in (0..8).rev() {
            if i == 0 && bit == 7 {
                continue;
            }
            let b = byte >> bit & 1;
            if b != prev {
                runs += 1;
                prev = b;
            }
        }
    }
    let expect = 2.0 * n * pi * (1.0 - pi);
    let dev = (runs as f64 - expect).abs();
    dev <= ERFC_CRIT * 2.0 * SQRT_2N * pi * (1.0 - pi)
}

/// One group passes when all three tests pass.
pub fn group_passes(group: &[u8]) -> bool {
    group.len() == GROUP_BYTES && monobit(group) && poker(group) && runs(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn xorshift(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn good_samples_pass_most_groups() {
        let data = xorshift(0x9e37_79b9_7f4a_7c15, GROUP_BYTES * 100);
        let failed = data.chunks(GROUP_BYTES).filter(|g| !group_passes(g)).count();
        assert!(failed <= 10, "{failed} of 100 good groups failed");
    }

    #[test]
    fn each_test_catches_its_defect() {
        let good = xorshift(42, GROUP_BYTES);
        assert!(group_passes(&good));
        // About 53 % ones: monobit fails.
        let mut biased = good.clone();
        for (i, b) in biased.iter_mut().enumerate() {
            if i % 4 == 0 {
                *b |= 0x81;
            }
        }
        assert!(!monobit(&biased));
        // Balanced but a nibble pattern dominates: poker fails, monobit passes.
        let mut pattern = good.clone();
        for (i, b) in pattern.iter_mut().enumerate() {
            if i % 3 == 0 {
                *b = 0x5a;
            }
        }
        assert!(!poker(&pattern));
        // Alternating bits: balanced, but far too many runs.
        let alternating = alloc::vec![0x55u8; GROUP_BYTES];
        assert!(monobit(&alternating));
        assert!(!runs(&alternating));
    }
}

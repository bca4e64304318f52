//! Shamir secret sharing over GF(2^8), byte-wise, constant-time: how the domain key is split
//! onto admin cards and put back together.
//!
//! Each byte of the secret is the constant term of its own random polynomial of degree
//! `k - 1` over GF(2^8) (AES polynomial x^8 + x^4 + x^3 + x + 1); share `i` holds the value of
//! every polynomial at its x-coordinate. Any `k` shares give the secret by Lagrange
//! interpolation at 0; any `k - 1` shares are uniformly distributed whatever the secret.
//!
//! Invariants and contracts:
//! * coefficients are drawn from the caller's `rand_core::TryCryptoRng` as raw bytes, so they
//!   are uniform over all 256 values, zero included (excluding zero is the `sharks` bias,
//!   RUSTSEC-2024-0398: it makes `k - 1` shares leak);
//! * x-coordinates are public, distinct and non-zero (x = 0 would be the secret itself);
//!   [`split`] uses 1..=n, [`combine`] rejects duplicate and zero x and fewer than `k` shares;
//! * field arithmetic has no tables and no branch or index that depends on a secret: multiply
//!   is a shift-and-xor over all 8 bits with masks, inversion a fixed addition chain (and
//!   inverses are only ever taken of public x differences);
//! * coefficients, shares and the recombined secret live in zeroizing buffers.
//!
//! **No integrity.** Sharing is not authenticated: a wrong, corrupted or malicious share
//! recombines to a wrong secret without any error here. The caller must check an AEAD tag or
//! MAC over the secret (the ceremonies store a tag computed under the recombined domain key,
//! and each share travels SM2-encrypted to the crypto card with its own AEAD) and refuse a
//! secret that does not verify.
//!
//! Crates considered (see FIELD-NOTES): `sharks` draws non-zero coefficients only (biased,
//! RUSTSEC-2024-0398), uses log/exp tables and is unmaintained; `blahaj` fixes the bias but
//! is still table-based (secret-dependent memory access); `vsss-rs` is branch-free and adds
//! Feldman/Pedersen verification, but had a bias bug in 4.0–5.2, pulls in a large generic
//! stack, and its 6.x line needs rand 0.10's newer traits throughout. What we need is about a
//! hundred lines of arithmetic whose every property above we can test here, so it is written
//! by hand.

use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

/// Why sharing or recombining failed. Nothing is returned on error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShamirError {
    /// `k < 2` or `k > n` (split), or `k < 2` (combine).
    BadThreshold,
    /// Fewer than `k` shares given to [`combine`].
    NotEnoughShares,
    /// A share has x = 0.
    ZeroX,
    /// Two shares have the same x.
    DuplicateX,
    /// Shares of different lengths, or an empty secret.
    BadLength,
    /// The random number generator failed; no shares were made.
    Rng,
}

/// One share: its public x-coordinate and the polynomials' values there.
#[derive(Clone)]
pub struct Share {
    pub x: u8,
    pub y: Zeroizing<Vec<u8>>,
}

impl core::fmt::Debug for Share {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Share {{ x: {}, {} bytes }}", self.x, self.y.len())
    }
}

/// GF(2^8) multiplication, constant-time: all 8 bits of `b` are visited, with masks.
pub fn gf_mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut r = 0u8;
    for i in 0..8 {
        let take = 0u8.wrapping_sub((b >> i) & 1);
        r ^= a & take;
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (0x1B & carry);
    }
    r
}

/// GF(2^8) inverse as `a^254` (fixed chain of squarings and multiplies); `gf_inv(0) = 0`.
pub fn gf_inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: a^2 · a^4 · … · a^128.
    let mut sq = gf_mul(a, a);
    let mut r = sq;
    for _ in 0..6 {
        sq = gf_mul(sq, sq);
        r = gf_mul(r, sq);
    }
    r
}

/// Split `secret` into `n` shares with x = 1..=n, any `k` of which recombine it.
pub fn split<R: TryCryptoRng + ?Sized>(secret: &[u8], k: u8, n: u8, rng: &mut R) -> Result<Vec<Share>, ShamirError> {
    if k < 2 || k > n {
        return Err(ShamirError::BadThreshold);
    }
    if secret.is_empty() {
        return Err(ShamirError::BadLength);
    }
    let len = secret.len();
    let degree = usize::from(k - 1);
    // coeffs[j * len + b] = coefficient of x^(j+1) of byte b's polynomial.
    let mut coeffs = Zeroizing::new(alloc::vec![0u8; degree * len]);
    rng.try_fill_bytes(&mut coeffs).map_err(|_| ShamirError::Rng)?;
    let mut shares = Vec::with_capacity(usize::from(n));
    for x in 1..=n {
        let mut y = Zeroizing::new(alloc::vec![0u8; len]);
        for (b, out) in y.iter_mut().enumerate() {
            // Horner: ((c_d x + c_{d-1}) x + …) x + secret.
            let mut acc = 0u8;
            for j in (0..degree).rev() {
                acc = gf_mul(acc, x) ^ coeffs[j * len + b];
            }
            *out = gf_mul(acc, x) ^ secret[b];
        }
        shares.push(Share { x, y });
    }
    Ok(shares)
}

/// Recombine the secret from the first `k` of `shares` (all of them are checked for zero and
/// duplicate x and equal length). See the module docs: the result is not authenticated.
pub fn combine(shares: &[Share], k: u8) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    if k < 2 {
        return Err(ShamirError::BadThreshold);
    }
    if shares.len() < usize::from(k) {
        return Err(ShamirError::NotEnoughShares);
    }
    let len = shares[0].y.len();
    if len == 0 {
        return Err(ShamirError::BadLength);
    }
    let mut seen = [false; 256];
    for s in shares {
        if s.x == 0 {
            return Err(ShamirError::ZeroX);
        }
        if core::mem::replace(&mut seen[usize::from(s.x)], true) {
            return Err(ShamirError::DuplicateX);
        }
        if s.y.len() != len {
            return Err(ShamirError::BadLength);
        }
    }
    let used = &shares[..usize::from(k)];
    let mut secret = Zeroizing::new(alloc::vec![0u8; len]);
    for (i, si) in used.iter().enumerate() {
        // Lagrange basis at 0: Π_{j≠i} x_j / (x_j − x_i); x values are public.
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, sj) in used.iter().enumerate() {
            if i != j {
                num = gf_mul(num, sj.x);
                den = gf_mul(den, sj.x ^ si.x);
            }
        }
        let basis = gf_mul(num, gf_inv(den));
        for (out, &y) in secret.iter_mut().zip(si.y.iter()) {
            *out ^= gf_mul(basis, y);
        }
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::convert::Infallible;

    /// SplitMix64: deterministic, good enough statistically for the tests.
    struct TestRng(u64);

    impl rand_core::TryRng for TestRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            Ok(z ^ (z >> 31))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for TestRng {}

    #[test]
    fn field_arithmetic() {
        assert_eq!(gf_mul(0x57, 0x83), 0xC1); // FIPS-197 §4.2
        assert_eq!(gf_mul(0x57, 0x13), 0xFE);
        assert_eq!(gf_inv(0), 0);
        for a in 1..=255u8 {
            assert_eq!(gf_mul(a, gf_inv(a)), 1, "a = {a}");
            assert_eq!(gf_mul(a, 1), a);
        }
    }

    #[test]
    fn every_k_subset_reconstructs() {
        let mut rng = TestRng(1);
        let secret: Vec<u8> = (0..32u8).map(|i| i.wrapping_mul(37) ^ 0xA5).collect();
        let shares = split(&secret, 3, 5, &mut rng).unwrap();
        assert_eq!(shares.iter().map(|s| s.x).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        let mut subsets = 0;
        for mask in 0u32..32 {
            if mask.count_ones() < 3 {
                continue;
            }
            let pick: Vec<Share> = (0..5).filter(|i| mask & (1 << i) != 0).map(|i| shares[i].clone()).collect();
            assert_eq!(&combine(&pick, 3).unwrap()[..], &secret[..], "mask {mask:05b}");
            // In reverse order too.
            let rev: Vec<Share> = pick.iter().rev().cloned().collect();
            assert_eq!(&combine(&rev, 3).unwrap()[..], &secret[..]);
            subsets += 1;
        }
        assert_eq!(subsets, 10 + 5 + 1);
        // Two shares are not enough, and recombining them "as if k = 2" gives garbage.
        assert_eq!(combine(&shares[..2], 3).unwrap_err(), ShamirError::NotEnoughShares);
        assert_ne!(&combine(&shares[..2], 2).unwrap()[..], &secret[..]);
    }

    fn chi_square(counts: &[u32; 256], total: u32) -> f64 {
        let e = f64::from(total) / 256.0;
        counts.iter().map(|&c| (f64::from(c) - e) * (f64::from(c) - e) / e).sum()
    }

    /// With k = 3, two shares' bytes are uniform and independent of the secret byte: their
    /// marginals and their xor pass a chi-square test (255 degrees of freedom; the 99.99 %
    /// quantile is about 346) for two different secrets. Excluding zero coefficients, as
    /// `sharks` does, fails this: with k = 2, y = s ^ a·x never equals s.
    #[test]
    fn k_minus_one_shares_leak_nothing() {
        const N: u32 = 256 * 400;
        for (seed, secret) in [(7u64, 0x00u8), (8, 0xFF), (9, 0x5A)] {
            let mut rng = TestRng(seed);
            let mut y1 = [0u32; 256];
            let mut y2 = [0u32; 256];
            let mut both = [0u32; 256];
            let mut one = [0u32; 256];
            for _ in 0..N {
                let s = split(&[secret], 3, 3, &mut rng).unwrap();
                y1[usize::from(s[0].y[0])] += 1;
                y2[usize::from(s[1].y[0])] += 1;
                both[usize::from(s[0].y[0] ^ s[1].y[0])] += 1;
                let s = split(&[secret], 2, 2, &mut rng).unwrap();
                one[usize::from(s[0].y[0])] += 1;
            }
            for (name, counts) in [("y1", &y1), ("y2", &y2), ("y1^y2", &both), ("k=2 y1", &one)] {
                let chi = chi_square(counts, N);
                assert!(chi < 346.0, "secret {secret:#04x}: {name} chi-square {chi}");
            }
            assert!(one[usize::from(secret)] > 0, "a share equal to the secret must be possible");
        }
    }

    #[test]
    fn rejects_bad_inputs() {
        let mut rng = TestRng(3);
        assert_eq!(split(b"s", 1, 3, &mut rng).unwrap_err(), ShamirError::BadThreshold);
        assert_eq!(split(b"s", 4, 3, &mut rng).unwrap_err(), ShamirError::BadThreshold);
        assert_eq!(split(b"", 2, 3, &mut rng).unwrap_err(), ShamirError::BadLength);
        let shares = split(b"secret", 2, 3, &mut rng).unwrap();
        let dup = [shares[0].clone(), shares[0].clone()];
        assert_eq!(combine(&dup, 2).unwrap_err(), ShamirError::DuplicateX);
        let mut zero = [shares[0].clone(), shares[1].clone()];
        zero[1].x = 0;
        assert_eq!(combine(&zero, 2).unwrap_err(), ShamirError::ZeroX);
        let mut short = [shares[0].clone(), shares[1].clone()];
        short[1].y.pop();
        assert_eq!(combine(&short, 2).unwrap_err(), ShamirError::BadLength);
        assert_eq!(combine(&shares, 1).unwrap_err(), ShamirError::BadThreshold);
        // A duplicate beyond the first k is still refused.
        let extra = [shares[0].clone(), shares[1].clone(), shares[1].clone()];
        assert_eq!(combine(&extra, 2).unwrap_err(), ShamirError::DuplicateX);
    }

    #[test]
    fn rng_failure_makes_no_shares() {
        struct Broken;
        #[derive(Debug)]
        struct Fail;
        impl core::fmt::Display for Fail {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("fail")
            }
        }
        impl core::error::Error for Fail {}
        impl rand_core::TryRng for Broken {
            type Error = Fail;
            fn try_next_u32(&mut self) -> Result<u32, Fail> {
                Err(Fail)
            }
            fn try_next_u64(&mut self) -> Result<u64, Fail> {
                Err(Fail)
            }
            fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Fail> {
                Err(Fail)
            }
        }
        impl rand_core::TryCryptoRng for Broken {}
        assert_eq!(split(b"s", 2, 2, &mut Broken).unwrap_err(), ShamirError::Rng);
    }
}

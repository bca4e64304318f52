//! A fixed-base table of multiples of the SM2 generator G (or of a public key), for \[k\]G
//! without doublings.
//!
//! The scalar is recoded into [`WINDOWS`] signed digits d_i in [−2^(W−1), 2^(W−1)] with
//! k = Σ d_i · 2^(W·i), and the table holds, for every window i, the affine points
//! j · 2^(W·i) · G for j = 1 … 2^(W−1). Then \[k\]G = Σ d_i · 2^(W·i) · G is [`WINDOWS`] mixed
//! additions and no doubling.
//!
//! Constant time ([`BaseTable::mul`]): the recoding is branch-free arithmetic; every lookup
//! reads all 2^(W−1) entries of its window and keeps one with `subtle` conditional
//! selection (the window index is public, the digit is not); negation is a conditional
//! select; the additions are the crate's complete formulas. [`BaseTable::mul_vartime`] is
//! for public scalars only (signature verification).

use ::sm2::elliptic_curve::BatchNormalize;
use ::sm2::elliptic_curve::ff::PrimeField;
use ::sm2::elliptic_curve::group::Group;
use ::sm2::elliptic_curve::point::AffineCoordinates;
use ::sm2::elliptic_curve::subtle::Choice;
use ::sm2::{AffinePoint, ProjectivePoint, Scalar};
use alloc::vec::Vec;
use zeroize::Zeroize;

use super::fe::Fe;
use super::point::{Affine, Jacobian, add_affine_ct_lanes, select_signed};

/// Scalars multiplied side by side by [`BaseTable::mul_many`].
pub const LANES: usize = 4;

/// Bits per window.
pub const W: usize = 6;
/// Entries per window: the multiples 1 … 2^(W−1).
pub const ENTRIES: usize = 1 << (W - 1);
/// Windows: enough signed digits for a 256-bit scalar and the final carry.
pub const WINDOWS: usize = 256 / W + 1;

/// The table, `WINDOWS · ENTRIES` affine points (88 KiB for W = 6). Built once per card
/// (a few milliseconds, with the crate's arithmetic) and shared behind an `Arc` by every
/// signer and the nonce pool.
pub struct BaseTable {
    /// `points[i * ENTRIES + j]` = (j + 1) · 2^(W·i) · G.
    points: Vec<Affine>,
    /// The same table for the AVX-512 IFMA kernel, which multiplies eight scalars at once
    /// (`gmhsm-sm2-ifma`), when the CPU has it; only for G (the nonce pool's batches).
    ifma: Option<gmhsm_ec_ifma::CombTable<gmhsm_ec_ifma::Sm2>>,
}

impl core::fmt::Debug for BaseTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BaseTable {{ W: {W}, windows: {WINDOWS} }}")
    }
}

impl Default for BaseTable {
    fn default() -> Self {
        Self::new()
    }
}

/// A crate affine point (not the identity) in our representation.
pub(super) fn from_crate(p: &AffinePoint) -> Affine {
    let coord = |b: ::sm2::FieldBytes| {
        let bytes: [u8; 32] = b.into();
        // Coordinates of a crate point are canonical, below p.
        Fe::from_bytes(&bytes).unwrap_or(Fe::ZERO)
    };
    [coord(p.x()), coord(p.y())]
}

/// Our affine point as the crate's (for fallbacks through the crate's arithmetic).
pub(super) fn to_crate(p: &Affine) -> Option<AffinePoint> {
    let mut sec1 = [0u8; 65];
    sec1[0] = 4;
    sec1[1..33].copy_from_slice(&p[0].to_bytes());
    sec1[33..].copy_from_slice(&p[1].to_bytes());
    ::sm2::PublicKey::from_sec1_bytes(&sec1).ok().map(|k| *k.as_affine())
}

impl BaseTable {
    /// The table of G: `WINDOWS · ENTRIES` projective additions, `WINDOWS · W` doublings
    /// and one field inversion (batch normalization).
    ///
    /// On a CPU with AVX-512 IFMA it also holds the table in the form of the eight-lane
    /// kernel, which [`BaseTable::mul_many`] then uses.
    pub fn new() -> Self {
        let mut t = Self::build(ProjectivePoint::GENERATOR);
        t.ifma = gmhsm_ec_ifma::CombTable::new(WINDOWS, ENTRIES, |i, j| {
            let p = &t.points[i * ENTRIES + j];
            (p[0].to_bytes(), p[1].to_bytes())
        });
        t
    }

    /// The table of G without the IFMA form: [`BaseTable::mul_many`] runs four lanes of the
    /// portable arithmetic (to compare the two paths on one machine).
    pub fn new_portable() -> Self {
        Self::build(ProjectivePoint::GENERATOR)
    }

    /// Whether [`BaseTable::mul_many`] runs on the AVX-512 IFMA kernel.
    pub fn uses_ifma(&self) -> bool {
        self.ifma.is_some()
    }

    /// The same table for another point (a public key, for [`super::FastVerifier`]).
    pub fn for_point(point: &AffinePoint) -> Self {
        Self::build(ProjectivePoint::from(point))
    }

    fn build(base: ProjectivePoint) -> Self {
        let projective = comb_multiples(base);
        let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&projective[..]);
        BaseTable { points: affine.iter().map(from_crate).collect(), ifma: None }
    }

    fn window(&self, i: usize) -> &[Affine] {
        &self.points[i * ENTRIES..(i + 1) * ENTRIES]
    }

    /// \[k\]G in constant time (in k), in Jacobian coordinates.
    ///
    /// The mixed addition formula is wrong only when it adds a point to itself: when the
    /// sum s of the lower windows (an integer, |s| < 0.51 · 2^(W·i)) is ≡ d_i · 2^(W·i)
    /// (mod n). Below the top window both are far smaller than n, so they would be equal,
    /// which |s| < 2^(W·i) ≤ |d_i| · 2^(W·i) excludes. In the top window (W·i = 252) the
    /// difference would be ±n, so k = s + d·2^252 = 2d·2^252 ∓ n; 0 ≤ k < n then needs
    /// 8 ≤ d ≤ 15 (−n) or −7 ≤ d ≤ −1 (+n), and either way |s| > 2^251, a contradiction.
    /// The case is still detected in constant time and answered with the crate's
    /// constant-time arithmetic, so that a flaw in this argument costs speed, not
    /// correctness.
    pub(crate) fn mul(&self, k: &Scalar) -> Jacobian {
        let mut digits = recode(k);
        let mut acc = Jacobian::IDENTITY;
        let mut bad = Choice::from(0);
        for (i, &d) in digits.iter().enumerate() {
            let (q, zero) = self.select(i, d);
            let (sum, same) = acc.add_affine_ct(&q, zero);
            acc = sum;
            bad |= same;
        }
        digits.zeroize();
        if bool::from(bad) {
            let p = (ProjectivePoint::GENERATOR * k).to_affine();
            return Jacobian::from_affine(&from_crate(&p));
        }
        acc
    }

    /// \[k\]G for many secret k at once, in constant time: the same computation as
    /// [`BaseTable::mul`], run [`LANES`] scalars side by side so that the processor overlaps
    /// their independent field operations (a nonce-pool refill is such a batch). The padding
    /// lanes of a short last group multiply 1 and are dropped.
    ///
    /// With the IFMA form of the table, eight scalars run in the lanes of the AVX-512
    /// kernel instead (the same digits, the same table, the same formula, Z = 0 signalling
    /// the exceptional case, which is redone the same way).
    pub(crate) fn mul_many(&self, ks: &[Scalar]) -> Vec<Jacobian> {
        if let Some(ifma) = &self.ifma {
            return self.mul_many_ifma(ifma, ks);
        }
        let mut out = Vec::with_capacity(ks.len());
        for chunk in ks.chunks(LANES) {
            let mut group = [Scalar::ONE; LANES];
            group[..chunk.len()].copy_from_slice(chunk);
            let mut digits: [[i8; WINDOWS]; LANES] = core::array::from_fn(|l| recode(&group[l]));
            let mut acc = [Jacobian::IDENTITY; LANES];
            let mut bad = Choice::from(0);
            #[allow(clippy::needless_range_loop)] // i indexes the table and every lane's digits
            for i in 0..WINDOWS {
                let sel: [(Affine, Choice); LANES] = core::array::from_fn(|l| self.select(i, digits[l][i]));
                let q = sel.map(|s| s.0);
                let zero = sel.map(|s| s.1);
                bad |= add_affine_ct_lanes(&mut acc, &q, &zero);
            }
            digits.zeroize();
            group.zeroize();
            if bool::from(bad) {
                // As in `mul`: argued impossible for k < n; costs speed, not correctness.
                out.extend(chunk.iter().map(|k| self.mul(k)));
            } else {
                out.extend_from_slice(&acc[..chunk.len()]);
            }
            acc.zeroize();
        }
        out
    }

    fn mul_many_ifma(&self, ifma: &gmhsm_ec_ifma::CombTable<gmhsm_ec_ifma::Sm2>, ks: &[Scalar]) -> Vec<Jacobian> {
        const L: usize = gmhsm_ec_ifma::LANES;
        let mut out = Vec::with_capacity(ks.len());
        for chunk in ks.chunks(L) {
            let mut rows = [[0i8; L]; WINDOWS];
            for (l, k) in chunk.iter().enumerate() {
                let mut digits = recode(k);
                for (row, d) in rows.iter_mut().zip(digits) {
                    row[l] = d;
                }
                digits.zeroize();
            }
            // Padding lanes of a short last group have all-zero digits (the identity).
            let points = ifma.mul8(&rows);
            rows.zeroize();
            for (k, p) in chunk.iter().zip(&points) {
                let coords = (Fe::from_bytes(&p.x), Fe::from_bytes(&p.y), Fe::from_bytes(&p.z));
                match coords {
                    (Some(x), Some(y), Some(z)) if !p.z_is_zero() => out.push(Jacobian::from_xyz(x, y, z)),
                    // As in `mul`: argued impossible for 0 < k < n; costs speed, not correctness.
                    _ => out.push(self.mul(k)),
                }
            }
        }
        out
    }

    /// \[k\]G in variable time: for public k only.
    pub(crate) fn mul_vartime(&self, k: &Scalar) -> Jacobian {
        let digits = recode(k);
        let mut acc = Jacobian::IDENTITY;
        for (i, &d) in digits.iter().enumerate() {
            if d != 0 {
                let p = self.window(i)[d.unsigned_abs() as usize - 1];
                acc = acc.add_affine_vartime(&if d < 0 { [p[0], p[1].neg()] } else { p });
            }
        }
        acc
    }

    /// (|d| · 2^(W·i) · G with the sign of d, d = 0), reading every entry of window i
    /// (constant time in d).
    fn select(&self, i: usize, d: i8) -> (Affine, Choice) {
        select_signed(self.window(i), d)
    }
}

/// The points of a comb table of `base`, in any group: `out[i * ENTRIES + j]` =
/// (j + 1) · 2^(W·i) · base (`WINDOWS · ENTRIES` additions, `WINDOWS · W` doublings). The
/// P-256 table of `ecdsa_fast` has the same shape.
pub(crate) fn comb_multiples<G: Group>(mut base: G) -> Vec<G> {
    let mut out = Vec::with_capacity(WINDOWS * ENTRIES);
    for _ in 0..WINDOWS {
        let mut acc = base;
        for _ in 0..ENTRIES {
            out.push(acc);
            acc += base;
        }
        for _ in 0..W {
            base = base.double();
        }
    }
    out
}

/// Signed base-2^W digits of k, least significant first, each in [−2^(W−1), 2^(W−1)]:
/// k = Σ d_i · 2^(W·i). Branch-free in k.
fn recode(k: &Scalar) -> [i8; WINDOWS] {
    let mut repr: [u8; 32] = k.to_repr().into();
    let digits = recode_bytes(&repr);
    repr.zeroize();
    digits
}

/// [`recode`] for any 256-bit big-endian integer (a P-256 scalar too: the same table shape).
pub(crate) fn recode_bytes(repr: &[u8; 32]) -> [i8; WINDOWS] {
    // Little-endian limbs, one spare so that a window may straddle the top.
    let mut limbs = [0u64; 5];
    for (i, chunk) in repr.chunks_exact(8).rev().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        limbs[i] = u64::from_be_bytes(b);
        b.zeroize();
    }
    let mut digits = [0i8; WINDOWS];
    let mut carry: i32 = 0;
    for (i, digit) in digits.iter_mut().enumerate() {
        let bit = i * W;
        let (q, r) = (bit / 64, bit % 64);
        let mut raw = limbs[q] >> r;
        if r + W > 64 && q + 1 < limbs.len() {
            raw |= limbs[q + 1] << (64 - r);
        }
        let v = (raw & ((1 << W) - 1)) as i32 + carry; // 0 ..= 2^W
        // c = 1 iff v > 2^(W−1): then the digit is v − 2^W and 1 carries up.
        let c = ((ENTRIES as i32 - v) >> 31) & 1;
        *digit = (v - (c << W)) as i8;
        carry = c;
    }
    limbs.zeroize();
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;
    use ::sm2::elliptic_curve::Field;

    #[test]
    fn recoding_reconstructs_the_scalar() {
        let mut rng = CounterRng::new(b"recode");
        let two_w = Scalar::from(1u64 << W);
        for k in [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, Scalar::from(u64::MAX)]
            .into_iter()
            .chain((0..50).map(|_| Scalar::try_random(&mut rng).unwrap()))
        {
            let digits = recode(&k);
            let mut acc = Scalar::ZERO;
            for &d in digits.iter().rev() {
                assert!((-(ENTRIES as i32)..=ENTRIES as i32).contains(&i32::from(d)));
                let ds = Scalar::from(u64::from(d.unsigned_abs()));
                acc = acc * two_w + if d < 0 { -ds } else { ds };
            }
            assert_eq!(acc, k);
        }
    }

    #[test]
    fn table_agrees_with_the_crate() {
        let table = BaseTable::new();
        let mut rng = CounterRng::new(b"table");
        for k in [Scalar::ONE, -Scalar::ONE, Scalar::from(ENTRIES as u64)]
            .into_iter()
            .chain((0..20).map(|_| Scalar::try_random(&mut rng).unwrap()))
        {
            let want = (ProjectivePoint::GENERATOR * k).to_affine();
            let want = Some((want.x().into(), want.y().into()));
            assert_eq!(table.mul(&k).to_affine_bytes(), want);
            assert_eq!(table.mul_vartime(&k).to_affine_bytes(), want);
        }
        // Lane-parallel: groups of LANES and a short last group, zero and n − 1 among them.
        let ks: Vec<Scalar> = [Scalar::ZERO, -Scalar::ONE]
            .into_iter()
            .chain((0..2 * LANES + 1).map(|_| Scalar::try_random(&mut rng).unwrap()))
            .collect();
        let many = table.mul_many(&ks);
        assert_eq!(many.len(), ks.len());
        for (k, p) in ks.iter().zip(many) {
            assert_eq!(p.to_affine_bytes(), table.mul(k).to_affine_bytes());
        }
        // The portable lanes and (where the CPU has it) the IFMA kernel agree, including
        // short groups of either width.
        extern crate std;
        let portable = BaseTable::new_portable();
        assert!(!portable.uses_ifma());
        if !table.uses_ifma() {
            assert!(std::env::var("GMHSM_REQUIRE_IFMA").as_deref() != Ok("1"), "this CPU lacks AVX-512 IFMA");
            std::println!("table_agrees_with_the_crate: IFMA path NOT TESTED (this CPU lacks AVX-512 IFMA)");
        }
        for n in [1, 3, 8, 9, 17] {
            let ks: Vec<Scalar> = (0..n).map(|_| Scalar::try_random(&mut rng).unwrap()).collect();
            let a: Vec<_> = table.mul_many(&ks).into_iter().map(|p| p.to_affine_bytes()).collect();
            let b: Vec<_> = portable.mul_many(&ks).into_iter().map(|p| p.to_affine_bytes()).collect();
            assert_eq!(a, b, "{n} scalars");
        }
        assert!(bool::from(table.mul(&Scalar::ZERO).is_identity()));
        assert!(bool::from(table.mul_vartime(&Scalar::ZERO).is_identity()));
    }
}

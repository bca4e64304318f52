//! Precomputed SM2 key pairs (d, \[d\]G) for `GenerateKeyPair`: the card computes them in
//! batches on its nonce engine, like signing nonces — \[d\]G for many d at once (the IFMA
//! comb where the CPU has it) and one field inversion for all the affine points — so that a
//! request only encodes and wraps a pair.
//!
//! Invariants, as for nonces: d uniform in [1, n−2] (GB/T 32918.1 excludes n − 1) from the
//! caller's `TryCryptoRng`; each pair handed out at most once (moved out of its slot, the
//! slot zeroed); slots allocated once, never reallocated; every pair zeroized on drop.

use ::sm2::elliptic_curve::ff::PrimeField;
use ::sm2::{FieldBytes, NonZeroScalar, Scalar};
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::BaseTable;
use super::pool::batch_invert_z;
use crate::alg::AlgError;
use crate::alg::once::{OncePool, Secrets};

/// Draws for one scalar before the RNG is declared broken (a draw fails with probability
/// about 2^−32).
const MAX_TRIES: usize = 8;

/// A secret scalar d and its public point \[d\]G (affine, big-endian). Zeroized on drop; not
/// `Clone`.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct KeyPoint {
    d: Scalar,
    x: [u8; 32],
    y: [u8; 32],
}

impl core::fmt::Debug for KeyPoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyPoint(..)")
    }
}

impl KeyPoint {
    /// d, big-endian.
    pub fn secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.d.to_repr().into())
    }

    /// The uncompressed SEC1 encoding of \[d\]G.
    pub fn public_sec1(&self) -> [u8; 65] {
        let mut sec1 = [0u8; 65];
        sec1[0] = 4;
        sec1[1..33].copy_from_slice(&self.x);
        sec1[33..].copy_from_slice(&self.y);
        sec1
    }
}

/// The secret scalars of a batch of pairs, drawn and not yet multiplied. Zeroized on drop.
#[derive(Debug)]
pub struct PairJob {
    ds: Secrets<Scalar>,
}

impl PairJob {
    /// `n` scalars uniform in [1, n−2], by rejection.
    pub fn draw<R: TryCryptoRng + ?Sized>(rng: &mut R, n: usize) -> Result<PairJob, AlgError> {
        let mut job = PairJob { ds: Secrets(Vec::with_capacity(n)) };
        for _ in 0..n {
            job.ds.0.push(private_scalar(rng)?);
        }
        Ok(job)
    }

    /// \[d\]G for every d and one batch inversion for the affine points.
    pub fn compute(self, table: &BaseTable) -> Vec<KeyPoint> {
        let mut points = table.mul_many(&self.ds.0);
        let mut zinv = batch_invert_z(&points);
        let out = self
            .ds
            .0
            .iter()
            .zip(points.iter().zip(zinv.iter()))
            .map(|(d, (p, zi))| {
                let [x, y] = p.affine_with_zinv(zi);
                KeyPoint { d: *d, x: x.to_bytes(), y: y.to_bytes() }
            })
            .collect();
        points.zeroize();
        zinv.zeroize();
        out
    }
}

/// d uniform in [1, n−2].
fn private_scalar<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Scalar, AlgError> {
    for _ in 0..MAX_TRIES {
        let mut bytes = Zeroizing::new([0u8; 32]);
        rng.try_fill_bytes(&mut bytes[..]).map_err(|_| AlgError::Rng)?;
        let mut repr = FieldBytes::from(*bytes);
        let d = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(repr));
        repr.zeroize();
        if let Some(d) = d {
            let d = *d;
            if !bool::from((Scalar::ONE + d).is_zero()) {
                return Ok(d);
            }
        }
    }
    Err(AlgError::Rng)
}

/// Precomputed key pairs, each handed out once (the invariants of [`OncePool`]).
pub type PairPool = OncePool<KeyPoint>;

/// Take one pair from `pool`, computing `inline` of them first if it is empty.
pub fn take<R: TryCryptoRng + ?Sized>(
    pool: &mut PairPool,
    table: &BaseTable,
    rng: &mut R,
    inline: usize,
) -> Result<KeyPoint, AlgError> {
    if pool.is_empty() {
        let mut batch = PairJob::draw(rng, inline.max(1))?.compute(table);
        pool.push(&mut batch);
    }
    pool.take().ok_or(AlgError::Rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::{CounterRng, FailingRng};
    use ::sm2::elliptic_curve::point::AffineCoordinates;
    use ::sm2::{ProjectivePoint, PublicKey};

    #[test]
    fn pairs_are_d_and_dg_and_each_is_handed_out_once() {
        let table = BaseTable::new();
        let mut rng = CounterRng::new(b"pairs");
        let mut pool = PairPool::new(12);
        assert_eq!(pool.push(&mut PairJob::draw(&mut rng, 9).unwrap().compute(&table)), 9);
        assert_eq!(pool.push(&mut PairJob::draw(&mut rng, 9).unwrap().compute(&table)), 3, "capped");
        let mut seen = Vec::new();
        for _ in 0..14 {
            // The last two come from an inline batch of one.
            let kp = take(&mut pool, &table, &mut rng, 1).unwrap();
            let d = Scalar::from_repr((*kp.secret_bytes()).into()).unwrap();
            let want = (ProjectivePoint::GENERATOR * d).to_affine();
            let sec1 = kp.public_sec1();
            assert_eq!(&sec1[1..33], &<[u8; 32]>::from(want.x())[..]);
            assert!(PublicKey::from_sec1_bytes(&sec1).is_ok(), "on the curve");
            assert!(!seen.contains(&sec1), "a pair handed out twice");
            seen.push(sec1);
        }
        pool.clear();
        assert!(pool.is_empty());
    }

    #[test]
    fn a_failing_rng_is_an_error() {
        let table = BaseTable::new();
        assert!(matches!(PairJob::draw(&mut FailingRng, 4), Err(AlgError::Rng)));
        assert!(matches!(take(&mut PairPool::new(4), &table, &mut FailingRng, 4), Err(AlgError::Rng)));
    }
}

//! A pool of precomputed SM2 signing nonces: pairs (k, x1 mod n) with (x1, y1) = \[k\]G.
//!
//! The pairs do not depend on any key, so one pool serves every SM2 key of the card. The
//! card refills it while idle ([`NoncePool::refill`], in batches: \[k\]G through the fixed-base
//! table, then one field inversion for the whole batch to get the affine x1 of every point,
//! Montgomery's trick); a signature takes one pair ([`NoncePool::take`]) and the signer
//! computes one on the spot when the pool is empty.
//!
//! Invariants: each pair is handed out at most once: taking it moves it out of its slot and
//! zeroes the slot; the taken [`Nonce`] zeroizes itself when dropped. The slots are allocated
//! once at the pool's capacity and never reallocated, so no copy of a nonce is left behind in
//! freed memory. Every k comes from the caller's `TryCryptoRng`.

use ::sm2::elliptic_curve::Generate;
use ::sm2::elliptic_curve::ops::Reduce;
use ::sm2::{FieldBytes, NonZeroScalar, Scalar};
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::BaseTable;
use super::fe::Fe;
use super::point::Jacobian;
use crate::alg::AlgError;
use crate::alg::once::{OncePool, Secrets};

/// One signing nonce: the secret k and x1 mod n of \[k\]G. Zeroized on drop; not `Clone`, so a
/// pair cannot be duplicated.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct Nonce {
    pub(super) k: Scalar,
    pub(super) x1: Scalar,
}

impl core::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Nonce(..)")
    }
}

impl Nonce {
    /// A fresh pair computed now: one constant-time fixed-base multiplication and one
    /// field inversion.
    pub fn generate<R: TryCryptoRng + ?Sized>(table: &BaseTable, rng: &mut R) -> Result<Nonce, AlgError> {
        let k = draw(rng)?;
        let p = table.mul(&k);
        let x = p.x_with_zinv(&p.z().invert());
        Ok(Nonce { k, x1: reduce_fe(&x) })
    }

    /// x1 mod n (for tests that compare the batch and the plain path).
    pub fn x1(&self) -> Scalar {
        self.x1
    }

    /// The secret nonce k. Exposed for tests only; never leaves the card.
    #[cfg(test)]
    pub(super) fn expose_k(&self) -> Scalar {
        self.k
    }
}

/// k uniform in [1, n−1] (rejection sampling in the crate).
fn draw<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Scalar, AlgError> {
    NonZeroScalar::try_generate_from_rng(rng).map(|k| *k).map_err(|_| AlgError::Rng)
}

/// x (an affine coordinate) mod n.
fn reduce_fe(x: &Fe) -> Scalar {
    let mut bytes = x.to_bytes();
    let s = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(bytes));
    bytes.zeroize();
    s
}

/// Z^−1 of every point with one inversion (Montgomery's trick); constant time. No Z may
/// be zero (no point is the identity).
pub(super) fn batch_invert_z(points: &[Jacobian]) -> Vec<Fe> {
    let mut prefix = Vec::with_capacity(points.len());
    let mut acc = Fe::ONE;
    for p in points {
        prefix.push(acc);
        acc = acc.mul(&p.z());
    }
    let mut inv = acc.invert();
    let mut out = alloc::vec![Fe::ZERO; points.len()];
    for i in (0..points.len()).rev() {
        out[i] = inv.mul(&prefix[i]);
        inv = inv.mul(&points[i].z());
    }
    prefix.zeroize();
    inv.zeroize();
    out
}

/// The secret scalars of a batch of nonces, drawn from the RNG (cheap: one DRBG call) and not
/// yet multiplied (the expensive part), so that a card can draw under its lock and compute
/// outside it, on another core. Zeroized on drop.
#[derive(Debug)]
pub struct NonceJob {
    ks: Secrets<Scalar>,
}

impl NonceJob {
    /// Draw `n` scalars uniform in [1, n−1]: one RNG call for the whole batch (32 bytes per
    /// scalar, a chunk outside the range — probability 2^−32 — replaced by a fresh draw).
    pub fn draw<R: TryCryptoRng + ?Sized>(rng: &mut R, n: usize) -> Result<NonceJob, AlgError> {
        let mut bytes = zeroize::Zeroizing::new(alloc::vec![0u8; 32 * n]);
        rng.try_fill_bytes(&mut bytes).map_err(|_| AlgError::Rng)?;
        let mut job = NonceJob { ks: Secrets(Vec::with_capacity(n)) };
        for chunk in bytes.chunks_exact(32) {
            let mut repr = FieldBytes::default();
            repr.copy_from_slice(chunk);
            let k = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(repr));
            repr.zeroize();
            match k {
                Some(k) => job.ks.0.push(*k),
                None => job.ks.0.push(draw(rng)?),
            }
        }
        Ok(job)
    }

    /// \[k\]G for every k, lane-parallel, and one batch inversion for the affine x1.
    pub fn compute(self, table: &BaseTable) -> NonceBatch {
        let mut points: Vec<Jacobian> = table.mul_many(&self.ks.0);
        // One inversion for the batch (Montgomery's trick), in constant time.
        let mut zinv = batch_invert_z(&points);
        let batch = self
            .ks
            .0
            .iter()
            .zip(points.iter().zip(zinv.iter()))
            .map(|(k, (p, zi))| Nonce { k: *k, x1: reduce_fe(&p.x_with_zinv(zi)) })
            .collect();
        points.zeroize();
        zinv.zeroize();
        NonceBatch(batch)
    }
}

/// Computed nonces on their way into a [`NoncePool`]; zeroized on drop if they never arrive.
#[derive(Debug)]
pub struct NonceBatch(Vec<Nonce>);

/// Precomputed nonces, filled in batches while the card is idle (the invariants of
/// [`OncePool`]).
pub struct NoncePool {
    table: Arc<BaseTable>,
    pairs: OncePool<Nonce>,
}

impl core::fmt::Debug for NoncePool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "NoncePool {{ len: {}, capacity: {} }}", self.len(), self.capacity())
    }
}

impl NoncePool {
    /// An empty pool that holds at most `capacity` pairs.
    pub fn new(table: Arc<BaseTable>, capacity: usize) -> Self {
        NoncePool { table, pairs: OncePool::new(capacity) }
    }

    /// Unused pairs in the pool.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.pairs.capacity()
    }

    /// The fixed-base table the pool computes with.
    pub fn table(&self) -> &Arc<BaseTable> {
        &self.table
    }

    /// Add up to `n` pairs (fewer if the pool would overflow) as one batch; returns how many
    /// were added. On an RNG failure nothing is added, the pairs of the batch drawn so far
    /// are zeroized, and the result is [`AlgError::Rng`]. The same as [`NonceJob::draw`],
    /// [`NonceJob::compute`] and [`NoncePool::push`] in a row.
    pub fn refill<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R, n: usize) -> Result<usize, AlgError> {
        let n = n.min(self.room());
        if n == 0 {
            return Ok(0);
        }
        let batch = NonceJob::draw(rng, n)?.compute(&self.table);
        Ok(self.push(batch))
    }

    /// Free slots.
    pub fn room(&self) -> usize {
        self.pairs.room()
    }

    /// Move a computed batch into the pool; returns how many pairs were added (pairs that do
    /// not fit are zeroized and dropped).
    pub fn push(&mut self, mut batch: NonceBatch) -> usize {
        self.pairs.push(&mut batch.0)
    }

    /// Take one unused pair, or `None` if the pool is empty. The slot is zeroed.
    pub fn take(&mut self) -> Option<Nonce> {
        self.pairs.take()
    }

    /// Take a pair from the pool, or compute one now if the pool is empty.
    pub fn take_or_generate<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Nonce, AlgError> {
        match self.take() {
            Some(n) => Ok(n),
            None => Nonce::generate(&self.table, rng),
        }
    }

    /// Zeroize and drop every unused pair (e.g. before the card enters its error state).
    pub fn clear(&mut self) {
        self.pairs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;

    fn zero(n: &Nonce) -> bool {
        bool::from(n.k.is_zero() & n.x1.is_zero())
    }

    #[test]
    fn taken_and_cleared_slots_are_zeroed() {
        let mut pool = NoncePool::new(Arc::new(BaseTable::new()), 4);
        pool.refill(&mut CounterRng::new(b"slots"), 4).unwrap();
        assert!(pool.pairs.slots().iter().all(|n| !zero(n)));
        let taken = pool.take().unwrap();
        assert!(!zero(&taken));
        assert!(zero(&pool.pairs.slots()[3]));
        pool.clear();
        assert!(pool.is_empty() && pool.pairs.slots().iter().all(zero));
    }
}

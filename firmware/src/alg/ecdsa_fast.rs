//! Fast ECDSA P-256 signing (FIPS 186-5) with a pool of precomputed nonces, as `sm2_fast` does
//! for SM2: pairs (k⁻¹ mod n, r = x(\[k\]G) mod n), computed in batches while the card is idle
//! and each used once, so that a signature costs one SHA-256 and two scalar multiplications.
//! Signatures verify with the `p256` crate and OpenSSL (tests, and the e2e interop tests).
//!
//! A batch: k uniform in [1, n−1] from the card's DRBG (one call per batch); \[k\]G for eight
//! k at once through the AVX-512 IFMA comb (`gmhsm-ec-ifma`, the table shape and recoding of
//! `sm2_fast::table`) where the CPU has it, else the `p256` crate's fixed-base multiplication;
//! one field inversion for the affine x of the whole batch and one scalar inversion for every
//! k⁻¹ (Montgomery's trick, both constant time).
//!
//! Nonces are random, not RFC 6979 (a pool cannot depend on the message); the `p256` crate's
//! hedged path ([`super::ecdsa::sign_with`]) stays for keys used outside the card's pool.
//!
//! Constant time: the recoding, the comb, the batch inversions and the scalar arithmetic
//! (the `p256` crate's, and crypto-bigint's Montgomery form for the field) do not branch on k.
//! Branches that depend on k: a lane of the comb that met the formula's exceptional case
//! (argued impossible for k < n, as in `sm2_fast::table`) is recomputed by the crate; a pair
//! with r = 0 or a signature with s = 0 (probability ~2^−256) is dropped for the next pair.

use alloc::vec::Vec;
use p256::ecdsa::SigningKey;
use p256::elliptic_curve::BatchNormalize;
use p256::elliptic_curve::bigint::modular::{FixedMontyForm, FixedMontyParams};
use p256::elliptic_curve::bigint::{Odd, U256};
use p256::elliptic_curve::ff::{Field, PrimeField};
use p256::elliptic_curve::group::Group;
use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::{FieldBytes, NonZeroScalar, ProjectivePoint, Scalar};
use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::AlgError;
use super::once::{OncePool, Secrets};
use super::sm2_fast::{ENTRIES, WINDOWS, comb_multiples, recode_bytes};

/// The P-256 field prime, big-endian.
const P: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];

/// The comb table of G for the IFMA kernel (W = 6: 43 windows of 32 affine multiples), or
/// nothing on a CPU without AVX-512 IFMA (then the crate computes \[k\]G).
pub struct P256Table {
    ifma: Option<gmhsm_ec_ifma::CombTable<gmhsm_ec_ifma::P256>>,
    /// Montgomery parameters of p, for the batch's affine x (computed once, not per batch).
    params: FixedMontyParams<{ U256::LIMBS }>,
}

impl core::fmt::Debug for P256Table {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "P256Table {{ ifma: {} }}", self.ifma.is_some())
    }
}

impl Default for P256Table {
    fn default() -> Self {
        Self::new()
    }
}

impl P256Table {
    /// Build the table if the CPU has AVX-512 IFMA (a few milliseconds, once per card).
    pub fn new() -> Self {
        if !gmhsm_ec_ifma::is_available() {
            return Self::portable();
        }
        let projective = comb_multiples(ProjectivePoint::GENERATOR);
        let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&projective[..]);
        let ifma = gmhsm_ec_ifma::CombTable::new(WINDOWS, ENTRIES, |i, j| {
            let p = &affine[i * ENTRIES + j];
            (p.x().into(), p.y().into())
        });
        P256Table { ifma, params: p_params() }
    }

    /// No IFMA table: batches go through the `p256` crate (to compare the two paths).
    pub fn portable() -> Self {
        P256Table { ifma: None, params: p_params() }
    }

    /// Whether batches run on the AVX-512 IFMA kernel.
    pub fn uses_ifma(&self) -> bool {
        self.ifma.is_some()
    }

    /// Nonces worth computing at once when a signature finds the pool empty: one lane group
    /// of the kernel, or one.
    pub fn inline_batch(&self) -> usize {
        if self.uses_ifma() { gmhsm_ec_ifma::LANES } else { 1 }
    }

    /// The affine x of \[k\]G for every k (none is zero), big-endian.
    fn x_coordinates(&self, ks: &[Scalar]) -> Vec<Zeroizing<[u8; 32]>> {
        let Some(table) = &self.ifma else {
            let points: Vec<ProjectivePoint> = ks.iter().map(ProjectivePoint::mul_by_generator).collect();
            let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points[..]);
            return affine.iter().map(|a| Zeroizing::new(a.x().into())).collect();
        };
        const L: usize = gmhsm_ec_ifma::LANES;
        let params = &self.params;
        let monty = |b: &[u8; 32]| FixedMontyForm::new(&U256::from_be_slice(b), params);
        // (X, Z²) of every point in Montgomery form; a lane that met the exceptional case is
        // recomputed by the crate and enters as (x, 1).
        let mut xs = Vec::with_capacity(ks.len());
        let mut zzs = Vec::with_capacity(ks.len());
        for chunk in ks.chunks(L) {
            let mut rows = [[0i8; L]; WINDOWS];
            for (l, k) in chunk.iter().enumerate() {
                let mut repr: [u8; 32] = k.to_repr().into();
                let mut digits = recode_bytes(&repr);
                for (row, d) in rows.iter_mut().zip(digits) {
                    row[l] = d;
                }
                digits.zeroize();
                repr.zeroize();
            }
            let points = table.mul8(&rows);
            rows.zeroize();
            for (k, p) in chunk.iter().zip(&points) {
                if p.z_is_zero() {
                    let x: [u8; 32] = ProjectivePoint::mul_by_generator(k).to_affine().x().into();
                    xs.push(monty(&x));
                    zzs.push(FixedMontyForm::one(params));
                } else {
                    xs.push(monty(&p.x));
                    zzs.push(monty(&p.z).square());
                }
            }
        }
        // One inversion for all Z² (Montgomery's trick).
        let mut prefix = Vec::with_capacity(zzs.len());
        let mut acc = FixedMontyForm::one(params);
        for zz in &zzs {
            prefix.push(acc);
            acc *= zz;
        }
        let mut inv = acc.invert().expect("no Z is zero");
        let mut out = alloc::vec![Zeroizing::new([0u8; 32]); ks.len()];
        for i in (0..zzs.len()).rev() {
            let x = xs[i] * (inv * prefix[i]);
            *out[i] = x.retrieve().to_be_bytes().into();
            inv *= &zzs[i];
        }
        out
    }
}

/// The Montgomery parameters of the P-256 field prime.
fn p_params() -> FixedMontyParams<{ U256::LIMBS }> {
    FixedMontyParams::new(Odd::new(U256::from_be_slice(&P)).expect("p is odd"))
}

/// One signing nonce: k⁻¹ mod n and r. Zeroized on drop; not `Clone`.
#[derive(Default, Zeroize, ZeroizeOnDrop)]
pub struct EcdsaNonce {
    kinv: Scalar,
    r: Scalar,
}

impl core::fmt::Debug for EcdsaNonce {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EcdsaNonce(..)")
    }
}

/// The secret scalars of a batch, drawn (under the card's lock) and not yet multiplied.
/// Zeroized on drop.
#[derive(Debug)]
pub struct EcdsaJob {
    ks: Secrets<Scalar>,
}

impl EcdsaJob {
    /// `n` scalars uniform in [1, n−1]: one RNG call (32 bytes a scalar; a chunk out of range,
    /// probability 2^−32, is replaced by a fresh draw).
    pub fn draw<R: TryCryptoRng + ?Sized>(rng: &mut R, n: usize) -> Result<EcdsaJob, AlgError> {
        let mut bytes = Zeroizing::new(alloc::vec![0u8; 32 * n]);
        rng.try_fill_bytes(&mut bytes).map_err(|_| AlgError::Rng)?;
        let mut ks = Secrets(Vec::with_capacity(n));
        for chunk in bytes.chunks_exact(32) {
            let mut repr = FieldBytes::default();
            repr.copy_from_slice(chunk);
            let k = Option::<NonZeroScalar>::from(NonZeroScalar::from_repr(repr));
            repr.zeroize();
            match k {
                Some(k) => ks.0.push(*k),
                None => {
                    let k = <NonZeroScalar as p256::elliptic_curve::Generate>::try_generate_from_rng(rng)
                        .map_err(|_| AlgError::Rng)?;
                    ks.0.push(*k)
                }
            }
        }
        Ok(EcdsaJob { ks })
    }

    /// \[k\]G, r and k⁻¹ for every k (pairs with r = 0 dropped).
    pub fn compute(self, table: &P256Table) -> Vec<EcdsaNonce> {
        let ks = &self.ks.0;
        let xs = table.x_coordinates(ks);
        // k⁻¹ for all k with one inversion.
        let mut prefix = Zeroizing::new(Vec::with_capacity(ks.len()));
        let mut acc = Scalar::ONE;
        for k in ks {
            prefix.push(acc);
            acc *= k;
        }
        let mut inv = Option::<Scalar>::from(acc.invert()).unwrap_or(Scalar::ZERO);
        acc.zeroize();
        let mut out = Vec::with_capacity(ks.len());
        for i in (0..ks.len()).rev() {
            let kinv = inv * prefix[i];
            inv *= &ks[i];
            let r = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*xs[i]));
            if !bool::from(r.is_zero()) {
                out.push(EcdsaNonce { kinv, r });
            }
        }
        inv.zeroize();
        out
    }
}

/// Precomputed nonces, each handed out once (the invariants of [`OncePool`]).
pub type EcdsaPool = OncePool<EcdsaNonce>;

/// Compute `n` nonces now and add them to `pool`; returns how many were added.
pub fn refill<R: TryCryptoRng + ?Sized>(
    pool: &mut EcdsaPool,
    table: &P256Table,
    rng: &mut R,
    n: usize,
) -> Result<usize, AlgError> {
    let mut batch = EcdsaJob::draw(rng, n)?.compute(table);
    Ok(pool.push(&mut batch))
}

/// Sign SHA-256(`msg`) with a pooled nonce; DER signature. An empty pool gets `inline` nonces
/// first (at least one; [`P256Table::inline_batch`] for a lone signature, more when the
/// caller has more signatures to make).
pub fn sign_pooled<R: TryCryptoRng + ?Sized>(
    key: &SigningKey,
    pool: &mut EcdsaPool,
    table: &P256Table,
    rng: &mut R,
    msg: &[u8],
    inline: usize,
) -> Result<Vec<u8>, AlgError> {
    let digest: [u8; 32] = Sha256::digest(msg).into();
    sign_digest_pooled(key, pool, table, rng, &digest, inline)
}

/// Sign a 32-byte SHA-256 digest with a pooled nonce; DER signature. `inline` as for
/// [`sign_pooled`].
pub fn sign_digest_pooled<R: TryCryptoRng + ?Sized>(
    key: &SigningKey,
    pool: &mut EcdsaPool,
    table: &P256Table,
    rng: &mut R,
    digest: &[u8; 32],
    inline: usize,
) -> Result<Vec<u8>, AlgError> {
    // e: the digest as an integer (256 bits: no truncation for P-256), reduced mod n.
    let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*digest));
    let d: &Scalar = key.as_nonzero_scalar();
    for _ in 0..4 {
        if pool.is_empty() {
            refill(pool, table, rng, inline.max(1))?;
        }
        let nonce = pool.take().ok_or(AlgError::Rng)?;
        let mut s = nonce.kinv * (e + nonce.r * d);
        if bool::from(s.is_zero()) {
            continue;
        }
        // r and s are non-zero scalars (reduced mod n): a valid signature as they stand.
        let der = crate::alg::dersig::encode(&nonce.r.to_repr().into(), &s.to_repr().into());
        s.zeroize();
        return Ok(der);
    }
    Err(AlgError::Rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;
    use p256::ecdsa::signature::Verifier;
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::ecdsa::{DerSignature, Signature, VerifyingKey};

    fn key(rng: &mut CounterRng) -> SigningKey {
        SigningKey::from(crate::alg::ecdsa::generate(rng).unwrap())
    }

    #[test]
    fn pooled_signatures_verify_with_the_crate_on_both_paths() {
        extern crate std;
        let mut rng = CounterRng::new(b"ecdsa-fast");
        let tables = [P256Table::new(), P256Table::portable()];
        if !tables[0].uses_ifma() {
            assert!(std::env::var("GMHSM_REQUIRE_IFMA").as_deref() != Ok("1"), "this CPU lacks AVX-512 IFMA");
            std::println!("pooled_signatures_verify_with_the_crate_on_both_paths: IFMA path NOT TESTED");
        }
        for table in &tables {
            let mut pool = EcdsaPool::new(64);
            for i in 0..40u8 {
                let sk = key(&mut rng);
                let msg = [i; 37];
                let der = sign_pooled(&sk, &mut pool, table, &mut rng, &msg, table.inline_batch()).unwrap();
                let sig = DerSignature::try_from(&der[..]).unwrap();
                VerifyingKey::from(&sk).verify(&msg, &sig).expect("verifies");
                // The wrong message does not verify.
                assert!(VerifyingKey::from(&sk).verify(&[i ^ 1; 37], &sig).is_err());
                let digest: [u8; 32] = Sha256::digest([i; 5]).into();
                let der = sign_digest_pooled(&sk, &mut pool, table, &mut rng, &digest, table.inline_batch()).unwrap();
                let sig = Signature::from_der(&der).unwrap();
                VerifyingKey::from(&sk).verify_prehash(&digest, &sig).expect("prehash verifies");
            }
        }
    }

    #[test]
    fn batch_r_equals_the_crates_x_of_kg_on_both_paths() {
        let mut rng = CounterRng::new(b"ecdsa-batch");
        for table in [P256Table::new(), P256Table::portable()] {
            // 19 scalars: two full lane groups and a short one.
            let job = EcdsaJob::draw(&mut rng, 19).unwrap();
            let ks = job.ks.0.clone();
            let nonces = job.compute(&table);
            assert_eq!(nonces.len(), ks.len());
            // compute() walks the batch backwards.
            for (k, n) in ks.iter().rev().zip(&nonces) {
                let x: [u8; 32] = ProjectivePoint::mul_by_generator(k).to_affine().x().into();
                assert_eq!(n.r, <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(x)));
                assert_eq!(n.kinv * k, Scalar::ONE);
            }
        }
    }

    #[test]
    fn each_pooled_nonce_is_used_once_and_cleared_pools_are_empty() {
        let mut rng = CounterRng::new(b"ecdsa-pool");
        let table = P256Table::new();
        let mut pool = EcdsaPool::new(10);
        assert_eq!(refill(&mut pool, &table, &mut rng, 16).unwrap(), 10, "capped at the capacity");
        let mut rs = Vec::new();
        while let Some(n) = pool.take() {
            rs.push(n.r);
        }
        assert_eq!(rs.len(), 10);
        rs.sort_by_key(|r| r.to_repr());
        rs.dedup();
        assert_eq!(rs.len(), 10, "no nonce handed out twice");
        refill(&mut pool, &table, &mut rng, 4).unwrap();
        pool.clear();
        assert!(pool.is_empty());
    }
}

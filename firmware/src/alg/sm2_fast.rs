//! Fast SM2 signatures (GB/T 32918.2): a per-key signer with its setup precomputed, a pool
//! of precomputed nonces refilled in batches, a fixed-base table for \[k\]G, and a faster
//! verifier. Signatures are the same as [`super::sm2`]'s and verify there (and in OpenSSL).
//!
//! What makes it fast, against [`super::sm2::sign`] (the `sm2` crate):
//! * [`FastSigner`] is built once per key: it holds d, (1 + d)^−1 mod n (the only scalar
//!   inversion, done here) and Z for the default ID, so a signature costs one SM3 of Z ‖ M
//!   and two scalar multiplications mod n once it has a nonce;
//! * a nonce (k, x1 mod n) comes from a [`NoncePool`] refilled while the card is idle, or is
//!   computed on the spot; \[k\]G uses a [`BaseTable`] of affine multiples of G (`WINDOWS`
//!   mixed additions, no doubling) instead of the crate's generic double-and-add; a batch
//!   refill pays one field inversion for the whole batch (Montgomery's trick);
//! * the point arithmetic is our own (`fe`, `point`): Jacobian coordinates with the a = −3
//!   formulas (mixed addition 7M + 4S, doubling 3M + 5S, against 11M and 8M + 3S plus
//!   multiplications by b in the crate's complete formulas), over a Montgomery field that
//!   uses p ≡ −1 (mod 2^64) (the reduction needs no multiplication: m·(p + 1)/2^64 is shifts
//!   and subtractions), interleaved (CIOS) multiplication with carry chains through the
//!   `adc`/`sbb` intrinsics on x86-64 (LLVM spills and re-materializes carries of `u128`
//!   arithmetic: a third fewer instructions this way), a dedicated squaring and Fermat
//!   inversion by an addition chain;
//! * a batch of nonces is multiplied eight scalars at once on AVX-512 IFMA where the CPU has
//!   it (`gmhsm-ec-ifma`: one scalar per 64-bit lane, 52-bit limbs; about 3.5× the portable
//!   path), else four scalars side by side in the portable field ([`BaseTable`]'s
//!   `mul_many`), so that the processor overlaps four independent chains of operations;
//! * the card draws a batch's scalars under its lock and multiplies them outside it (see
//!   `NonceJob`), so a second core keeps the pool full while the first signs.
//!   The crate's `FieldElement` is reachable only as
//!   `<Sm2 as FieldArithmetic>::FieldElement` and its point coordinates are private, so the
//!   crate's types are used only to build the table and in the tests, which check every
//!   field operation, formula and multiplication against the crate.
//!
//! Nonces are random (k uniform in [1, n−1] from the caller's `TryCryptoRng`, the card's
//! DRBG), not RFC 6979: a pool of precomputed k cannot depend on the message. A failing RNG
//! is [`AlgError::Rng`], never a panic.
//!
//! Constant time: everything that touches d or k — the recoding of k into signed digits,
//! the table lookups (every entry of the window is read and kept or dropped with a mask),
//! the conditional negation, the point additions, the batch inversion, the field and the
//! scalar arithmetic (fiat-crypto, mod n) — runs in time independent of them. Branches that
//! depend on k: the rejection of a nonce (r = 0, r + k = n, s = 0; probability ~2^−254),
//! after which that nonce is discarded; and the fallback of the table multiplication to the
//! crate's arithmetic should the incomplete addition formula meet its one exceptional case
//! (a point added to itself), which the table's docs argue cannot happen for k < n. Verification ([`verify`], [`verify_digest`], [`FastVerifier`]) handles
//! public data only and is variable time: \[s\]G through the table with direct lookups, \[t\]P
//! by width-5 wNAF (or through the key's own table in [`FastVerifier`]), and the final x1
//! check without an inversion (X = x1·Z²).

mod fe;
pub mod pairs;
pub mod pke;
mod point;
mod pool;
mod table;
mod varbase;

#[cfg(test)]
mod tests;

use ::sm2::elliptic_curve::ff::PrimeField;
use ::sm2::elliptic_curve::ops::Reduce;
use ::sm2::{FieldBytes, PublicKey, Scalar, SecretKey};
use ::sm3::{Digest, Sm3};
use alloc::sync::Arc;
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use zeroize::Zeroize;

use super::AlgError;
use super::sm2::{DEFAULT_ID, Signature, z_hash};

use fe::Fe;
use point::Jacobian;

pub use pool::{Nonce, NonceBatch, NonceJob, NoncePool};
pub use table::{BaseTable, ENTRIES, W, WINDOWS};
pub(crate) use table::{comb_multiples, recode_bytes};

/// Scalars the table multiplies side by side (a good small batch size).
pub const fn table_lanes() -> usize {
    table::LANES
}

/// Nonces tried before giving up; each is rejected with probability ~2^−254, so reaching
/// the bound means the RNG is broken.
const MAX_TRIES: usize = 8;

/// An SM2 private key prepared for fast signing. Build one per key and keep it: setup
/// costs one scalar inversion, one \[d\]G through the table (for the public key) and one Z.
pub struct FastSigner {
    d: Scalar,
    /// (1 + d)^−1 mod n.
    dinv: Scalar,
    public: PublicKey,
    /// Z for [`DEFAULT_ID`].
    z_default: [u8; 32],
    table: Arc<BaseTable>,
}

impl core::fmt::Debug for FastSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FastSigner(..)")
    }
}

impl Drop for FastSigner {
    fn drop(&mut self) {
        self.d.zeroize();
        self.dinv.zeroize();
    }
}

impl FastSigner {
    /// Prepare `secret` for signing. [`AlgError::InvalidKey`] if d = n − 1 (GB/T 32918.1
    /// allows d in [1, n−2]: 1 + d must be invertible).
    pub fn new(secret: &SecretKey, table: Arc<BaseTable>) -> Result<Self, AlgError> {
        let d = *secret.to_nonzero_scalar();
        let dinv = Option::<Scalar>::from((Scalar::ONE + d).invert()).ok_or(AlgError::InvalidKey)?;
        // [d]G through the table (constant time), checked on the curve by the parser.
        let (x, y) = table.mul(&d).to_affine_bytes().ok_or(AlgError::InvalidKey)?;
        let mut sec1 = [0u8; 65];
        sec1[0] = 4;
        sec1[1..33].copy_from_slice(&x);
        sec1[33..].copy_from_slice(&y);
        let public = PublicKey::from_sec1_bytes(&sec1).map_err(|_| AlgError::InvalidKey)?;
        let z_default = z_hash(DEFAULT_ID, &public)?;
        Ok(FastSigner { d, dinv, public, z_default, table })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The fixed-base table this signer computes nonces with.
    pub fn table(&self) -> &Arc<BaseTable> {
        &self.table
    }

    /// Z for `id` (the default ID's is cached).
    pub fn z(&self, id: &[u8]) -> Result<[u8; 32], AlgError> {
        if id == DEFAULT_ID { Ok(self.z_default) } else { z_hash(id, &self.public) }
    }

    /// e = SM3(Z ‖ M) for `id`.
    pub fn digest(&self, id: &[u8], msg: &[u8]) -> Result<[u8; 32], AlgError> {
        let mut h = Sm3::new();
        h.update(self.z(id)?);
        h.update(msg);
        Ok(h.finalize().into())
    }

    /// e_i = SM3(Z ‖ M_i) for `id` and every message of `msgs`, hashed together by the
    /// multi-buffer SM3 (`gmhsm_sm3x::digest_many`: sixteen per pass on AVX-512, one at a time
    /// below `gmhsm_sm3x::MIN_MULTI`). The same digests as [`FastSigner::digest`].
    pub fn digests(&self, id: &[u8], msgs: &[&[u8]]) -> Result<Vec<[u8; 32]>, AlgError> {
        let z = self.z(id)?;
        let mut out = alloc::vec![[0u8; 32]; msgs.len()];
        gmhsm_sm3x::digest_many(&z, msgs, &mut out);
        Ok(out)
    }

    /// Sign `msg` with distinguishing ID `id`, nonce computed now (no pool).
    pub fn sign<R: TryCryptoRng + ?Sized>(&self, rng: &mut R, id: &[u8], msg: &[u8]) -> Result<Signature, AlgError> {
        let e = self.digest(id, msg)?;
        self.sign_digest_with(&e, || Nonce::generate(&self.table, rng))
    }

    /// Sign `msg` with a nonce from `pool` (computed now if the pool is empty).
    pub fn sign_pooled<R: TryCryptoRng + ?Sized>(
        &self,
        pool: &mut NoncePool,
        rng: &mut R,
        id: &[u8],
        msg: &[u8],
    ) -> Result<Signature, AlgError> {
        let e = self.digest(id, msg)?;
        self.sign_digest_with(&e, || pool.take_or_generate(rng))
    }

    /// Sign a precomputed digest e = SM3(Z ‖ M), nonce computed now.
    pub fn sign_digest<R: TryCryptoRng + ?Sized>(&self, rng: &mut R, e: &[u8; 32]) -> Result<Signature, AlgError> {
        self.sign_digest_with(e, || Nonce::generate(&self.table, rng))
    }

    /// Sign a precomputed digest with a nonce from `pool`.
    pub fn sign_digest_pooled<R: TryCryptoRng + ?Sized>(
        &self,
        pool: &mut NoncePool,
        rng: &mut R,
        e: &[u8; 32],
    ) -> Result<Signature, AlgError> {
        self.sign_digest_with(e, || pool.take_or_generate(rng))
    }

    /// GB/T 32918.2 §6.1 A4–A7 with nonces from `next`.
    fn sign_digest_with(
        &self,
        e: &[u8; 32],
        mut next: impl FnMut() -> Result<Nonce, AlgError>,
    ) -> Result<Signature, AlgError> {
        let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e));
        for _ in 0..MAX_TRIES {
            let nonce = next()?;
            // A5: r = (e + x1) mod n; reject r = 0 and r + k = n.
            let r = e + nonce.x1;
            if bool::from(r.is_zero() | (r + nonce.k).is_zero()) {
                continue;
            }
            // A6: s = (1 + d)^−1 · (k − r·d) mod n; reject s = 0.
            let mut rd = r * self.d;
            let s = self.dinv * (nonce.k - rd);
            rd.zeroize();
            if bool::from(s.is_zero()) {
                continue;
            }
            return Signature::from_scalars(r.to_repr(), s.to_repr()).map_err(|_| AlgError::Rng);
        }
        Err(AlgError::Rng)
    }
}

/// A public key prepared for fast verification: its own fixed-base table (88 KiB, built in
/// about the time of 15 [`verify`] calls), so that \[s\]G + \[t\]P is two table
/// multiplications and no doubling. Worth it for keys that verify often (the card's own
/// keys); for a one-off key use [`verify`].
pub struct FastVerifier {
    public: PublicKey,
    z_default: [u8; 32],
    g: Arc<BaseTable>,
    p: BaseTable,
}

impl core::fmt::Debug for FastVerifier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FastVerifier(..)")
    }
}

impl FastVerifier {
    pub fn new(public: &PublicKey, g: Arc<BaseTable>) -> Result<Self, AlgError> {
        Ok(FastVerifier {
            public: *public,
            z_default: z_hash(DEFAULT_ID, public)?,
            p: BaseTable::for_point(public.as_affine()),
            g,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key's fixed-base table (also what encryption to this key multiplies by:
    /// [`pke::encrypt_with`]).
    pub fn public_table(&self) -> &BaseTable {
        &self.p
    }

    /// Verify `sig` over `msg` with distinguishing ID `id` (the default ID's Z is cached).
    pub fn verify(&self, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), AlgError> {
        let z = if id == DEFAULT_ID { self.z_default } else { z_hash(id, &self.public)? };
        let mut h = Sm3::new();
        h.update(z);
        h.update(msg);
        self.verify_digest(&h.finalize().into(), sig)
    }

    /// Verify `sig` over a precomputed digest e.
    pub fn verify_digest(&self, e: &[u8; 32], sig: &Signature) -> Result<(), AlgError> {
        verify_with(&self.g, e, sig, |t| self.p.mul_vartime(t))
    }
}

/// Verify `sig` over `msg` for `public` and `id`; accepts exactly what
/// [`super::sm2::verify`] accepts. Variable time (public inputs only).
pub fn verify(table: &BaseTable, public: &PublicKey, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), AlgError> {
    let e = super::sm2::message_digest(id, public, msg)?;
    verify_digest(table, public, &e, sig)
}

/// Verify `sig` over a precomputed digest e (GB/T 32918.2 §7.1 B4–B7).
pub fn verify_digest(table: &BaseTable, public: &PublicKey, e: &[u8; 32], sig: &Signature) -> Result<(), AlgError> {
    let p = Jacobian::from_affine(&table::from_crate(public.as_affine()));
    verify_with(table, e, sig, |t| p.mul_vartime(&t.to_repr().into()))
}

/// GB/T 32918.2 §7.1 B4–B7 with \[t\]P computed by `mul_p`.
fn verify_with(
    table: &BaseTable,
    e: &[u8; 32],
    sig: &Signature,
    mul_p: impl FnOnce(&Scalar) -> Jacobian,
) -> Result<(), AlgError> {
    // B1, B2: r, s in [1, n−1] (checked when the signature was parsed).
    let (r, s) = sig.split_scalars();
    let e = <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*e));
    // B5: t = r + s mod n, t ≠ 0.
    let t = *r + *s;
    if bool::from(t.is_zero()) {
        return Err(AlgError::VerifyFailed);
    }
    // B6: (x1, y1) = [s]G + [t]P, not the point at infinity.
    let point = table.mul_vartime(&s).add_vartime(&mul_p(&t));
    if bool::from(point.is_identity()) {
        return Err(AlgError::VerifyFailed);
    }
    // B7: r = e + x1 mod n, i.e. x1 = v or x1 = v + n (when below p) for v = r − e mod n;
    // checked as X = x1·Z² without an inversion.
    let v: [u8; 32] = (*r - e).to_repr().into();
    let mut candidates = [Some(v), add_n(&v)];
    for x in candidates.iter_mut().flatten() {
        if Fe::from_bytes(x).is_some_and(|x| point.x_equals(&x)) {
            return Ok(());
        }
    }
    Err(AlgError::VerifyFailed)
}

/// v + n as 32 big-endian bytes, or `None` if it overflows 256 bits.
fn add_n(v: &[u8; 32]) -> Option<[u8; 32]> {
    const N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x72, 0x03,
        0xDF, 0x6B, 0x21, 0xC6, 0x05, 0x2B, 0x53, 0xBB, 0xF4, 0x09, 0x39, 0xD5, 0x41, 0x23,
    ];
    let mut out = [0u8; 32];
    let mut carry = 0u16;
    for i in (0..32).rev() {
        let s = u16::from(v[i]) + u16::from(N[i]) + carry;
        out[i] = s as u8;
        carry = s >> 8;
    }
    (carry == 0).then_some(out)
}

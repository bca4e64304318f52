//! The card's fast SM2 path: one fixed-base table of G for the whole card, a precomputed
//! signer per key (its (1+d)^-1 and Z), a pool of precomputed (k, x1) nonces refilled in
//! batches while the card is idle (each used once, zeroized, drawn from the card's DRBG),
//! and per-key verification tables for the keys that verify often.
//!
//! Results are the standard SM2 signatures (GB/T 32918.2); `alg::sm2_fast` is checked against
//! the RustCrypto path, the standard's vectors and OpenSSL.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use gmhsm_proto::{Label, Mechanism, Status};
use rand_core::TryCryptoRng;

use crate::alg::sm2_fast::{self, BaseTable, FastSigner, FastVerifier, NoncePool};
use crate::alg::{self};
use crate::keys::alg_status;

/// Nonces kept ready.
pub const POOL_CAPACITY: usize = 1024;
/// Nonces computed per refill (one batch inversion).
pub const BATCH: usize = 32;
/// Signers kept (each a few hundred bytes).
const MAX_SIGNERS: usize = 4096;
/// Verification tables kept (88 KiB each) and the uses after which a key earns one.
const MAX_VERIFIERS: usize = 32;
const VERIFIER_AFTER: u32 = 16;

pub struct Sm2Fast {
    table: Arc<BaseTable>,
    pool: NoncePool,
    signers: BTreeMap<Label, FastSigner>,
    verifiers: BTreeMap<Label, FastVerifier>,
    verify_counts: BTreeMap<Label, u32>,
}

impl Default for Sm2Fast {
    fn default() -> Self {
        let table = Arc::new(BaseTable::new());
        Sm2Fast {
            pool: NoncePool::new(table.clone(), POOL_CAPACITY),
            table,
            signers: BTreeMap::new(),
            verifiers: BTreeMap::new(),
            verify_counts: BTreeMap::new(),
        }
    }
}

impl Sm2Fast {
    /// Sign with the SM2 key `label` (its secret `secret`): over the message with an ID, or
    /// over a 32-byte digest. Takes a pooled nonce; an empty pool is refilled by one batch
    /// first, which costs less per nonce than computing one alone.
    pub fn sign<R: TryCryptoRng + ?Sized>(
        &mut self,
        label: &Label,
        secret: &sm2::SecretKey,
        mechanism: &Mechanism,
        msg: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Status> {
        if !self.signers.contains_key(label) {
            if self.signers.len() >= MAX_SIGNERS {
                self.signers.pop_first();
            }
            let signer = FastSigner::new(secret, self.table.clone()).map_err(alg_status)?;
            self.signers.insert(label.clone(), signer);
        }
        let signer = self.signers.get(label).ok_or(Status::Internal)?;
        if self.pool.is_empty() {
            self.pool.refill(rng, BATCH).map_err(alg_status)?;
        }
        let sig = match mechanism {
            Mechanism::Sm2Sm3 { distid } => signer.sign_pooled(&mut self.pool, rng, distid, msg),
            Mechanism::Sm2Digest => {
                let e: &[u8; 32] = msg.try_into().map_err(|_| Status::InvalidArgument)?;
                signer.sign_digest_pooled(&mut self.pool, rng, e)
            }
            _ => return Err(Status::WrongKeyType),
        }
        .map_err(alg_status)?;
        Ok(sig.to_der().to_vec())
    }

    /// Verify with the stored SM2 public key of `label`.
    pub fn verify(
        &mut self,
        label: &Label,
        public: &sm2::PublicKey,
        mechanism: &Mechanism,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), Status> {
        let sig = alg::sm2::signature_from_bytes(sig).map_err(|_| Status::SignatureInvalid)?;
        let e = match mechanism {
            Mechanism::Sm2Sm3 { distid } => alg::sm2::message_digest(distid, public, msg).map_err(alg_status)?,
            Mechanism::Sm2Digest => *<&[u8; 32]>::try_from(msg).map_err(|_| Status::InvalidArgument)?,
            _ => return Err(Status::WrongKeyType),
        };
        let uses = self.verify_counts.entry(label.clone()).or_insert(0);
        *uses = uses.saturating_add(1);
        if *uses >= VERIFIER_AFTER && !self.verifiers.contains_key(label) {
            if self.verifiers.len() >= MAX_VERIFIERS {
                self.verifiers.pop_first();
            }
            let v = FastVerifier::new(public, self.table.clone()).map_err(alg_status)?;
            self.verifiers.insert(label.clone(), v);
        }
        match self.verifiers.get(label) {
            Some(v) => v.verify_digest(&e, &sig),
            None => sm2_fast::verify_digest(&self.table, public, &e, &sig),
        }
        .map_err(|_| Status::SignatureInvalid)
    }

    /// Refill one batch of nonces if the pool is not full (the card calls this when idle).
    /// Returns whether it did work.
    pub fn refill<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<bool, Status> {
        if self.pool.len() + BATCH > self.pool.capacity() {
            return Ok(false);
        }
        self.pool.refill(rng, BATCH).map_err(alg_status)?;
        Ok(true)
    }

    /// Forget everything about `label` (deleted key).
    pub fn forget(&mut self, label: &Label) {
        self.signers.remove(label);
        self.verifiers.remove(label);
        self.verify_counts.remove(label);
    }

    /// Forget every key and nonce (error state, tamper, zeroize).
    pub fn clear(&mut self) {
        self.signers.clear();
        self.verifiers.clear();
        self.verify_counts.clear();
        self.pool.clear();
    }
}

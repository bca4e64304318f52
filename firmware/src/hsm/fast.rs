//! The card's fast SM2 path: one fixed-base table of G for the whole card, a precomputed
//! signer per key (its (1+d)^-1 and Z), a pool of precomputed (k, x1) nonces refilled in
//! batches while the card is idle (each used once, zeroized, drawn from the card's DRBG),
//! and per-key verification tables for the keys that verify often.
//!
//! Results are the standard SM2 signatures (GB/T 32918.2); `alg::sm2_fast` is checked against
//! the RustCrypto path, the standard's vectors and OpenSSL.
//!
//! ECDSA P-256 keys get the same treatment for signing (`alg::ecdsa_fast`): a pool of
//! (k⁻¹, r) pairs refilled by the same jobs. So do SM2 key pairs for `GenerateKeyPair`
//! (`sm2_fast::pairs`): (d, \[d\]G) computed ahead, each handed out once.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use gmhsm_proto::{Label, Mechanism};
use rand_core::TryCryptoRng;

use crate::alg::ecdsa_fast::{self, EcdsaJob, EcdsaNonce, EcdsaPool, P256Table};
use crate::alg::sm2_fast::pairs::{KeyPoint, PairJob, PairPool};
use crate::alg::sm2_fast::{self, BaseTable, FastSigner, FastVerifier, NonceBatch, NonceJob, NoncePool};
use crate::alg::{self};

use crate::error::Error;

/// Nonces kept ready.
pub const POOL_CAPACITY: usize = 1024;
/// Nonces computed per refill (one batch inversion).
pub const BATCH: usize = 32;
/// Nonces a signature computes on the spot when it finds the pool empty (one lane group of
/// the table multiplication: a short wait for this request rather than a whole batch).
const INLINE_BATCH: usize = sm2_fast::table_lanes();
/// SM2 key pairs kept ready for `GenerateKeyPair`.
pub const PAIR_CAPACITY: usize = 256;
/// Signers kept (each a few hundred bytes).
const MAX_SIGNERS: usize = 4096;
/// Verification tables kept (88 KiB each) and the uses after which a key earns one.
const MAX_VERIFIERS: usize = 32;
const VERIFIER_AFTER: u32 = 16;

pub struct Sm2Fast {
    table: Arc<BaseTable>,
    pool: NoncePool,
    /// ECDSA P-256: the comb table (IFMA) and the pool of (k⁻¹, r).
    p256: Arc<P256Table>,
    p256_pool: EcdsaPool,
    /// P-256 nonces out in jobs of the current epoch.
    p256_in_flight: usize,
    /// SM2 key pairs for `GenerateKeyPair`, and those out in jobs.
    pairs: PairPool,
    pairs_in_flight: usize,
    signers: BTreeMap<Label, FastSigner>,
    verifiers: BTreeMap<Label, FastVerifier>,
    verify_counts: BTreeMap<Label, u32>,
    /// Nonces handed out in [`RefillJob`]s of the current epoch and not yet accepted.
    in_flight: usize,
    /// Bumped by [`Sm2Fast::clear`]: a job drawn before is dropped when it comes back.
    epoch: u64,
}

/// A batch of secret nonce scalars drawn under the card's lock, to be multiplied outside it
/// (on another core) and handed back with [`crate::Hsm::accept_refill`]. Zeroized on drop.
#[derive(Debug)]
pub struct RefillJob {
    job: Option<NonceJob>,
    table: Arc<BaseTable>,
    p256_job: Option<EcdsaJob>,
    p256: Arc<P256Table>,
    pair_job: Option<PairJob>,
    epoch: u64,
    n: usize,
    p256_n: usize,
    pairs_n: usize,
}

impl RefillJob {
    /// The expensive part: the fixed-base multiplications and the batch inversions.
    pub fn compute(self) -> RefillDone {
        RefillDone {
            batch: self.job.map(|j| j.compute(&self.table)),
            p256: self.p256_job.map(|j| j.compute(&self.p256)),
            pairs: self.pair_job.map(|j| j.compute(&self.table)),
            epoch: self.epoch,
            n: self.n,
            p256_n: self.p256_n,
            pairs_n: self.pairs_n,
        }
    }
}

/// A computed [`RefillJob`], for [`crate::Hsm::accept_refill`]. Zeroized on drop.
#[derive(Debug)]
pub struct RefillDone {
    batch: Option<NonceBatch>,
    p256: Option<Vec<EcdsaNonce>>,
    pairs: Option<Vec<KeyPoint>>,
    epoch: u64,
    n: usize,
    p256_n: usize,
    pairs_n: usize,
}

impl Default for Sm2Fast {
    fn default() -> Self {
        let table = Arc::new(BaseTable::new());
        Sm2Fast {
            pool: NoncePool::new(table.clone(), POOL_CAPACITY),
            table,
            p256: Arc::new(P256Table::new()),
            p256_pool: EcdsaPool::new(POOL_CAPACITY),
            p256_in_flight: 0,
            pairs: PairPool::new(PAIR_CAPACITY),
            pairs_in_flight: 0,
            signers: BTreeMap::new(),
            verifiers: BTreeMap::new(),
            verify_counts: BTreeMap::new(),
            in_flight: 0,
            epoch: 0,
        }
    }
}

/// Nonces to compute on the spot for a request that finds a pool empty with `ahead`
/// signatures still to make: `ahead` rounded up to whole lane groups of `lanes`, at least one
/// group, at most one [`BATCH`].
pub fn inline_batch(lanes: usize, ahead: usize) -> usize {
    let lanes = lanes.max(1);
    ahead.max(1).div_ceil(lanes).saturating_mul(lanes).clamp(lanes, BATCH.max(lanes))
}

impl Sm2Fast {
    /// Sign every message of `msgs` with the SM2 key `label` (its secret `secret`), in order:
    /// over the message with an ID, or over a 32-byte digest; DER signatures. Each takes a
    /// pooled nonce; an empty pool is refilled first by [`inline_batch`]`(ahead)` nonces,
    /// `ahead` being the signatures this call still has to make: one lane group for a lone
    /// signature (a short wait), up to a whole batch for a `SignBatch` (one inversion shared by
    /// more nonces). The digests e = SM3(Z ‖ M) of a batch are computed together
    /// ([`FastSigner::digests`]: sixteen per pass of the multi-buffer SM3). All or nothing: a
    /// digest of the wrong size fails the call before a nonce is taken.
    pub fn sign_many<R: TryCryptoRng + ?Sized>(
        &mut self,
        label: &Label,
        secret: &sm2::SecretKey,
        mechanism: &Mechanism,
        msgs: &[&[u8]],
        rng: &mut R,
    ) -> Result<Vec<Vec<u8>>, Error> {
        if !self.signers.contains_key(label) {
            if self.signers.len() >= MAX_SIGNERS {
                self.signers.pop_first();
            }
            let signer = FastSigner::new(secret, self.table.clone()).map_err(Error::Alg)?;
            self.signers.insert(label.clone(), signer);
        }
        let signer = self.signers.get(label).ok_or(Error::Internal("signer just inserted"))?;
        let digests = match mechanism {
            Mechanism::Sm2Sm3 { distid } => signer.digests(distid, msgs).map_err(Error::Alg)?,
            Mechanism::Sm2Digest => msgs
                .iter()
                .map(|m| <[u8; 32]>::try_from(*m).map_err(|_| Error::Invalid("digest length")))
                .collect::<Result<Vec<_>, _>>()?,
            _ => return Err(Error::WrongKeyType),
        };
        let mut out = Vec::with_capacity(msgs.len());
        for (i, e) in digests.iter().enumerate() {
            if self.pool.is_empty() {
                self.pool.refill(rng, inline_batch(INLINE_BATCH, msgs.len() - i)).map_err(Error::Alg)?;
            }
            let sig = signer.sign_digest_pooled(&mut self.pool, rng, e).map_err(Error::Alg)?;
            out.push(alg::dersig::encode(&sig.r_bytes().into(), &sig.s_bytes().into()));
        }
        Ok(out)
    }

    /// Sign SHA-256(`msg`) with the ECDSA P-256 key `key`, with a pooled nonce (an empty pool
    /// is refilled as in [`Sm2Fast::sign_many`]).
    pub fn sign_p256<R: TryCryptoRng + ?Sized>(
        &mut self,
        key: &p256::ecdsa::SigningKey,
        msg: &[u8],
        rng: &mut R,
        ahead: usize,
    ) -> Result<Vec<u8>, Error> {
        let inline = inline_batch(self.p256.inline_batch(), ahead);
        ecdsa_fast::sign_pooled(key, &mut self.p256_pool, &self.p256, rng, msg, inline).map_err(Error::Alg)
    }

    /// A fresh SM2 key pair (d, \[d\]G) for `GenerateKeyPair`, from the pool (a few computed
    /// on the spot if it is empty).
    pub fn take_pair<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<KeyPoint, Error> {
        sm2_fast::pairs::take(&mut self.pairs, &self.table, rng, INLINE_BATCH).map_err(Error::Alg)
    }

    /// Count a use of the stored SM2 public key of `label` (a verification or an encryption)
    /// and return its table once it has earned one ([`VERIFIER_AFTER`] uses). At most
    /// [`MAX_VERIFIERS`] are kept, the first keys to earn one; later keys use the tableless
    /// paths rather than evict (with more busy keys than tables, evicting rebuilt an 88 KiB
    /// table on nearly every use, under the card's lock). Deleting a key frees its table.
    fn key_table(&mut self, label: &Label, public: &sm2::PublicKey) -> Result<Option<&FastVerifier>, Error> {
        let uses = self.verify_counts.entry(label.clone()).or_insert(0);
        *uses = uses.saturating_add(1);
        if *uses >= VERIFIER_AFTER && !self.verifiers.contains_key(label) && self.verifiers.len() < MAX_VERIFIERS {
            let v = FastVerifier::new(public, self.table.clone()).map_err(Error::Alg)?;
            self.verifiers.insert(label.clone(), v);
        }
        Ok(self.verifiers.get(label))
    }

    /// SM2-encrypt `data` to the stored public key of `label`: C1 = \[k\]G through the card's
    /// table and \[k\]PB through the key's own once it has one (see [`Sm2Fast::key_table`]).
    pub fn encrypt<R: TryCryptoRng + ?Sized>(
        &mut self,
        label: &Label,
        public: &sm2::PublicKey,
        data: &[u8],
        layout: alg::sm2_pke::Layout,
        rng: &mut R,
    ) -> Result<Vec<u8>, Error> {
        let g = self.table.clone();
        let p = self.key_table(label, public)?.map(FastVerifier::public_table);
        sm2_fast::pke::encrypt_with(Some(&g), p, rng, public, data, layout).map_err(Error::Alg)
    }

    /// Verify with the stored SM2 public key of `label`.
    pub fn verify(
        &mut self,
        label: &Label,
        public: &sm2::PublicKey,
        mechanism: &Mechanism,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<(), Error> {
        let sig = alg::sm2::signature_from_bytes(sig).map_err(|_| Error::SignatureInvalid)?;
        let verifier = self.key_table(label, public)?;
        match (mechanism, verifier) {
            // The key's table and its cached Z (for the default ID).
            (Mechanism::Sm2Sm3 { distid }, Some(v)) => v.verify(distid, msg, &sig),
            (Mechanism::Sm2Sm3 { distid }, None) => sm2_fast::verify(&self.table, public, distid, msg, &sig),
            (Mechanism::Sm2Digest, _) => {
                let e = <&[u8; 32]>::try_from(msg).map_err(|_| Error::Invalid("digest length"))?;
                match verifier {
                    Some(v) => v.verify_digest(e, &sig),
                    None => sm2_fast::verify_digest(&self.table, public, e, &sig),
                }
            }
            _ => return Err(Error::WrongKeyType),
        }
        .map_err(|e| match e {
            alg::AlgError::VerifyFailed => Error::SignatureInvalid,
            // An ID too long for ENTLA.
            e => Error::Alg(e),
        })
    }

    /// Which pools have room for a batch, counting the batches already out: (SM2 nonces,
    /// P-256 nonces, SM2 key pairs).
    fn room(&self) -> (bool, bool, bool) {
        (
            self.pool.len() + self.in_flight + BATCH <= self.pool.capacity(),
            self.p256_pool.len() + self.p256_in_flight + BATCH <= self.p256_pool.capacity(),
            self.pairs.len() + self.pairs_in_flight + BATCH <= self.pairs.capacity(),
        )
    }

    /// Whether [`Sm2Fast::refill_job`] would draw a job now.
    pub fn wants_refill(&self) -> bool {
        let (a, b, c) = self.room();
        a || b || c
    }

    /// Draw the scalars of one batch for computation outside the card's lock, if the pool
    /// (with the batches already out) has room for it.
    pub fn refill_job<R: TryCryptoRng + ?Sized>(&mut self, rng: &mut R) -> Result<Option<RefillJob>, Error> {
        let (sm2_room, p256_room, pairs_room) = self.room();
        if !sm2_room && !p256_room && !pairs_room {
            return Ok(None);
        }
        let job = if sm2_room { Some(NonceJob::draw(rng, BATCH).map_err(Error::Alg)?) } else { None };
        let p256_job = if p256_room { Some(EcdsaJob::draw(rng, BATCH).map_err(Error::Alg)?) } else { None };
        let pair_job = if pairs_room { Some(PairJob::draw(rng, BATCH).map_err(Error::Alg)?) } else { None };
        let count = |room: bool| if room { BATCH } else { 0 };
        let (n, p256_n, pairs_n) = (count(sm2_room), count(p256_room), count(pairs_room));
        self.in_flight += n;
        self.p256_in_flight += p256_n;
        self.pairs_in_flight += pairs_n;
        Ok(Some(RefillJob {
            job,
            table: self.table.clone(),
            p256_job,
            p256: self.p256.clone(),
            pair_job,
            epoch: self.epoch,
            n,
            p256_n,
            pairs_n,
        }))
    }

    /// Take a computed batch into the pool (dropped, zeroized, if the pool was cleared since
    /// it was drawn). Returns how many nonces were added.
    pub fn accept(&mut self, mut done: RefillDone) -> usize {
        if done.epoch != self.epoch {
            return 0;
        }
        self.in_flight = self.in_flight.saturating_sub(done.n);
        self.p256_in_flight = self.p256_in_flight.saturating_sub(done.p256_n);
        self.pairs_in_flight = self.pairs_in_flight.saturating_sub(done.pairs_n);
        let sm2 = done.batch.take().map_or(0, |b| self.pool.push(b));
        let p256 = done.p256.as_mut().map_or(0, |b| self.p256_pool.push(b));
        sm2 + p256 + done.pairs.as_mut().map_or(0, |b| self.pairs.push(b))
    }

    /// The card's fixed-base table of G (for key pairs generated on the fast path).
    pub fn table(&self) -> &Arc<BaseTable> {
        &self.table
    }

    /// Nonces ready (SM2, P-256).
    #[cfg(test)]
    fn pooled(&self) -> (usize, usize) {
        (self.pool.len(), self.p256_pool.len())
    }

    /// Key pairs ready.
    #[cfg(test)]
    fn pairs_ready(&self) -> usize {
        self.pairs.len()
    }

    /// Forget everything about `label` (deleted key).
    pub fn forget(&mut self, label: &Label) {
        self.signers.remove(label);
        self.verifiers.remove(label);
        self.verify_counts.remove(label);
    }

    /// Bumped by every [`Sm2Fast::clear`]: work drawn before one is dropped when it returns.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Forget every key and nonce (error state, tamper, zeroize).
    pub fn clear(&mut self) {
        self.signers.clear();
        self.verifiers.clear();
        self.verify_counts.clear();
        self.pool.clear();
        self.in_flight = 0;
        self.p256_pool.clear();
        self.p256_in_flight = 0;
        self.pairs.clear();
        self.pairs_in_flight = 0;
        self.epoch = self.epoch.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;

    #[test]
    fn inline_refills_cover_the_request_in_lane_groups_up_to_a_batch() {
        // (lanes, ahead) -> nonces
        for (lanes, ahead, n) in [(8, 1, 8), (8, 0, 8), (8, 9, 16), (8, 32, 32), (8, 200, 32), (1, 1, 1), (1, 5, 5)] {
            assert_eq!(inline_batch(lanes, ahead), n, "lanes {lanes}, ahead {ahead}");
        }
        assert_eq!(inline_batch(1, usize::MAX), BATCH);
        // A lone signature on an empty pool computes one lane group; a batch request more.
        let mut fast = Sm2Fast::default();
        let mut rng = CounterRng::new(b"inline");
        let secret = sm2::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let label = Label::try_from("k").unwrap();
        let digest = Mechanism::Sm2Digest;
        fast.sign_many(&label, &secret, &digest, &[&[1; 32]], &mut rng).unwrap();
        assert_eq!(fast.pooled().0, INLINE_BATCH - 1);
        while fast.pooled().0 > 0 {
            fast.sign_many(&label, &secret, &digest, &[&[1; 32]], &mut rng).unwrap();
        }
        let twenty = [&[1u8; 32][..]; 20];
        assert_eq!(fast.sign_many(&label, &secret, &digest, &twenty, &mut rng).unwrap().len(), 20);
        assert_eq!(fast.pooled().0, inline_batch(INLINE_BATCH, 20) - 20);
        assert!(inline_batch(INLINE_BATCH, 20) > INLINE_BATCH, "one refill for the whole batch");
        // A digest of the wrong size fails the batch before a nonce is taken.
        let before = fast.pooled().0;
        let bad = [&[1u8; 32][..], &[1u8; 31][..]];
        assert_eq!(fast.sign_many(&label, &secret, &digest, &bad, &mut rng), Err(Error::Invalid("digest length")));
        assert_eq!(fast.pooled().0, before);
    }

    #[test]
    fn busy_keys_get_a_table_up_to_the_bound_and_encrypt_through_it() {
        let mut fast = Sm2Fast::default();
        let mut rng = CounterRng::new(b"key tables");
        let layout = alg::sm2_pke::Layout::C1C3C2;
        let secrets: Vec<sm2::SecretKey> =
            (0..MAX_VERIFIERS + 1).map(|_| alg::sm2::generate(&mut rng).unwrap()).collect();
        for (i, secret) in secrets.iter().enumerate() {
            let label = Label::try_from(alloc::format!("k{i:03}").as_str()).unwrap();
            for n in 1..=VERIFIER_AFTER {
                let ct = fast.encrypt(&label, &secret.public_key(), b"data", layout, &mut rng).unwrap();
                let back = alg::sm2_pke::decrypt(secret, &ct, layout).unwrap();
                assert_eq!(&back[..], b"data");
                let has = fast.verifiers.contains_key(&label);
                assert_eq!(has, n >= VERIFIER_AFTER && i < MAX_VERIFIERS, "key {i}, use {n}");
            }
        }
        assert_eq!(fast.verifiers.len(), MAX_VERIFIERS, "the last key did not evict one");
    }

    #[test]
    fn jobs_fill_the_pool_once_and_stale_jobs_are_dropped() {
        let mut fast = Sm2Fast::default();
        let mut rng = CounterRng::new(b"jobs");
        let mut jobs = Vec::new();
        while let Some(job) = fast.refill_job(&mut rng).unwrap() {
            jobs.push(job);
            assert!(jobs.len() <= POOL_CAPACITY / BATCH, "jobs out never exceed the pool's room");
        }
        assert_eq!((jobs.len(), fast.pooled()), (POOL_CAPACITY / BATCH, (0, 0)));
        assert!(!fast.wants_refill(), "every pool is full counting the jobs out");
        let stale = jobs.pop().unwrap().compute();
        for (i, job) in jobs.drain(..).enumerate() {
            // Each job carries a batch for both nonce pools, the first ones also key pairs.
            let pairs = if i < PAIR_CAPACITY / BATCH { BATCH } else { 0 };
            assert_eq!(fast.accept(job.compute()), 2 * BATCH + pairs);
        }
        assert_eq!(fast.pooled(), (POOL_CAPACITY - BATCH, POOL_CAPACITY - BATCH));
        assert_eq!(fast.pairs_ready(), PAIR_CAPACITY);
        let pair = fast.take_pair(&mut rng).unwrap();
        assert_eq!(fast.pairs_ready(), PAIR_CAPACITY - 1);
        drop(pair);
        assert!(fast.refill_job(&mut rng).unwrap().is_none(), "the batch still out is counted");
        assert!(!fast.wants_refill());
        fast.clear();
        assert_eq!(fast.accept(stale), 0, "a batch drawn before a clear is dropped");
        assert_eq!((fast.pooled(), fast.pairs_ready()), ((0, 0), 0));
        assert!(fast.refill_job(&mut rng).unwrap().is_some());
        // With the SM2 pool full, a job still refills the P-256 pool alone.
        let mut fast = Sm2Fast::default();
        let mut drawn = Vec::new();
        while let Some(job) = fast.refill_job(&mut rng).unwrap() {
            drawn.push(job);
        }
        for job in drawn {
            fast.accept(job.compute());
        }
        let key = p256::ecdsa::SigningKey::from(crate::alg::ecdsa::generate(&mut rng).unwrap());
        for _ in 0..BATCH {
            fast.sign_p256(&key, b"m", &mut rng, 1).unwrap();
        }
        assert_eq!(fast.pooled(), (POOL_CAPACITY, POOL_CAPACITY - BATCH));
        assert!(fast.wants_refill());
        let job = fast.refill_job(&mut rng).unwrap().expect("room in the P-256 pool");
        assert_eq!((job.n, job.p256_n, job.pairs_n), (0, BATCH, 0));
    }
}

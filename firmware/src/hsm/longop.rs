//! Long operations off the card's lock: RSA key generation (`GenerateKey`, `GenerateKeyPair`
//! with an RSA algorithm; 0.1 s to several seconds) in three steps, so that the simulator (and
//! a board with a second core) serves other sessions while the primes are searched.
//!
//! 1. [`Hsm::execute_start`], under the lock: the request is checked into its plan as
//!    always (service, certificate, state, reserved labels, admin gate, access, label free,
//!    capabilities: `hsm/plan.rs`); its [`Step::NewKey`] is not computed here: a seed is drawn
//!    from the card's DRBG instead, and the request is answered by a [`KeygenJob`]. Nothing
//!    is stored.
//! 2. [`KeygenJob::compute`], outside the lock: the key from a Hash_DRBG (SM3) instantiated
//!    with that seed, deterministic given it. The card's DRBG stays the only entropy source.
//! 3. [`Hsm::finish_keygen`], under the lock: the same request runs through `execute` again
//!    with the computed key supplied, so every check is made again against what may have
//!    changed meanwhile (label taken: `KeyExists`; card no longer operational:
//!    `DeviceError`; quota, revocation, service stop), then the key is stored, audited and
//!    answered exactly as on the direct path. A refused finish stores nothing.
//!
//! `execute` alone computes the step at once, from the card's DRBG: the split is only taken
//! by `execute_start`.

use gmhsm_platform::Platform;
use gmhsm_proto::{KeyAlg, Principal, Request, Response, Status};
use zeroize::Zeroizing;

use super::Hsm;
use super::plan::{NewKey, Step};
use crate::drbg::{DrbgError, HashDrbg};
use crate::error::Error;
use crate::keys::{self, Generated};

/// Bytes of seed per job: entropy input and nonce of the job's Hash_DRBG (256 + 128 bits).
const SEED_LEN: usize = 48;
/// Personalization string of a job's Hash_DRBG.
const PERSONALIZATION: &[u8] = b"gmhsm/v1/keygen-job";

/// The card's side of the split (see the module docs).
#[derive(Default)]
pub(super) struct KeygenState {
    /// The computed key, while [`Hsm::finish_keygen`] runs its request.
    supplied: Option<(KeyAlg, Generated)>,
}

/// What [`Hsm::execute_start`] made of a request.
#[derive(Debug)]
pub enum Started {
    /// Answered at once (everything but a long operation, and every refusal).
    Answered(Result<Response, Status>),
    /// Checked and seeded: compute it outside the card's lock, then [`Hsm::finish_keygen`].
    Keygen(alloc::boxed::Box<KeygenJob>),
}

/// An RSA key generation that passed its checks: the request and the seed. Zeroized on drop.
pub struct KeygenJob {
    principal: Principal,
    session: u64,
    request: Request,
    alg: KeyAlg,
    seed: Zeroizing<[u8; SEED_LEN]>,
    epoch: u64,
}

/// A computed [`KeygenJob`], for [`Hsm::finish_keygen`]. The key is zeroized on drop.
pub struct KeygenDone {
    principal: Principal,
    session: u64,
    request: Request,
    alg: KeyAlg,
    generated: Result<Generated, Error>,
    epoch: u64,
}

impl core::fmt::Debug for KeygenJob {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeygenJob").field("session", &self.session).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl core::fmt::Debug for KeygenDone {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeygenDone").field("session", &self.session).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl KeygenJob {
    /// The expensive part: the prime search, from the job's seed alone.
    pub fn compute(self) -> KeygenDone {
        let mut rng = SeededRng(HashDrbg::new(&self.seed[..32], &self.seed[32..], PERSONALIZATION));
        let generated = keys::generate(self.alg, &mut rng);
        KeygenDone {
            principal: self.principal,
            session: self.session,
            request: self.request,
            alg: self.alg,
            generated,
            epoch: self.epoch,
        }
    }

    /// The card session that asked (its later requests wait for the answer).
    pub fn session(&self) -> u64 {
        self.session
    }
}

impl KeygenDone {
    /// The card session that asked.
    pub fn session(&self) -> u64 {
        self.session
    }
}

/// Would [`Hsm::execute_start`] split this request? RSA `GenerateKey` and `GenerateKeyPair`.
pub fn is_long(request: &Request) -> bool {
    match request {
        Request::GenerateKey { alg, .. } | Request::GenerateKeyPair { alg, .. } => is_rsa(*alg),
        _ => false,
    }
}

fn is_rsa(alg: KeyAlg) -> bool {
    matches!(alg, KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096)
}

impl<P: Platform> Hsm<P> {
    /// Step 1: check `request` into its plan as [`Hsm::execute`] would; an RSA key
    /// generation that passes its checks comes back as a [`KeygenJob`] instead of being
    /// computed.
    pub fn execute_start(&mut self, principal: &Principal, session: u64, request: Request) -> Started {
        if !is_long(&request) {
            return Started::Answered(self.execute(principal, session, request));
        }
        self.requests = self.requests.wrapping_add(1);
        let kept = request.clone();
        let new_key = match self.plan(principal, session, request) {
            Ok(Step::NewKey(k)) if is_rsa(k.alg) => k,
            step => return Started::Answered(step.and_then(|s| self.compute(s)).map_err(Error::status)),
        };
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        if let Err(e) = self.rng.fill(&mut seed[..]) {
            return Started::Answered(self.settle(Err(Error::Rng(e))).map_err(Error::status));
        }
        Started::Keygen(alloc::boxed::Box::new(KeygenJob {
            principal: principal.clone(),
            session,
            request: kept,
            alg: new_key.alg,
            seed,
            epoch: self.fast.epoch(),
        }))
    }

    /// Step 3: the request of `done` again, every check made anew, with its computed key;
    /// answered as [`Hsm::execute`] answers it. A job drawn before the card cleared its
    /// secrets (error state, tamper, zeroize) is refused with `DeviceError`.
    pub fn finish_keygen(&mut self, done: KeygenDone) -> Result<Response, Status> {
        if done.epoch != self.fast.epoch() {
            return Err(Error::Device("secrets cleared since the job was drawn").status());
        }
        self.keygen.supplied = Some((done.alg, done.generated?));
        let result = self.run(&done.principal, done.session, done.request).map_err(Error::status);
        // Not taken when refused before the key was needed: dropped (zeroized) here.
        self.keygen.supplied = None;
        result
    }

    /// The step of a generation that passed its checks: the key a job computed (in
    /// [`Hsm::finish_keygen`]) used at once, else [`Step::NewKey`] for the plan to compute.
    pub(super) fn key_step(&mut self, k: NewKey) -> Result<Step, Error> {
        match self.keygen.supplied.take() {
            Some((alg, generated)) if alg == k.alg => self.use_new_key(k, generated).map(Step::Answer),
            Some(_) => Err(Error::Internal("a job's key of another algorithm")),
            None => Ok(Step::NewKey(k)),
        }
    }
}

/// A job's Hash_DRBG as a `rand_core` generator.
struct SeededRng(HashDrbg<sm3::Sm3>);

impl rand_core::TryRng for SeededRng {
    type Error = DrbgError;

    fn try_next_u32(&mut self) -> Result<u32, DrbgError> {
        let mut b = [0u8; 4];
        self.0.generate(&mut b, &[])?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, DrbgError> {
        let mut b = [0u8; 8];
        self.0.generate(&mut b, &[])?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), DrbgError> {
        for chunk in dst.chunks_mut(crate::drbg::MAX_REQUEST) {
            self.0.generate(chunk, &[])?;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for SeededRng {}

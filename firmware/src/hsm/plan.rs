//! Plan, then compute: every request is first checked into a [`Step`] (gates, authorization,
//! key lookup, parameters: `Hsm::dispatch`), and the step is then computed.
//!
//! Most handlers finish their work while checking ([`Step::Answer`]). Two kinds of work are
//! left to the compute step, so that whoever runs the card decides how to compute them:
//! * [`Step::Sm2Decrypt`]: an SM2 decryption with a stored key. [`Hsm::execute`] computes it
//!   at once; [`Hsm::execute_many`] computes a run of consecutive ones together, per key,
//!   their \[dB\]C1 eight at a time on AVX-512 IFMA (`sm2_fast::pke::decrypt_many`), split over
//!   the board's two cores ([`Platform::join`]);
//! * [`Step::NewKey`]: a key generation (`GenerateKey`, `GenerateKeyPair` for anything but
//!   SM2, whose pairs come from the nonce engine's pool). [`Hsm::execute`] generates the key
//!   from the card's DRBG at once and stores or hands it out; [`Hsm::execute_start`] turns an
//!   RSA one into a [`super::KeygenJob`] computed outside the card's lock (`hsm/longop.rs`).

use alloc::vec::Vec;
use gmhsm_platform::{Clock, Platform};
use gmhsm_proto::{Capabilities, KeyAlg, Label, Principal, Request, Response, SecretBytes, Sm2Layout, Status};
use zeroize::Zeroizing;

use super::{Hsm, State};
use crate::alg::sm2_pke::Layout;
use crate::alg::{AlgError, sm2_fast::pke::decrypt_many};
use crate::error::Error;
use crate::keys::{self, Generated};
use crate::ops;

/// What checking a request made of it.
pub(super) enum Step {
    /// Carried out while checking: the answer.
    Answer(Response),
    /// An SM2 decryption with a stored key that passed every check.
    Sm2Decrypt(Sm2Decrypt),
    /// A key generation that passed every check; the key is still to be generated.
    NewKey(NewKey),
}

/// An SM2 decryption checked into the plan: the key (a copy: a later request of the same run
/// may evict it from the cache), the layout and the ciphertext.
pub(super) struct Sm2Decrypt {
    pub label: Label,
    pub secret: sm2::SecretKey,
    pub layout: Sm2Layout,
    pub data: Vec<u8>,
}

/// A key generation checked into the plan: the algorithm and what becomes of the key.
pub(super) struct NewKey {
    pub alg: KeyAlg,
    pub then: KeyUse,
}

/// What a generated key is for.
pub(super) enum KeyUse {
    /// `GenerateKey`: wrapped and stored under `label` for `owner`.
    Store { owner: Principal, label: Label, caps: Capabilities, domains: u32 },
    /// `GenerateKeyPair`: handed out, its private key wrapped under `kek` (SM4-GCM) or, when
    /// `None`, in the clear (the policy allowed it).
    HandOut { kek: Option<Zeroizing<[u8; 16]>> },
}

/// Decryptions from which a run is split in two halves computed at once
/// ([`Platform::join`]: on the board's second core): two groups of eight lanes.
const SPLIT_DECRYPTS: usize = 2 * gmhsm_ec_ifma::LANES;

/// `sm2_fast::pke::decrypt_many`, in two halves at once (whole groups of eight lanes each)
/// when there are at least [`SPLIT_DECRYPTS`] ciphertexts: the board's second core is idle
/// while the card decrypts (nothing precomputes for decryption).
pub(super) fn decrypt_split<P: Platform>(
    secret: &sm2::SecretKey,
    cts: &[&[u8]],
    layout: Layout,
) -> Vec<Result<Zeroizing<Vec<u8>>, AlgError>> {
    if cts.len() < SPLIT_DECRYPTS {
        return decrypt_many(secret, cts, layout);
    }
    // The first half gets the larger number of whole lane groups.
    const L: usize = gmhsm_ec_ifma::LANES;
    let (a, b) = cts.split_at(cts.len().div_ceil(2 * L) * L);
    let (mut first, second) = P::join(|| decrypt_many(secret, a, layout), || decrypt_many(secret, b, layout));
    first.extend(second);
    first
}

fn plaintext(p: Result<Zeroizing<Vec<u8>>, AlgError>) -> Result<Response, Error> {
    Ok(Response::Data(SecretBytes::new(p?.to_vec())))
}

/// Would this request join a run of decryptions computed together?
fn joins_run(request: &Request) -> bool {
    matches!(
        request,
        Request::Decrypt { key: gmhsm_proto::KeyRef::Label(_), mechanism: gmhsm_proto::CipherMech::Sm2 { .. }, .. }
    )
}

impl<P: Platform> Hsm<P> {
    /// Carry out one request for `principal`. Never panics on any input.
    pub fn execute(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Response, Status> {
        self.requests = self.requests.wrapping_add(1);
        self.run(principal, session, request).map_err(Error::status)
    }

    /// [`Hsm::execute`] without counting the request (a finished key generation runs its
    /// request a second time).
    pub(super) fn run(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Response, Error> {
        let step = self.plan(principal, session, request)?;
        self.compute(step)
    }

    /// Check one request into a [`Step`], with what surrounds every request: session expiry
    /// and touch, the DRBG's reseed tick, the tamper check, the RNG's health.
    pub(super) fn plan(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Step, Error> {
        let now_ms = self.clock.now_ms();
        // Sessions idle past their expiry go first (the daemon's CloseSession may be lost).
        self.sessions.tick(now_ms);
        self.sessions.touch(session, matches!(request, Request::CloseSession));
        self.rng.tick(now_ms);
        if self.tamper_check() {
            return Err(Error::Device("tamper event"));
        }
        self.check_rng();
        self.unaudited = false;
        let step = self.dispatch(principal, session, request);
        self.settle(step)
    }

    /// After a request's work: one whose audit record did not fit is refused, and a source
    /// that failed meanwhile latches the error state now.
    pub(super) fn settle<T>(&mut self, mut result: Result<T, Error>) -> Result<T, Error> {
        if core::mem::take(&mut self.unaudited) && result.is_ok() {
            result = Err(Error::Unaudited);
        }
        self.check_rng();
        result
    }

    /// Compute one step on its own.
    pub(super) fn compute(&mut self, step: Step) -> Result<Response, Error> {
        match step {
            Step::Answer(r) => Ok(r),
            Step::Sm2Decrypt(d) => {
                plaintext(crate::alg::sm2_pke::decrypt(&d.secret, &d.data, ops::sm2_layout(d.layout)))
            }
            Step::NewKey(k) => {
                self.unaudited = false;
                let result = keys::generate(k.alg, &mut self.rng).and_then(|g| self.use_new_key(k, g));
                self.settle(result)
            }
        }
    }

    /// Store or hand out a key generated for `k` (here, or by a job outside the lock).
    pub(super) fn use_new_key(&mut self, k: NewKey, generated: Generated) -> Result<Response, Error> {
        match k.then {
            KeyUse::Store { owner, label, caps, domains } => {
                self.store_new_key(&owner, label, k.alg, caps, domains, generated)
            }
            KeyUse::HandOut { kek } => self.hand_out_pair(k.alg, super::keypair::other_pair(k.alg, generated)?, kek),
        }
    }

    /// Execute `requests` in order, each answered as [`Hsm::execute`] would answer it; what
    /// a link read brings in at once. Each is checked into its step in its place (access,
    /// state, tamper, exactly as alone); consecutive `Step::Sm2Decrypt`s are then computed
    /// together, per key and layout, as a `DecryptBatch` is. Any request that is not an SM2
    /// decryption with a stored key first computes the run before it, so no request sees a
    /// later one's effects; a run whose card left the operational state meanwhile (a tamper
    /// event) is answered `DeviceError`. `before_each` runs before every request (the
    /// simulator hands its nonce engine's finished batches in there, as it does before a lone
    /// request).
    pub fn execute_many(
        &mut self,
        requests: Vec<(Principal, u64, Request)>,
        mut before_each: impl FnMut(&mut Self),
    ) -> Vec<Result<Response, Status>> {
        let mut out = Vec::with_capacity(requests.len());
        let mut run: Vec<Sm2Decrypt> = Vec::new();
        for (principal, session, request) in requests {
            before_each(self);
            self.requests = self.requests.wrapping_add(1);
            if !joins_run(&request) {
                self.compute_run(&mut run, &mut out);
                out.push(self.run(&principal, session, request));
                continue;
            }
            match self.plan(&principal, session, request) {
                Ok(Step::Sm2Decrypt(d)) => run.push(d),
                step => {
                    self.compute_run(&mut run, &mut out);
                    out.push(step.and_then(|s| self.compute(s)));
                }
            }
        }
        self.compute_run(&mut run, &mut out);
        out.into_iter().map(|r| r.map_err(Error::status)).collect()
    }

    /// Compute the decryptions of `run` and append their answers to `out`, one
    /// `decrypt_many` per stretch with the same key and layout.
    fn compute_run(&mut self, run: &mut Vec<Sm2Decrypt>, out: &mut Vec<Result<Response, Error>>) {
        let operational = matches!(self.state, State::Operational(_));
        let items = core::mem::take(run);
        let mut rest = &items[..];
        while let Some(first) = rest.first() {
            let same = rest.iter().take_while(|d| d.label == first.label && d.layout == first.layout).count();
            let (group, tail) = rest.split_at(same);
            rest = tail;
            if !operational {
                out.extend(group.iter().map(|_| Err(Error::Device("left the operational state"))));
                continue;
            }
            let cts: Vec<&[u8]> = group.iter().map(|d| &d.data[..]).collect();
            let plain = decrypt_split::<P>(&first.secret, &cts, ops::sm2_layout(first.layout));
            out.extend(plain.into_iter().map(plaintext));
        }
    }
}

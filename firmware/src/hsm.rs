//! The crypto card: `Hsm::execute(principal, session, request)`, with no I/O inside.
//!
//! Device states: `Factory` (no device master key; waits for initialization), `Operational`,
//! and `Error` (self-test or entropy failure, tamper, lost DMK, broken store), in which every
//! cryptographic request is refused with [`Status::DeviceError`] and the reason is reported by
//! `GetStatus`.
//!
//! Orthogonal to the device state, the service can be stopped by the administrators
//! (`ServiceStop`, persisted under `m:service`): applications then get
//! [`Status::ServiceStopped`] for everything but `Ping`, `GetStatus` and the daemon's
//! `CloseSession`, while local tools keep working.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;
use gmhsm_platform::{Clock, Devices, Platform};
use gmhsm_proto::{AuditEvent, AuditState, Label, Principal, Request, Response, Status, StatusInfo};

use crate::audit::AuditLog;
use crate::keys::LoadedKey;
use crate::rng::CardRng;
use crate::session::Sessions;
use crate::store::{Store, StoreError};
use crate::wrap::Wrapper;
use crate::{dmk, selftest};

const KEY_PREFIX: &[u8] = b"k:";
const META_INIT: &[u8] = b"m:init";
const META_BOOTS: &[u8] = b"m:boots";
/// Present (value `[1]`) while the service is stopped.
const META_SERVICE: &[u8] = b"m:service";
/// Most unwrapped keys kept in card RAM.
const CACHE_MAX: usize = 4096;

enum State {
    Factory,
    Operational(Wrapper),
    Error(&'static str),
}

pub struct Hsm<P: Platform> {
    store: Option<Store<P::Flash>>,
    rng: CardRng<P::Noise>,
    tamper: P::Tamper,
    clock: P::Clock,
    state: State,
    boots: u32,
    cache: BTreeMap<Label, LoadedKey>,
    /// RAM copies of stored key records (see `access::load_record`).
    records: BTreeMap<Label, crate::keys::KeyRecord>,
    fast: fast::Sm2Fast,
    audit: Option<AuditLog>,
    sessions: Sessions,
    admin: crate::quorum::AdminRuntime,
    /// Mirrors `m:service` in the store.
    service_stopped: bool,
    /// Card sessions seen and not closed (bounded like [`Sessions`]), for the status.
    live: BTreeSet<u64>,
    /// Requests handled since boot.
    requests: u64,
    /// Set while [`Hsm::execute_many`] runs an SM2 decryption with a stored key: the handler
    /// checks access as always, then leaves the computation in `deferred` for the run.
    deferring: bool,
    deferred: Option<Deferred>,
}

/// Decryptions from which a batch is split in two halves computed at once
/// ([`Platform::join`]: on the board's second core): two groups of eight lanes.
const SPLIT_DECRYPTS: usize = 2 * gmhsm_ec_ifma::LANES;

/// `sm2_fast::pke::decrypt_many`, in two halves at once (whole groups of eight lanes each)
/// when there are at least [`SPLIT_DECRYPTS`] ciphertexts: the board's second core is idle
/// while the card decrypts (nothing precomputes for decryption).
fn decrypt_split<P: Platform>(
    secret: &sm2::SecretKey,
    cts: &[&[u8]],
    layout: crate::alg::sm2_pke::Layout,
) -> Vec<Result<zeroize::Zeroizing<Vec<u8>>, crate::alg::AlgError>> {
    use crate::alg::sm2_fast::pke::decrypt_many;
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

/// An SM2 decryption that passed every check inside [`Hsm::execute_many`], computed with the
/// rest of its run of consecutive decryptions.
struct Deferred {
    label: Label,
    secret: sm2::SecretKey,
    layout: gmhsm_proto::Sm2Layout,
    data: Vec<u8>,
}

mod access;
mod admin;
mod fast;
pub mod keypair;

pub use fast::{RefillDone, RefillJob};
mod handlers;
mod usage;

/// The request's variant index on the wire, as audit records name it (no allocation: this
/// runs for every request).
fn request_kind(r: &Request) -> u8 {
    use Request as R;
    match r {
        R::Ping => 0,
        R::GetStatus => 1,
        R::GenerateKey { .. } => 2,
        R::ExportPublicKey { .. } => 3,
        R::Sign { .. } => 4,
        R::Verify { .. } => 5,
        R::DeleteKey { .. } => 6,
        R::ListKeys => 7,
        R::ReadAudit { .. } => 8,
        R::GenerateRandom { .. } => 9,
        R::Hash { .. } => 10,
        R::Encrypt { .. } => 11,
        R::Decrypt { .. } => 12,
        R::Mac { .. } => 13,
        R::VerifyMac { .. } => 14,
        R::OpInit { .. } => 15,
        R::OpUpdate { .. } => 16,
        R::OpFinal { .. } => 17,
        R::GenerateSessionKey { .. } => 18,
        R::ImportSessionKey { .. } => 19,
        R::DestroySessionKey { .. } => 20,
        R::AgreementInit { .. } => 21,
        R::AgreementRespond { .. } => 22,
        R::AgreementFinish { .. } => 23,
        R::SelfTest => 24,
        R::GetKeyInfo { .. } => 25,
        R::SetKeyPassword { .. } => 26,
        R::AuthorizeKey { .. } => 27,
        R::CloseSession => 28,
        R::RegisterApplication { .. } => 29,
        R::ImportEnvelopedKeyPair { .. } => 30,
        R::AdminChallenge => 31,
        R::AdminLogin { .. } => 32,
        R::AdminLogout { .. } => 33,
        R::AdminStatus => 34,
        R::InitBegin { .. } => 35,
        R::ReplaceBegin { .. } => 36,
        R::CeremonyEnroll { .. } => 37,
        R::CeremonyShare { .. } => 38,
        R::CeremonyVerify { .. } => 39,
        R::CeremonyCommit => 40,
        R::CeremonyAbort => 41,
        R::AuthorizeUnblock { .. } => 42,
        R::SetPolicy { .. } => 43,
        R::RevokeApplication { .. } => 44,
        R::Zeroize => 45,
        R::ServiceStop => 46,
        R::ServiceStart => 47,
        R::GenerateKeyPair { .. } => 48,
        R::KeyExportPolicy { .. } => 49,
        R::SignBatch { .. } => 50,
        R::DecryptBatch { .. } => 51,
        _ => u8::MAX,
    }
}

fn short(why: &str) -> heapless::String<96> {
    let mut s = heapless::String::new();
    for c in why.chars() {
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

fn store_key(label: &Label) -> Vec<u8> {
    let mut k = KEY_PREFIX.to_vec();
    k.extend_from_slice(label.as_bytes());
    k
}

fn store_status(e: StoreError) -> Status {
    match e {
        StoreError::Full => Status::StoreFull,
        _ => Status::Internal,
    }
}

impl<P: Platform> Hsm<P> {
    /// Power-up: tamper check, self-tests, entropy start-up, store recovery, DMK load.
    pub fn boot(devices: Devices<P>) -> Self {
        let Devices { noise, flash, tamper, clock } = devices;
        let now = clock.now_ms();
        let (rng, rng_ok) = CardRng::new(noise, now, b"gmhsm card drbg");
        let mut hsm = Hsm {
            store: None,
            rng,
            tamper,
            clock,
            state: State::Factory,
            boots: 0,
            cache: BTreeMap::new(),
            records: BTreeMap::new(),
            fast: Default::default(),
            audit: None,
            sessions: Sessions::default(),
            admin: Default::default(),
            service_stopped: false,
            live: BTreeSet::new(),
            requests: 0,
            deferring: false,
            deferred: None,
        };
        if hsm.tamper_check() {
            return hsm;
        }
        if let Err(why) = selftest::run() {
            hsm.state = State::Error(why);
            return hsm;
        }
        if let Err(e) = rng_ok {
            hsm.state = State::Error(match e {
                crate::rng::RngError::Entropy(e) => e.describe(),
                crate::rng::RngError::NotReady => "rng: not instantiated",
            });
            return hsm;
        }
        match Store::open(flash) {
            Ok(s) => hsm.store = Some(s),
            Err(_) => {
                hsm.state = State::Error("store: flash unreadable or corrupt");
                return hsm;
            }
        }
        hsm.count_boot();
        hsm.service_stopped = hsm.store.as_ref().is_some_and(|s| s.contains(META_SERVICE));
        hsm.audit = hsm.store.as_ref().map(AuditLog::load);
        let initialized = hsm.store.as_ref().is_some_and(|s| s.contains(META_INIT));
        hsm.state = match (dmk::load(&mut hsm.tamper), initialized) {
            (dmk::Slot::Empty, false) => State::Factory,
            (dmk::Slot::Key(k), true) => State::Operational(Wrapper::new(&k)),
            (dmk::Slot::Empty, true) => State::Error("device master key lost (tamper): stored keys unreadable"),
            // Power was cut during initialization, before it committed: start it over.
            (dmk::Slot::Key(_), false) => match dmk::zeroize(&mut hsm.tamper) {
                Ok(()) => State::Factory,
                Err(()) => State::Error("tamper RAM unwritable"),
            },
            (dmk::Slot::Corrupt, _) => State::Error("tamper RAM corrupt"),
        };
        let error = match hsm.state {
            State::Error(why) => Some(short(why)),
            _ => None,
        };
        hsm.log(None, AuditEvent::Boot { error });
        if matches!(hsm.state, State::Operational(_))
            && let Err(s) = hsm.ensure_device_keys()
        {
            let _ = s;
            hsm.state = State::Error("device keys could not be created");
        }
        hsm
    }

    /// Append an audit record. An audit write that fails puts the card in its error state:
    /// it does not go on working unaudited.
    fn log(&mut self, principal: Option<Principal>, event: AuditEvent) {
        let (Some(store), Some(audit)) = (self.store.as_mut(), self.audit.as_mut()) else { return };
        let now = self.clock.now_ms();
        if audit.append(store, self.boots, now, principal, event).is_err() {
            self.cache.clear();
            self.records.clear();
            self.fast.clear();
            self.state = State::Error("audit log write failed");
        }
    }

    fn deny(&mut self, principal: &Principal, request: u8, status: Status) -> Status {
        self.log(Some(principal.clone()), AuditEvent::Denied { request, status });
        status
    }

    /// Latch a tamper event: zeroize the DMK and enter the error state. `true` if it fired.
    fn tamper_check(&mut self) -> bool {
        use gmhsm_platform::TamperRam;
        if self.tamper.tamper_event() {
            let _ = dmk::zeroize(&mut self.tamper);
            self.cache.clear();
            self.records.clear();
            self.fast.clear();
            self.sessions.clear();
            self.state = State::Error("tamper event: device master key zeroized");
            self.log(None, AuditEvent::Tamper);
            return true;
        }
        false
    }

    fn count_boot(&mut self) {
        let Some(store) = self.store.as_mut() else { return };
        let prev = store
            .get(META_BOOTS)
            .ok()
            .flatten()
            .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
            .map(u32::from_be_bytes)
            .unwrap_or(0);
        self.boots = prev.wrapping_add(1);
        let _ = store.insert(META_BOOTS, &self.boots.to_be_bytes());
    }

    /// Work to do while no request is waiting: refill the SM2 nonce pool by one batch.
    /// Returns whether there was work (call again until it says no).
    pub fn idle(&mut self) -> bool {
        match self.refill_job() {
            Some(job) => self.accept_refill(job.compute()) > 0,
            None => false,
        }
    }

    /// The card's second engine: draw one batch of SM2 nonce scalars (cheap, from the card's
    /// DRBG) for [`RefillJob::compute`] to multiply outside the caller's lock, in parallel
    /// with requests; hand the result back with [`Hsm::accept_refill`]. `None` when the pool
    /// (with the batches already out) is full, or the card is not operational.
    pub fn refill_job(&mut self) -> Option<RefillJob> {
        if !self.wants_refill() {
            return None;
        }
        let job = self.fast.refill_job(&mut self.rng).ok().flatten();
        self.check_rng();
        job
    }

    /// Whether [`Hsm::refill_job`] would hand out a job now (a pool has room for a batch and
    /// the card is operational), without drawing anything: for an engine that sleeps until
    /// there is work.
    pub fn wants_refill(&self) -> bool {
        matches!(self.state, State::Operational(_)) && self.rng.failure().is_none() && self.fast.wants_refill()
    }

    /// Put a computed batch into the nonce pool (dropped, zeroized, if the card left the
    /// operational state or cleared its pool meanwhile). Returns how many nonces were added.
    pub fn accept_refill(&mut self, done: RefillDone) -> usize {
        if !matches!(self.state, State::Operational(_)) {
            return 0;
        }
        self.fast.accept(done)
    }

    /// Power down: hand back the flash (tests reboot the card on the same flash).
    pub fn into_flash(self) -> Option<P::Flash> {
        self.store.map(|s| s.into_flash())
    }

    /// Leave the factory state with a fresh device master key and no admin cards: a device
    /// administered by its local tools alone (unit tests, and benches). The appliance is
    /// initialized by the init ceremony instead (`InitBegin` … `CeremonyCommit`), which
    /// splits the domain key onto admin cards and gates administration behind a quorum.
    pub fn initialize(&mut self) -> Result<(), Status> {
        if !matches!(self.state, State::Factory) {
            return Err(Status::InvalidArgument);
        }
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        self.rng.fill(&mut k[..]).map_err(|_| Status::DeviceError)?;
        dmk::store(&mut self.tamper, &k).map_err(|_| Status::DeviceError)?;
        let store = self.store.as_mut().ok_or(Status::DeviceError)?;
        store.insert(META_INIT, &[1]).map_err(store_status)?;
        self.state = State::Operational(Wrapper::new(&k));
        self.log(None, AuditEvent::Initialized);
        self.ensure_device_keys()
    }

    /// The device's own key pairs, SDF index 0: `sdf:sign:0` and `sdf:enc:0`, SM2, owned by
    /// the appliance (local principal), usable by registered applications of every domain
    /// (e.g. to unwrap envelopes clients made with the appliance's certificate). Created at
    /// initialization, or at the next boot if a power cut came first.
    fn ensure_device_keys(&mut self) -> Result<(), Status> {
        use gmhsm_proto::{Capabilities as C, KeyAlg};
        for (name, caps) in [
            ("sdf:sign:0", C::SIGN | C::VERIFY),
            ("sdf:enc:0", C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP | C::DERIVE),
        ] {
            let label = Label::try_from(name).map_err(|_| Status::Internal)?;
            if self.store.as_ref().is_some_and(|s| s.contains(&store_key(&label))) {
                continue;
            }
            self.generate(&Principal::Local, label, KeyAlg::Sm2, caps, u32::MAX)?;
        }
        Ok(())
    }

    pub fn status(&self) -> StatusInfo {
        let keys = self.store.as_ref().map_or(0, |s| s.keys().filter(|k| k.starts_with(KEY_PREFIX)).count());
        let error = match &self.state {
            State::Error(why) => Some(short(why)),
            _ => None,
        };
        let audit =
            self.audit.as_ref().map_or(AuditState { first_seq: 0, last_seq: 0, chain_break: None }, |a| a.state());
        StatusInfo {
            initialized: !matches!(self.state, State::Factory),
            error,
            keys: keys as u32,
            boots: self.boots,
            audit,
            service_stopped: self.service_stopped,
            sessions: self.live.len() as u32,
            requests: self.requests,
        }
    }

    /// Carry out one request for `principal`. Never panics on any input.
    pub fn execute(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Response, Status> {
        self.requests = self.requests.wrapping_add(1);
        self.count_session(session, &request);
        self.rng.tick(self.clock.now_ms());
        if self.tamper_check() {
            return Err(Status::DeviceError);
        }
        self.check_rng();
        let result = self.dispatch(principal, session, request);
        // A source that failed during this request latches the error state now.
        self.check_rng();
        result
    }

    /// Execute `requests` in order, each answered as [`Hsm::execute`] would answer it; what
    /// a link read brings in at once. Consecutive SM2 decryptions with stored keys
    /// (`Decrypt` with `CipherMech::Sm2`) are checked one by one in their place (access, state,
    /// tamper, exactly as alone) and then computed together, per key: their \[dB\]C1 eight at
    /// a time on AVX-512 IFMA (`sm2_fast::pke::decrypt_many`), as a `DecryptBatch` is. Any
    /// other request first finishes the run before it, so no request sees a later one's
    /// effects; a run whose card left the operational state meanwhile (a tamper event) is
    /// answered `DeviceError`. `before_each` runs before every request (the simulator hands
    /// its nonce engine's finished batches in there, as it does before a lone request).
    pub fn execute_many(
        &mut self,
        requests: Vec<(Principal, u64, Request)>,
        mut before_each: impl FnMut(&mut Self),
    ) -> Vec<Result<Response, Status>> {
        let mut out = Vec::with_capacity(requests.len());
        let mut run: Vec<(usize, Deferred)> = Vec::new();
        for (principal, session, request) in requests {
            before_each(self);
            let coalesce = matches!(
                &request,
                Request::Decrypt {
                    key: gmhsm_proto::KeyRef::Label(_),
                    mechanism: gmhsm_proto::CipherMech::Sm2 { .. },
                    ..
                }
            );
            if !coalesce {
                self.finish_decrypts(&mut run, &mut out);
                out.push(self.execute(&principal, session, request));
                continue;
            }
            self.deferring = true;
            let result = self.execute(&principal, session, request);
            self.deferring = false;
            match (self.deferred.take(), result) {
                (Some(d), Ok(_)) => {
                    run.push((out.len(), d));
                    // Replaced by `finish_decrypts`.
                    out.push(Err(Status::Internal));
                }
                (_, result) => out.push(result),
            }
        }
        self.finish_decrypts(&mut run, &mut out);
        out
    }

    /// Compute the deferred decryptions of `run` into their places in `out`, one
    /// `decrypt_many` per stretch with the same key and layout.
    fn finish_decrypts(&mut self, run: &mut Vec<(usize, Deferred)>, out: &mut [Result<Response, Status>]) {
        let operational = matches!(self.state, State::Operational(_));
        let items = core::mem::take(run);
        let mut rest = &items[..];
        while let Some((first, _)) = rest.split_first() {
            let same = rest.iter().take_while(|(_, d)| d.label == first.1.label && d.layout == first.1.layout).count();
            let (group, tail) = rest.split_at(same);
            rest = tail;
            if !operational {
                group.iter().for_each(|(i, _)| out[*i] = Err(Status::DeviceError));
                continue;
            }
            let cts: Vec<&[u8]> = group.iter().map(|(_, d)| &d.data[..]).collect();
            let plain = decrypt_split::<P>(&first.1.secret, &cts, crate::ops::sm2_layout(first.1.layout));
            for ((i, _), p) in group.iter().zip(plain) {
                out[*i] = p
                    .map(|m| Response::Data(gmhsm_proto::SecretBytes::new(m.to_vec())))
                    .map_err(crate::keys::alg_status);
            }
        }
    }

    /// Keep the set of open sessions: `CloseSession` ends one, any other request opens it.
    /// Past [`crate::session::MAX_SESSIONS`] the lowest id is forgotten (a count, not state).
    fn count_session(&mut self, session: u64, request: &Request) {
        if matches!(request, Request::CloseSession) {
            self.live.remove(&session);
            return;
        }
        if self.live.insert(session) && self.live.len() > crate::session::MAX_SESSIONS {
            self.live.pop_first();
        }
    }

    /// Is this request refused because the service is stopped? Only applications are: the
    /// appliance's own tools administer it, and `Ping`, `GetStatus` and the daemon's
    /// `CloseSession` still work. Not audited per request (the stop itself is).
    fn service_refuses(&self, principal: &Principal, request: &Request) -> bool {
        self.service_stopped
            && matches!(principal, Principal::Application { .. })
            && !matches!(request, Request::Ping | Request::GetStatus | Request::CloseSession)
    }

    /// Enter the error state if the RNG can no longer produce output.
    fn check_rng(&mut self) {
        if let Some(e) = self.rng.failure()
            && !matches!(self.state, State::Error(_))
        {
            self.cache.clear();
            self.records.clear();
            self.fast.clear();
            let why = match e {
                crate::rng::RngError::Entropy(e) => e.describe(),
                crate::rng::RngError::NotReady => "rng: not instantiated",
            };
            self.state = State::Error(why);
            self.log(None, AuditEvent::ErrorState { reason: short(why) });
        }
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    /// The index given to audit records is the one postcard puts on the wire.
    #[test]
    fn request_kind_matches_the_wire_index() {
        let samples = [
            Request::Ping,
            Request::ListKeys,
            Request::SelfTest,
            Request::CloseSession,
            Request::GenerateRandom { len: 1 },
            Request::AdminChallenge,
            Request::CeremonyCommit,
            Request::Zeroize,
            Request::ServiceStop,
            Request::ServiceStart,
            Request::GenerateKeyPair {
                alg: gmhsm_proto::KeyAlg::Sm2,
                protection: gmhsm_proto::request::KeyPairProtection::Plaintext,
            },
            Request::KeyExportPolicy { set: None },
            Request::SignBatch {
                label: Label::try_from("k").unwrap(),
                mechanism: gmhsm_proto::Mechanism::Sm2Digest,
                messages: alloc::vec![],
            },
            Request::DecryptBatch {
                label: Label::try_from("k").unwrap(),
                mechanism: gmhsm_proto::CipherMech::Sm2 { layout: gmhsm_proto::Sm2Layout::C1C3C2 },
                ciphertexts: alloc::vec![],
            },
        ];
        for r in samples {
            let wire = postcard::to_allocvec(&r).unwrap();
            assert_eq!(request_kind(&r), wire[0]);
        }
    }
}

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

use alloc::collections::BTreeMap;
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
    /// The DMK-derived keys and set digest authenticating the flash (`hsm/sealed.rs`);
    /// present while a DMK is loaded.
    integrity: Option<crate::integrity::Integrity>,
    /// How the card was initialized (kept with the DMK in tamper RAM); `None` in the factory
    /// state.
    mode: Option<dmk::Mode>,
    /// Requests handled since boot.
    requests: u64,
    /// Set while [`Hsm::execute_many`] runs an SM2 decryption with a stored key: the handler
    /// checks access as always, then leaves the computation in `deferred` for the run.
    deferring: bool,
    deferred: Option<Deferred>,
    /// Keys and store bytes each application owns (see `quota`).
    usage: quota::Ledger,
    /// Set when an audit record of an application's request could not be written: that
    /// request is refused (the card stays operational; see [`Hsm::log`]).
    unaudited: bool,
    /// RSA key generation split around the expensive part (`hsm/longop.rs`).
    keygen: longop::KeygenState,
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
mod longop;
pub use longop::{KeygenDone, KeygenJob, Started, is_long};
mod checkpoint;
mod handlers;
mod labels;
mod quota;
mod sealed;
mod usage;
pub use quota::Usage;

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
            integrity: None,
            mode: None,
            requests: 0,
            deferring: false,
            deferred: None,
            usage: Default::default(),
            unaudited: false,
            keygen: Default::default(),
        };
        if hsm.tamper_check() {
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
        // The store, the device state and the audit trail come first: a card in its error
        // state still shows its audit trail, and the quorum can still log in and zeroize
        // (`hsm/admin.rs`).
        let (state, audit_from) = hsm.recover();
        hsm.state = state;
        let keys = hsm.integrity.as_ref().map(|k| (k, audit_from));
        hsm.audit = hsm.store.as_ref().map(|s| AuditLog::load(s, keys));
        if matches!(hsm.state, State::Operational(_)) {
            hsm.service_stopped = matches!(hsm.sealed_get(META_SERVICE), Ok(Some(_)));
        }
        let failed = match (selftest::run(), rng_ok) {
            (Err(why), _) => Some(why),
            (Ok(()), Err(crate::rng::RngError::Entropy(e))) => Some(e.describe()),
            (Ok(()), Err(crate::rng::RngError::NotReady)) => Some("rng: not instantiated"),
            (Ok(()), Ok(())) => None,
        };
        if let Some(why) = failed {
            hsm.state = State::Error(why);
            hsm.log(None, AuditEvent::Boot { error: Some(short(why)) });
            return hsm;
        }
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

    /// Append an audit record. An audit write that fails for an application's request
    /// refuses that request ([`Hsm::audited`], or [`Hsm::execute`] for the rest) and leaves
    /// the card operational; any other puts the card in its error state: it does not go on
    /// working unaudited. (The log drops its oldest records rather than fail for room, and
    /// applications cannot eat into its reserve: see [`crate::reserve`].)
    fn log(&mut self, principal: Option<Principal>, event: AuditEvent) {
        let (Some(store), Some(audit)) = (self.store.as_mut(), self.audit.as_mut()) else { return };
        let now = self.clock.now_ms();
        let app = matches!(principal, Some(Principal::Application { .. }));
        if audit.append(store, self.integrity.as_ref(), self.boots, now, principal, event).is_err() {
            if app {
                self.unaudited = true;
                return;
            }
            self.cache.clear();
            self.records.clear();
            self.fast.clear();
            self.state = State::Error("audit log write failed");
        }
    }

    /// Audit what an application's request did, before it takes effect or with its effect
    /// undone on `Err` (`StoreFull`: the record did not fit).
    fn audited(&mut self, principal: &Principal, event: AuditEvent) -> Result<(), Status> {
        self.log(Some(principal.clone()), event);
        if core::mem::take(&mut self.unaudited) {
            return Err(Status::StoreFull);
        }
        Ok(())
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
            self.integrity = None;
            self.mode = None;
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
        self.commit_init(&k, dmk::Mode::Demo, None)?;
        self.log(None, AuditEvent::Initialized);
        self.ensure_device_keys()
    }

    /// The device's own key pairs, SDF index 0: `sdf:sign:0` and `sdf:enc:0`, SM2, owned by
    /// the appliance (local principal), usable by registered applications of every domain
    /// (e.g. to unwrap envelopes clients made with the appliance's certificate); and the
    /// audit checkpoint key. Created at initialization, or at the next boot if a power cut
    /// came first.
    fn ensure_device_keys(&mut self) -> Result<(), Status> {
        use gmhsm_proto::{Capabilities as C, KeyAlg};
        // Every way into the operational state passes here: count what applications own.
        self.rebuild_usage();
        for (name, caps, domains) in [
            ("sdf:sign:0", C::SIGN | C::VERIFY, u32::MAX),
            ("sdf:enc:0", C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP | C::DERIVE, u32::MAX),
            // The audit checkpoint key: only the card signs with it (`hsm/checkpoint.rs`);
            // requests can read its public key, nobody can sign with it.
            (checkpoint::AUDIT_KEY, C::VERIFY, 0),
        ] {
            let label = Label::try_from(name).map_err(|_| Status::Internal)?;
            if self.store.as_ref().is_some_and(|s| s.contains(&store_key(&label))) {
                continue;
            }
            self.generate(&Principal::Local, label, KeyAlg::Sm2, caps, domains)?;
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
            sessions: self.sessions.seen() as u32,
            requests: self.requests,
        }
    }

    /// Carry out one request for `principal`. Never panics on any input.
    pub fn execute(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Response, Status> {
        self.requests = self.requests.wrapping_add(1);
        self.run(principal, session, request)
    }

    /// [`Hsm::execute`] without counting the request (a finished key generation runs its
    /// request a second time).
    fn run(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Response, Status> {
        let now_ms = self.clock.now_ms();
        // Sessions idle past their expiry go first (the daemon's CloseSession may be lost).
        self.sessions.tick(now_ms);
        self.sessions.touch(session, matches!(request, Request::CloseSession));
        self.rng.tick(now_ms);
        if self.tamper_check() {
            return Err(Status::DeviceError);
        }
        self.check_rng();
        self.unaudited = false;
        let mut result = self.dispatch(principal, session, request);
        // An application's request whose audit record did not fit is refused.
        if core::mem::take(&mut self.unaudited) && result.is_ok() {
            result = Err(Status::StoreFull);
        }
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
    /// Is this request refused because the service is stopped? Only applications are: the
    /// appliance's own tools administer it, and `Ping`, `GetStatus` and the daemon's
    /// `CloseSession` still work. Not audited per request (the stop itself is).
    fn service_refuses(&self, principal: &Principal, request: &Request) -> bool {
        self.service_stopped
            && matches!(principal, Principal::Application { .. })
            && !matches!(request, Request::Ping | Request::GetStatus | Request::CloseSession)
    }

    /// Is this request refused because of the certificate that sent it? A revoked one gets
    /// nothing but `Ping`, `GetStatus` and the daemon's `CloseSession` (its keys are its no
    /// more); an auditor's reads the audit trail and the status, runs self-tests, no more.
    fn certificate_refuses(&self, principal: &Principal, request: &Request) -> bool {
        if !matches!(principal, Principal::Application { .. }) {
            return false;
        }
        // What every certificate may send costs no store lookup.
        if matches!(request, Request::Ping | Request::GetStatus | Request::CloseSession) {
            return false;
        }
        self.revoked(principal)
            || (self.auditor(principal) && !matches!(request, Request::ReadAudit { .. } | Request::SelfTest))
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

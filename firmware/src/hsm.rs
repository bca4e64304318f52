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
use gmhsm_proto::{AuditEvent, AuditState, Label, Principal, Request, Status, StatusInfo};

use crate::audit::AuditLog;
use crate::keys::LoadedKey;
use crate::rng::CardRng;
use crate::session::Sessions;
use crate::store::Store;
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
    /// Keys and store bytes each application owns (see `quota`).
    usage: quota::Ledger,
    /// Set when an audit record of an application's request could not be written: that
    /// request is refused (the card stays operational; see [`Hsm::log`]).
    unaudited: bool,
    /// RSA key generation split around the expensive part (`hsm/longop.rs`).
    keygen: longop::KeygenState,
}

mod access;
mod admin;
mod fast;
pub mod keypair;
mod plan;

pub use fast::{RefillDone, RefillJob};
mod longop;
pub use longop::{KeygenDone, KeygenJob, Started, is_long};
mod checkpoint;
mod handlers;
mod labels;
mod quota;
mod sealed;
mod usage;
pub use crate::error::Error;
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
    fn audited(&mut self, principal: &Principal, event: AuditEvent) -> Result<(), Error> {
        self.log(Some(principal.clone()), event);
        if core::mem::take(&mut self.unaudited) {
            return Err(Error::Unaudited);
        }
        Ok(())
    }

    /// Refuse with `e`, audited as a denial with its wire status.
    fn deny(&mut self, principal: &Principal, request: u8, e: Error) -> Error {
        self.log(Some(principal.clone()), AuditEvent::Denied { request, status: e.status() });
        e
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
            return Err(Error::Invalid("already initialized").status());
        }
        let mut k = zeroize::Zeroizing::new([0u8; 32]);
        self.rng.fill(&mut k[..]).map_err(Error::Rng)?;
        self.commit_init(&k, dmk::Mode::Demo, None)?;
        self.log(None, AuditEvent::Initialized);
        Ok(self.ensure_device_keys()?)
    }

    /// The device's own key pairs, SDF index 0: `sdf:sign:0` and `sdf:enc:0`, SM2, owned by
    /// the appliance (local principal), usable by registered applications of every domain
    /// (e.g. to unwrap envelopes clients made with the appliance's certificate); and the
    /// audit checkpoint key. Created at initialization, or at the next boot if a power cut
    /// came first.
    fn ensure_device_keys(&mut self) -> Result<(), Error> {
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
            let label = Label::try_from(name).map_err(|_| Error::Internal("device key label"))?;
            if self.store.as_ref().is_some_and(|s| s.contains(&store_key(&label))) {
                continue;
            }
            match self.generate(&Principal::Local, label, KeyAlg::Sm2, caps, domains)? {
                plan::Step::NewKey(k) => {
                    let generated = crate::keys::generate(k.alg, &mut self.rng)?;
                    self.use_new_key(k, generated)?;
                }
                _ => return Err(Error::Internal("device key not planned")),
            }
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

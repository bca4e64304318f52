//! The crypto card: `Hsm::execute(principal, request)`, with no I/O inside.
//!
//! Device states: `Factory` (no device master key; waits for initialization), `Operational`,
//! and `Error` (self-test or entropy failure, tamper, lost DMK, broken store), in which every
//! cryptographic request is refused with [`Status::DeviceError`] and the reason is reported by
//! `GetStatus`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use gmhsm_platform::{Clock, Devices, Platform};
use gmhsm_proto::{AuditEvent, AuditState, KeyAlg, Label, Principal, Request, Response, Status, StatusInfo};

use crate::audit::AuditLog;
use crate::keys::{self, KeyRecord, LoadedKey};
use crate::rng::CardRng;
use crate::store::{Store, StoreError};
use crate::wrap::Wrapper;
use crate::{dmk, selftest};

const KEY_PREFIX: &[u8] = b"k:";
const META_INIT: &[u8] = b"m:init";
const META_BOOTS: &[u8] = b"m:boots";
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
    audit: Option<AuditLog>,
}

/// The request's variant index, as audit records name it.
fn request_kind(r: &Request) -> u8 {
    match r {
        Request::Ping => 0,
        Request::GetStatus => 1,
        Request::GenerateKey { .. } => 2,
        Request::ExportPublicKey { .. } => 3,
        Request::Sign { .. } => 4,
        Request::Verify { .. } => 5,
        Request::DeleteKey { .. } => 6,
        Request::ListKeys => 7,
        Request::ReadAudit { .. } => 8,
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
        let mut hsm =
            Hsm { store: None, rng, tamper, clock, state: State::Factory, boots: 0, cache: BTreeMap::new(), audit: None };
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
        hsm.audit = hsm.store.as_ref().map(AuditLog::load);
        let initialized = hsm.store.as_ref().is_some_and(|s| s.contains(META_INIT));
        hsm.state = match (dmk::load(&mut hsm.tamper), initialized) {
            (dmk::Slot::Empty, false) => State::Factory,
            (dmk::Slot::Key(k), true) => State::Operational(Wrapper::new(&k)),
            (dmk::Slot::Empty, true) => State::Error("device master key lost (tamper): stored keys unreadable"),
            (dmk::Slot::Key(_), false) => State::Error("device master key present but store not initialized"),
            (dmk::Slot::Corrupt, _) => State::Error("tamper RAM corrupt"),
        };
        let error = match hsm.state {
            State::Error(why) => Some(short(why)),
            _ => None,
        };
        hsm.log(None, AuditEvent::Boot { error });
        hsm
    }

    /// Append an audit record. An audit write that fails puts the card in its error state:
    /// it does not go on working unaudited.
    fn log(&mut self, principal: Option<Principal>, event: AuditEvent) {
        let (Some(store), Some(audit)) = (self.store.as_mut(), self.audit.as_mut()) else { return };
        let now = self.clock.now_ms();
        if audit.append(store, self.boots, now, principal, event).is_err() {
            self.cache.clear();
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

    /// Power down: hand back the flash (tests reboot the card on the same flash).
    pub fn into_flash(self) -> Option<P::Flash> {
        self.store.map(|s| s.into_flash())
    }

    /// Leave the factory state with a fresh device master key (the simulator's demo
    /// initialization; the quorum init ceremony calls this too once it has succeeded).
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
        Ok(())
    }

    pub fn status(&self) -> StatusInfo {
        let keys = self.store.as_ref().map_or(0, |s| s.keys().filter(|k| k.starts_with(KEY_PREFIX)).count());
        let error = match &self.state {
            State::Error(why) => Some(short(why)),
            _ => None,
        };
        let audit = self.audit.as_ref().map_or(AuditState { first_seq: 0, last_seq: 0, chain_break: None }, |a| a.state());
        StatusInfo { initialized: !matches!(self.state, State::Factory), error, keys: keys as u32, boots: self.boots, audit }
    }

    /// Carry out one request for `principal`. Never panics on any input.
    pub fn execute(&mut self, principal: &Principal, request: Request) -> Result<Response, Status> {
        self.rng.tick(self.clock.now_ms());
        if self.tamper_check() {
            return Err(Status::DeviceError);
        }
        self.check_rng();
        let result = self.dispatch(principal, request);
        // A source that failed during this request latches the error state now.
        self.check_rng();
        result
    }

    fn dispatch(&mut self, principal: &Principal, request: Request) -> Result<Response, Status> {
        match request {
            Request::Ping => return Ok(Response::Pong),
            Request::GetStatus => return Ok(Response::Status(self.status())),
            _ => {}
        }
        let kind = request_kind(&request);
        if let Request::ReadAudit { from_seq, max } = request {
            if *principal != Principal::Local {
                return Err(self.deny(principal, kind, Status::AccessDenied));
            }
            let (Some(store), Some(audit)) = (self.store.as_ref(), self.audit.as_ref()) else {
                return Err(Status::DeviceError);
            };
            return Ok(Response::Audit(audit.read(store, from_seq, max.min(256))));
        }
        match self.state {
            State::Factory => return Err(self.deny(principal, kind, Status::NotInitialized)),
            State::Error(_) => return Err(self.deny(principal, kind, Status::DeviceError)),
            State::Operational(_) => {}
        }
        match request {
            Request::GenerateKey { label, alg } => self.generate(principal, label, alg),
            Request::ExportPublicKey { label } => {
                let rec = self.record(principal, &label)?;
                Ok(Response::PublicKey { alg: rec.alg, spki_der: rec.spki_der })
            }
            Request::Sign { label, mechanism, message } => {
                if message.len() > gmhsm_proto::frame::MAX_MESSAGE_LEN {
                    return Err(Status::InvalidArgument);
                }
                self.ensure_loaded(principal, &label)?;
                let Some(key) = self.cache.get(&label) else { return Err(Status::Internal) };
                let sig = key.sign(&mechanism, &message, &mut self.rng)?;
                Ok(Response::Signature(sig))
            }
            Request::Verify { label, mechanism, message, signature } => {
                let rec = self.record(principal, &label)?;
                keys::verify(rec.alg, &rec.spki_der, &mechanism, &message, &signature)?;
                Ok(Response::Verified)
            }
            Request::DeleteKey { label } => {
                self.record(principal, &label)?;
                let store = self.store.as_mut().ok_or(Status::DeviceError)?;
                store.remove(&store_key(&label)).map_err(store_status)?;
                self.cache.remove(&label);
                self.log(Some(principal.clone()), AuditEvent::KeyDeleted { label });
                Ok(Response::Deleted)
            }
            Request::ListKeys => {
                let store = self.store.as_ref().ok_or(Status::DeviceError)?;
                let mut out = Vec::new();
                let labels: Vec<Vec<u8>> = store.keys().filter(|k| k.starts_with(KEY_PREFIX)).map(|k| k.to_vec()).collect();
                for k in labels {
                    let Ok(s) = core::str::from_utf8(&k[KEY_PREFIX.len()..]) else { continue };
                    let Ok(label) = Label::try_from(s) else { continue };
                    match self.load_record(&label) {
                        Ok(rec) if &rec.owner == principal => out.push((label, rec.alg)),
                        _ => {}
                    }
                }
                Ok(Response::Keys(out))
            }
            // Handled above; listed so a new request kind is a compile-time decision.
            Request::Ping | Request::GetStatus | Request::ReadAudit { .. } => Err(Status::Internal),
            _ => Err(Status::InvalidArgument),
        }
    }

    /// Enter the error state if the RNG can no longer produce output.
    fn check_rng(&mut self) {
        if let Some(e) = self.rng.failure() {
            if !matches!(self.state, State::Error(_)) {
                self.cache.clear();
                let why = match e {
                    crate::rng::RngError::Entropy(e) => e.describe(),
                    crate::rng::RngError::NotReady => "rng: not instantiated",
                };
                self.state = State::Error(why);
                self.log(None, AuditEvent::ErrorState { reason: short(why) });
            }
        }
    }

    fn generate(&mut self, principal: &Principal, label: Label, alg: KeyAlg) -> Result<Response, Status> {
        if label.is_empty() {
            return Err(Status::InvalidArgument);
        }
        let skey = store_key(&label);
        if self.store.as_ref().ok_or(Status::DeviceError)?.contains(&skey) {
            return Err(Status::KeyExists);
        }
        let generated = keys::generate(alg, &mut self.rng)?;
        let mut nonce = [0u8; crate::wrap::NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| Status::DeviceError)?;
        let State::Operational(wrapper) = &self.state else { return Err(Status::DeviceError) };
        let aad = KeyRecord::aad(&label, alg, principal, &generated.spki_der);
        let wrapped = wrapper.wrap(nonce, &aad, &generated.private_der);
        let rec = KeyRecord { alg, owner: principal.clone(), spki_der: generated.spki_der.clone(), wrapped };
        let value = postcard::to_allocvec(&rec).map_err(|_| Status::Internal)?;
        let store = self.store.as_mut().ok_or(Status::DeviceError)?;
        store.insert(&skey, &value).map_err(store_status)?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.pop_first();
        }
        self.cache.insert(label.clone(), generated.key);
        self.log(Some(principal.clone()), AuditEvent::KeyGenerated { label, alg });
        Ok(Response::KeyGenerated { alg, spki_der: generated.spki_der })
    }

    /// The record of `label` if `principal` may use it. Another principal's key is reported
    /// as unknown, so labels of other applications are not disclosed.
    fn load_record(&self, label: &Label) -> Result<KeyRecord, Status> {
        let store = self.store.as_ref().ok_or(Status::DeviceError)?;
        let raw = store.get(&store_key(label)).map_err(store_status)?.ok_or(Status::UnknownKey)?;
        postcard::from_bytes(&raw).map_err(|_| Status::Internal)
    }

    fn record(&mut self, principal: &Principal, label: &Label) -> Result<KeyRecord, Status> {
        let rec = self.load_record(label)?;
        if &rec.owner != principal {
            // Audited as a denial, answered as unknown: no existence oracle.
            self.log(Some(principal.clone()), AuditEvent::Denied { request: u8::MAX, status: Status::AccessDenied });
            return Err(Status::UnknownKey);
        }
        Ok(rec)
    }

    fn ensure_loaded(&mut self, principal: &Principal, label: &Label) -> Result<(), Status> {
        let rec = self.record(principal, label)?;
        if self.cache.contains_key(label) {
            return Ok(());
        }
        let State::Operational(wrapper) = &self.state else { return Err(Status::DeviceError) };
        let aad = KeyRecord::aad(label, rec.alg, &rec.owner, &rec.spki_der);
        let der = wrapper.unwrap(&aad, &rec.wrapped).map_err(|_| Status::Internal)?;
        let key = keys::load(rec.alg, &der)?;
        if self.cache.len() >= CACHE_MAX {
            self.cache.pop_first();
        }
        self.cache.insert(label.clone(), key);
        Ok(())
    }
}

//! The card's authenticated records ([`crate::integrity`]) as the rest of `Hsm` sees them:
//! reads and writes of covered records, the boot-time decision between factory, operational
//! and error state, and the commit points of initialization and zeroization.
//!
//! Commit points: initialization stores the DMK (with its [`Mode`]) and an empty-set
//! register, then the admin record (ceremony), then the init marker `m:init`, whose payload
//! is the sequence number of the first keyed audit record. Zeroization removes `m:init`
//! first (authenticated), then wipes the DMK and the register. At boot, a consistent flash
//! without `m:init` is an initialization or zeroization a power cut interrupted: it is
//! finished (back to the factory state). A flash writer cannot get there: deleting `m:init`
//! changes the set digest, which is the error state, not a factory reset.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::AuditEvent;

use super::{Hsm, META_INIT, State};
use crate::dmk::{self, Mode};
use crate::error::Error;
use crate::integrity::{Integrity, IntegrityError, Register, covered};
use crate::quorum::record::RECORD_KEY;
use crate::store::StoreError;
use crate::wrap::Wrapper;

impl<P: Platform> Hsm<P> {
    /// Whether the card was initialized by the ceremony (then administration needs cards).
    pub(super) fn ceremony_mode(&self) -> bool {
        self.mode == Some(Mode::Ceremony)
    }

    /// Enter the error state because the flash or the register failed a check (audited).
    /// `Full`/`TooLarge` changed nothing and are plain refusals.
    pub(super) fn integrity_failed(&mut self, e: IntegrityError) -> Error {
        match e {
            IntegrityError::Store(StoreError::Full) => return Error::Store(StoreError::Full),
            IntegrityError::Store(StoreError::TooLarge) => return Error::Invalid("record too large"),
            _ => {}
        }
        if !matches!(self.state, State::Error(_)) {
            self.cache.clear();
            self.records.clear();
            self.fast.clear();
            self.state = State::Error(e.describe());
            self.log(None, AuditEvent::ErrorState { reason: super::short(e.describe()) });
        }
        Error::Device("integrity check failed")
    }

    /// The payload of covered record `name`, authenticated (`None` if absent). A record that
    /// fails its check puts the card in the error state.
    pub(super) fn sealed_get(&mut self, name: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let (Some(store), Some(keys)) = (self.store.as_ref(), self.integrity.as_ref()) else {
            return Err(Error::Device("no store or integrity keys"));
        };
        keys.get(store, name).map_err(|e| self.integrity_failed(e))
    }

    /// Like [`Hsm::sealed_get`] for callers that cannot change state: a record that does not
    /// verify reads as absent (fail closed; the next boot reports it).
    pub(super) fn sealed_peek(&self, name: &[u8]) -> Option<Vec<u8>> {
        let (store, keys) = (self.store.as_ref()?, self.integrity.as_ref()?);
        keys.get(store, name).ok().flatten()
    }

    /// Write (`Some`) or remove (`None`) covered record `name`. `Ok(false)`: removal of an
    /// absent record.
    pub(super) fn sealed_put(&mut self, name: &[u8], payload: Option<&[u8]>) -> Result<bool, Error> {
        debug_assert!(covered(name));
        let (Some(store), Some(keys)) = (self.store.as_mut(), self.integrity.as_mut()) else {
            return Err(Error::Device("no store or integrity keys"));
        };
        keys.put(store, &mut self.tamper, name, payload).map_err(|e| self.integrity_failed(e))
    }

    /// Boot: the device state from tamper RAM and the flash, checking every covered record
    /// against the register. Returns the sequence number from which audit records are keyed.
    pub(super) fn recover(&mut self) -> (State, u64) {
        match dmk::load(&mut self.tamper) {
            dmk::Slot::Corrupt => (State::Error("tamper RAM corrupt"), u64::MAX),
            dmk::Slot::Legacy => {
                (State::Error("tamper RAM: key of an older firmware, flash unauthenticated; re-initialize"), u64::MAX)
            }
            dmk::Slot::Empty if self.store.as_ref().is_some_and(|s| s.contains(META_INIT)) => {
                (State::Error("device master key lost (tamper): stored keys unreadable"), u64::MAX)
            }
            dmk::Slot::Empty => (self.wipe_covered(), u64::MAX),
            dmk::Slot::Key(k, mode) => {
                // The mode counts before any check: a ceremony card whose flash fails one
                // still needs cards for everything (`Hsm::may`), even in the error state.
                self.mode = Some(mode);
                let Some(store) = self.store.as_ref() else { return (State::Error("store missing"), u64::MAX) };
                let mut keys = Integrity::new(&k);
                let checked = keys.verify(store, &mut self.tamper);
                let init = checked.and_then(|()| keys.get(store, META_INIT));
                let admin = store.contains(RECORD_KEY);
                self.integrity = Some(keys);
                match init {
                    Err(e) => (State::Error(e.describe()), u64::MAX),
                    // Consistent, never committed (or zeroization committed): finish it.
                    Ok(None) => (self.finish_zeroize(), u64::MAX),
                    Ok(Some(_)) if (mode == Mode::Ceremony) != admin => (
                        State::Error("admin record missing on a ceremony-initialized card (or present on a demo card)"),
                        u64::MAX,
                    ),
                    Ok(Some(v)) => {
                        let from = <[u8; 8]>::try_from(v.as_slice()).map(u64::from_be_bytes).unwrap_or(0);
                        (State::Operational(Wrapper::new(&k)), from)
                    }
                }
            }
        }
    }

    /// Initialize: DMK with `mode` and an empty pinned set, the admin record (ceremony), then
    /// the init marker (the commit point). The caller logs `Initialized` right after.
    pub(super) fn commit_init(&mut self, dmk: &[u8; 32], mode: Mode, admin: Option<&[u8]>) -> Result<(), Error> {
        dmk::store(&mut self.tamper, dmk, mode).map_err(|_| Error::Device("tamper RAM write"))?;
        let mut keys = Integrity::new(dmk);
        keys.reset(&mut self.tamper).map_err(|e| self.integrity_failed(e))?;
        self.integrity = Some(keys);
        if let Some(rec) = admin {
            self.sealed_put(RECORD_KEY, Some(rec))?;
        }
        let from = self.audit.as_ref().map_or(1, |a| a.next_seq());
        self.sealed_put(META_INIT, Some(&from.to_be_bytes()))?;
        if let Some(a) = self.audit.as_mut() {
            a.keyed_from_next();
        }
        self.mode = Some(mode);
        self.state = State::Operational(Wrapper::new(dmk));
        Ok(())
    }

    /// Zeroization's commit point: remove the init marker (authenticated), then wipe the DMK
    /// and the register. The caller removes the remaining records.
    pub(super) fn begin_zeroize(&mut self) -> Result<(), Error> {
        self.sealed_put(META_INIT, None)?;
        dmk::zeroize(&mut self.tamper).map_err(|_| Error::Device("tamper RAM write"))?;
        let _ = Register::clear(&mut self.tamper);
        self.integrity = None;
        self.mode = None;
        Ok(())
    }

    /// Finish an initialization or zeroization cut short: wipe DMK, register and records.
    fn finish_zeroize(&mut self) -> State {
        if dmk::zeroize(&mut self.tamper).is_err() || Register::clear(&mut self.tamper).is_err() {
            return State::Error("tamper RAM unwritable");
        }
        self.integrity = None;
        self.mode = None;
        self.wipe_covered()
    }

    /// Remove every covered record (no DMK: none of them can be used) and stay in the
    /// factory state.
    fn wipe_covered(&mut self) -> State {
        let Some(store) = self.store.as_mut() else { return State::Error("store missing") };
        let doomed: Vec<Vec<u8>> = store.keys().filter(|k| covered(k)).map(<[u8]>::to_vec).collect();
        for k in doomed {
            if store.remove(&k).is_err() {
                return State::Error("store: cannot remove the records of an unfinished initialization");
            }
        }
        State::Factory
    }
}

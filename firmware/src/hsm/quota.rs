//! Per-application quotas: how many keys, and bytes of store, each application owns.
//!
//! The card keeps, for every application that owns key records, their count and the bytes
//! they take in the store ([`crate::store::Store::footprint`]). The ledger is rebuilt from
//! the store whenever the card becomes operational (boot, initialization) and kept current
//! by [`Hsm::save_record`] and key deletion. A new key record of an application is admitted
//! only within the application's [`AppQuota`] (set at registration; [`AppQuota::DEFAULT`]
//! for an application registered without one or not registered) and only while the store
//! keeps [`crate::reserve::app_reserve`] for audit and administration; otherwise
//! `QuotaExceeded`, nothing written.
//! Keys of the local principal (the appliance's own) are not counted.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use gmhsm_platform::{Clock, Platform};
use gmhsm_proto::{AppQuota, Label, Principal};

use super::{Hsm, KEY_PREFIX, store_key};
use crate::error::Error;

/// What one application owns in the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub keys: u32,
    pub bytes: u64,
}

/// Usage per application (certificate SHA-256).
pub(super) type Ledger = BTreeMap<[u8; 32], Usage>;

fn app_id(owner: &Principal) -> Option<&[u8; 32]> {
    match owner {
        Principal::Application { cert_sha256 } => Some(cert_sha256),
        Principal::Local => None,
    }
}

impl<P: Platform> Hsm<P> {
    /// Recount every application's keys and bytes from the store.
    pub(super) fn rebuild_usage(&mut self) {
        self.usage.clear();
        let Some(store) = self.store.as_ref() else { return };
        let labels: Vec<Label> = store
            .keys()
            .filter_map(|k| k.strip_prefix(KEY_PREFIX))
            .filter_map(|l| core::str::from_utf8(l).ok().and_then(|s| Label::try_from(s).ok()))
            .collect();
        for label in labels {
            if let Ok(rec) = self.load_record(&label) {
                let size = self.store.as_ref().and_then(|s| s.footprint(&store_key(&label)));
                self.note_usage(&rec.owner, None, size);
            }
        }
    }

    /// What `owner` owns now (zero for the local principal).
    pub fn usage(&self, owner: &Principal) -> Usage {
        app_id(owner).and_then(|id| self.usage.get(id)).copied().unwrap_or_default()
    }

    /// The quota of `owner`'s registration, or the default.
    fn quota(&self, owner: &Principal) -> AppQuota {
        self.app(owner).map_or(AppQuota::DEFAULT, |a| a.quota)
    }

    /// May `owner` add a new key record of `value_len` bytes under `label`? An application
    /// only within its quota and leaving the store's reserve (`QuotaExceeded`); then room is
    /// made, the audit log giving back its oldest records if needed.
    pub(super) fn admit_new_record(&mut self, owner: &Principal, label: &Label, value_len: usize) -> Result<(), Error> {
        let store = self.store.as_ref().ok_or(Error::Device("no store"))?;
        let cost = store.record_cost(KEY_PREFIX.len() + label.len(), value_len + crate::integrity::TAG_LEN);
        if app_id(owner).is_some() {
            let (quota, used) = (self.quota(owner), self.usage(owner));
            let within = used.keys < quota.max_keys && used.bytes + cost as u64 <= u64::from(quota.max_bytes);
            if !within || !crate::reserve::app_fits(store, cost) {
                return Err(Error::QuotaExceeded);
            }
        }
        self.reclaim_audit(cost)
    }

    /// Leave `cost` bytes free and the administration's headroom, taking them back from the
    /// audit log's oldest records (audited) if needed.
    fn reclaim_audit(&mut self, cost: usize) -> Result<(), Error> {
        let (Some(store), Some(audit)) = (self.store.as_mut(), self.audit.as_mut()) else { return Ok(()) };
        if store.free_bytes() >= cost.saturating_add(crate::reserve::admin_headroom(store)) {
            return Ok(());
        }
        let now = self.clock.now_ms();
        audit.reclaim(store, self.integrity.as_ref(), self.boots, now, cost).map_err(Error::Store)
    }

    /// Undo the write of the new record of `label` (its audit record did not fit).
    pub(super) fn forget_new_record(&mut self, label: &Label, owner: &Principal) {
        self.records.remove(label);
        let key = store_key(label);
        let before = self.store.as_ref().and_then(|s| s.footprint(&key));
        if self.sealed_put(&key, None).is_ok() {
            self.note_usage(owner, before, None);
        }
    }

    /// Account a record of `owner` that took `before` bytes and takes `after` now (`None`:
    /// none).
    pub(super) fn note_usage(&mut self, owner: &Principal, before: Option<usize>, after: Option<usize>) {
        let Some(id) = app_id(owner) else { return };
        let u = self.usage.entry(*id).or_default();
        let (b, a) = (before.unwrap_or(0) as u64, after.unwrap_or(0) as u64);
        u.bytes = (u.bytes + a).saturating_sub(b);
        match (before, after) {
            (None, Some(_)) => u.keys += 1,
            (Some(_), None) => u.keys = u.keys.saturating_sub(1),
            _ => {}
        }
        if u.keys == 0 {
            self.usage.remove(id);
        }
    }
}

//! How the room in the card's store is shared, so that no application can stop the card.
//!
//! Three levels, from the store's own count ([`Store::free_bytes`]):
//! * **applications** may add a key record only while, after it, at least
//!   [`app_reserve`] bytes stay free or held by the audit log (otherwise `QuotaExceeded`,
//!   nothing written); the audit log gives back its oldest records to make the room
//!   ([`crate::audit::AuditLog::reclaim`]);
//! * **the audit log** may use that reserve, but drops its oldest records (audited as
//!   `AuditEvent::Dropped`) before it would leave less than [`admin_headroom`] free;
//! * **administration** (the local principal and the quorum: registrations, policy, the
//!   card's own keys, zeroize) may use all of it.
//!
//! So an application filling the store stops at the reserve; audit records keep fitting
//! (oldest dropped first) and administrative writes fit in the headroom the audit leaves.

use gmhsm_platform::Flash;

use crate::store::{MAX_KEY, MAX_VALUE, Store};

/// Bytes the audit log leaves free for administration: 1/32 of the store, and at least one
/// record of the largest size the store takes.
pub fn admin_headroom<F: Flash>(store: &Store<F>) -> usize {
    (store.capacity_bytes() / 32).max(store.record_cost(MAX_KEY, MAX_VALUE))
}

/// Bytes applications leave free for audit and administration: 1/8 of the store, and at
/// least twice [`admin_headroom`] (so the audit log keeps room of its own), never more than
/// half the store.
pub fn app_reserve<F: Flash>(store: &Store<F>) -> usize {
    let floor = 2 * admin_headroom(store);
    (store.capacity_bytes() / 8).max(floor).min(store.capacity_bytes() / 2)
}

/// May an application add a record of `cost` bytes ([`Store::record_cost`])? Everything but
/// the audit log, with it, must leave the reserve.
pub fn app_fits<F: Flash>(store: &Store<F>, cost: usize) -> bool {
    let audit = store.prefix_bytes(crate::audit::PREFIX);
    let held = store.capacity_bytes().saturating_sub(store.free_bytes()).saturating_sub(audit);
    held.saturating_add(cost).saturating_add(app_reserve(store)) <= store.capacity_bytes()
}

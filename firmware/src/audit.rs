//! The card's audit log: append-only, SM3 hash-chained records with sequence number and boot
//! counter, kept in the flash store under `a:` + big-endian sequence number.
//!
//! At boot the whole chain is re-hashed; a record whose `prev_hash` is not the hash of its
//! predecessor (or a gap in the sequence) is a chain break, reported in the card status.
//!
//! The chain is keyed: from the record that initialized the card (`audit_from`, kept in the
//! authenticated init marker) on, each stored record is its encoding followed by a tag,
//! `HMAC-SM3(audit key, len ‖ store key ‖ encoding)[..16]`, the audit key derived from the DMK
//! ([`crate::integrity`]). Since each record holds the plain SM3 hash of the one before, the
//! tags bind the whole chain: a flash writer who rewrites records and re-chains them with SM3
//! cannot tag them, and the break is found at boot. Auditors off the appliance check the
//! plain chain and a checkpoint, the card's SM2 signature over the hash of the last record
//! (see `docs/protocol.md`, `AuditCheckpoint`). Records written before initialization (no
//! DMK yet) carry no tag.
//! When more than [`MAX_RECORDS`] are held, the oldest are dropped (export them first); the
//! first retained record's `prev_hash` still names the dropped one, so the chain stays
//! checkable from there on, and the sequence numbers show how many went.

use alloc::vec::Vec;
use gmhsm_platform::Flash;
use gmhsm_proto::{AuditEvent, AuditRecord, AuditState, Principal};
use sm3::{Digest, Sm3};

use crate::integrity::Integrity;
use crate::store::{Store, StoreError};

/// Store keys of audit records start with this.
pub const PREFIX: &[u8] = b"a:";
/// Records kept on flash.
pub const MAX_RECORDS: u64 = 4096;
/// Fewest records dropped at once when the store is short of room.
const DROP_BATCH: u64 = 16;
/// Bytes of a record besides its principal and event, at most: seq and time (varints of
/// up to 10 bytes), boot (up to 5), prev_hash.
const RECORD_FIXED: usize = 10 + 5 + 10 + 32;

fn key(seq: u64) -> [u8; 10] {
    let mut k = [0u8; 10];
    k[..2].copy_from_slice(PREFIX);
    k[2..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// What a record for `event` takes in the store, at most.
fn record_cost<F: Flash>(store: &Store<F>, principal: &Option<Principal>, event: &AuditEvent) -> usize {
    let body = postcard::to_allocvec(&(principal, event)).map_or(usize::MAX / 4, |v| v.len());
    store.record_cost(10, body + RECORD_FIXED + crate::integrity::TAG_LEN)
}

/// SM3 over the record's encoding.
pub fn hash(rec: &AuditRecord) -> [u8; 32] {
    let bytes = postcard::to_allocvec(rec).unwrap_or_default();
    Sm3::digest(&bytes).into()
}

/// The in-RAM view of the log: where it starts and ends and the hash to chain to.
#[derive(Debug, Clone)]
pub struct AuditLog {
    first: u64,
    last: u64,
    last_hash: [u8; 32],
    chain_break: Option<u64>,
    /// Records from this sequence number on carry a tag.
    keyed_from: u64,
}

impl AuditLog {
    /// Scan and verify the log held in `store`; with the card's keys, records from
    /// `audit_from` on must carry a valid tag.
    pub fn load<F: Flash>(store: &Store<F>, keys: Option<(&Integrity, u64)>) -> Self {
        let seqs: Vec<u64> = store
            .keys()
            .filter(|k| k.len() == 10 && k.starts_with(PREFIX))
            .map(|k| u64::from_be_bytes([k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9]]))
            .collect();
        let keyed_from = keys.map_or(u64::MAX, |(_, from)| from);
        let mut log = AuditLog { first: 0, last: 0, last_hash: [0; 32], chain_break: None, keyed_from };
        let mut prev: Option<(u64, [u8; 32])> = None;
        for seq in seqs {
            let rec = store.get(&key(seq)).ok().flatten().and_then(|v| decode(&key(seq), &v, keys));
            let Some(rec) = rec else {
                log.chain_break.get_or_insert(seq);
                continue;
            };
            let chained = match prev {
                Some((p, h)) => rec.seq == p + 1 && rec.prev_hash == h && rec.seq == seq,
                None => rec.seq == seq && (seq != 1 || rec.prev_hash == [0; 32]),
            };
            if !chained {
                log.chain_break.get_or_insert(seq);
            }
            if log.first == 0 {
                log.first = seq;
            }
            let h = hash(&rec);
            prev = Some((seq, h));
            log.last = seq;
            log.last_hash = h;
        }
        log
    }

    pub fn state(&self) -> AuditState {
        AuditState { first_seq: self.first, last_seq: self.last, chain_break: self.chain_break }
    }

    /// The sequence number the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.last + 1
    }

    /// From the next record on, records are tagged (the card was just initialized).
    pub fn keyed_from_next(&mut self) {
        self.keyed_from = self.next_seq();
    }

    /// Record `seq` and its hash, if held, decodable and (when keyed) its tag verifies.
    pub fn record<F: Flash>(&self, store: &Store<F>, keys: &Integrity, seq: u64) -> Option<(AuditRecord, [u8; 32])> {
        if seq < self.first || seq > self.last {
            return None;
        }
        let rec =
            store.get(&key(seq)).ok().flatten().and_then(|v| decode(&key(seq), &v, Some((keys, self.keyed_from))))?;
        let h = hash(&rec);
        (rec.seq == seq).then_some((rec, h))
    }

    /// Append one record (tagged when `keys` is given); drops the oldest records beyond [`MAX_RECORDS`]. Before the store
    /// would have less than [`crate::reserve::admin_headroom`] free after it, the oldest
    /// records are dropped first, and that is recorded ([`AuditEvent::Dropped`], chained
    /// before this one): the log never fails for want of room while it holds records.
    #[allow(clippy::too_many_arguments)]
    pub fn append<F: Flash>(
        &mut self,
        store: &mut Store<F>,
        keys: Option<&Integrity>,
        boot: u32,
        time_ms: u64,
        principal: Option<Principal>,
        event: AuditEvent,
    ) -> Result<u64, StoreError> {
        self.reclaim(store, keys, boot, time_ms, record_cost(store, &principal, &event))?;
        self.push(store, keys, boot, time_ms, principal, event)
    }

    /// Make `bytes` free with [`crate::reserve::admin_headroom`] left over, dropping the
    /// oldest records if needed (at least [`DROP_BATCH`] when any, so that `Dropped` records
    /// stay rare) and recording that (`Dropped`). As far as the records go: the caller's
    /// write may still find the store full.
    pub fn reclaim<F: Flash>(
        &mut self,
        store: &mut Store<F>,
        keys: Option<&Integrity>,
        boot: u32,
        time_ms: u64,
        bytes: usize,
    ) -> Result<(), StoreError> {
        let dropped = AuditEvent::Dropped { from: u64::MAX, to: u64::MAX };
        let need = bytes
            .saturating_add(record_cost(store, &None, &dropped))
            .saturating_add(crate::reserve::admin_headroom(store));
        let from = self.first;
        while self.first != 0
            && self.first <= self.last
            && (store.free_bytes() < need || (self.first > from && self.first - from < DROP_BATCH))
        {
            store.remove(&key(self.first))?;
            self.first += 1;
        }
        if self.first > from {
            self.push(store, keys, boot, time_ms, None, AuditEvent::Dropped { from, to: self.first - 1 })?;
        }
        Ok(())
    }

    /// Chain and store one record; trim to [`MAX_RECORDS`].
    fn push<F: Flash>(
        &mut self,
        store: &mut Store<F>,
        keys: Option<&Integrity>,
        boot: u32,
        time_ms: u64,
        principal: Option<Principal>,
        event: AuditEvent,
    ) -> Result<u64, StoreError> {
        let seq = self.last + 1;
        let rec = AuditRecord { seq, boot, time_ms, principal, event, prev_hash: self.last_hash };
        let mut bytes = postcard::to_allocvec(&rec).map_err(|_| StoreError::TooLarge)?;
        if let Some(k) = keys {
            bytes = k.seal_audit(&key(seq), &bytes);
        }
        store.insert(&key(seq), &bytes)?;
        self.last = seq;
        self.last_hash = hash(&rec);
        if self.first == 0 {
            self.first = seq;
        }
        while self.last - self.first + 1 > MAX_RECORDS {
            store.remove(&key(self.first))?;
            self.first += 1;
        }
        Ok(seq)
    }

    /// Up to `max` records from `from_seq` on.
    pub fn read<F: Flash>(&self, store: &Store<F>, from_seq: u64, max: u16) -> Vec<AuditRecord> {
        let start = from_seq.max(self.first);
        let mut out = Vec::new();
        if self.last == 0 {
            return out;
        }
        let mut seq = start;
        while seq <= self.last && out.len() < max as usize {
            if let Some(rec) = store.get(&key(seq)).ok().flatten().and_then(|v| decode(&key(seq), &v, None)) {
                out.push(rec);
            }
            seq += 1;
        }
        out
    }
}

/// Decode a stored record: with `keys` and a record at or after `audit_from`, only if its tag
/// verifies; otherwise the encoding alone (a trailing tag is ignored).
fn decode(name: &[u8], stored: &[u8], keys: Option<(&Integrity, u64)>) -> Option<AuditRecord> {
    let (rec, rest) = postcard::take_from_bytes::<AuditRecord>(stored).ok()?;
    match keys {
        Some((k, from)) if rec.seq >= from => {
            let encoding = k.open_audit(name, stored).ok()?;
            (encoding.len() + rest.len() == stored.len()).then_some(rec)
        }
        _ => Some(rec),
    }
}

/// Check a run of records read by an auditor: each chains to the one before.
/// Returns the seq of the first record that does not.
pub fn verify_run(records: &[AuditRecord]) -> Result<(), u64> {
    for w in records.windows(2) {
        if w[1].seq != w[0].seq + 1 || w[1].prev_hash != hash(&w[0]) {
            return Err(w[1].seq);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! The audit log in a store with no room left: it drops its oldest records, says so, and
//! stays a verifiable chain.

use alloc::vec::Vec;
use gmhsm_platform::FlashGeometry;
use gmhsm_proto::{AuditEvent, AuditRecord, Principal, Status};

use super::{AuditLog, verify_run};
use crate::store::{Store, StoreError};
use gmhsm_platform::sim::RamFlash;

/// A store of a few KiB of records.
fn tiny_store() -> Store<RamFlash> {
    let g = FlashGeometry { page_size: 4096, page_count: 12, word_size: 4 };
    Store::open(RamFlash::new(g, 7)).unwrap()
}

fn denied(n: u8) -> (Option<Principal>, AuditEvent) {
    (
        Some(Principal::Application { cert_sha256: [n; 32] }),
        AuditEvent::Denied { request: n, status: Status::AccessDenied },
    )
}

/// Fill the store with `len`-byte values as applications would (up to the reserve they
/// leave), or as far as it goes (`to_the_brim`).
fn fill(store: &mut Store<RamFlash>, len: usize, to_the_brim: bool) -> usize {
    let mut n = store.len();
    let start = n;
    loop {
        let key = alloc::format!("k:{n}");
        let cost = store.record_cost(key.len(), len);
        if !to_the_brim && !crate::reserve::app_fits(store, cost) {
            break;
        }
        if store.insert(key.as_bytes(), &alloc::vec![0x5a; len]).is_err() {
            break;
        }
        n += 1;
    }
    n - start
}

fn all(log: &AuditLog, store: &Store<RamFlash>) -> Vec<AuditRecord> {
    log.read(store, 0, u16::MAX)
}

/// Guards issue 12 finding 1: an audit append that hit `StoreFull` put the card in its error
/// state. Now the log drops its oldest records, records a `Dropped { from, to }` covering
/// them, keeps appending, and what it holds still chains (also as reloaded from flash).
#[test]
fn a_full_store_drops_the_oldest_records_and_the_chain_still_verifies() {
    let mut store = tiny_store();
    let mut log = AuditLog::load(&store, None);
    for i in 0..20u8 {
        let (p, e) = denied(i);
        log.append(&mut store, None, 1, u64::from(i), p, e).unwrap();
    }
    assert!(fill(&mut store, 200, false) > 0);
    // Many more records than the room left could hold.
    for i in 0..200u32 {
        let (p, e) = denied(i as u8);
        log.append(&mut store, None, 1, 1000 + u64::from(i), p, e).expect("the audit log appends while full");
    }
    let recs = all(&log, &store);
    assert_eq!(recs.last().map(|r| r.seq), Some(log.state().last_seq));
    assert!(recs.first().unwrap().seq > 1, "the oldest records were dropped");
    let dropped: Vec<(u64, u64)> = recs
        .iter()
        .filter_map(|r| match r.event {
            AuditEvent::Dropped { from, to } => Some((from, to)),
            _ => None,
        })
        .collect();
    assert!(!dropped.is_empty(), "the drop is itself audited");
    for (from, to) in &dropped {
        assert!(from <= to);
    }
    assert_eq!(verify_run(&recs), Ok(()));
    let reloaded = AuditLog::load(&store, None);
    assert_eq!(reloaded.state(), log.state());
    assert_eq!(reloaded.state().chain_break, None);
    // Administration keeps its headroom: a record of the largest size still fits.
    let big = alloc::vec![0u8; crate::store::MAX_VALUE];
    store.insert(b"m:admin", &big).expect("the audit leaves room for an administrative write");
}

/// A log that has nothing left to drop fails cleanly with `Full` (nothing appended).
#[test]
fn with_nothing_to_drop_the_append_fails_and_changes_nothing() {
    let mut store = tiny_store();
    fill(&mut store, 200, true);
    fill(&mut store, 1, true);
    let mut log = AuditLog::load(&store, None);
    let before = log.state();
    let (p, e) = denied(1);
    assert_eq!(log.append(&mut store, None, 1, 0, p, e), Err(StoreError::Full));
    assert_eq!(log.state(), before);
    assert!(log.read(&store, 0, 10).is_empty());
}

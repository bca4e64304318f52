//! Opening the store: find the log on flash, finish an interrupted compaction, rebuild the
//! index.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use gmhsm_platform::Flash;

use super::format::{Kind, Layout, PageHeader};
use super::log::{Commit, Log, Step};
use super::{Loc, StoreError};

/// The log and the index of live records, as found on flash.
pub struct Recovered<F: Flash> {
    pub log: Log<F>,
    pub index: BTreeMap<Vec<u8>, Loc>,
}

/// A committed key record met during the walk.
struct Event {
    at: u64,
    len: usize,
    kind: Kind,
    key: Vec<u8>,
}

/// Read every page header, walk the log, and put it in a state where appending is safe.
pub fn recover<F: Flash>(flash: F, lay: Layout) -> Result<Recovered<F>, StoreError> {
    let n = lay.pages as usize;
    let mut headers: Vec<Option<PageHeader>> = Vec::with_capacity(n);
    let mut buf = vec![0u8; lay.header];
    for phys in 0..n {
        flash.read(phys * lay.page_size, &mut buf)?;
        headers.push(lay.decode_page_header(phys, &buf));
    }
    let mut log = Log { flash, lay, head: 0, tail: 0, top: None, first: vec![lay.usable; n], blank: vec![false; n] };
    let mut index = BTreeMap::new();

    let Some(top) = headers.iter().flatten().map(|h| h.seq).max() else {
        // Nothing was ever committed: a blank (or garbage) flash is an empty store.
        mark_blank_pages(&mut log, 0..0)?;
        return Ok(Recovered { log, index });
    };
    // The log is the run of pages with consecutive sequence numbers ending at `top`. Pages
    // below the head found in it are left over from an interrupted compaction.
    let mut low = top;
    while top - low + 1 < lay.pages && low > 0 {
        match headers[lay.physical_page(low - 1)] {
            Some(h) if h.seq == low - 1 => low -= 1,
            _ => break,
        }
    }
    for q in low..=top {
        let phys = lay.physical_page(q);
        log.first[phys] = headers[phys].map_or(lay.usable, |h| h.first);
    }
    log.top = Some(top);

    let mut events = Vec::new();
    let mut head_mark: Option<u64> = None;
    // Damage no power cut can cause (a written header or commit word that does not check).
    let mut garbage = Vec::new();
    let mut start = None;
    let mut step = match log.first_from(low) {
        Ok(next) => Step::Skip { next, garbage: None },
        Err(end) => end,
    };
    let tail = loop {
        let pos = match step {
            Step::End { tail, garbage: g } => {
                garbage.extend(g);
                break tail;
            }
            Step::Skip { next, garbage: g } => {
                garbage.extend(g);
                next
            }
            Step::Record { at, header, bytes, commit, next } => {
                if commit == Commit::Bad {
                    garbage.push(at);
                }
                if commit == Commit::Yes {
                    let w = lay.word;
                    match header.kind {
                        Kind::Head => {
                            let mut v = [0u8; 8];
                            v.copy_from_slice(&bytes[w..w + 8]);
                            let v = u64::from_le_bytes(v);
                            if v > at {
                                return Err(StoreError::Corrupt);
                            }
                            head_mark = Some(head_mark.map_or(v, |h| h.max(v)));
                        }
                        kind => events.push(Event {
                            at,
                            len: bytes.len(),
                            kind,
                            key: bytes[w..w + header.key_len].to_vec(),
                        }),
                    }
                }
                next
            }
        };
        start.get_or_insert(pos);
        step = log.step(pos)?;
    };

    let head = head_mark.or(start).unwrap_or(tail);
    if lay.page(head) < low || head > tail || garbage.iter().any(|&g| g >= head) {
        return Err(StoreError::Corrupt);
    }
    for e in events.into_iter().filter(|e| e.at >= head) {
        match e.kind {
            Kind::Value => {
                index.insert(e.key, Loc { at: e.at, len: e.len });
            }
            _ => {
                index.remove(&e.key);
            }
        }
    }
    log.head = head;
    log.tail = tail;
    // Finish the interrupted compaction, if any: erase the pages it had already copied.
    for q in low..lay.page(head) {
        log.erase_page(q)?;
    }
    mark_blank_pages(&mut log, lay.page(head)..top + 1)?;
    Ok(Recovered { log, index })
}

/// Note which physical pages outside the virtual pages `live` read as erased.
fn mark_blank_pages<F: Flash>(log: &mut Log<F>, live: core::ops::Range<u64>) -> Result<(), StoreError> {
    let mut in_log = vec![false; log.lay.pages as usize];
    for q in live {
        in_log[log.lay.physical_page(q)] = true;
    }
    for (phys, &used) in in_log.iter().enumerate() {
        log.blank[phys] = !used && log.page_is_blank(phys)?;
    }
    Ok(())
}

//! Compaction: move the live records out of the head page, then drop the page.

use alloc::vec::Vec;

use gmhsm_platform::Flash;

use super::format::Kind;
use super::log::{Commit, Step};
use super::{Store, StoreError};

impl<F: Flash> Store<F> {
    /// Bytes the ring can take before the tail would reach the head's page.
    pub(super) fn free_ring(&self) -> usize {
        let lay = self.log.lay;
        let limit = lay.page_start(lay.page(self.log.head) + lay.pages);
        (limit - self.log.tail) as usize
    }

    /// Compact until `len` bytes can be appended with the compaction reserve still free.
    pub(super) fn make_room(&mut self, len: usize) -> Result<(), StoreError> {
        let mut steps = 0;
        while self.free_ring() < len + self.limits.reserve {
            if steps > 2 * self.log.lay.pages + 2 || !self.compact_step()? {
                return Err(StoreError::Full);
            }
            steps += 1;
        }
        Ok(())
    }

    /// One compaction step: copy the live values among the records that start in the head
    /// page to the tail, append a head record naming the first record after them, erase the
    /// pages before it. Returns `false` if no page can be freed (the whole log is in one
    /// page, or the tail lacks room for the copies).
    ///
    /// Tombstones and head records are dropped: every older record of a tombstone's key lies
    /// before it, so in the pages this or an earlier step erases.
    fn compact_step(&mut self) -> Result<bool, StoreError> {
        let lay = self.log.lay;
        let head_page = lay.page(self.log.head);
        let mut pos = self.log.head;
        let mut copies: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut need = lay.record_len(0, 8);
        while pos < self.log.tail && lay.page(pos) == head_page {
            pos = match self.log.step(pos)? {
                Step::Record { at, header, bytes, commit, next } => {
                    let key = &bytes[lay.word..lay.word + header.key_len];
                    let live = header.kind == Kind::Value && self.index.get(key).is_some_and(|l| l.at == at);
                    if commit == Commit::Yes && live {
                        need += bytes.len();
                        copies.push((header.key_len, bytes));
                    }
                    next
                }
                Step::Skip { next, .. } => next,
                Step::End { .. } => self.log.tail,
            };
        }
        let new_head = pos.min(self.log.tail);
        if lay.page(new_head) == head_page || need > self.free_ring() {
            return Ok(false);
        }
        for (key_len, bytes) in copies {
            let at = self.log.append(&bytes)?;
            if let Some(loc) = self.index.get_mut(&bytes[lay.word..lay.word + key_len]) {
                loc.at = at;
            }
        }
        let head_record = lay.encode_record(Kind::Head, &[], &new_head.to_le_bytes());
        self.log.append(&head_record)?;
        for q in head_page..lay.page(new_head) {
            self.log.erase_page(q)?;
        }
        self.log.head = new_head;
        Ok(true)
    }
}

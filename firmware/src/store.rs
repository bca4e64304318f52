//! Power-loss-safe key-value store on NOR flash: a log of records in a ring of pages.
//!
//! # Semantics
//!
//! A map from keys (1..=[`MAX_KEY`] bytes) to values (0..=[`MAX_VALUE`] bytes, or the smaller
//! limit given to [`Store::open_with_max_value`]). [`Store::insert`] and [`Store::remove`] are
//! durable and atomic when they return `Ok`: after a power cut at any point, reopening shows
//! every acknowledged operation, and the one operation that was interrupted either wholly or
//! not at all (the old value or the new, never neither and never a mix). Nothing else changes.
//! A power cut during [`Store::open`] itself (while it finishes a compaction) is safe too.
//!
//! After a [`StoreError::Flash`] error the in-RAM state may no longer match the flash: every
//! later `insert`/`remove` returns the same error; reboot by reopening ([`Store::into_flash`]).
//!
//! # On-flash format
//!
//! All integers are little endian; every write is a whole number of words (`W`, the flash's
//! word size, 4..=64 bytes) at a word-aligned address.
//!
//! *Pages.* Each page starts with a header of `round_up(20, W)` bytes: magic `"GSMP"`, the
//! page's virtual sequence number `q` (u64), the offset of the first record that starts in
//! the page (u32; the data size `U` if none does), CRC-32 of those 16 bytes, zero padding.
//! Virtual page `q` lives in physical page `q mod page_count`, so the ring is used in order
//! and each page is erased once per turn. The rest of the page, `U` bytes, holds log data;
//! virtual address `v` is byte `v mod U` of virtual page `v / U`. Records run across page
//! boundaries; a page is opened (erased if not known blank, header written) when the first
//! byte of a record is to be written to it.
//!
//! *Records.* `[header word][key][value][zero padding to W][commit word]`. The header word's
//! first four bytes are `value_len:13 | key_len:7 << 13 | kind:2 << 20 | 0b0101 << 22 |
//! check:6 << 26`, the rest zero; kinds are *value*, *tombstone* (removes its key, empty
//! value) and *head* (no key, 8-byte value: the virtual address of the log head after a
//! compaction step). The commit word is the CRC-32 of everything before it with bit 31
//! cleared (so never all ones), then zeros. A record is written in order and its commit word
//! last, so it counts only once all of it is on flash.
//!
//! *The log* is the records from the head (a virtual address) to the tail. For a key, the
//! committed value or tombstone at the highest address wins. Compaction (when an append would
//! eat into the reserve) takes the records that start in the head page, appends copies of the
//! live values (byte-identical, so a copy and its original are interchangeable), then a head
//! record naming the first record after the head page, then erases the freed pages.
//!
//! # What a power cut leaves, and how open repairs it
//!
//! Open reads every page header. The log's pages are the longest run of consecutive sequence
//! numbers ending at the highest one; it is walked record by record from its oldest page.
//! A torn header word or a record whose later pages were not opened for it (their first-record
//! offset disagrees) makes the walk skip to the next page's first record; an uncommitted
//! record is skipped by its length. The head is the greatest committed head record (or the
//! start of the oldest page if there is none); pages before it are leftovers of a compaction
//! whose erase was cut, and are erased again. The tail is where the walk ends, or the start
//! of the next page if the rest of the last page is not blank (it holds a torn write).
//!
//! * cut in a record (any word, any page opening): the record is uncommitted and ignored;
//! * cut while copying during compaction: copies are duplicates of live records, harmless;
//! * cut after the head record, in the erase: open erases the pages again;
//! * cut while opening a page (erase or header): the page is not in the log; erased before use.
//!
//! Since a word write is atomic and a cut stops all writing, no cut can leave, at or after
//! the head, a header word that is neither erased nor valid, or a commit word that is written
//! but does not match its record. Open reports those as [`StoreError::Corrupt`] rather than
//! silently falling back to an older value (which could roll back, say, a retry counter).
//! Length fields are range-checked before anything is read or allocated from them.
//!
//! # Invariants
//!
//! * pages from the head's page to the last opened page have valid headers and consecutive
//!   sequence numbers; every other page holds no valid header that could join that run;
//! * no word is written twice between erases; the tail is always after every written byte;
//! * the in-RAM index maps each live key to its winning record; `live` is their total size;
//! * after every `insert`/`remove` at least `reserve` bytes of the ring stay free, which is
//!   enough for compaction to finish a full turn of the ring (see [`Store::free_bytes`]).
//!
//! # Cost
//!
//! `open` reads the whole flash once and builds the index (O(n log n) in RAM for n records).
//! `get` reads one record (O(value) flash reads, O(log n) in RAM); `contains`, `len`, `keys`
//! touch RAM only. `insert` writes one record, `remove` one tombstone, plus a page header when
//! a page is opened; neither reads flash unless it compacts. A compaction step reads one page
//! and rewrites its live part; with the store a fraction `f` full of live data, compaction
//! costs about `f / (1 - f)` bytes written per byte appended, amortized.

mod compact;
mod crc;
mod format;
mod log;
mod recover;
#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use gmhsm_platform::{Flash, FlashError};

use format::{Kind, Layout};
pub use format::{MAX_KEY, MAX_VALUE};
use log::Log;

/// Why a store operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// Not enough room for the record, even after compaction; nothing changed. Removing
    /// keys makes room.
    Full,
    /// The value is longer than the store's limit; nothing changed.
    TooLarge,
    /// The flash failed. Nothing may be assumed about the operation in progress; later
    /// mutations fail the same way until the store is reopened.
    Flash(FlashError),
    /// Open found an inconsistency no power cut can cause (or `get` found a record that no
    /// longer checks); the flash was not modified by the store.
    Corrupt,
    /// The key is empty or longer than [`MAX_KEY`]; nothing changed.
    InvalidKey,
    /// The flash geometry cannot hold this format with the configured value limit.
    Geometry,
}

impl From<FlashError> for StoreError {
    fn from(e: FlashError) -> Self {
        StoreError::Flash(e)
    }
}

/// Where a live record is: virtual address and total length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    at: u64,
    len: usize,
}

/// Space policy derived from the layout and the largest record allowed.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_value: usize,
    /// Ring bytes kept free after every user write, for compaction.
    reserve: usize,
    /// Most live bytes allowed, including room for one tombstone.
    budget: usize,
}

impl Limits {
    /// With `m` the largest record, `h` a head record, `U` a page's data and `N` pages: one
    /// compaction step writes at most `s = U + m + h`; a full turn of the ring can lose up to
    /// `N h + m` more to head records and a record spilling out of the head page, and a cut
    /// can waste `s + U` (a torn compaction step, a skipped page). After a turn the log holds
    /// at most `live + N h + U + m` bytes, which must leave the reserve free.
    fn new(lay: &Layout, max_value: usize, largest: usize) -> Option<Self> {
        let m = lay.record_len(MAX_KEY, max_value).max(largest);
        let h = lay.record_len(0, 8);
        let (u, n) = (lay.usable, lay.pages as usize);
        let s = u + m + h;
        let reserve = 2 * s + n * h + m + u;
        let budget = lay.ring().checked_sub(reserve + n * h + u + m + lay.record_len(MAX_KEY, 0))?;
        (budget >= m).then_some(Limits { max_value, reserve, budget })
    }
}

/// The key-value store. See the module documentation for its format and guarantees.
pub struct Store<F: Flash> {
    log: Log<F>,
    index: BTreeMap<Vec<u8>, Loc>,
    /// Total length of the live records.
    live: usize,
    limits: Limits,
    /// Set by a flash error during a mutation: RAM and flash may disagree from then on.
    poisoned: Option<FlashError>,
}

impl<F: Flash> Store<F> {
    /// Open the store on `flash` with values up to [`MAX_VALUE`] bytes, formatting a blank or
    /// unrecognisable flash and repairing what a power cut left.
    pub fn open(flash: F) -> Result<Self, StoreError> {
        Self::open_with_max_value(flash, MAX_VALUE)
    }

    /// Like [`Store::open`] with a smaller value limit, which shrinks the compaction reserve
    /// (a flash of a few small pages can then hold a store). The limit is policy, not format.
    pub fn open_with_max_value(flash: F, max_value: usize) -> Result<Self, StoreError> {
        let lay = Layout::new(flash.geometry()).ok_or(StoreError::Geometry)?;
        let max_value = max_value.min(MAX_VALUE);
        Limits::new(&lay, max_value, 0).ok_or(StoreError::Geometry)?;
        let rec = recover::recover(flash, lay)?;
        let live = rec.index.values().map(|l| l.len).sum();
        let largest = rec.index.values().map(|l| l.len).max().unwrap_or(0);
        let limits = Limits::new(&lay, max_value, largest).ok_or(StoreError::Geometry)?;
        Ok(Store { log: rec.log, index: rec.index, live, limits, poisoned: None })
    }

    /// The value stored under `key`, read from flash and checked.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(loc) = self.index.get(key) else {
            return Ok(None);
        };
        let lay = self.log.lay;
        let mut bytes = vec![0u8; loc.len];
        self.log.read(loc.at, &mut bytes)?;
        let header = lay.decode_record_header(&bytes[..lay.word]).ok_or(StoreError::Corrupt)?;
        let key_end = lay.word + header.key_len;
        let value_end = key_end + header.value_len;
        if header.kind != Kind::Value
            || lay.record_len(header.key_len, header.value_len) != loc.len
            || &bytes[lay.word..key_end] != key
            || !lay.is_committed(&bytes)
        {
            return Err(StoreError::Corrupt);
        }
        bytes.truncate(value_end);
        bytes.drain(..key_end);
        Ok(Some(bytes))
    }

    /// Whether `key` has a value.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.index.contains_key(key)
    }

    /// Set `key` to `value`, replacing any old value. Durable and atomic once `Ok`.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(StoreError::InvalidKey);
        }
        if value.len() > self.limits.max_value {
            return Err(StoreError::TooLarge);
        }
        self.check_poison()?;
        let len = self.log.lay.record_len(key.len(), value.len());
        if self.live + len > self.limits.budget {
            return Err(StoreError::Full);
        }
        let record = self.log.lay.encode_record(Kind::Value, key, value);
        let at = self.guard(|s| {
            s.make_room(len)?;
            Ok(s.log.append(&record)?)
        })?;
        let old = self.index.insert(key.to_vec(), Loc { at, len });
        self.live = self.live + len - old.map_or(0, |l| l.len);
        Ok(())
    }

    /// Remove `key`; `Ok(false)` if it had no value. Durable and atomic once `Ok`.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool, StoreError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(StoreError::InvalidKey);
        }
        self.check_poison()?;
        if !self.index.contains_key(key) {
            return Ok(false);
        }
        let record = self.log.lay.encode_record(Kind::Tombstone, key, &[]);
        self.guard(|s| {
            s.make_room(record.len())?;
            Ok(s.log.append(&record)?)
        })?;
        if let Some(old) = self.index.remove(key) {
            self.live -= old.len;
        }
        Ok(true)
    }

    /// The keys with a value, in ascending byte order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.index.keys().map(Vec::as_slice)
    }

    /// Number of keys with a value.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Approximately how many more bytes of records fit: a record takes its key and value
    /// rounded up to a word, plus two words. Replacing a value needs room for the new record
    /// while the old one still counts (it is garbage only once the new one is committed).
    pub fn free_bytes(&self) -> usize {
        self.limits.budget.saturating_sub(self.live)
    }

    /// Most bytes of live records the store holds (what [`Store::free_bytes`] counts down
    /// from): the ring less what compaction needs.
    pub fn capacity_bytes(&self) -> usize {
        self.limits.budget
    }

    /// The bytes a record of `key_len` and `value_len` bytes takes in [`Store::free_bytes`]'s
    /// count (no more than the limits allow: a record over them is refused anyway).
    pub fn record_cost(&self, key_len: usize, value_len: usize) -> usize {
        self.log.lay.record_len(key_len.min(MAX_KEY), value_len.min(self.limits.max_value))
    }

    /// The bytes the record of `key` takes now (`None`: no value). RAM only.
    pub fn footprint(&self, key: &[u8]) -> Option<usize> {
        self.index.get(key).map(|l| l.len)
    }

    /// The bytes the records of the keys starting with `prefix` take (RAM only).
    pub fn prefix_bytes(&self, prefix: &[u8]) -> usize {
        self.index.range(prefix.to_vec()..).take_while(|(k, _)| k.starts_with(prefix)).map(|(_, l)| l.len).sum()
    }

    /// Give the flash back (to reboot by reopening it).
    pub fn into_flash(self) -> F {
        self.log.flash
    }

    fn check_poison(&self) -> Result<(), StoreError> {
        self.poisoned.map_or(Ok(()), |e| Err(StoreError::Flash(e)))
    }

    /// Run a mutation; a flash error poisons the store.
    fn guard<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let r = f(self);
        if let Err(StoreError::Flash(e)) = r {
            self.poisoned = Some(e);
        }
        r
    }
}

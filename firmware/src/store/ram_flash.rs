//! A flash in RAM with NOR semantics, power cuts on demand and operation counters: the test
//! double for the store (and any other user of [`Flash`]).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use gmhsm_platform::{Flash, FlashError, FlashGeometry};

/// Counts of flash operations, in words (reads and writes) and pages (erases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub read_words: u64,
    pub written_words: u64,
    pub erases: u64,
}

/// RAM flash. Writes may only clear bits ([`FlashError::NotErased`] otherwise, nothing
/// written). When a power cut is armed, the operation that reaches it is interrupted: a write
/// keeps the words before the cut and the cut word is written or not (at random); an erase
/// leaves the page untouched, erased, random, or erased only up to a random point. From then
/// on every operation fails with [`FlashError::PowerLoss`] until [`RamFlash::reboot`].
pub struct RamFlash {
    mem: Vec<u8>,
    geometry: FlashGeometry,
    /// Word writes and erases that may still complete before the cut.
    cut_in: Option<u64>,
    powered: bool,
    rng: u64,
    counts: Cell<OpCounts>,
}

impl RamFlash {
    /// An erased flash; `seed` drives what interrupted operations leave behind.
    pub fn new(geometry: FlashGeometry, seed: u64) -> Self {
        RamFlash {
            mem: vec![0xff; geometry.capacity()],
            geometry,
            cut_in: None,
            powered: true,
            rng: seed | 1,
            counts: Cell::new(OpCounts::default()),
        }
    }

    /// Cut power when the operation after the next `ops` word writes / erases starts.
    pub fn cut_after(&mut self, ops: u64) {
        self.cut_in = Some(ops);
    }

    /// Disarm any pending cut and restore power.
    pub fn reboot(&mut self) {
        self.cut_in = None;
        self.powered = true;
    }

    /// Whether a cut happened since the last reboot.
    pub fn was_cut(&self) -> bool {
        !self.powered
    }

    pub fn counts(&self) -> OpCounts {
        self.counts.get()
    }

    pub fn reset_counts(&self) {
        self.counts.set(OpCounts::default());
    }

    /// The raw image (for inspection in tests).
    pub fn image(&self) -> &[u8] {
        &self.mem
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Count one word write or erase; `true` if the power goes now.
    fn cut_now(&mut self) -> bool {
        match &mut self.cut_in {
            Some(0) => {
                self.cut_in = None;
                self.powered = false;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }

    fn range(&self, addr: usize, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let w = self.geometry.word_size;
        let end = addr.checked_add(len).ok_or(FlashError::OutOfBounds)?;
        if !addr.is_multiple_of(w) || !len.is_multiple_of(w) || end > self.mem.len() {
            return Err(FlashError::OutOfBounds);
        }
        Ok(addr..end)
    }
}

impl Flash for RamFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        let end = addr.checked_add(out.len()).ok_or(FlashError::OutOfBounds)?;
        out.copy_from_slice(self.mem.get(addr..end).ok_or(FlashError::OutOfBounds)?);
        let mut c = self.counts.get();
        c.read_words += out.len().div_ceil(self.geometry.word_size) as u64;
        self.counts.set(c);
        Ok(())
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        let range = self.range(addr, data.len())?;
        if self.mem[range.clone()].iter().zip(data).any(|(old, new)| old & new != *new) {
            return Err(FlashError::NotErased);
        }
        let w = self.geometry.word_size;
        for (i, word) in data.chunks(w).enumerate() {
            let at = addr + i * w;
            if self.cut_now() {
                if self.next_random() & 1 == 1 {
                    self.mem[at..at + w].copy_from_slice(word);
                }
                return Err(FlashError::PowerLoss);
            }
            self.mem[at..at + w].copy_from_slice(word);
            let mut c = self.counts.get();
            c.written_words += 1;
            self.counts.set(c);
        }
        Ok(())
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        if page >= self.geometry.page_count {
            return Err(FlashError::OutOfBounds);
        }
        let ps = self.geometry.page_size;
        let range = page * ps..(page + 1) * ps;
        if self.cut_now() {
            match self.next_random() % 4 {
                0 => {}
                1 => self.mem[range].fill(0xff),
                2 => {
                    for i in range {
                        self.mem[i] = self.next_random() as u8;
                    }
                }
                _ => {
                    let upto = (self.next_random() % ps as u64) as usize;
                    self.mem[range.start..range.start + upto].fill(0xff);
                }
            }
            return Err(FlashError::PowerLoss);
        }
        self.mem[range].fill(0xff);
        let mut c = self.counts.get();
        c.erases += 1;
        self.counts.set(c);
        Ok(())
    }
}

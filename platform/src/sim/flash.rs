//! A flash in RAM with NOR semantics, power cuts on demand, injected failures and operation
//! counters: the one power-cut flash of the project. The firmware's store and card tests use
//! it directly; the simulator's `FileFlash` keeps a file in step with it.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Flash, FlashError, FlashGeometry};

/// Counts of flash operations: words read and written, erases, and program calls (each
/// `write`, whether or not it succeeded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpCounts {
    pub read_words: u64,
    pub written_words: u64,
    pub erases: u64,
    pub writes: u64,
}

#[derive(Default)]
struct ProbeState {
    read_words: AtomicU64,
    written_words: AtomicU64,
    erases: AtomicU64,
    writes: AtomicU64,
    failing: AtomicBool,
}

/// A handle on a [`RamFlash`] that stays with the test after the flash moved into the card:
/// its counters, and a switch that makes every write and erase fail.
#[derive(Clone, Default)]
pub struct FlashProbe(Arc<ProbeState>);

impl FlashProbe {
    pub fn counts(&self) -> OpCounts {
        let s = &self.0;
        OpCounts {
            read_words: s.read_words.load(Ordering::Relaxed),
            written_words: s.written_words.load(Ordering::Relaxed),
            erases: s.erases.load(Ordering::Relaxed),
            writes: s.writes.load(Ordering::Relaxed),
        }
    }

    pub fn reset_counts(&self) {
        for c in [&self.0.read_words, &self.0.written_words, &self.0.erases, &self.0.writes] {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// While set, every write and erase fails with [`FlashError::Io`], changing nothing (a
    /// worn-out or disconnected device); reads still work.
    pub fn set_failing(&self, failing: bool) {
        self.0.failing.store(failing, Ordering::SeqCst);
    }

    fn failing(&self) -> bool {
        self.0.failing.load(Ordering::SeqCst)
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
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
    probe: FlashProbe,
}

impl RamFlash {
    /// An erased flash; `seed` drives what interrupted operations leave behind.
    pub fn new(geometry: FlashGeometry, seed: u64) -> Self {
        Self::from_image(vec![0xff; geometry.capacity()], geometry, seed)
    }

    /// A flash holding `image` (resized to the geometry's capacity, erased past its end).
    pub fn from_image(mut image: Vec<u8>, geometry: FlashGeometry, seed: u64) -> Self {
        image.resize(geometry.capacity(), 0xff);
        RamFlash { mem: image, geometry, cut_in: None, powered: true, rng: seed | 1, probe: FlashProbe::default() }
    }

    /// Cut power when the operation after the next `ops` word writes / erases starts.
    pub fn cut_after(&mut self, ops: u64) {
        self.cut_in = Some(ops);
    }

    /// Lose power now: every operation fails with [`FlashError::PowerLoss`] until
    /// [`RamFlash::reboot`] (a backing store that failed, in the simulator).
    pub fn power_off(&mut self) {
        self.cut_in = None;
        self.powered = false;
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

    /// The counters and failure switch, shared with this flash.
    pub fn probe(&self) -> FlashProbe {
        self.probe.clone()
    }

    pub fn counts(&self) -> OpCounts {
        self.probe.counts()
    }

    pub fn reset_counts(&self) {
        self.probe.reset_counts();
    }

    /// The raw image.
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

    fn range(&self, addr: usize, len: usize) -> Result<Range<usize>, FlashError> {
        let w = self.geometry.word_size;
        let end = addr.checked_add(len).ok_or(FlashError::OutOfBounds)?;
        if !addr.is_multiple_of(w) || !len.is_multiple_of(w) || end > self.mem.len() {
            return Err(FlashError::OutOfBounds);
        }
        Ok(addr..end)
    }

    /// What an erase cut by the power leaves in `range`.
    fn interrupt_erase(&mut self, range: Range<usize>) {
        match self.next_random() % 4 {
            0 => {}
            1 => self.mem[range].fill(0xff),
            2 => {
                for i in range {
                    self.mem[i] = self.next_random() as u8;
                }
            }
            _ => {
                let upto = (self.next_random() % range.len() as u64) as usize;
                self.mem[range.start..range.start + upto].fill(0xff);
            }
        }
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
        FlashProbe::add(&self.probe.0.read_words, out.len().div_ceil(self.geometry.word_size) as u64);
        Ok(())
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        FlashProbe::add(&self.probe.0.writes, 1);
        if self.probe.failing() {
            return Err(FlashError::Io);
        }
        let range = self.range(addr, data.len())?;
        if self.mem[range].iter().zip(data).any(|(old, new)| old & new != *new) {
            return Err(FlashError::NotErased);
        }
        let w = self.geometry.word_size;
        if self.cut_in.is_none() {
            self.mem[addr..addr + data.len()].copy_from_slice(data);
            FlashProbe::add(&self.probe.0.written_words, (data.len() / w) as u64);
            return Ok(());
        }
        for (i, word) in data.chunks(w).enumerate() {
            let at = addr + i * w;
            if self.cut_now() {
                if self.next_random() & 1 == 1 {
                    self.mem[at..at + w].copy_from_slice(word);
                }
                return Err(FlashError::PowerLoss);
            }
            self.mem[at..at + w].copy_from_slice(word);
            FlashProbe::add(&self.probe.0.written_words, 1);
        }
        Ok(())
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if !self.powered {
            return Err(FlashError::PowerLoss);
        }
        if self.probe.failing() {
            return Err(FlashError::Io);
        }
        if page >= self.geometry.page_count {
            return Err(FlashError::OutOfBounds);
        }
        let ps = self.geometry.page_size;
        let range = page * ps..(page + 1) * ps;
        if self.cut_now() {
            self.interrupt_erase(range);
            return Err(FlashError::PowerLoss);
        }
        self.mem[range].fill(0xff);
        FlashProbe::add(&self.probe.0.erases, 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: FlashGeometry = FlashGeometry { page_size: 256, page_count: 4, word_size: 4 };

    #[test]
    fn nor_semantics_bounds_and_counts() {
        let mut f = RamFlash::new(G, 1);
        f.write(8, &[0x0f, 0xf0, 0x00, 0xff]).unwrap();
        assert_eq!(f.write(8, &[0xff, 0xff, 0xff, 0xff]), Err(FlashError::NotErased));
        assert_eq!(f.write(9, &[0; 4]), Err(FlashError::OutOfBounds));
        assert_eq!(f.write(1024, &[0; 4]), Err(FlashError::OutOfBounds));
        let mut b = [0u8; 4];
        f.read(8, &mut b).unwrap();
        assert_eq!(b, [0x0f, 0xf0, 0x00, 0xff]);
        f.erase(0).unwrap();
        f.read(8, &mut b).unwrap();
        assert_eq!(b, [0xff; 4]);
        assert_eq!(f.counts(), OpCounts { read_words: 2, written_words: 1, erases: 1, writes: 4 });
    }

    #[test]
    fn a_cut_keeps_the_words_before_it_and_latches_until_reboot() {
        for seed in 1..20 {
            let mut f = RamFlash::new(G, seed);
            f.cut_after(1);
            assert_eq!(f.write(16, &[0; 12]), Err(FlashError::PowerLoss));
            assert!(f.was_cut());
            let mut b = [0u8; 4];
            assert_eq!(f.read(16, &mut b), Err(FlashError::PowerLoss), "no power");
            f.reboot();
            f.read(16, &mut b).unwrap();
            assert_eq!(b, [0; 4], "the word before the cut");
            f.read(24, &mut b).unwrap();
            assert_eq!(b, [0xff; 4], "the word after the cut");
        }
    }

    #[test]
    fn a_failing_probe_refuses_writes_and_erases_changing_nothing() {
        let mut f = RamFlash::new(G, 1);
        let probe = f.probe();
        probe.set_failing(true);
        assert_eq!(f.write(0, &[0; 4]), Err(FlashError::Io));
        assert_eq!(f.erase(0), Err(FlashError::Io));
        assert!(f.image().iter().all(|b| *b == 0xff));
        probe.set_failing(false);
        f.write(0, &[0; 4]).unwrap();
        assert_eq!(probe.counts().written_words, 1);
    }
}

//! In-memory simulated devices (feature `sim`): what the firmware's tests and the in-process
//! test card boot on, and what the simulator's file-backed devices build on. None of it is
//! for a real board: the noise source is a deterministic generator.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::{Clock, NoiseError, NoiseSource, TamperError, TamperRam};

mod flash;

pub use flash::{FlashProbe, OpCounts, RamFlash};

/// Xorshift samples (deterministic from the seed), or every sample one value (`stuck`, a
/// failed source the card's health tests must catch).
pub struct XorShiftNoise {
    pub x: u64,
    pub stuck: bool,
}

impl XorShiftNoise {
    pub fn new(seed: u64) -> Self {
        XorShiftNoise { x: seed | 1, stuck: false }
    }
}

impl NoiseSource for XorShiftNoise {
    fn min_entropy_bits(&self) -> u8 {
        4
    }

    fn fill_raw(&mut self, out: &mut [u8]) -> Result<(), NoiseError> {
        for b in out {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = if self.stuck { 0x42 } else { (self.x >> 32) as u8 };
        }
        Ok(())
    }
}

/// A clock that moves only when told to ([`ManualClock::advance`]); clones share the time.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(ms)))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Size of [`RamTamper`]'s RAM, as the simulator's.
pub const TAMPER_SIZE: usize = 64;
/// Size of [`RamTamper`]'s rollback register, as the simulator's.
pub const REGISTER_SIZE: usize = 96;

struct TamperState {
    ram: [AtomicU8; TAMPER_SIZE],
    register: [AtomicU8; REGISTER_SIZE],
    switch: AtomicBool,
}

/// Tamper RAM, rollback register and tamper switch in memory. Clones share them: a test keeps
/// one to read what the card wrote ([`RamTamper::ram`]) and to open the enclosure
/// ([`RamTamper::trip`]) after the other went into the card.
#[derive(Clone)]
pub struct RamTamper(Arc<TamperState>);

impl Default for RamTamper {
    fn default() -> Self {
        RamTamper(Arc::new(TamperState {
            ram: [const { AtomicU8::new(0) }; TAMPER_SIZE],
            register: [const { AtomicU8::new(0) }; REGISTER_SIZE],
            switch: AtomicBool::new(false),
        }))
    }
}

impl RamTamper {
    /// What the RAM holds now.
    pub fn ram(&self) -> [u8; TAMPER_SIZE] {
        core::array::from_fn(|i| self.0.ram[i].load(Ordering::SeqCst))
    }

    /// What the rollback register holds now.
    pub fn register(&self) -> [u8; REGISTER_SIZE] {
        core::array::from_fn(|i| self.0.register[i].load(Ordering::SeqCst))
    }

    /// Open the enclosure: the card sees a tamper event at its next check.
    pub fn trip(&self) {
        self.0.switch.store(true, Ordering::SeqCst);
    }
}

fn load(area: &[AtomicU8], out: &mut [u8]) -> Result<(), TamperError> {
    if out.len() != area.len() {
        return Err(TamperError::Io);
    }
    for (o, a) in out.iter_mut().zip(area) {
        *o = a.load(Ordering::SeqCst);
    }
    Ok(())
}

fn store(area: &[AtomicU8], data: &[u8]) -> Result<(), TamperError> {
    if data.len() != area.len() {
        return Err(TamperError::Io);
    }
    for (a, d) in area.iter().zip(data) {
        a.store(*d, Ordering::SeqCst);
    }
    Ok(())
}

impl TamperRam for RamTamper {
    const SIZE: usize = TAMPER_SIZE;
    const REGISTER_SIZE: usize = REGISTER_SIZE;

    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        load(&self.0.ram, out)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        store(&self.0.ram, data)
    }

    fn tamper_event(&mut self) -> bool {
        self.0.switch.swap(false, Ordering::SeqCst)
    }

    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        load(&self.0.register, out)
    }

    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        store(&self.0.register, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tamper_clones_share_the_ram_register_and_switch() {
        let kept = RamTamper::default();
        let mut card = kept.clone();
        card.write(&[7; TAMPER_SIZE]).unwrap();
        card.write_register(&[9; REGISTER_SIZE]).unwrap();
        assert_eq!(kept.ram(), [7; TAMPER_SIZE]);
        assert_eq!(kept.register(), [9; REGISTER_SIZE]);
        assert_eq!(card.write(&[1; 3]), Err(TamperError::Io), "the whole RAM or nothing");
        assert_eq!(kept.ram(), [7; TAMPER_SIZE]);
        assert!(!card.tamper_event());
        kept.trip();
        assert!(card.tamper_event(), "seen once");
        assert!(!card.tamper_event(), "latched once per trip");
    }

    #[test]
    fn the_manual_clock_moves_only_when_told_and_clones_share_it() {
        let c = ManualClock::at(5);
        let d = c.clone();
        assert_eq!(d.now_ms(), 5);
        c.advance(10);
        assert_eq!(d.now_ms(), 15);
        d.set(1);
        assert_eq!(c.now_ms(), 1);
    }
}

//! In-memory simulated devices (feature `sim`): what the firmware's tests and the in-process
//! test card boot on, and what the simulator's file-backed devices build on. None of it is
//! for a real board: the noise source is a deterministic generator.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// Tamper RAM and rollback register in memory, and a tamper switch ([`RamTamper::trip`]) a
/// test holds on to through [`RamTamper::switch`].
#[derive(Clone)]
pub struct RamTamper {
    pub ram: [u8; TAMPER_SIZE],
    pub register: [u8; REGISTER_SIZE],
    switch: Arc<AtomicBool>,
}

impl Default for RamTamper {
    fn default() -> Self {
        RamTamper { ram: [0; TAMPER_SIZE], register: [0; REGISTER_SIZE], switch: Arc::default() }
    }
}

impl RamTamper {
    /// The tamper switch, shared with this RAM: [`TamperSwitch::trip`] opens the enclosure.
    pub fn switch(&self) -> TamperSwitch {
        TamperSwitch(self.switch.clone())
    }
}

/// The enclosure's switch of a [`RamTamper`].
#[derive(Clone)]
pub struct TamperSwitch(Arc<AtomicBool>);

impl TamperSwitch {
    /// Open the enclosure: the card sees a tamper event at its next request.
    pub fn trip(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl TamperRam for RamTamper {
    const SIZE: usize = TAMPER_SIZE;
    const REGISTER_SIZE: usize = REGISTER_SIZE;

    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        out.copy_from_slice(self.ram.get(..out.len()).ok_or(TamperError::Io)?);
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        self.ram.get_mut(..data.len()).ok_or(TamperError::Io)?.copy_from_slice(data);
        Ok(())
    }

    fn tamper_event(&mut self) -> bool {
        self.switch.swap(false, Ordering::SeqCst)
    }

    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        out.copy_from_slice(self.register.get(..out.len()).ok_or(TamperError::Io)?);
        Ok(())
    }

    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        self.register.get_mut(..data.len()).ok_or(TamperError::Io)?.copy_from_slice(data);
        Ok(())
    }
}

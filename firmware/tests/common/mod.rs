//! The card's test board, shared by the firmware's integration tests: the in-memory flash
//! and noise of `gmhsm-platform` (feature `sim`), a tamper RAM shared through `Rc`s.
#![allow(dead_code)]

use std::cell::Cell;
use std::rc::Rc;

use gmhsm_firmware::Hsm;
use gmhsm_platform::*;
use gmhsm_proto::{KeyAlg, Label, Principal, Request, Response, Status};

/// Xorshift samples, or a stuck value.
pub use gmhsm_platform::sim::XorShiftNoise as TestNoise;
/// The power-cut NOR flash of `gmhsm-platform` (no cut armed: a plain RAM flash), and its
/// probe (counters, failure switch) that stays with a test after the flash moved into a card.
#[allow(unused_imports)]
pub use gmhsm_platform::sim::{FlashProbe, RamFlash};

#[derive(Clone)]
pub struct TestTamper {
    pub ram: Rc<Cell<[u8; 64]>>,
    pub trip: Rc<Cell<bool>>,
    /// The rollback register.
    pub register: Rc<Cell<[u8; 96]>>,
}

impl TamperRam for TestTamper {
    const SIZE: usize = 64;
    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        out.copy_from_slice(&self.ram.get());
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        let mut a = [0u8; 64];
        a.copy_from_slice(data);
        self.ram.set(a);
        Ok(())
    }
    fn tamper_event(&mut self) -> bool {
        self.trip.replace(false)
    }
    const REGISTER_SIZE: usize = 96;
    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        out.copy_from_slice(&self.register.get());
        Ok(())
    }
    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        let mut a = [0u8; 96];
        a.copy_from_slice(data);
        self.register.set(a);
        Ok(())
    }
}

pub struct TestClock;
impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        0
    }
}

/// A board with two cores: `join` runs its second computation on another thread (as the
/// simulator's board does), so that the card's split work is tested concurrent.
pub struct TestBoard;
impl Platform for TestBoard {
    type Noise = TestNoise;
    type Flash = RamFlash;
    type Tamper = TestTamper;
    type Clock = TestClock;

    fn join<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        JOINS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::thread::scope(|s| {
            let other = s.spawn(b);
            let ra = a();
            (ra, other.join().expect("second half panicked"))
        })
    }
}

/// Calls of [`TestBoard::join`] in this test process.
pub static JOINS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn fresh_flash() -> RamFlash {
    let g = FlashGeometry { page_size: 4096, page_count: 64, word_size: 4 };
    RamFlash::new(g, 1)
}

pub fn boot(flash: RamFlash, tamper: &TestTamper, seed: u64, stuck: bool) -> Hsm<TestBoard> {
    Hsm::boot(Devices { noise: TestNoise { x: seed, stuck }, flash, tamper: tamper.clone(), clock: TestClock })
}

pub trait Exec {
    fn exec(&mut self, p: &Principal, r: Request) -> Result<Response, Status>;
}

impl<P: Platform> Exec for Hsm<P> {
    /// Every request in these tests runs in session 1.
    fn exec(&mut self, p: &Principal, r: Request) -> Result<Response, Status> {
        self.execute(p, 1, r)
    }
}

pub fn gen_req(label: Label, alg: KeyAlg) -> Request {
    Request::GenerateKey { label, alg, caps: gmhsm_proto::Capabilities::DEFAULT, domains: 0 }
}

pub fn app(n: u8) -> Principal {
    Principal::Application { cert_sha256: [n; 32] }
}

pub fn label(s: &str) -> Label {
    Label::try_from(s).unwrap()
}

pub fn tamper() -> TestTamper {
    TestTamper {
        ram: Rc::new(Cell::new([0; 64])),
        trip: Rc::new(Cell::new(false)),
        register: Rc::new(Cell::new([0; 96])),
    }
}

/// Deterministic xorshift randomness for building test inputs outside the card (simulated
/// admin cards, escrow-centre envelopes).
pub struct XorShiftRng(pub u64);

impl rand_core::TryRng for XorShiftRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Ok(self.0)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.try_next_u64()? as u8;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for XorShiftRng {}

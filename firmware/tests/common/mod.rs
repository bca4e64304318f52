//! The card's test board, shared by the firmware's integration tests: the in-memory flash
//! and noise and tamper RAM of `gmhsm-platform` (feature `sim`).
#![allow(dead_code)]

use gmhsm_firmware::Hsm;
use gmhsm_platform::*;
use gmhsm_proto::{KeyAlg, Label, Principal, Request, Response, Status};

/// Xorshift samples, or a stuck value.
pub use gmhsm_platform::sim::XorShiftNoise as TestNoise;
/// The power-cut NOR flash of `gmhsm-platform` (no cut armed: a plain RAM flash), and its
/// probe (counters, failure switch) that stays with a test after the flash moved into a card.
#[allow(unused_imports)]
pub use gmhsm_platform::sim::{FlashProbe, RamFlash};

/// Tamper RAM shared by its clones: the test keeps one after the card got the other.
pub use gmhsm_platform::sim::RamTamper as TestTamper;

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
    TestTamper::default()
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

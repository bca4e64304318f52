//! An in-process card for other crates' tests (feature `testing`), as yubihsm.rs's MockHsm is
//! for its users — except that nothing here is a mock: the real firmware (`Hsm`) behind the
//! real runtime ([`crate::serve_listener`]), on the in-memory simulated devices of
//! `gmhsm-platform` (feature `sim`), serving a Unix socket in a temporary folder. A daemon
//! under test connects to [`InProcessCard::socket`] as it would to `gmhsm-card`'s.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use gmhsm_firmware::Hsm;
use gmhsm_platform::sim::{FlashProbe, ManualClock, RamFlash, RamTamper, XorShiftNoise};
use gmhsm_platform::{Devices, FlashGeometry, Platform};
use gmhsm_proto::CardFrame;

use crate::ServeOptions;

/// The test card's board: in-memory devices, and a second core for `join` (a scoped thread,
/// so that the card's split work runs concurrently as on the simulator's board).
pub struct TestBoard;

impl Platform for TestBoard {
    type Noise = XorShiftNoise;
    type Flash = RamFlash;
    type Tamper = RamTamper;
    type Clock = ManualClock;

    fn join<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        std::thread::scope(|s| {
            let other = s.spawn(b);
            let ra = a();
            (ra, other.join().expect("the card's second half panicked"))
        })
    }
}

/// The test card's flash: 512 pages of 4 KiB (2 MiB), 4-byte words.
pub const GEOMETRY: FlashGeometry = FlashGeometry { page_size: 4096, page_count: 512, word_size: 4 };

/// How to start an [`InProcessCard`].
#[derive(Debug, Clone, Copy)]
pub struct CardOptions {
    /// Initialized in demo mode (`Hsm::initialize`: operational, no quorum) before it
    /// serves; otherwise it stays factory-fresh.
    pub initialized: bool,
    /// Seed of the simulated noise source (and so of every key the card makes).
    pub seed: u64,
    /// The clock's start, in milliseconds.
    pub clock_ms: u64,
}

impl Default for CardOptions {
    fn default() -> Self {
        CardOptions { initialized: true, seed: 0x5eed_c0de, clock_ms: 1_000 }
    }
}

/// A running card; dropping it stops it (every link closed) and removes its folder.
pub struct InProcessCard {
    dir: PathBuf,
    socket: PathBuf,
    clock: ManualClock,
    tamper: RamTamper,
    flash: FlashProbe,
    seen: Arc<Mutex<Vec<CardFrame>>>,
    running: Option<Running>,
}

/// The serving thread and its stop flag.
struct Running {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<std::io::Result<Hsm<TestBoard>>>,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl InProcessCard {
    /// An initialized card (demo mode) serving `card.sock` in a fresh temporary folder.
    /// Panics if it cannot start: it is for tests.
    pub fn start() -> InProcessCard {
        InProcessCard::start_with(CardOptions::default())
    }

    pub fn start_with(opts: CardOptions) -> InProcessCard {
        let dir = std::env::temp_dir().join(format!(
            "gmhsm-card-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the test card's folder");
        let clock = ManualClock::at(opts.clock_ms);
        let tamper = RamTamper::default();
        let flash = RamFlash::new(GEOMETRY, opts.seed);
        let (kept, probe) = (tamper.clone(), flash.probe());
        let mut hsm: Hsm<TestBoard> =
            Hsm::boot(Devices { noise: XorShiftNoise::new(opts.seed), flash, tamper, clock: clock.clone() });
        if opts.initialized {
            hsm.initialize().expect("the test card initializes");
        }
        let socket = dir.join("card.sock");
        let mut card =
            InProcessCard { dir, socket, clock, tamper: kept, flash: probe, seen: Arc::default(), running: None };
        card.running = Some(card.serve(hsm));
        card
    }

    fn serve(&self, hsm: Hsm<TestBoard>) -> Running {
        let listener = crate::listen_atomically(&self.socket).expect("the test card's socket");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = self.seen.clone();
        let tap: crate::Tap = Arc::new(move |f: &CardFrame| seen.lock().expect("seen").push(f.clone()));
        let serve = ServeOptions { stop: Some(stop.clone()), tap: Some(tap), ..ServeOptions::default() };
        let thread = std::thread::Builder::new()
            .name("test-card".into())
            .spawn(move || crate::serve_listener(hsm, listener, serve))
            .expect("the test card's thread");
        Running { stop, thread }
    }

    /// Stop serving: every link closed; the card back.
    fn halt(&mut self) -> Option<Hsm<TestBoard>> {
        let running = self.running.take()?;
        running.stop.store(true, Ordering::SeqCst);
        // Wake the accept so that the serve loop sees the flag.
        let _ = UnixStream::connect(&self.socket);
        running.thread.join().ok()?.ok()
    }

    /// Close every link, as a card process that died would, and serve again on the same
    /// socket with the same card (its keys kept; the sessions of the closed links gone).
    pub fn restart(&mut self) {
        let hsm = self.halt().expect("the test card stops cleanly");
        self.running = Some(self.serve(hsm));
    }

    /// The card link's socket (mode 0600).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The card's temporary folder (removed on drop); tests may put their own files there.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every card frame the card has decoded so far, in the order its links read them.
    pub fn seen(&self) -> Vec<CardFrame> {
        self.seen.lock().expect("seen").clone()
    }

    /// The card's clock: it moves only when a test advances it.
    pub fn clock(&self) -> &ManualClock {
        &self.clock
    }

    /// Open the enclosure: the card zeroizes its master key at its next request.
    pub fn trip_tamper(&self) {
        self.tamper.trip();
    }

    /// The flash's counters and failure switch.
    pub fn flash(&self) -> &FlashProbe {
        &self.flash
    }
}

impl Drop for InProcessCard {
    fn drop(&mut self) {
        drop(self.halt());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

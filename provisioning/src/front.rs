//! The appliance's front panel, as production code: a panel thread that shows the status
//! pages (boot progress, device state and link address, sessions and load, a stopped service,
//! card details, alarms), offers the operator's menu, asks the people logged in to approve
//! tools' sessions, and runs the ceremonies of this crate on a card link of its own (as
//! `Principal::Local`, session [`gmhsm_proto::sessions::PANEL`]). `gmhsmd` hosts it on real
//! devices; `gmhsm-sim up` on simulated ones. Any display, keypad and reader behind the
//! `gmhsm_platform` traits plug in.
//!
//! * [`station`] — the panel thread: a state machine fed events (a job, a key, a tick) and the
//!   time; [`menu`] — the operator's and auditor's pages; [`control`] — the control socket's
//!   command grammar and server (`gmhsm-sim panel`);
//! * [`FrontPanel`] — the handle: boot progress, jobs (ceremonies) for the panel thread, and
//!   [`Activity`] (whether it waits for people, for scripts that must wait until it settled).
//!
//! Invariants: the panel thread is the only user of the LCD, the keypad and the reader; one
//! job at a time (a second is refused, nothing queued); PINs only ever reach the panel as key
//! presses (the LCD shows stars).

pub mod control;
pub mod menu;
pub mod station;

mod jobs;
mod link;
mod operator;
mod pages;

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gmhsm_platform::{CardError, CardSlot, CardTransport, Key, Keypad, KeypadError, SlotEvent, SlotState, TextDisplay};

pub use link::LinkFilter;
pub use station::{BOOT_STEPS, Job, Phase};

/// Whether the panel thread is blocked waiting for people (a key, a card, a job), how many
/// such waits have begun, and how many jobs it has not picked up yet: "the panel has settled"
/// = it is waiting, in a wait that began after it handled the last input.
#[derive(Clone, Default)]
pub struct Activity(Arc<Mutex<Waits>>);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    pub waiting: bool,
    pub begun: u64,
    pub pending_jobs: u32,
    /// A job (a ceremony) is running now.
    pub running: bool,
}

impl Activity {
    fn with<T>(&self, f: impl FnOnce(&mut Waits) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// A device the panel thread reads begins to wait for people.
    pub fn begin_wait(&self) {
        self.with(|w| {
            w.waiting = true;
            w.begun += 1;
        })
    }
    pub fn end_wait(&self) {
        self.with(|w| w.waiting = false)
    }
    pub(crate) fn job_taken(&self) {
        self.with(|w| w.pending_jobs = w.pending_jobs.saturating_sub(1))
    }
    pub(crate) fn set_running(&self, running: bool) {
        self.with(|w| w.running = running)
    }
    /// Queue a job unless one is queued or running: `false` = refused, nothing queued.
    fn try_queue(&self) -> bool {
        self.with(|w| {
            let free = !w.running && w.pending_jobs == 0;
            if free {
                w.pending_jobs += 1;
            }
            free
        })
    }
    pub fn snapshot(&self) -> Waits {
        self.with(|w| *w)
    }

    /// Wait until the panel thread has reacted to the input given just before `since` was
    /// taken: no job left to pick up, and it waits again in its `new_waits`-th wait begun
    /// since (2 when the input does not wake it: a card moved while it idles), or it has
    /// kept waiting for a while (the input did not concern it). Gives up after `limit`.
    pub fn settle(&self, since: Waits, new_waits: u64, limit: Duration) {
        let start = Instant::now();
        let mut last = self.snapshot();
        let mut stable = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(20));
            let now = self.snapshot();
            if now != last {
                last = now;
                stable = Instant::now();
                continue;
            }
            let quiet = stable.elapsed() >= Duration::from_millis(100);
            let reacted = now.begun >= since.begun + new_waits || start.elapsed() >= Duration::from_millis(900);
            if now.waiting && now.pending_jobs == 0 && quiet && reacted {
                return;
            }
            if start.elapsed() > limit {
                return;
            }
        }
    }
}

/// A keypad or reader whose waits the panel's [`Activity`] reports.
pub struct Watched<T> {
    pub inner: T,
    pub activity: Activity,
}

impl<T: Keypad> Keypad for Watched<T> {
    fn read_key(&mut self, timeout_ms: u32) -> Result<Option<Key>, KeypadError> {
        if let Some(k) = self.inner.read_key(0)? {
            return Ok(Some(k));
        }
        if timeout_ms == 0 {
            return Ok(None);
        }
        self.activity.begin_wait();
        let r = self.inner.read_key(timeout_ms);
        self.activity.end_wait();
        r
    }
}

impl<T: CardTransport> CardTransport for Watched<T> {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        self.inner.transmit(capdu, rapdu)
    }
}

impl<T: CardSlot> CardSlot for Watched<T> {
    fn state(&mut self) -> Result<SlotState, CardError> {
        self.inner.state()
    }

    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError> {
        if timeout_ms == 0 {
            return self.inner.wait_event(0);
        }
        self.activity.begin_wait();
        let e = self.inner.wait_event(timeout_ms);
        self.activity.end_wait();
        e
    }
}

/// What the panel thread and its users share.
pub struct Shared {
    pub phase: Mutex<Phase>,
    /// The private link's address, once the daemon listens.
    pub link: Mutex<String>,
    /// The outcome of the last job ("login: quorum reached", "login: cancelled", ...).
    pub last: Mutex<String>,
}

impl Shared {
    pub fn get<T: Clone>(m: &Mutex<T>) -> T {
        m.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn set<T>(m: &Mutex<T>, v: T) {
        *m.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// The devices and the card link of a front panel.
pub struct Devices<R, D, K> {
    /// The card's socket; the panel connects when it first needs the card, and again after
    /// the link failed (a card restart).
    pub card_socket: PathBuf,
    /// The admin-card reader (`gmhsm_icc::PcscReader` on an appliance).
    pub reader: R,
    /// The LCD (20x4).
    pub display: D,
    pub keypad: K,
    /// Sees every request before it goes to the card (fault injection in tests); `None`.
    pub filter: Option<LinkFilter>,
}

/// The running front panel: boot progress in, jobs (ceremonies) to its thread.
#[derive(Clone)]
pub struct FrontPanel {
    activity: Activity,
    jobs: Sender<station::Envelope>,
    shared: Arc<Shared>,
}

/// Why a panel command failed (shown to the person who gave it).
pub type PanelError = String;

impl FrontPanel {
    /// Start the panel thread on `devices`. `activity` is the one the devices report their
    /// waits to (wrap them in [`Watched`]), or a fresh one.
    pub fn start<R, D, K>(devices: Devices<R, D, K>, activity: Activity) -> std::io::Result<FrontPanel>
    where
        R: CardTransport + CardSlot + Send + 'static,
        D: TextDisplay + Send + 'static,
        K: Keypad + Send + 'static,
    {
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Boot { step: "power on".into(), done: 0, total: BOOT_STEPS }),
            link: Mutex::new(String::new()),
            last: Mutex::new(String::new()),
        });
        let (tx, rx): (Sender<station::Envelope>, Receiver<station::Envelope>) = channel();
        let (a, s) = (activity.clone(), shared.clone());
        std::thread::Builder::new().name("front-panel".into()).spawn(move || station::run(devices, s, a, rx))?;
        Ok(FrontPanel { activity, jobs: tx, shared })
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Show boot progress (step `done` of the boot).
    pub fn boot(&self, step: &str, done: u8) {
        Shared::set(&self.shared.phase, Phase::Boot { step: step.into(), done, total: BOOT_STEPS });
    }

    /// Boot finished: status pages, the private link at `link`.
    pub fn running(&self, link: &str) {
        Shared::set(&self.shared.link, link.to_string());
        Shared::set(&self.shared.phase, Phase::Running);
    }

    /// Hand the panel thread a job if it can take it now; the [`Submitted`] job's outcome
    /// comes on its receiver. A panel busy with another job (a ceremony waiting for people)
    /// refuses at once, and nothing is kept for later.
    pub fn submit(&self, job: Job) -> Result<Submitted, PanelError> {
        if !self.activity.try_queue() {
            return Err("the panel is busy (a ceremony is running): refused, nothing queued".into());
        }
        let (tx, rx) = channel();
        let claim = Arc::new(std::sync::atomic::AtomicU8::new(station::QUEUED));
        self.jobs.send(station::Envelope { job, reply: Some(tx), claim: claim.clone() }).map_err(|_| {
            self.activity.job_taken();
            "the front panel stopped".to_string()
        })?;
        Ok(Submitted { rx, claim })
    }
}

/// A job handed to the panel thread.
pub struct Submitted {
    pub rx: Receiver<Result<(), String>>,
    claim: Arc<std::sync::atomic::AtomicU8>,
}

impl Submitted {
    /// The job's outcome within `limit`. A job the panel has not started by then is withdrawn
    /// (it will never run) and reported refused; one it started is waited for to its end.
    pub fn outcome(self, limit: Duration) -> Result<(), PanelError> {
        use std::sync::atomic::Ordering;
        if let Ok(r) = self.rx.recv_timeout(limit) {
            return r;
        }
        let withdrawn =
            self.claim.compare_exchange(station::QUEUED, station::WITHDRAWN, Ordering::SeqCst, Ordering::SeqCst);
        if withdrawn.is_ok() {
            return Err("the panel did not take the command: refused, nothing queued".into());
        }
        self.rx.recv().unwrap_or_else(|_| Err("the front panel stopped".into()))
    }
}

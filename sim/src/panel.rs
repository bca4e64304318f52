//! The simulated appliance's front panel, hosted by `gmhsm-sim up`: the real HD44780 driver
//! writing into [`crate::lcd_sim::SimLcd`], a [`SimKeypad`], and a reader slot holding virtual
//! admin cards from `STATE/cards/*.img`. A panel thread shows the status pages and runs the
//! ceremonies of `gmhsm-provisioning` on a card link of its own (as `Principal::Local`); a
//! control socket (`STATE/panel.sock`, mode 0600) lets a person or a script look at the LCD,
//! insert and remove cards and press keys (`gmhsm-sim panel`).
//!
//! * [`slot`] — the in-process reader slot; [`reader`] — which reader (`--reader sim` or, with
//!   the `pcsc` feature, `pcsc`: vpcd on the real pcscd); [`station`] — the panel thread;
//! * [`control`] — the control socket and its command grammar; [`cli`] — `gmhsm-sim panel`;
//! * [`menu`] — the operator's and auditor's pages; [`faults`] — faults injected into the
//!   panel's card link (tests);
//! * [`demo`] — demo cards and PINs, and the people who run the demo's ceremonies.
//!
//! Invariants: the panel thread is the only user of the LCD, the keypad and the reader; every
//! command from the socket is bounded and parsed before it touches anything; PINs only ever
//! reach the panel as key presses (the LCD shows stars).

pub mod cli;
pub mod control;
pub mod demo;
pub mod faults;
pub mod menu;
pub mod reader;
pub mod slot;
pub mod station;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gmhsm_platform::{Key, Keypad, KeypadError};

use crate::admin_card::VirtualCard;
use crate::ceremony::LcdView;
use crate::keypad_sim::{KeyFeeder, SimKeypad};
pub use reader::ReaderKind;
pub use slot::{SimSlot, SlotError};
pub use station::{Job, Phase};

/// Longest card name (`admin-1`, `operator-1`, ...).
pub const MAX_NAME: usize = 32;

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
    pub(crate) fn begin_wait(&self) {
        self.with(|w| {
            w.waiting = true;
            w.begun += 1;
        })
    }
    pub(crate) fn end_wait(&self) {
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

/// The keypad the panel thread reads: a [`SimKeypad`] that reports its waits.
pub struct PanelKeypad {
    pad: SimKeypad,
    activity: Activity,
}

impl Keypad for PanelKeypad {
    fn read_key(&mut self, timeout_ms: u32) -> Result<Option<Key>, KeypadError> {
        if let Some(k) = self.pad.read_key(0)? {
            return Ok(Some(k));
        }
        if timeout_ms == 0 {
            return Ok(None);
        }
        self.activity.begin_wait();
        let r = self.pad.read_key(timeout_ms);
        self.activity.end_wait();
        r
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
    fn get<T: Clone>(m: &Mutex<T>) -> T {
        m.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set<T>(m: &Mutex<T>, v: T) {
        *m.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// The running front panel: the hands and eyes of whoever stands at it.
#[derive(Clone)]
pub struct FrontPanel {
    cards_dir: PathBuf,
    slot: reader::Hands,
    keys: KeyFeeder,
    view: LcdView,
    activity: Activity,
    jobs: Sender<station::Envelope>,
    shared: Arc<Shared>,
    faults: faults::LinkFaults,
}

/// Why a panel command failed (shown to the person who gave it).
pub type PanelError = String;

impl FrontPanel {
    /// Start the panel thread for the appliance in `state` whose card link is `card_socket`,
    /// its admin cards in the in-process slot.
    pub fn start(state: &Path, card_socket: &Path) -> anyhow::Result<FrontPanel> {
        FrontPanel::start_with(state, card_socket, ReaderKind::Sim)
    }

    /// [`FrontPanel::start`] with the reader `kind` (the real PC/SC stack for `Pcsc`).
    pub fn start_with(state: &Path, card_socket: &Path, kind: ReaderKind) -> anyhow::Result<FrontPanel> {
        let (lcd, view) = crate::ceremony::panel(gmhsm_lcd::Geometry::Lcd20x4);
        let pad = SimKeypad::new();
        let keys = pad.feeder();
        let activity = Activity::default();
        let (slot, reader) = reader::open(kind, &activity)?;
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Boot { step: "power on".into(), done: 0, total: station::BOOT_STEPS }),
            link: Mutex::new(String::new()),
            last: Mutex::new(String::new()),
        });
        let (tx, rx): (Sender<station::Envelope>, Receiver<station::Envelope>) = channel();
        let faults = faults::LinkFaults::default();
        let parts = station::Parts {
            faults: faults.clone(),
            socket: card_socket.to_path_buf(),
            reader,
            lcd,
            keypad: PanelKeypad { pad, activity: activity.clone() },
            shared: shared.clone(),
            activity: activity.clone(),
        };
        std::thread::Builder::new().name("front-panel".into()).spawn(move || station::run(parts, rx))?;
        Ok(FrontPanel { cards_dir: state.join("cards"), slot, keys, view, activity, jobs: tx, shared, faults })
    }

    /// The folder of card images.
    pub fn cards_dir(&self) -> &Path {
        &self.cards_dir
    }

    /// The LCD as shown now, each row padded to the panel's width.
    pub fn screen(&self) -> Vec<String> {
        self.view.screen().into_iter().map(|l| format!("{l:20}")).collect()
    }

    /// A fresh view of the LCD (for waiting on screens from now on).
    pub fn view(&self) -> LcdView {
        self.view.clone()
    }

    pub fn activity(&self) -> &Activity {
        &self.activity
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The faults injected into the panel's card link (tests).
    pub fn faults(&self) -> &faults::LinkFaults {
        &self.faults
    }

    /// Show boot progress (step `done` of the boot).
    pub fn boot(&self, step: &str, done: u8) {
        Shared::set(&self.shared.phase, Phase::Boot { step: step.into(), done, total: station::BOOT_STEPS });
    }

    /// Boot finished: status pages, the private link at `link`.
    pub fn running(&self, link: &str) {
        Shared::set(&self.shared.link, link.to_string());
        Shared::set(&self.shared.phase, Phase::Running);
    }

    /// Insert the card `STATE/cards/NAME.img`.
    pub fn insert(&self, name: &str) -> Result<(), PanelError> {
        check_name(name)?;
        let path = self.cards_dir.join(format!("{name}.img"));
        if !path.is_file() {
            return Err(format!("no card {name:?} (no {})", path.display()));
        }
        let card = VirtualCard::open(&path).map_err(|e| format!("card {name}: {e:?}"))?;
        self.slot.insert(name, card)
    }

    /// Insert a card that may not exist yet (a blank card whose image is created on its
    /// first change): the demo's new cards.
    pub(crate) fn insert_new(&self, name: &str) -> Result<(), PanelError> {
        check_name(name)?;
        let card = VirtualCard::open(&self.cards_dir.join(format!("{name}.img"))).map_err(|e| format!("{e:?}"))?;
        self.slot.insert(name, card)
    }

    pub fn remove(&self) -> Result<String, PanelError> {
        self.slot.remove()
    }

    pub fn holding(&self) -> Option<String> {
        self.slot.holding()
    }

    pub fn press(&self, keys: &[Key]) {
        keys.iter().for_each(|k| self.keys.press(*k));
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

/// Card names: 1 to 32 of `[A-Za-z0-9_-]`, so a name never leaves `STATE/cards/`.
pub fn check_name(name: &str) -> Result<(), PanelError> {
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a card name has 1 to {MAX_NAME} characters"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err("a card name has only letters, digits, '-' and '_'".into());
    }
    Ok(())
}

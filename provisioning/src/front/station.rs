//! The panel thread: between ceremonies it shows the status pages and watches the last card
//! of the quorum, operator or auditor logged in; on request it runs a ceremony (init, quorum
//! login, operator or auditor login, register an application or unblock a PIN under the
//! quorum's authority, card check, PIN change, logout) on its own card-link session. An operator logged in stops and starts the service
//! and runs the self-tests from the menu ([`super::menu`]); whoever is logged in approves
//! tools' sessions.
//!
//! The thread is a state machine fed [`Event`]s — a job, a key, a tick — each with the time
//! (`now`): the pages, their hold and refresh times and the login watch are decided from the
//! events and `now` alone. A job (a ceremony) then drives the reader and keypad itself until
//! it ends; it runs on this thread, never on the daemon's event loop.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use gmhsm_platform::{CardSlot, CardTransport, Key, Keypad, TextDisplay};
use gmhsm_proto::{AppQuota, Capabilities, CardRole, StatusInfo};

use super::link::LazyLink;
use super::menu::{Action, Choice};
use super::{Activity, Devices, Shared, menu};
use crate::ceremony::RoleSession;
use crate::{Authority, CeremonyError, InitPlan, Panel, Station};

/// Steps of the boot shown on the panel: card process, self-tests, init, TLS keys, link.
pub const BOOT_STEPS: u8 = 5;
/// The panel's card-link session, on the panel's own link (the card maps each link's session
/// numbers to sessions of their own: nothing on another link can act in this one).
pub const SESSION: u64 = gmhsm_proto::sessions::PANEL;
/// How long a ceremony waits for a key or a card before giving up.
const PEOPLE_MS: u32 = 300_000;
/// How long the page a job ended on stays before the status page comes back.
pub(super) const HOLD: Duration = Duration::from_secs(3);
pub(super) const REFRESH: Duration = Duration::from_secs(1);

/// What the panel shows between ceremonies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Boot { step: String, done: u8, total: u8 },
    Running,
}

/// Work for the panel thread.
#[derive(Debug, Clone)]
pub enum Job {
    /// The init ceremony.
    Init(InitPlan),
    /// A quorum login for key management; the last card stays in the reader.
    Login,
    /// An operator or auditor login with one card, left in the reader.
    RoleLogin(CardRole),
    /// Register an application under the quorum's authority.
    Register { cert_sha256: [u8; 32], name: String, domains: u32, caps: Capabilities, quota: Option<AppQuota> },
    /// End the quorum's authority (or the operator's or auditor's login) and wait for the
    /// last card to go.
    Logout,
    /// Card check: the card, its PIN and a trial login on a session of its own; nothing
    /// changes.
    CheckCard,
    /// A card's holder changes its PIN (old PIN, new PIN twice).
    ChangePin,
    /// Unblock a locked card under the quorum's authority (its holder chooses a new PIN);
    /// the authority ends with it.
    UnblockPin,
    /// Zeroize the appliance under the quorum's authority, after a confirmation screen; the
    /// authority ends with it (confirmed or not).
    Zeroize,
    /// Revoke the application with this certificate hash under the quorum's authority.
    Revoke { cert_sha256: [u8; 32] },
}

impl Job {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Job::Init(_) => "init",
            Job::Login => "login",
            Job::RoleLogin(CardRole::Operator) => "operator-login",
            Job::RoleLogin(_) => "auditor-login",
            Job::Register { .. } => "register-app",
            Job::Logout => "logout",
            Job::CheckCard => "card-check",
            Job::ChangePin => "change-pin",
            Job::UnblockPin => "unblock-pin",
            Job::Zeroize => "zeroize",
            Job::Revoke { .. } => "revoke-app",
        }
    }
}

/// A job's claim: queued, taken by the panel thread, or withdrawn by whoever submitted it
/// (then it never runs).
pub(crate) const QUEUED: u8 = 0;
pub(crate) const TAKEN: u8 = 1;
pub(crate) const WITHDRAWN: u8 = 2;

/// A job and who waits for its outcome.
pub struct Envelope {
    pub job: Job,
    pub reply: Option<Sender<Result<(), String>>>,
    pub claim: Arc<std::sync::atomic::AtomicU8>,
}

impl Envelope {
    /// Take the job unless it was withdrawn.
    fn take(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.claim.compare_exchange(QUEUED, TAKEN, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}

/// Why a job failed.
#[derive(Debug)]
pub(super) enum JobError {
    /// The ceremony stopped (the panel shows why).
    Ceremony(CeremonyError),
    /// The job makes no sense now.
    Refused(&'static str),
}

impl From<CeremonyError> for JobError {
    fn from(e: CeremonyError) -> Self {
        JobError::Ceremony(e)
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Ceremony(e) => e.fmt(f),
            JobError::Refused(why) => f.write_str(why),
        }
    }
}

/// A reader: `gmhsm_icc::PcscReader` on an appliance.
pub trait Reader: CardTransport + CardSlot {}
impl<T: CardTransport + CardSlot> Reader for T {}

/// What reaches the panel thread, each with the time it is handled at.
pub enum Event {
    /// A job from [`super::FrontPanel::submit`].
    Job(Envelope),
    /// A key pressed while no ceremony runs.
    Key(Key),
    /// Time passed: refresh the page, watch the login.
    Tick,
}

pub(super) struct Loop<R, D, K> {
    pub(super) st: Station<LazyLink, R, D, K>,
    pub(super) shared: Arc<Shared>,
    pub(super) activity: Activity,
    pub(super) authority: Option<Authority>,
    /// Status page shown (0 = state, 1 = card details).
    pub(super) page: usize,
    /// Until then the page a job ended on stays.
    pub(super) hold: Option<Instant>,
    /// A job or an action just ended: its page holds from the next tick.
    pub(super) ended: bool,
    pub(super) status: Option<Result<StatusInfo, String>>,
    pub(super) refreshed: Option<Instant>,
    /// The card's request counter at the previous reading, and when it was read.
    pub(super) counted: Option<(u64, Instant)>,
    /// Requests per second between the last two readings.
    pub(super) rate: Option<u64>,
    /// An operator or auditor logged in with their card.
    pub(super) role: Option<RoleSession>,
    /// A tool's session waits for approval with this code (shown; OK approves, CANCEL not).
    pub(super) asking: Option<u16>,
    /// An operator's action waits for OK on its confirmation page.
    pub(super) confirming: Option<Action>,
}

pub(super) fn run<R: Reader, D: TextDisplay, K: Keypad>(
    d: Devices<R, D, K>,
    shared: Arc<Shared>,
    activity: Activity,
    jobs: Receiver<Envelope>,
) {
    let link = LazyLink { socket: d.card_socket, link: None, filter: d.filter };
    let mut st = Station::new(link, d.reader, Panel::new(d.display, d.keypad, PEOPLE_MS));
    st.timeouts.card_ms = u64::from(PEOPLE_MS);
    let mut me = Loop {
        st,
        shared,
        activity,
        authority: None,
        page: 0,
        hold: None,
        ended: false,
        status: None,
        refreshed: None,
        counted: None,
        rate: None,
        role: None,
        asking: None,
        confirming: None,
    };
    let mut keypad_lost = false;
    loop {
        match jobs.try_recv() {
            Ok(env) => me.on(Event::Job(env), Instant::now()),
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {}
        }
        me.on(Event::Tick, Instant::now());
        match me.st.panel.keypad.read_key(200) {
            Ok(Some(k)) => {
                keypad_lost = false;
                me.on(Event::Key(k), Instant::now());
            }
            Ok(None) => keypad_lost = false,
            // A keypad that is gone (unplugged, a stream that ended) fails at once: wait the
            // poll's time rather than spin, and say so once.
            Err(_) => {
                if !keypad_lost {
                    log::error!("front panel: the keypad fails; keys are ignored until it answers again");
                    keypad_lost = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

impl<R: Reader, D: TextDisplay, K: Keypad> Loop<R, D, K> {
    /// Handle one event at `now`.
    pub(super) fn on(&mut self, event: Event, now: Instant) {
        match event {
            Event::Job(env) => self.take(env),
            Event::Key(k) => self.key(k),
            Event::Tick => {
                if std::mem::take(&mut self.ended) {
                    self.hold = Some(now + HOLD);
                }
                self.watch(now);
                if self.hold.is_some_and(|h| now >= h) {
                    self.hold = None;
                }
                if self.hold.is_none() {
                    self.idle_page(now);
                }
            }
        }
    }

    fn take(&mut self, env: Envelope) {
        if !env.take() {
            self.activity.job_taken();
            return;
        }
        let Envelope { job, reply, .. } = env;
        self.activity.set_running(true);
        self.activity.job_taken();
        let what = job.name();
        let r = self.job(job).map_err(|e| e.to_string());
        self.activity.set_running(false);
        let outcome = match &r {
            Ok(done) => format!("{what}: {done}"),
            Err(e) => format!("{what}: {e}"),
        };
        log::info!("front panel: {outcome}");
        Shared::set(&self.shared.last, outcome);
        // The job took its time: the page it ended on stays from the next tick.
        self.ended = true;
        self.refreshed = None;
        if let Some(tx) = reply {
            let _ = tx.send(r.map(drop));
        }
    }

    fn key(&mut self, k: Key) {
        if let Some(code) = self.asking {
            match k {
                Key::Ok => return self.answer_approval(code, true),
                Key::Cancel => return self.answer_approval(code, false),
                _ => {}
            }
        }
        if let Some(action) = self.confirming.take() {
            if k == Key::Ok {
                self.operate(action);
            }
            return;
        }
        // A key dismisses the page a job ended on; the menu's digits act at once.
        let held = self.hold.take().is_some();
        if held && !(self.role.is_some() && matches!(k, Key::Digit(_))) {
            return;
        }
        match k {
            Key::Menu | Key::Down => self.page = (self.page + 1) % 2,
            Key::Up => self.page = (self.page + 1) % 2,
            Key::Digit(d) if self.page == 0 => self.menu_key(d),
            _ => {}
        }
    }

    /// A digit on the operator's or auditor's page.
    fn menu_key(&mut self, digit: u8) {
        let Some(role) = self.role.as_ref().map(|r| r.role) else { return };
        let stopped = matches!(&self.status, Some(Ok(s)) if s.service_stopped);
        match menu::choose(role, digit, stopped) {
            Some(Choice::Confirm(a)) => self.confirming = Some(a),
            Some(Choice::SelfTest) => self.self_test(),
            None => {}
        }
    }
}

//! The panel thread: between ceremonies it shows the status pages (boot and self-test
//! progress, device state and link address, sessions and load, a stopped service, card
//! details, alarms) and watches the last card of the quorum, operator or auditor logged in;
//! on request it runs a ceremony of `gmhsm-provisioning` (init, quorum login, operator or
//! auditor login, register an application under the quorum's authority, logout) on its own
//! card-link session. An operator logged in stops and starts the service and runs the
//! self-tests from the menu ([`super::menu`]); whoever is logged in approves tools' sessions.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use gmhsm_lcd::screens::{DeviceState, Frame, Page, render};
use gmhsm_platform::{CardSlot, Key, Keypad, SlotState};
use gmhsm_proto::{AdminOp, AppQuota, Capabilities, CardRole, Request, Response, Status, StatusInfo};
use gmhsm_provisioning::ceremony::RoleSession;
use gmhsm_provisioning::{Authority, CardLink, CeremonyError, InitPlan, Panel, Station, UnixCardLink};

use super::faults::LinkFaults;
use super::menu::{self, Action, Choice};
use super::reader::PanelReader;
use super::{PanelKeypad, Shared};
use crate::ceremony::SimPanelLcd;

/// Steps of the boot shown on the panel: card process, self-tests, init, TLS keys, link.
pub const BOOT_STEPS: u8 = 5;
/// The panel's card-link session, on the panel's own link (the card maps each link's session
/// numbers to sessions of their own: nothing on another link can act in this one).
pub const SESSION: u64 = u64::MAX - 64;
/// How long a ceremony waits for a key or a card before giving up.
const PEOPLE_MS: u32 = 300_000;
/// How long the page a job ended on stays before the status page comes back.
const HOLD: Duration = Duration::from_secs(3);
const REFRESH: Duration = Duration::from_secs(1);

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
}

impl Job {
    fn name(&self) -> &'static str {
        match self {
            Job::Init(_) => "init",
            Job::Login => "login",
            Job::RoleLogin(CardRole::Operator) => "operator-login",
            Job::RoleLogin(_) => "auditor-login",
            Job::Register { .. } => "register-app",
            Job::Logout => "logout",
        }
    }
}

/// A job's claim: queued, taken by the panel thread, or withdrawn by whoever submitted it
/// (then it never runs).
pub(crate) const QUEUED: u8 = 0;
pub(crate) const TAKEN: u8 = 1;
pub(crate) const WITHDRAWN: u8 = 2;

pub(crate) struct Envelope {
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

pub(crate) struct Parts {
    pub socket: PathBuf,
    pub reader: PanelReader,
    pub lcd: SimPanelLcd,
    pub keypad: PanelKeypad,
    pub shared: Arc<Shared>,
    pub activity: super::Activity,
    pub faults: LinkFaults,
}

/// The card link, connected when first needed and again after it failed (a card restart).
struct LazyLink {
    socket: PathBuf,
    link: Option<UnixCardLink>,
    faults: LinkFaults,
}

impl CardLink for LazyLink {
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
        // An injected fault loses the request on a link that stays up.
        self.faults.lose(&request)?;
        let link = match self.link.as_mut() {
            Some(l) => l,
            None => self
                .link
                .insert(UnixCardLink::connect(&self.socket, SESSION).map_err(|e| CeremonyError::Link(e.to_string()))?),
        };
        let r = link.call_in(session, request);
        if matches!(r, Err(CeremonyError::Link(_))) {
            self.link = None;
        }
        r
    }

    fn session(&self) -> u64 {
        SESSION
    }
}

/// Why a job failed.
#[derive(Debug)]
enum JobError {
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

type PanelStation = Station<LazyLink, PanelReader, SimPanelLcd, PanelKeypad>;

mod operator;

struct Loop {
    st: PanelStation,
    shared: Arc<Shared>,
    authority: Option<Authority>,
    /// Status page shown (0 = state, 1 = card details).
    page: usize,
    /// Until then the page a job ended on stays.
    hold: Option<Instant>,
    status: Option<Result<StatusInfo, String>>,
    refreshed: Option<Instant>,
    /// The card's request counter at the previous reading, and when it was read.
    counted: Option<(u64, Instant)>,
    /// Requests per second between the last two readings.
    rate: Option<u64>,
    /// An operator or auditor logged in with their card.
    role: Option<RoleSession>,
    /// A tool's session waits for approval with this code (shown; OK approves, CANCEL not).
    asking: Option<u16>,
    /// An operator's action waits for OK on its confirmation page.
    confirming: Option<Action>,
}

pub(crate) fn run(p: Parts, jobs: Receiver<Envelope>) {
    let activity = p.activity;
    let link = LazyLink { socket: p.socket, link: None, faults: p.faults };
    let mut st = Station::new(link, p.reader, Panel::new(p.lcd, p.keypad, PEOPLE_MS));
    st.timeouts.card_ms = u64::from(PEOPLE_MS);
    let mut me = Loop {
        st,
        shared: p.shared,
        authority: None,
        page: 0,
        hold: None,
        status: None,
        refreshed: None,
        counted: None,
        rate: None,
        role: None,
        asking: None,
        confirming: None,
    };
    loop {
        match jobs.try_recv() {
            Ok(env) => {
                if !env.take() {
                    activity.job_taken();
                    continue;
                }
                let Envelope { job, reply, .. } = env;
                activity.set_running(true);
                activity.job_taken();
                let what = job.name();
                let r = me.job(job).map_err(|e| e.to_string());
                activity.set_running(false);
                let outcome = match &r {
                    Ok(done) => format!("{what}: {done}"),
                    Err(e) => format!("{what}: {e}"),
                };
                log::info!("front panel: {outcome}");
                Shared::set(&me.shared.last, outcome);
                me.hold = Some(Instant::now() + HOLD);
                me.refreshed = None;
                if let Some(tx) = reply {
                    let _ = tx.send(r.map(drop));
                }
            }
            Err(TryRecvError::Disconnected) => return,
            Err(TryRecvError::Empty) => {}
        }
        me.watch();
        if me.hold.is_some_and(|h| Instant::now() >= h) {
            me.hold = None;
        }
        if me.hold.is_none() {
            me.idle_page();
        }
        if let Ok(Some(k)) = me.st.panel.keypad.read_key(200) {
            me.key(k);
        }
    }
}

impl Loop {
    fn job(&mut self, job: Job) -> Result<&'static str, JobError> {
        let st = &mut self.st;
        match job {
            Job::Init(plan) => Ok(st.init(&plan).map(|()| "done")?),
            Job::Login | Job::RoleLogin(_) if self.authority.is_some() || self.role.is_some() => {
                st.panel.text(&["Refused", "Someone is logged in", "Log out first"])?;
                Err(JobError::Refused("someone is logged in at the panel: log out first"))
            }
            Job::RoleLogin(role) => match st.role_login(role) {
                Ok(r) => {
                    self.role = Some(r);
                    Ok("logged in")
                }
                Err(e) => {
                    self.end_for_sure();
                    Err(e.into())
                }
            },
            Job::Login => {
                match st.quorum_login(AdminOp::KeyManagement) {
                    Ok(a) => {
                        self.authority = Some(a);
                        Ok("quorum reached")
                    }
                    Err(e) => {
                        // The cards counted so far must not stay counted.
                        self.end_for_sure();
                        Err(e.into())
                    }
                }
            }
            Job::Register { cert_sha256, name, domains, caps, quota } => {
                let Some(a) = self.authority.as_mut() else {
                    st.panel.text(&["Refused", "No quorum logged in"])?;
                    return Err(JobError::Refused("no quorum logged in at the panel (log in first: --login)"));
                };
                st.panel.prompt(gmhsm_lcd::Prompt::Working)?;
                match a.register_application_with_quota(st, cert_sha256, &name, domains, caps, quota) {
                    Ok(()) => {
                        st.panel.text(&["Application", "registered", &name])?;
                        Ok("registered")
                    }
                    Err(e) => {
                        if e == CeremonyError::AuthorityEnded {
                            self.authority = None;
                        }
                        st.panel.text(&["Refused", "No quorum authority"])?;
                        Err(e.into())
                    }
                }
            }
            Job::Logout => {
                let (quorum, role) = (self.authority.take(), self.role.take());
                if quorum.is_none() && role.is_none() {
                    return Err(JobError::Refused("nobody is logged in at the panel"));
                }
                self.asking = None;
                self.confirming = None;
                let r = match quorum {
                    Some(a) => a.logout(st),
                    None => st.link.call(Request::AdminLogout { serial: None }).and_then(|_| st.await_removal(false)),
                };
                if !self.end_for_sure() {
                    return Err(JobError::Refused("the crypto card did not confirm the logout: link closed"));
                }
                r?;
                Ok("logged out")
            }
        }
    }

    /// The quorum's authority (or an operator's or auditor's login) ends when its last card
    /// leaves the reader or it lapses.
    fn watch(&mut self) {
        if self.authority.is_none() && self.role.is_none() {
            return;
        }
        let gone = self.st.reader.state().map_or(true, |s| s == SlotState::Empty);
        let due = self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH);
        if !gone && !due {
            return;
        }
        let checked = match (self.authority.as_mut(), self.role.as_mut()) {
            (Some(a), _) => a.check(&mut self.st).map(|()| a.status.awaiting),
            (None, Some(r)) => r.check(&mut self.st).map(|()| r.status.awaiting),
            (None, None) => return,
        };
        match checked {
            Ok(awaiting) => {
                // A tool that asks now is shown at once, over the page a job ended on.
                if awaiting.is_some() && awaiting != self.asking {
                    self.hold = None;
                }
                self.asking = awaiting;
                return;
            }
            Err(e) => log::info!("front panel: login ended ({e})"),
        }
        {
            self.authority = None;
            self.role = None;
            self.asking = None;
            self.confirming = None;
            // Fail closed: a logout the card did not confirm closes the panel's link, and the
            // card ends every authority held in the link's sessions.
            if !self.end_for_sure() {
                log::warn!("front panel: logout unconfirmed: card link closed");
            }
            let why = if gone { "card removed" } else { "lapsed" };
            Shared::set(&self.shared.last, format!("authority ended: {why}"));
            self.hold = Some(Instant::now() + HOLD);
            self.refreshed = None;
        }
    }

    /// Log every card out and confirm it with the card (twice at most); failing that, close
    /// the panel's card link (the card then closes its sessions: every login, authority and
    /// approval held there ends) and say so on the LCD. `true` when the card confirmed it.
    fn end_for_sure(&mut self) -> bool {
        for _ in 0..2 {
            let asked = self.st.link.call_in(SESSION, Request::AdminLogout { serial: None });
            let status = self.st.link.call_in(SESSION, Request::AdminStatus);
            if matches!((asked, status), (Ok(Ok(_)), Ok(Ok(Response::AdminState(s))))
                if !s.authority && s.admins == 0 && s.role.is_none())
            {
                return true;
            }
        }
        self.st.link.link = None;
        self.put(&menu::link_closed_page());
        false
    }

    /// The people's answer to "Approve tool NNNN?".
    fn answer_approval(&mut self, code: u16, approve: bool) {
        self.asking = None;
        self.refreshed = None;
        let r = self.st.link.call_in(SESSION, Request::AdminApprove { code, approve });
        let outcome = match r {
            Ok(Ok(_)) if approve => format!("tool {code:04} approved"),
            Ok(Ok(_)) => format!("tool {code:04} refused"),
            Ok(Err(s)) => format!("approval of {code:04}: card refused ({s})"),
            Err(e) => format!("approval of {code:04}: {e}"),
        };
        log::info!("front panel: {outcome}");
        Shared::set(&self.shared.last, outcome);
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

    /// Requests per second from the last two readings of the card's counter (the counter
    /// restarts at a card reboot: a reading below the previous one starts over).
    fn measure(&mut self) {
        let Some(Ok(s)) = &self.status else {
            self.counted = None;
            self.rate = None;
            return;
        };
        let now = Instant::now();
        self.rate = match self.counted {
            Some((before, at)) if s.requests >= before => {
                let ms = now.duration_since(at).as_millis().max(1);
                Some(u64::try_from(u128::from(s.requests - before) * 1000 / ms).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        self.counted = Some((s.requests, now));
    }

    fn put(&mut self, f: &Frame) {
        let _ = f.show(&mut self.st.panel.display);
    }

    fn idle_page(&mut self) {
        let phase = Shared::get(&self.shared.phase);
        let (cols, rows) = (20, 4);
        if let Phase::Boot { step, done, total } = phase {
            self.put(&render(&Page::Boot { step: &step, done, total }, cols, rows));
            return;
        }
        if self.refreshed.is_none_or(|t| t.elapsed() >= REFRESH) {
            self.refreshed = Some(Instant::now());
            self.status = Some(match self.st.link.call_in(SESSION, Request::GetStatus) {
                Ok(Ok(Response::Status(s))) => Ok(s),
                Ok(Ok(_)) => Err("card: odd answer".into()),
                Ok(Err(s)) => Err(format!("card: {s}")),
                Err(_) => Err("card link down".into()),
            });
            self.measure();
        }
        if let Some(code) = self.asking {
            let powers = match self.role.as_ref().map(|r| r.role) {
                Some(CardRole::Operator) => "operator",
                Some(_) => "auditor",
                None => "quorum",
            };
            self.put(&menu::approval_page(code, powers));
            return;
        }
        if let Some(a) = self.confirming {
            self.put(&menu::confirm_page(a));
            return;
        }
        let link = Shared::get(&self.shared.link);
        let f = match &self.status {
            None => return,
            Some(Err(why)) => render(&Page::Alarm { text: why }, cols, rows),
            Some(Ok(s)) => {
                let state = match (&s.error, s.initialized, &self.authority) {
                    (Some(e), _, _) if e.contains("tamper") => DeviceState::Tampered,
                    (Some(_), _, _) => DeviceState::Error,
                    (None, false, _) => DeviceState::Uninitialized,
                    (None, true, Some(_)) => DeviceState::AdminLoggedIn,
                    (None, true, None) => DeviceState::Ready,
                };
                match (self.page, &s.error, self.role.as_ref().map(|r| r.role)) {
                    (0, _, Some(role)) => menu::role_page(role, s),
                    (0, Some(e), None) => render(&Page::Alarm { text: e }, cols, rows),
                    (0, None, None) => {
                        let mut f = render(&Page::Status { state, link: &link }, cols, rows);
                        match &self.authority {
                            Some(a) => f.set(2, format_args!("Quorum {} of {}", a.status.admins, a.status.k)),
                            None if !s.initialized => f.set(2, format_args!("Awaiting init")),
                            None => f.set(2, format_args!("{} keys", s.keys)),
                        }
                        if s.service_stopped {
                            f.set(2, format_args!("SERVICE STOPPED"));
                        }
                        match self.rate {
                            Some(r) => f.set(3, format_args!("Sess {}  {r} req/s", s.sessions)),
                            None => f.set(3, format_args!("Sess {}", s.sessions)),
                        }
                        f
                    }
                    _ => {
                        let mut f = render(&Page::Status { state, link: &link }, cols, rows);
                        f.set(1, format_args!("{} keys, boot {}", s.keys, s.boots));
                        f.set(2, format_args!("audit #{}", s.audit.last_seq));
                        f.set(3, format_args!("{} requests", s.requests));
                        f
                    }
                }
            }
        };
        self.put(&f);
    }
}

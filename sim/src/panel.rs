//! The simulated appliance's front panel, hosted by `gmhsm-sim up`: the production panel
//! (`gmhsm_provisioning::front`: panel thread, pages, menus, ceremonies, control socket)
//! assembled with simulated devices — the real HD44780 driver writing into
//! [`crate::lcd_sim::SimLcd`], a [`SimKeypad`], and a reader slot holding virtual admin cards
//! from `STATE/cards/*.img` — plus the hands and eyes of whoever stands at it: insert and
//! remove cards, press keys, look at the LCD (`STATE/panel.sock`, `gmhsm-sim panel`).
//!
//! * [`slot`] — the in-process reader slot; [`reader`] — which reader (`--reader sim` or, with
//!   the `pcsc` feature, `pcsc`: vpcd on the real pcscd);
//! * [`cli`] — `gmhsm-sim panel`; [`faults`] — faults injected into the panel's card link
//!   (tests); [`demo`] — demo cards and PINs, and the people who run the demo's ceremonies.
//!
//! Invariants: every command from the socket is bounded and parsed before it touches
//! anything (`gmhsm_provisioning::front::control`); PINs only ever reach the panel as key
//! presses (the LCD shows stars).

pub mod cli;
pub mod demo;
pub mod faults;
pub mod reader;
pub mod slot;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use gmhsm_platform::Key;
use gmhsm_proto::Capabilities;
pub use gmhsm_provisioning::front::control::{self, Command, MAX_NAME, check_name};
use gmhsm_provisioning::front::{self as core, Devices, Watched};
pub use gmhsm_provisioning::front::{Activity, Job, PanelError, Phase, Shared, Submitted, Waits, menu};

use crate::admin_card::VirtualCard;
use crate::ceremony::LcdView;
use crate::keypad_sim::{KeyFeeder, SimKeypad};
pub use reader::ReaderKind;
pub use slot::{SimSlot, SlotError};

/// The running front panel: the production panel and the hands and eyes of whoever stands
/// at it.
#[derive(Clone)]
pub struct FrontPanel {
    core: core::FrontPanel,
    cards_dir: PathBuf,
    slot: reader::Hands,
    keys: KeyFeeder,
    view: LcdView,
    faults: faults::LinkFaults,
}

impl FrontPanel {
    /// Start the panel thread for the appliance in `state` whose card link is `card_socket`,
    /// its admin cards in the in-process slot.
    pub fn start(state: &Path, card_socket: &Path) -> anyhow::Result<FrontPanel> {
        FrontPanel::start_with(state, card_socket, ReaderKind::Sim)
    }

    /// [`FrontPanel::start`] with the reader `kind` (the real PC/SC stack for `Pcsc`).
    pub fn start_with(state: &Path, card_socket: &Path, kind: ReaderKind) -> anyhow::Result<FrontPanel> {
        let (display, view) = crate::ceremony::panel(gmhsm_lcd::Geometry::Lcd20x4);
        let pad = SimKeypad::new();
        let keys = pad.feeder();
        let activity = Activity::default();
        let (slot, reader) = reader::open(kind, &activity)?;
        let faults = faults::LinkFaults::default();
        let lose = faults.clone();
        let devices = Devices {
            card_socket: card_socket.to_path_buf(),
            reader,
            display,
            keypad: Watched { inner: pad, activity: activity.clone() },
            filter: Some(Box::new(move |r: &gmhsm_proto::Request| lose.lose(r))),
        };
        let core = core::FrontPanel::start(devices, activity)?;
        Ok(FrontPanel { core, cards_dir: state.join("cards"), slot, keys, view, faults })
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
        self.core.activity()
    }

    pub fn shared(&self) -> &Shared {
        self.core.shared()
    }

    /// The faults injected into the panel's card link (tests).
    pub fn faults(&self) -> &faults::LinkFaults {
        &self.faults
    }

    /// Show boot progress (step `done` of the boot).
    pub fn boot(&self, step: &str, done: u8) {
        self.core.boot(step, done)
    }

    /// Boot finished: status pages, the private link at `link`.
    pub fn running(&self, link: &str) {
        self.core.running(link)
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

    /// Hand the panel thread a job if it can take it now (see `core::FrontPanel::submit`).
    pub fn submit(&self, job: Job) -> Result<Submitted, PanelError> {
        self.core.submit(job)
    }
}

impl control::Console for FrontPanel {
    /// Do `c` and wait until the panel has reacted.
    fn execute(&self, c: Command) -> Result<(), PanelError> {
        let act = self.activity();
        let new_waits = match c {
            Command::Insert(_) | Command::Remove => 2,
            _ => 1,
        };
        let r = match c {
            Command::Show => return Ok(()),
            Command::Insert(name) => self.insert(&name),
            Command::Remove => self.remove().map(drop),
            Command::Keys(keys) => {
                self.press(&keys);
                Ok(())
            }
            Command::Login => self.submit(Job::Login).map(drop),
            Command::RoleLogin(role) => self.submit(Job::RoleLogin(role)).map(drop),
            Command::Logout => self.submit(Job::Logout).map(drop),
            Command::CheckCard => self.submit(Job::CheckCard).map(drop),
            Command::ChangePin => self.submit(Job::ChangePin).map(drop),
            Command::UnblockPin => self.submit(Job::UnblockPin).map(drop),
            Command::Zeroize => self.submit(Job::Zeroize).map(drop),
            Command::Revoke { cert_sha256 } => {
                return self.submit(Job::Revoke { cert_sha256 })?.outcome(control::SETTLE);
            }
            Command::Register { cert_sha256, name, domains, caps, quota } => {
                let job = self.submit(Job::Register { cert_sha256, name, domains, caps: Capabilities(caps), quota })?;
                return job.outcome(control::SETTLE);
            }
        };
        r?;
        act.settle(act.snapshot(), new_waits, control::SETTLE);
        Ok(())
    }

    fn screen(&self) -> Vec<String> {
        FrontPanel::screen(self)
    }
}

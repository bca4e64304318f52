//! The station a ceremony runs on (card link, reader, panel) and the card-handling steps all
//! ceremonies share: wait for a card, open it, unlock it with its PIN, wait for its removal.
//!
//! The ceremonies themselves: [`enrol`] (init and card-set replacement), [`login`] (quorum,
//! operator, auditor; the [`Authority`] value and the administration it allows), [`cards`]
//! (card check, PIN change).

pub mod cards;
pub mod enrol;
pub mod login;

use std::time::{Duration, Instant};

use gmhsm_icc::{AdminCard, AdminCardError, CardInfo, spec};
use gmhsm_lcd::screens::Prompt;
use gmhsm_platform::{CardError, CardSlot, CardTransport, Keypad, SlotEvent, SlotState, TextDisplay};
use gmhsm_proto::{Request, Response};

pub use cards::CardReport;
pub use enrol::InitPlan;
pub use login::{Authority, RoleSession};

use crate::{CardLink, CeremonyError, Panel};

/// How long a ceremony waits for people.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a card to be inserted or removed.
    pub card_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts { card_ms: 120_000 }
    }
}

/// Everything a ceremony drives. `R` is the reader: `gmhsm_icc::PcscReader` on the appliance.
pub struct Station<L, R, D, K> {
    pub link: L,
    pub reader: R,
    pub panel: Panel<D, K>,
    pub timeouts: Timeouts,
    /// Serial numbers given to new cards: `{prefix}{epoch}-{A|O|U}{index}` (≤ 16 bytes).
    pub serial_prefix: String,
}

impl<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad> Station<L, R, D, K> {
    pub fn new(link: L, reader: R, panel: Panel<D, K>) -> Self {
        Station { link, reader, panel, timeouts: Timeouts::default(), serial_prefix: "GM".into() }
    }

    /// Show `prompt` and wait for a card (a card already in the slot counts). CANCEL stops.
    pub fn await_card(
        &mut self,
        show: impl FnOnce(&mut Panel<D, K>) -> Result<(), CeremonyError>,
    ) -> Result<(), CeremonyError> {
        show(&mut self.panel)?;
        if self.reader.state()? == SlotState::Present {
            return Ok(());
        }
        self.wait_slot(SlotEvent::Inserted)
    }

    /// Show "Remove card" (unless `keep_page`) and wait until the slot is empty.
    pub fn await_removal(&mut self, keep_page: bool) -> Result<(), CeremonyError> {
        if !keep_page {
            self.panel.prompt(Prompt::RemoveCard)?;
        }
        if self.reader.state()? == SlotState::Empty {
            return Ok(());
        }
        self.wait_slot(SlotEvent::Removed)
    }

    fn wait_slot(&mut self, want: SlotEvent) -> Result<(), CeremonyError> {
        let deadline = Instant::now() + Duration::from_millis(self.timeouts.card_ms);
        loop {
            if self.reader.wait_event(200)? == Some(want) {
                return Ok(());
            }
            if self.panel.cancel_pressed() {
                return Err(CeremonyError::Cancelled);
            }
            if Instant::now() > deadline {
                return Err(CeremonyError::Timeout);
            }
        }
    }

    /// Show an error page and wait for the card to go.
    pub fn reject_card(&mut self, lines: &[&str]) -> Result<(), CeremonyError> {
        self.panel.text(lines)?;
        self.await_removal(true)
    }
}

/// SELECT the admin-card application on the inserted card and read its identity.
/// A reader may still hold a connection to the card that was there before: the first
/// exchange then fails with "removed", and the reader reconnects on the next one.
pub fn open<R: CardTransport>(reader: &mut R) -> Result<(AdminCard<&mut R>, CardInfo), CeremonyError> {
    let mut card = AdminCard::new(reader);
    match card.select() {
        Err(AdminCardError::Transport(CardError::Removed | CardError::NoCard | CardError::Transport)) => {
            card.select()?;
        }
        r => {
            r?;
        }
    }
    let info = card.info()?;
    Ok((card, info))
}

/// A fresh login nonce from the crypto card (single use, for this session).
pub fn nonce<L: CardLink>(link: &mut L) -> Result<[u8; 32], CeremonyError> {
    match link.call(Request::AdminChallenge)? {
        Response::AdminNonce(n) => Ok(n),
        _ => Err(CeremonyError::Unexpected { expected: "AdminNonce", got: "another response" }),
    }
}

/// Ask for the PIN until the card takes it: a wrong PIN shows "Wrong PIN, n tries left" and
/// waits for OK; the try that locks the card shows "Card locked" ([`CeremonyError::Locked`]).
pub fn unlock<T: CardTransport, D: TextDisplay, K: Keypad>(
    panel: &mut Panel<D, K>,
    card: &mut AdminCard<T>,
    title: Option<&str>,
) -> Result<gmhsm_icc::Pin, CeremonyError> {
    loop {
        let pin = panel.read_pin(title)?;
        panel.prompt(Prompt::Working)?;
        match card.verify_pin(&pin) {
            Ok(()) => return Ok(pin),
            Err(AdminCardError::WrongPin { retries_left: 0 }) | Err(AdminCardError::Blocked) => {
                panel.prompt(Prompt::CardLocked)?;
                return Err(CeremonyError::Locked);
            }
            Err(AdminCardError::WrongPin { retries_left }) => {
                panel.prompt(Prompt::WrongPin { retries_left })?;
                panel.confirm()?;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// The serial a new card gets.
pub(crate) fn new_serial(prefix: &str, epoch: u32, role: gmhsm_proto::CardRole, index: u8) -> Vec<u8> {
    let r = match role {
        gmhsm_proto::CardRole::Administrator => 'A',
        gmhsm_proto::CardRole::Operator => 'O',
        _ => 'U',
    };
    let mut s = format!("{prefix}{epoch}-{r}{index:02}").into_bytes();
    s.truncate(spec::MAX_SERIAL_LEN);
    s
}

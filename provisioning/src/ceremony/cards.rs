//! Ceremonies on one card: check (prove the card and its PIN work, change nothing) and PIN
//! change.

use gmhsm_icc::{AdminCardError, CardState, Role};
use gmhsm_lcd::screens::Prompt;
use gmhsm_platform::{CardSlot, CardTransport, Keypad, TextDisplay};
use gmhsm_proto::admin::{CardSignature, Serial};
use gmhsm_proto::{Request, Response};

use super::{Station, open, unlock};
use crate::{CardLink, CeremonyError};

/// What a card check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardReport {
    pub serial: Vec<u8>,
    pub role: Option<Role>,
    pub state: CardState,
    pub retries_left: u8,
    /// The crypto card accepted the card's signature (and share) in a trial login.
    pub login_ok: bool,
}

/// The session the card check's trial login uses (never the station's own, so a check
/// never adds to a quorum).
fn check_session(s: u64) -> u64 {
    s ^ (1 << 62)
}

impl<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad> Station<L, R, D, K> {
    /// Card check: identity, PIN, and a trial login on a separate session that is closed at
    /// once. Nothing on the card or in the crypto card's administration changes (the trial
    /// is audited).
    pub fn check_card(&mut self) -> Result<CardReport, CeremonyError> {
        self.await_card(|p| p.text(&["Insert card", "to check", "", "CANCEL to abort"]))?;
        let (mut card, info) = open(&mut self.reader)?;
        let mut report = CardReport {
            serial: info.serial.clone(),
            role: info.role,
            state: info.state,
            retries_left: info.pin_retries_left,
            login_ok: false,
        };
        if info.state == CardState::Locked {
            drop(card);
            self.panel.prompt(Prompt::CardLocked)?;
            self.await_removal(true)?;
            return Ok(report);
        }
        self.panel.text(&[
            &format!("Card {}", String::from_utf8_lossy(&info.serial)),
            &format!("{} tries left", info.pin_retries_left),
        ])?;
        if let Err(e) = unlock(&mut self.panel, &mut card, None) {
            drop(card);
            if e == CeremonyError::Locked {
                report.state = CardState::Locked;
                report.retries_left = 0;
                self.await_removal(true)?;
                return Ok(report);
            }
            return Err(e);
        }
        let session = check_session(self.link.session());
        let n = match self.link.call_in(session, Request::AdminChallenge)? {
            Ok(Response::AdminNonce(n)) => n,
            _ => return Err(CeremonyError::Unexpected { expected: "AdminNonce", got: "another response" }),
        };
        let sig = card.authenticate(&n)?;
        let share = match card.get_share() {
            Ok(s) => s.to_vec(),
            Err(AdminCardError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let _ = card.logout();
        drop(card);
        if let (Ok(serial), Ok(signature)) = (Serial::from_slice(&info.serial), CardSignature::from_slice(&sig)) {
            report.login_ok = self.link.call_in(session, Request::AdminLogin { serial, signature, share })?.is_ok();
        }
        let _ = self.link.call_in(session, Request::AdminLogout { serial: None });
        let _ = self.link.call_in(session, Request::CloseSession);
        report.retries_left = info.pin_retry_limit;
        self.panel.text(&[if report.login_ok { "Card OK" } else { "Card REFUSED" }, "", "", "Remove card"])?;
        self.await_removal(true)?;
        Ok(report)
    }

    /// PIN change: old PIN, new PIN twice. A wrong old PIN costs a try (card-side).
    pub fn change_pin(&mut self) -> Result<(), CeremonyError> {
        self.await_card(|p| p.text(&["Insert card", "to change PIN", "", "CANCEL to abort"]))?;
        let (mut card, info) = open(&mut self.reader)?;
        if info.state == CardState::Locked {
            drop(card);
            self.panel.prompt(Prompt::CardLocked)?;
            self.await_removal(true)?;
            return Err(CeremonyError::Locked);
        }
        let r = (|| {
            let old = unlock(&mut self.panel, &mut card, Some("Old PIN"))?;
            let new = self.panel.choose_pin()?;
            self.panel.prompt(Prompt::Working)?;
            card.change_pin(&old, &new)?;
            card.logout()?;
            Ok(())
        })();
        drop(card);
        match r {
            Ok(()) => {
                self.panel.text(&["PIN changed", "", "", "Remove card"])?;
                self.await_removal(true)
            }
            Err(CeremonyError::Locked) => {
                self.await_removal(true)?;
                Err(CeremonyError::Locked)
            }
            Err(e) => Err(e),
        }
    }
}

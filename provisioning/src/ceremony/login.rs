//! Logins and what they allow. A quorum login is a state machine advanced by value:
//!
//! ```text
//! NeedCard { got: 0 } ──card i accepted──▶ NeedCard { got: i } ── … ──▶ Quorum { last card }
//!         ▲  wrong card / locked card / refused: "Remove card", same position again
//! ```
//!
//! Each card: "Insert admin card i of k" → SELECT, identity (administrator, not locked) →
//! "Enter PIN" (wrong: "Wrong PIN, n tries left", OK to retry; locking try: "Card locked") →
//! `AdminChallenge`, INTERNAL AUTHENTICATE, GET DATA `D0`, `AdminLogin` → "Remove card"
//! (all but the last). The last card stays in the reader: it holds the session. Removing it
//! sends `AdminLogout` for it, which ends the authority ([`Authority::check`]).

use gmhsm_icc::{AdminCardError, CardState, Role};
use gmhsm_lcd::screens::Prompt;
use gmhsm_platform::{CardSlot, CardTransport, Keypad, SlotState, TextDisplay};
use gmhsm_proto::admin::{AdminStatus, CardSignature, Serial};
use gmhsm_proto::{AdminOp, Capabilities, CardRole, KeyAlg, Label, QuorumPolicy, Request, Response};

use super::enrol::Enrol;
use super::{Station, nonce, open, unlock};
use crate::{CardLink, CeremonyError};

/// Quorum authority held by this station's session; the last card of the quorum is in the
/// reader. Administration methods check the card is still there first.
#[derive(Debug)]
pub struct Authority {
    pub serial: Serial,
    pub status: AdminStatus,
}

/// An operator or auditor logged in with one card (left in the reader).
#[derive(Debug)]
pub struct RoleSession {
    pub serial: Serial,
    pub role: CardRole,
    /// The crypto card's view of this station's session at the last check (`awaiting`: a
    /// tool waiting for this login's approval).
    pub status: AdminStatus,
}

/// The quorum login's states.
pub enum Login {
    NeedCard { got: u8, need: u8 },
    Quorum(Authority),
}

fn admin_status<L: CardLink>(link: &mut L) -> Result<AdminStatus, CeremonyError> {
    match link.call(Request::AdminStatus)? {
        Response::AdminState(s) => Ok(s),
        _ => Err(CeremonyError::Unexpected { expected: "AdminState", got: "another response" }),
    }
}

fn role_code(r: CardRole) -> Role {
    match r {
        CardRole::Administrator => Role::Administrator,
        CardRole::Operator => Role::Operator,
        _ => Role::Auditor,
    }
}

/// What happened to one card offered for login.
enum Offer {
    Accepted(Serial, AdminStatus),
    /// Not usable; it has been removed; offer another.
    Rejected,
}

/// One card's login, up to (not including) its removal.
fn offer_card<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
    st: &mut Station<L, R, D, K>,
    role: CardRole,
    show: impl FnOnce(&mut crate::Panel<D, K>) -> Result<(), CeremonyError>,
) -> Result<Offer, CeremonyError> {
    st.await_card(show)?;
    let (mut card, info) = open(&mut st.reader)?;
    if info.role != Some(role_code(role)) {
        drop(card);
        st.reject_card(&["Wrong card", "Not the right role", "", "Remove card"])?;
        return Ok(Offer::Rejected);
    }
    if info.state == CardState::Locked {
        drop(card);
        st.panel.prompt(Prompt::CardLocked)?;
        st.await_removal(true)?;
        return Ok(Offer::Rejected);
    }
    match unlock(&mut st.panel, &mut card, None) {
        Ok(_) => {}
        Err(CeremonyError::Locked) => {
            drop(card);
            st.await_removal(true)?;
            return Ok(Offer::Rejected);
        }
        Err(e) => return Err(e),
    }
    let n = nonce(&mut st.link)?;
    let sig = card.authenticate(&n)?;
    let share = if role == CardRole::Administrator {
        match card.get_share() {
            Ok(s) => s.to_vec(),
            Err(AdminCardError::NotFound) => Vec::new(),
            Err(e) => return Err(e.into()),
        }
    } else {
        Vec::new()
    };
    let _ = card.logout();
    drop(card);
    let serial = Serial::from_slice(&info.serial).map_err(|_| CeremonyError::WrongCard("serial too long"))?;
    let signature = CardSignature::from_slice(&sig).map_err(|_| CeremonyError::Card(AdminCardError::Malformed))?;
    let s = st.link.session();
    match st.link.call_in(s, Request::AdminLogin { serial: serial.clone(), signature, share })? {
        Ok(Response::AdminState(status)) => Ok(Offer::Accepted(serial, status)),
        Ok(_) => Err(CeremonyError::Unexpected { expected: "AdminState", got: "another response" }),
        Err(status) => {
            log::warn!("login refused by the crypto card: {status}");
            st.reject_card(&["Card refused", "by the HSM", "", "Remove card"])?;
            Ok(Offer::Rejected)
        }
    }
}

impl Login {
    /// Advance by one card.
    pub fn step<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<Login, CeremonyError> {
        let Login::NeedCard { got, need } = self else {
            return Err(CeremonyError::Unexpected { expected: "NeedCard", got: "Quorum" });
        };
        let offer = offer_card(st, CardRole::Administrator, |p| p.prompt(Prompt::InsertCard { n: got + 1, of: need }))?;
        let Offer::Accepted(serial, status) = offer else { return Ok(Login::NeedCard { got, need }) };
        if status.admins <= got {
            // The same card twice counts once.
            st.reject_card(&["Card already", "counted", "", "Remove card"])?;
            return Ok(Login::NeedCard { got, need });
        }
        if status.admins >= need && status.authority {
            st.panel.show(gmhsm_lcd::Page::Status {
                state: gmhsm_lcd::DeviceState::AdminLoggedIn,
                link: "card stays in",
            })?;
            return Ok(Login::Quorum(Authority { serial, status }));
        }
        st.await_removal(false)?;
        Ok(Login::NeedCard { got: status.admins, need })
    }
}

impl<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad> Station<L, R, D, K> {
    /// The administration state of this station's session.
    pub fn admin_status(&mut self) -> Result<AdminStatus, CeremonyError> {
        admin_status(&mut self.link)
    }

    /// Quorum login for `op`: as many distinct administrator cards as the policy's quorum for
    /// it. On failure every card collected so far is logged out.
    pub fn quorum_login(&mut self, op: AdminOp) -> Result<Authority, CeremonyError> {
        let st = self.admin_status()?;
        let policy = st.policy.ok_or(CeremonyError::WrongCard("device not initialized by a ceremony"))?;
        let mut state = Login::NeedCard { got: st.admins, need: policy.thresholds.get(op) };
        loop {
            match state {
                Login::Quorum(a) => return Ok(a),
                s => match s.step(self) {
                    Ok(next) => state = next,
                    Err(e) => {
                        let _ = self.link.call(Request::AdminLogout { serial: None });
                        let _ = self.panel.prompt(Prompt::Cancelled);
                        return Err(e);
                    }
                },
            }
        }
    }

    /// Operator or auditor login: one card of that role, left in the reader. The card's
    /// answer must show the role on this session, or the login failed.
    pub fn role_login(&mut self, role: CardRole) -> Result<RoleSession, CeremonyError> {
        let title = if role == CardRole::Operator { "Insert operator" } else { "Insert auditor" };
        loop {
            match offer_card(self, role, |p| p.text(&[title, "card", "", "CANCEL to abort"]))? {
                Offer::Accepted(serial, status) if status.role == Some(role) => {
                    let who = if role == CardRole::Operator { "Operator" } else { "Auditor" };
                    self.panel.text(&[
                        &format!("{who} logged in"),
                        "Card stays in the",
                        "reader: remove it",
                        "to log out",
                    ])?;
                    return Ok(RoleSession { serial, role, status });
                }
                Offer::Accepted(..) => {
                    refuse_login(self)?;
                    continue;
                }
                Offer::Rejected => continue,
            }
        }
    }
}

/// A login the crypto card accepted without giving the role: log it out, show why.
fn refuse_login<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
    st: &mut Station<L, R, D, K>,
) -> Result<(), CeremonyError> {
    st.link.call(Request::AdminLogout { serial: None })?;
    st.reject_card(&["Card refused", "by the HSM", "", "Remove card"])
}

impl RoleSession {
    /// Still logged in? A removed card logs its holder out: the panel then shows what the
    /// crypto card says (`operator logged out`), or `LOGOUT FAILED` when it did not confirm
    /// ([`CeremonyError::LogoutUnconfirmed`]: the caller must close its card link).
    pub fn check<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        if st.reader.state()? == SlotState::Empty {
            let asked = st.link.call(Request::AdminLogout { serial: Some(self.serial.clone()) });
            let out = asked.is_ok() && st.admin_status().is_ok_and(|s| s.role.is_none());
            let who = if self.role == CardRole::Operator { "operator" } else { "auditor" };
            let text = if out { format!("{who} logged out") } else { "LOGOUT FAILED".into() };
            let _ = st.panel.show(gmhsm_lcd::Page::Status { state: gmhsm_lcd::DeviceState::Ready, link: &text });
            return Err(if out { CeremonyError::AuthorityEnded } else { CeremonyError::LogoutUnconfirmed });
        }
        self.status = st.admin_status()?;
        if self.status.role != Some(self.role) {
            return Err(CeremonyError::AuthorityEnded);
        }
        Ok(())
    }
}

impl Authority {
    /// Is the authority still there? The quorum's last card must still be in the reader (its
    /// removal is sent as `AdminLogout` for it, which ends the authority), and the crypto
    /// card's deadline must not have passed.
    pub fn check<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        if st.reader.state()? == SlotState::Empty {
            // Every card of the quorum leaves with its last one; the panel then shows what the
            // crypto card says, not what it asked for.
            let asked = st.link.call(Request::AdminLogout { serial: None });
            let out = asked.is_ok() && st.admin_status().is_ok_and(|s| !s.authority && s.admins == 0);
            let link = if out { "admin logged out" } else { "LOGOUT FAILED" };
            let _ = st.panel.show(gmhsm_lcd::Page::Status { state: gmhsm_lcd::DeviceState::Ready, link });
            return Err(if out { CeremonyError::AuthorityEnded } else { CeremonyError::LogoutUnconfirmed });
        }
        self.status = st.admin_status()?;
        if !self.status.authority {
            return Err(CeremonyError::AuthorityEnded);
        }
        Ok(())
    }

    fn admin<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        r: Request,
    ) -> Result<Response, CeremonyError> {
        self.check(st)?;
        st.link.call(r)
    }

    pub fn register_application<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        cert_sha256: [u8; 32],
        name: &str,
        domains: u32,
        caps: Capabilities,
    ) -> Result<(), CeremonyError> {
        self.register_application_with_quota(st, cert_sha256, name, domains, caps, None)
    }

    /// [`Self::register_application`] with a quota of keys and store bytes (`None`: the
    /// card's default).
    #[allow(clippy::too_many_arguments)]
    pub fn register_application_with_quota<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        cert_sha256: [u8; 32],
        name: &str,
        domains: u32,
        caps: Capabilities,
        quota: Option<gmhsm_proto::AppQuota>,
    ) -> Result<(), CeremonyError> {
        let name = heapless::String::try_from(name).map_err(|_| CeremonyError::WrongCard("name too long"))?;
        self.admin(st, Request::RegisterApplication { cert_sha256, name, domains, caps, quota }).map(drop)
    }

    pub fn revoke_application<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        cert_sha256: [u8; 32],
    ) -> Result<(), CeremonyError> {
        self.admin(st, Request::RevokeApplication { cert_sha256 }).map(drop)
    }

    /// Provision an SDF key index (`sdf:sign:N`, `sdf:enc:N`) or KEK (`sdf:kek:N`).
    pub fn provision_key<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        label: &str,
        alg: KeyAlg,
    ) -> Result<(), CeremonyError> {
        let label = Label::try_from(label).map_err(|_| CeremonyError::WrongCard("label too long"))?;
        self.admin(st, Request::GenerateKey { label, alg, caps: Capabilities::DEFAULT, domains: 0 }).map(drop)
    }

    pub fn set_policy<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        &mut self,
        st: &mut Station<L, R, D, K>,
        policy: QuorumPolicy,
    ) -> Result<(), CeremonyError> {
        self.admin(st, Request::SetPolicy { policy }).map(drop)
    }

    /// End the authority: log every card out and wait for the last card's removal.
    pub fn logout<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        st.link.call(Request::AdminLogout { serial: None })?;
        st.await_removal(false)
    }

    /// PIN unblock: the quorum's last card goes out, the locked card comes in, its holder
    /// chooses a new PIN, the crypto card authorizes RESET RETRY COUNTER for that card's
    /// challenge, the card checks and applies it. The authority ends afterwards.
    pub fn unblock<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        mut self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        self.check(st)?;
        st.await_removal(false)?;
        let r = (|| {
            st.await_card(|p| p.text(&["Insert locked", "card", "", "CANCEL to abort"]))?;
            let (mut card, info) = open(&mut st.reader)?;
            let serial = Serial::from_slice(&info.serial).map_err(|_| CeremonyError::WrongCard("serial"))?;
            let pin = st.panel.choose_pin()?;
            st.panel.prompt(Prompt::Working)?;
            let ch = card.get_challenge()?;
            let Response::DomainAuthorization(sig) = st.link.call(Request::AuthorizeUnblock {
                serial,
                card_challenge: ch.0,
                new_pin_block: gmhsm_proto::PinBlock::new(*pin.expose_block()),
            })?
            else {
                return Err(CeremonyError::Unexpected { expected: "DomainAuthorization", got: "another response" });
            };
            let sig: [u8; 64] =
                sig.as_slice().try_into().map_err(|_| CeremonyError::Card(AdminCardError::Malformed))?;
            card.reset_retry_counter(&pin, &sig)?;
            card.verify_pin(&pin)?;
            card.logout()?;
            drop(card);
            st.panel.text(&["PIN unblocked", "", "", "Remove card"])?;
            st.await_removal(true)
        })();
        let _ = st.link.call(Request::AdminLogout { serial: None });
        r
    }

    /// Card-set replacement: re-split DK onto `n` new blank cards (quorum `k`), next epoch.
    /// The old cards stop working at the commit. The authority ends with it.
    pub fn replace<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        mut self,
        st: &mut Station<L, R, D, K>,
        n: u8,
        k: u8,
    ) -> Result<(), CeremonyError> {
        self.check(st)?;
        st.await_removal(false)?;
        let epoch = self.status.epoch + 1;
        let retry = self.status.policy.map_or(3, |p| p.pin_retry_limit);
        let r = Enrol::replace(n, k, epoch, retry).run(st);
        let _ = st.link.call(Request::AdminLogout { serial: None });
        r
    }

    /// Zeroize: DMK and DK wiped, every stored key unreadable; the appliance returns to its
    /// factory state.
    pub fn zeroize<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        mut self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        self.check(st)?;
        st.panel.text(&["ZEROIZE?", "All keys lost", "for good", "OK=yes CANCEL=no"])?;
        st.panel.confirm()?;
        st.panel.prompt(Prompt::Working)?;
        st.link.call(Request::Zeroize)?;
        st.panel.text(&["Zeroized", "", "", "Remove card"])?;
        st.await_removal(true)
    }
}

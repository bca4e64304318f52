//! Enrolment ceremonies — init, and card-set replacement (started from an [`super::Authority`])
//! — as a state machine advanced by value:
//!
//! ```text
//! Start ──Begin──▶ Card(0) ──▶ Card(1) ──▶ … ──▶ Card(last) ──▶ Commit ──▶ Done
//!   any failure: CeremonyAbort on the crypto card, "Cancelled" on the panel
//! ```
//!
//! Each card: insert a blank card → PERSONALIZE (serial, role, the policy's retry limit) →
//! its holder chooses a PIN (twice) → first PIN, VERIFY, GENERATE KEY PAIR (the key is born on
//! the card) → `CeremonyEnroll` → bind the domain key → administrator cards: GET CHALLENGE,
//! `CeremonyShare`, PUT DATA `D0` → verification: `AdminChallenge`, INTERNAL AUTHENTICATE,
//! GET DATA `D0`, `CeremonyVerify` → "Card OK" → remove. The crypto card commits only when
//! every card was verified.

use gmhsm_icc::{AdminCardError, Role};
use gmhsm_lcd::screens::Prompt;
use gmhsm_platform::{CardSlot, CardTransport, Keypad, TextDisplay};
use gmhsm_proto::admin::{CardKey, CardSignature, Serial};
use gmhsm_proto::{CardRole, QuorumPolicy, Request, Response};

use super::{Station, new_serial, nonce, open};
use crate::{CardLink, CeremonyError};

/// What the init ceremony sets up.
#[derive(Debug, Clone, Copy)]
pub struct InitPlan {
    pub policy: QuorumPolicy,
    /// Operator and auditor cards to enrol after the n administrator cards.
    pub operators: u8,
    pub auditors: u8,
}

/// One card position of the ceremony.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    pub role: CardRole,
    pub index: u8,
    pub of: u8,
}

/// The enrolment ceremony's states.
pub enum Enrol {
    Start { begin: Box<Request>, slots: Vec<Slot>, epoch: u32, retry_limit: u8 },
    Card { slots: Vec<Slot>, next: usize, epoch: u32, retry_limit: u8 },
    Commit,
    Done,
}

fn slots(n: u8, operators: u8, auditors: u8) -> Vec<Slot> {
    let mut v: Vec<Slot> = (1..=n).map(|i| Slot { role: CardRole::Administrator, index: i, of: n }).collect();
    v.extend((1..=operators).map(|i| Slot { role: CardRole::Operator, index: i, of: operators }));
    v.extend((1..=auditors).map(|i| Slot { role: CardRole::Auditor, index: i, of: auditors }));
    v
}

impl Enrol {
    pub fn init(plan: &InitPlan) -> Enrol {
        Enrol::Start {
            begin: Box::new(Request::InitBegin { policy: plan.policy }),
            slots: slots(plan.policy.n, plan.operators, plan.auditors),
            epoch: 1,
            retry_limit: plan.policy.pin_retry_limit,
        }
    }

    pub fn replace(n: u8, k: u8, epoch: u32, retry_limit: u8) -> Enrol {
        Enrol::Start { begin: Box::new(Request::ReplaceBegin { n, k }), slots: slots(n, 0, 0), epoch, retry_limit }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Enrol::Start { .. } => "Start",
            Enrol::Card { .. } => "Card",
            Enrol::Commit => "Commit",
            Enrol::Done => "Done",
        }
    }

    /// Advance by one step.
    pub fn step<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<Enrol, CeremonyError> {
        match self {
            Enrol::Start { begin, slots, epoch, retry_limit } => {
                st.panel.prompt(Prompt::Working)?;
                st.link.call(*begin)?;
                Ok(if slots.is_empty() { Enrol::Commit } else { Enrol::Card { slots, next: 0, epoch, retry_limit } })
            }
            Enrol::Card { slots, next, epoch, retry_limit } => {
                enrol_card(st, slots[next], epoch, retry_limit)?;
                Ok(if next + 1 < slots.len() {
                    Enrol::Card { slots, next: next + 1, epoch, retry_limit }
                } else {
                    Enrol::Commit
                })
            }
            Enrol::Commit => {
                st.panel.prompt(Prompt::Working)?;
                st.link.call(Request::CeremonyCommit)?;
                st.panel.prompt(Prompt::Done)?;
                Ok(Enrol::Done)
            }
            Enrol::Done => Err(CeremonyError::Unexpected { expected: "a running ceremony", got: "Done" }),
        }
    }

    /// Run to the end; on failure abort the ceremony on the crypto card.
    pub fn run<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
        self,
        st: &mut Station<L, R, D, K>,
    ) -> Result<(), CeremonyError> {
        let mut state = self;
        // Whether the crypto card has a ceremony to abort if this one fails.
        let mut began = !matches!(state, Enrol::Start { .. });
        loop {
            if let Enrol::Done = state {
                return Ok(());
            }
            let starting = matches!(state, Enrol::Start { .. });
            match state.step(st) {
                Ok(next) => {
                    began |= starting;
                    state = next;
                }
                Err(e) => {
                    log::warn!("ceremony stopped: {e}");
                    if began {
                        let s = st.link.session();
                        let _ = st.link.call_in(s, Request::CeremonyAbort);
                    }
                    let _ = st.panel.prompt(Prompt::Cancelled);
                    return Err(e);
                }
            }
        }
    }
}

fn insert_page<D: TextDisplay, K: Keypad>(p: &mut crate::Panel<D, K>, slot: Slot) -> Result<(), CeremonyError> {
    match slot.role {
        CardRole::Administrator => p.prompt(Prompt::InsertCard { n: slot.index, of: slot.of }),
        CardRole::Operator => {
            p.text(&["Insert operator", &format!("card {} of {}", slot.index, slot.of), "", "CANCEL to abort"])
        }
        _ => p.text(&["Insert auditor", &format!("card {} of {}", slot.index, slot.of), "", "CANCEL to abort"]),
    }
}

fn role_of(r: CardRole) -> Role {
    match r {
        CardRole::Administrator => Role::Administrator,
        CardRole::Operator => Role::Operator,
        _ => Role::Auditor,
    }
}

fn enrol_card<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad>(
    st: &mut Station<L, R, D, K>,
    slot: Slot,
    epoch: u32,
    retry_limit: u8,
) -> Result<(), CeremonyError> {
    loop {
        st.await_card(|p| insert_page(p, slot))?;
        let (mut card, info) = open(&mut st.reader)?;
        if info.state != gmhsm_icc::CardState::Blank {
            drop(card);
            st.reject_card(&["Card not blank", "Use a new card", "", "Remove card"])?;
            continue;
        }
        let serial = new_serial(&st.serial_prefix, epoch, slot.role, slot.index);
        card.personalize(&serial, role_of(slot.role), retry_limit)?;
        let pin = st.panel.choose_pin()?;
        st.panel.prompt(Prompt::Working)?;
        card.set_initial_pin(&pin)?;
        card.verify_pin(&pin)?;
        drop(pin);
        let public = card.generate_key()?;
        let serial_v = Serial::from_slice(&serial).map_err(|_| CeremonyError::WrongCard("serial too long"))?;
        let public_key = CardKey::from_slice(&public).map_err(|_| CeremonyError::Card(AdminCardError::Malformed))?;
        let Response::CardEnrolled { domain_key, .. } =
            st.link.call(Request::CeremonyEnroll { serial: serial_v.clone(), role: slot.role, public_key })?
        else {
            return Err(CeremonyError::Unexpected { expected: "CardEnrolled", got: "another response" });
        };
        let dk: [u8; 65] =
            domain_key.as_slice().try_into().map_err(|_| CeremonyError::Refused(gmhsm_proto::Status::Internal))?;
        card.bind_domain(&dk, None)?;
        if slot.role == CardRole::Administrator {
            let ch = card.get_challenge()?;
            let Response::CardShare { blob, authorization } =
                st.link.call(Request::CeremonyShare { serial: serial_v.clone(), card_challenge: ch.0 })?
            else {
                return Err(CeremonyError::Unexpected { expected: "CardShare", got: "another response" });
            };
            let auth: [u8; 64] = authorization
                .as_slice()
                .try_into()
                .map_err(|_| CeremonyError::Refused(gmhsm_proto::Status::Internal))?;
            card.put_share(Some(&blob), &auth)?;
        }
        // Verify the card as a login would: fresh nonce, card signature, share read back.
        let n = nonce(&mut st.link)?;
        let sig = card.authenticate(&n)?;
        let share = if slot.role == CardRole::Administrator { card.get_share()?.to_vec() } else { Vec::new() };
        let signature = CardSignature::from_slice(&sig).map_err(|_| CeremonyError::Card(AdminCardError::Malformed))?;
        st.link.call(Request::CeremonyVerify { serial: serial_v, signature, share })?;
        card.logout()?;
        drop(card);
        st.panel.text(&["Card OK", core::str::from_utf8(&serial).unwrap_or("?"), "", "Remove card"])?;
        st.await_removal(true)?;
        return Ok(());
    }
}

impl<L: CardLink, R: CardTransport + CardSlot, D: TextDisplay, K: Keypad> Station<L, R, D, K> {
    /// The init ceremony: policy, n administrator cards, operator and auditor cards, commit.
    pub fn init(&mut self, plan: &InitPlan) -> Result<(), CeremonyError> {
        Enrol::init(plan).run(self)
    }
}

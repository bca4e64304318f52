//! The init and card-set replacement ceremonies as a state machine advanced by value:
//!
//! ```text
//!            Begin (init: factory; replace: quorum)         Commit (every card verified)
//!   Idle ─────────────────────────────────────▶ Enrolling ─────────────────────────────▶ Idle
//!    ▲                                         │   per card: Enrolled ─Share─▶ ShareIssued
//!    └──────────────── Abort ──────────────────┘             ─Verify─▶ Verified
//! ```
//!
//! [`Ceremony::step`] consumes the state and returns the next one with the step's result, so
//! a state cannot be reused after a transition; any input the state does not accept is
//! [`QuorumError::Unexpected`] and returns the state unchanged. Operator and auditor cards
//! skip the share (Enrolled ─Verify─▶ Verified).

use alloc::boxed::Box;
use alloc::vec::Vec;
use gmhsm_proto::admin::{CardKey, CardRole, CardSignature, CeremonyKind, EnrolledCard, QuorumPolicy, Serial};
use gmhsm_proto::admin_card::purpose;
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use super::record::AdminRecord;
use super::{QuorumError, share};
use crate::shamir::{self, Share};

/// What a ceremony needs of the card's secrets.
pub struct Secrets {
    dk: Zeroizing<[u8; share::DK_LEN]>,
    /// The new device master key (init only; stored at commit).
    dmk: Option<Zeroizing<[u8; 32]>>,
    share_key: Zeroizing<[u8; 16]>,
    domain: ::sm2::SecretKey,
}

impl Secrets {
    /// `dmk` is the new DMK at init, `None` at replacement, where `share_key` comes from the
    /// stored DMK.
    pub fn new(
        dk: Zeroizing<[u8; 32]>,
        dmk: Option<Zeroizing<[u8; 32]>>,
        share_key: Zeroizing<[u8; 16]>,
    ) -> Result<Self, QuorumError> {
        let domain = share::domain_key(&dk[..])?;
        Ok(Secrets { dk, dmk, share_key, domain })
    }
}

/// Where one card of the ceremony is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardStage {
    Enrolled,
    ShareIssued,
    Verified,
}

struct Pending {
    card: EnrolledCard,
    stage: CardStage,
}

/// A ceremony collecting and checking its cards.
pub struct Enrolling {
    pub kind: CeremonyKind,
    policy: QuorumPolicy,
    domain_id: [u8; 16],
    epoch: u32,
    dk_check: [u8; 32],
    secrets: Secrets,
    /// Shares x = 1..=n, handed out in enrolment order.
    shares: Vec<Share>,
    /// Operator and auditor cards kept from the old set (replacement).
    kept: Vec<EnrolledCard>,
    cards: Vec<Pending>,
}

/// The ceremony state of the card.
#[derive(Default)]
pub enum Ceremony {
    #[default]
    Idle,
    Enrolling {
        session: u64,
        flow: Box<Enrolling>,
    },
}

/// A finished ceremony: the record to store and, at init, the DMK to store.
pub struct Committed {
    pub kind: CeremonyKind,
    pub record: AdminRecord,
    pub dmk: Option<Zeroizing<[u8; 32]>>,
}

/// One step asked of the ceremony.
pub enum Input<'a> {
    BeginInit { policy: QuorumPolicy, domain_id: [u8; 16], secrets: Secrets },
    BeginReplace { policy: QuorumPolicy, old: &'a AdminRecord, secrets: Secrets },
    Enroll { serial: Serial, role: CardRole, public_key: CardKey },
    Share { serial: &'a [u8], card_challenge: [u8; 16] },
    Verify { serial: &'a [u8], nonce: [u8; 32], signature: &'a [u8], share: &'a [u8] },
    Commit,
    Abort,
}

impl Input<'_> {
    fn name(&self) -> &'static str {
        match self {
            Input::BeginInit { .. } => "InitBegin",
            Input::BeginReplace { .. } => "ReplaceBegin",
            Input::Enroll { .. } => "CeremonyEnroll",
            Input::Share { .. } => "CeremonyShare",
            Input::Verify { .. } => "CeremonyVerify",
            Input::Commit => "CeremonyCommit",
            Input::Abort => "CeremonyAbort",
        }
    }
}

/// What a step produced.
pub enum Output {
    Begun,
    Enrolled { x: u8, domain_key: CardKey },
    Share { blob: Vec<u8>, authorization: CardSignature },
    Verified,
    Committed(Committed),
    Aborted,
}

impl Ceremony {
    pub fn kind(&self) -> Option<CeremonyKind> {
        match self {
            Ceremony::Idle => None,
            Ceremony::Enrolling { flow, .. } => Some(flow.kind),
        }
    }

    /// Advance by one input from `session`. Returns the next state and the step's result;
    /// on error the state is the one given.
    pub fn step<R: TryCryptoRng + ?Sized>(
        self,
        session: u64,
        input: Input<'_>,
        rng: &mut R,
    ) -> (Ceremony, Result<Output, QuorumError>) {
        match (self, input) {
            (Ceremony::Idle, Input::BeginInit { policy, domain_id, secrets }) => {
                match Enrolling::begin(CeremonyKind::Init, policy, domain_id, 1, Vec::new(), secrets, rng) {
                    Ok(flow) => (Ceremony::Enrolling { session, flow: Box::new(flow) }, Ok(Output::Begun)),
                    Err(e) => (Ceremony::Idle, Err(e)),
                }
            }
            (Ceremony::Idle, Input::BeginReplace { policy, old, secrets }) => {
                let kept = old.cards.iter().filter(|c| c.role != CardRole::Administrator).cloned().collect();
                let epoch = old.epoch.wrapping_add(1);
                match Enrolling::begin(CeremonyKind::CardReplacement, policy, old.domain_id, epoch, kept, secrets, rng)
                {
                    Ok(flow) => (Ceremony::Enrolling { session, flow: Box::new(flow) }, Ok(Output::Begun)),
                    Err(e) => (Ceremony::Idle, Err(e)),
                }
            }
            (Ceremony::Idle, other) => (
                Ceremony::Idle,
                Err(QuorumError::Unexpected { expected: "InitBegin or ReplaceBegin", got: other.name() }),
            ),
            (Ceremony::Enrolling { session: owner, flow }, input) if owner != session => {
                let _ = input;
                (Ceremony::Enrolling { session: owner, flow }, Err(QuorumError::OtherSession))
            }
            (Ceremony::Enrolling { flow, .. }, Input::Abort) => {
                drop(flow);
                (Ceremony::Idle, Ok(Output::Aborted))
            }
            (Ceremony::Enrolling { flow, .. }, Input::Commit) => match flow.commit() {
                Ok(c) => (Ceremony::Idle, Ok(Output::Committed(c))),
                Err((flow, e)) => (Ceremony::Enrolling { session, flow }, Err(e)),
            },
            (Ceremony::Enrolling { mut flow, .. }, input) => {
                let r = match input {
                    Input::Enroll { serial, role, public_key } => flow.enroll(serial, role, public_key),
                    Input::Share { serial, card_challenge } => flow.share(serial, card_challenge, rng),
                    Input::Verify { serial, nonce, signature, share } => flow.verify(serial, &nonce, signature, share),
                    other => Err(QuorumError::Unexpected {
                        expected: "CeremonyEnroll, CeremonyShare, CeremonyVerify, CeremonyCommit or CeremonyAbort",
                        got: other.name(),
                    }),
                };
                (Ceremony::Enrolling { session, flow }, r)
            }
        }
    }
}

impl Enrolling {
    fn begin<R: TryCryptoRng + ?Sized>(
        kind: CeremonyKind,
        policy: QuorumPolicy,
        domain_id: [u8; 16],
        epoch: u32,
        kept: Vec<EnrolledCard>,
        secrets: Secrets,
        rng: &mut R,
    ) -> Result<Enrolling, QuorumError> {
        policy.check().map_err(QuorumError::BadPolicy)?;
        let shares = shamir::split(&secrets.dk[..], policy.k, policy.n, rng).map_err(|e| match e {
            shamir::ShamirError::Rng => QuorumError::Rng,
            _ => QuorumError::BadPolicy(gmhsm_proto::admin::PolicyError::Threshold),
        })?;
        let dk_check = share::dk_check(&secrets.dk[..], &domain_id);
        Ok(Enrolling { kind, policy, domain_id, epoch, dk_check, secrets, shares, kept, cards: Vec::new() })
    }

    fn find(&mut self, serial: &[u8]) -> Result<&mut Pending, QuorumError> {
        self.cards.iter_mut().find(|p| p.card.serial.as_slice() == serial).ok_or(QuorumError::UnknownCard)
    }

    fn admins(&self) -> usize {
        self.cards.iter().filter(|p| p.card.role == CardRole::Administrator).count()
    }

    fn domain_public(&self) -> CardKey {
        share::point(&self.secrets.domain.public_key())
    }

    fn enroll(&mut self, serial: Serial, role: CardRole, public_key: CardKey) -> Result<Output, QuorumError> {
        if serial.is_empty() || !share::valid_point(&public_key) {
            return Err(QuorumError::BadInput);
        }
        let clash = |c: &EnrolledCard| c.serial == serial || c.public_key == public_key;
        if self.cards.iter().any(|p| clash(&p.card)) || self.kept.iter().any(clash) {
            return Err(QuorumError::DuplicateCard);
        }
        let x = match role {
            CardRole::Administrator => {
                if self.admins() >= usize::from(self.policy.n) {
                    return Err(QuorumError::TooManyCards);
                }
                self.shares[self.admins()].x
            }
            _ => 0,
        };
        self.cards.push(Pending { card: EnrolledCard { serial, role, public_key, x }, stage: CardStage::Enrolled });
        Ok(Output::Enrolled { x, domain_key: self.domain_public() })
    }

    fn share<R: TryCryptoRng + ?Sized>(
        &mut self,
        serial: &[u8],
        card_challenge: [u8; 16],
        rng: &mut R,
    ) -> Result<Output, QuorumError> {
        let (key, id, epoch) = (self.secrets.share_key.clone(), self.domain_id, self.epoch);
        let domain = self.secrets.domain.clone();
        let p = self.cards.iter().position(|p| p.card.serial.as_slice() == serial).ok_or(QuorumError::UnknownCard)?;
        let card = &self.cards[p];
        if card.card.role != CardRole::Administrator {
            return Err(QuorumError::WrongRole);
        }
        if card.stage != CardStage::Enrolled {
            return Err(QuorumError::Unexpected { expected: "CeremonyVerify", got: "CeremonyShare" });
        }
        let s = self.shares.iter().find(|s| s.x == card.card.x).ok_or(QuorumError::Internal)?;
        let blob = share::seal(&key, &id, epoch, serial, s, rng)?;
        let authorization = share::authorize(rng, &domain, purpose::PUT_SHARE, serial, &card_challenge, &blob)?;
        self.cards[p].stage = CardStage::ShareIssued;
        Ok(Output::Share { blob, authorization })
    }

    fn verify(
        &mut self,
        serial: &[u8],
        nonce: &[u8; 32],
        signature: &[u8],
        blob: &[u8],
    ) -> Result<Output, QuorumError> {
        let (key, id, epoch) = (self.secrets.share_key.clone(), self.domain_id, self.epoch);
        let expected: Option<Share> = {
            let p = self.find(serial)?;
            let x = p.card.x;
            match (p.card.role, p.stage) {
                (CardRole::Administrator, CardStage::ShareIssued) => self.shares.iter().find(|s| s.x == x).cloned(),
                (CardRole::Administrator, CardStage::Enrolled) => {
                    return Err(QuorumError::Unexpected { expected: "CeremonyShare", got: "CeremonyVerify" });
                }
                (_, CardStage::Verified) => {
                    return Err(QuorumError::Unexpected { expected: "CeremonyCommit", got: "CeremonyVerify" });
                }
                _ => None,
            }
        };
        let p = self.find(serial)?;
        share::verify_card(&p.card.public_key, serial, nonce, signature)?;
        if let Some(want) = expected {
            let got = share::open(&key, &id, epoch, want.x, serial, blob)?;
            use subtle::ConstantTimeEq;
            if !bool::from(got.y.ct_eq(&want.y[..])) {
                return Err(QuorumError::BadShare);
            }
        }
        p.stage = CardStage::Verified;
        Ok(Output::Verified)
    }

    fn commit(self: Box<Self>) -> Result<Committed, (Box<Enrolling>, QuorumError)> {
        if self.admins() != usize::from(self.policy.n) || self.cards.iter().any(|p| p.stage != CardStage::Verified) {
            return Err((self, QuorumError::NotVerified));
        }
        let domain_public = self.domain_public();
        let this = *self;
        let Enrolling { kind, policy, domain_id, epoch, dk_check, secrets, kept, cards: pending, .. } = this;
        let mut cards = kept;
        cards.extend(pending.into_iter().map(|p| p.card));
        let record = AdminRecord { version: 1, policy, cards, domain_id, epoch, dk_check, domain_public };
        Ok(Committed { kind, record, dmk: secrets.dmk })
    }
}

//! The in-process rig of the quorum tests: a card on a settable clock, flash that can be made
//! to fail (its probe), simulated admin / operator / auditor cards (sm2 crate keys), and the ceremony and
//! login steps as the front panel would drive them.
#![allow(dead_code)]

use crate::common::*;
use gmhsm_firmware::Hsm;
use gmhsm_firmware::alg::sm2 as fsm2;
use gmhsm_firmware::quorum::share;
use gmhsm_platform::*;
use gmhsm_proto::admin::{AdminStatus, CardKey, CardRole, CardSignature, QuorumPolicy, Serial};
use gmhsm_proto::admin_card as spec;
use gmhsm_proto::{AuditEvent, Capabilities, Principal, Request, Response, Status};

pub const L: Principal = Principal::Local;
pub const S: u64 = 7;
pub const TIMEOUT: u64 = 60_000;

/// The rig's clock: moved by hand.
pub use gmhsm_platform::sim::ManualClock as QClock;

pub struct QBoard;
impl Platform for QBoard {
    type Noise = TestNoise;
    type Flash = RamFlash;
    type Tamper = TestTamper;
    type Clock = QClock;
}

/// A simulated admin / operator / auditor card.
pub struct Card {
    pub serial: Serial,
    pub role: CardRole,
    pub sk: sm2::SecretKey,
    pub share: Vec<u8>,
    pub domain: Option<CardKey>,
}

impl Card {
    pub fn new(name: &str, role: CardRole, rng: &mut XorShiftRng) -> Card {
        Card {
            serial: Serial::from_slice(name.as_bytes()).unwrap(),
            role,
            sk: fsm2::generate(rng).unwrap(),
            share: Vec::new(),
            domain: None,
        }
    }
    pub fn public(&self) -> CardKey {
        share::point(&self.sk.public_key())
    }
    pub fn sign(&self, nonce: &[u8], rng: &mut XorShiftRng) -> CardSignature {
        let sig =
            fsm2::sign(rng, &self.sk, spec::CARD_DISTID.as_bytes(), &spec::auth_message(&self.serial, nonce)).unwrap();
        CardSignature::from_slice(&sig.to_bytes()).unwrap()
    }
    /// What the card checks before PUT DATA D0 / RESET RETRY COUNTER.
    pub fn accepts(&self, purpose: &[u8], challenge: &[u8; 16], payload: &[u8], sig: &[u8]) -> bool {
        let Some(d) = &self.domain else { return false };
        let pk = fsm2::public_from_sec1(d).unwrap();
        let sig = fsm2::signature_from_bytes(sig).unwrap();
        let msg = spec::domain_message(purpose, &self.serial, challenge, payload);
        fsm2::verify(&pk, spec::DOMAIN_DISTID.as_bytes(), &msg, &sig).is_ok()
    }
}

pub struct Rig {
    pub hsm: Hsm<QBoard>,
    pub clock: QClock,
    pub tamper: TestTamper,
    pub rng: XorShiftRng,
    /// Its failure switch set: every flash write and erase fails.
    pub flash_fails: FlashProbe,
}

pub fn rig() -> Rig {
    rig_on(fresh_flash())
}

/// A rig whose card boots on `flash`.
pub fn rig_on(flash: RamFlash) -> Rig {
    let clock = QClock::default();
    clock.set(1_000);
    let tamper = tamper();
    let flash_fails = flash.probe();
    let hsm = Hsm::boot(Devices {
        noise: TestNoise { x: 99, stuck: false },
        flash,
        tamper: tamper.clone(),
        clock: clock.clone(),
    });
    Rig { hsm, clock, tamper, rng: XorShiftRng(0x1234_5678_9abc_def1), flash_fails }
}

impl Rig {
    pub fn x(&mut self, r: Request) -> Result<Response, Status> {
        self.hsm.execute(&L, S, r)
    }
    /// A request of the local principal on card session `session`.
    pub fn xs(&mut self, session: u64, r: Request) -> Result<Response, Status> {
        self.hsm.execute(&L, session, r)
    }
    /// The administration state of `session`.
    pub fn status_in(&mut self, session: u64) -> AdminStatus {
        match self.xs(session, Request::AdminStatus).unwrap() {
            Response::AdminState(s) => s,
            r => panic!("{r:?}"),
        }
    }
    /// Log `card` in on `session`.
    pub fn login_in(&mut self, session: u64, card: &Card) -> Result<AdminStatus, Status> {
        let n = match self.xs(session, Request::AdminChallenge)? {
            Response::AdminNonce(n) => n,
            r => panic!("{r:?}"),
        };
        let signature = card.sign(&n, &mut self.rng);
        match self
            .xs(session, Request::AdminLogin { serial: card.serial.clone(), signature, share: card.share.clone() })?
        {
            Response::AdminState(s) => Ok(s),
            r => panic!("{r:?}"),
        }
    }
    /// Power the card down and up again on the same flash and tamper RAM, with noise `stuck`.
    pub fn reboot(self, stuck: bool) -> Rig {
        let Rig { hsm, clock, tamper, rng, flash_fails } = self;
        let flash = hsm.into_flash().unwrap();
        let hsm = Hsm::boot(Devices {
            noise: TestNoise { x: 7, stuck },
            flash,
            tamper: tamper.clone(),
            clock: clock.clone(),
        });
        Rig { hsm, clock, tamper, rng, flash_fails }
    }
    pub fn nonce(&mut self) -> [u8; 32] {
        match self.x(Request::AdminChallenge).unwrap() {
            Response::AdminNonce(n) => n,
            r => panic!("{r:?}"),
        }
    }
    pub fn challenge(&mut self) -> [u8; 16] {
        let mut c = [0u8; 16];
        rand_core::TryRng::try_fill_bytes(&mut self.rng, &mut c).unwrap();
        c
    }
    pub fn enroll(&mut self, card: &mut Card) -> Result<(), Status> {
        let r = self.x(Request::CeremonyEnroll {
            serial: card.serial.clone(),
            role: card.role,
            public_key: card.public(),
        })?;
        let Response::CardEnrolled { domain_key, .. } = r else { panic!("{r:?}") };
        card.domain = Some(domain_key);
        Ok(())
    }
    pub fn give_share(&mut self, card: &mut Card) -> Result<(), Status> {
        let ch = self.challenge();
        let r = self.x(Request::CeremonyShare { serial: card.serial.clone(), card_challenge: ch })?;
        let Response::CardShare { blob, authorization } = r else { panic!("{r:?}") };
        assert!(
            card.accepts(spec::purpose::PUT_SHARE, &ch, &blob, &authorization),
            "the card must accept the share write"
        );
        assert!(blob.len() <= spec::MAX_SHARE_LEN);
        card.share = blob;
        Ok(())
    }
    pub fn verify(&mut self, card: &Card) -> Result<Response, Status> {
        let n = self.nonce();
        let signature = card.sign(&n, &mut self.rng);
        self.x(Request::CeremonyVerify { serial: card.serial.clone(), signature, share: card.share.clone() })
    }
    pub fn login(&mut self, card: &Card) -> Result<AdminStatus, Status> {
        let n = self.nonce();
        let signature = card.sign(&n, &mut self.rng);
        match self.x(Request::AdminLogin { serial: card.serial.clone(), signature, share: card.share.clone() })? {
            Response::AdminState(s) => Ok(s),
            r => panic!("{r:?}"),
        }
    }
    pub fn status(&mut self) -> AdminStatus {
        match self.x(Request::AdminStatus).unwrap() {
            Response::AdminState(s) => s,
            r => panic!("{r:?}"),
        }
    }
    pub fn register(&mut self, n: u8) -> Result<Response, Status> {
        self.x(Request::RegisterApplication {
            cert_sha256: [n; 32],
            name: "app".try_into().unwrap(),
            domains: 1,
            caps: Capabilities::ALL,
            quota: None,
        })
    }
    pub fn audit(&mut self) -> Vec<AuditEvent> {
        match self.x(Request::ReadAudit { from_seq: 0, max: 256 }).unwrap() {
            Response::Audit(v) => v.into_iter().map(|r| r.event).collect(),
            r => panic!("{r:?}"),
        }
    }

    /// A whole ceremony for the given cards (admins, then the others), committed.
    pub fn enrol_all(&mut self, cards: &mut [Card]) {
        for c in cards.iter_mut() {
            self.enroll(c).unwrap();
            if c.role == CardRole::Administrator {
                self.give_share(c).unwrap();
            }
            self.verify(c).unwrap();
        }
        self.x(Request::CeremonyCommit).unwrap();
    }

    pub fn init(&mut self, n: u8, k: u8) -> Vec<Card> {
        let mut policy = QuorumPolicy::new(n, k);
        policy.authority_timeout_ms = TIMEOUT;
        self.x(Request::InitBegin { policy }).unwrap();
        let mut cards: Vec<Card> =
            (1..=n).map(|i| Card::new(&format!("ADM-{i}"), CardRole::Administrator, &mut self.rng)).collect();
        cards.push(Card::new("OPR-1", CardRole::Operator, &mut self.rng));
        cards.push(Card::new("AUD-1", CardRole::Auditor, &mut self.rng));
        self.enrol_all(&mut cards);
        cards
    }
}

//! Administration wire types: the quorum policy, admin / operator / auditor cards, and what
//! the ceremonies (`docs/ceremonies.md`) exchange with the crypto card.
//!
//! The card never trusts the daemon with a secret here: card signatures and share blobs are
//! relayed opaque bytes, checked by the crypto card; domain authorizations are signed by the
//! crypto card for one admin-card challenge. Every enum is append-only.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A card serial number, 1 to 16 bytes (GET DATA `C1`).
pub type Serial = heapless::Vec<u8, 16>;
/// An uncompressed SM2 point `04 ‖ X ‖ Y` (65 bytes).
pub type CardKey = heapless::Vec<u8, 65>;
/// An SM2 signature `r ‖ s` (64 bytes).
pub type CardSignature = heapless::Vec<u8, 64>;

/// Length of the crypto card's login nonce.
pub const NONCE_LEN: usize = 32;
/// Length of an admin card's GET CHALLENGE answer.
pub const CARD_CHALLENGE_LEN: usize = 16;

/// The role a card is enrolled for (same codes as the admin card's `C2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CardRole {
    /// Holds a share of the domain key; counts toward the quorum.
    Administrator,
    /// Logs in alone; day-to-day operation at the rack.
    Operator,
    /// Logs in alone; reads and exports the audit log.
    Auditor,
}

/// Operations whose quorum the policy sets. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminOp {
    /// Register / revoke applications, provision SDF key indices, KEKs and passwords.
    KeyManagement,
    /// Change the policy's thresholds, retry limit or timeout.
    PolicyChange,
    /// Re-split the domain key onto a new admin card set.
    CardReplacement,
    /// Authorize a PIN unblock (RESET RETRY COUNTER) on one card.
    Unblock,
    /// Zeroize the device.
    Zeroize,
    Backup,
    Restore,
    FirmwareUpdate,
}

/// How many distinct administrator cards each operation needs (each between `k` and `n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thresholds {
    pub key_management: u8,
    pub policy_change: u8,
    pub card_replacement: u8,
    pub unblock: u8,
    pub zeroize: u8,
    pub backup: u8,
    pub restore: u8,
    pub firmware_update: u8,
}

impl Thresholds {
    /// Every operation needs exactly `k` cards.
    pub const fn all(k: u8) -> Thresholds {
        Thresholds {
            key_management: k,
            policy_change: k,
            card_replacement: k,
            unblock: k,
            zeroize: k,
            backup: k,
            restore: k,
            firmware_update: k,
        }
    }

    pub fn get(&self, op: AdminOp) -> u8 {
        match op {
            AdminOp::KeyManagement => self.key_management,
            AdminOp::PolicyChange => self.policy_change,
            AdminOp::CardReplacement => self.card_replacement,
            AdminOp::Unblock => self.unblock,
            AdminOp::Zeroize => self.zeroize,
            AdminOp::Backup => self.backup,
            AdminOp::Restore => self.restore,
            AdminOp::FirmwareUpdate => self.firmware_update,
        }
    }

    fn values(&self) -> [u8; 8] {
        [
            self.key_management,
            self.policy_change,
            self.card_replacement,
            self.unblock,
            self.zeroize,
            self.backup,
            self.restore,
            self.firmware_update,
        ]
    }
}

/// The administration policy, sealed at init (n and k change only by card-set replacement).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumPolicy {
    /// Administrator cards holding a share.
    pub n: u8,
    /// Shares needed to recombine the domain key (the login quorum).
    pub k: u8,
    /// Allow k = n (a single lost card then loses the domain). Off by default.
    pub allow_k_equals_n: bool,
    pub thresholds: Thresholds,
    /// PIN retry limit written to each card at enrolment (1..=15).
    pub pin_retry_limit: u8,
    /// How long a quorum's authority lasts after it was reached (ms).
    pub authority_timeout_ms: u64,
}

/// Why a policy is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyError {
    /// k < 2, k > n, n > 32, or k = n without `allow_k_equals_n`.
    Threshold,
    /// An operation's quorum is below k or above n.
    OperationThreshold,
    RetryLimit,
    Timeout,
}

/// Most administrator cards in a domain.
pub const MAX_ADMIN_CARDS: u8 = 32;

impl QuorumPolicy {
    /// k of n with every operation at k, 3 PIN tries, 15 minutes of authority.
    pub const fn new(n: u8, k: u8) -> QuorumPolicy {
        QuorumPolicy {
            n,
            k,
            allow_k_equals_n: false,
            thresholds: Thresholds::all(k),
            pin_retry_limit: 3,
            authority_timeout_ms: 15 * 60 * 1000,
        }
    }

    /// The rules of `docs/ceremonies.md` §Policy: 2 ≤ k ≤ n − 1 (k = n only when explicitly
    /// allowed), n ≤ 32, every operation's quorum in k..=n, retry limit 1..=15, timeout 1 s
    /// to 24 h.
    pub fn check(&self) -> Result<(), PolicyError> {
        let k_max = if self.allow_k_equals_n { self.n } else { self.n.saturating_sub(1) };
        if self.k < 2 || self.k > k_max || self.n > MAX_ADMIN_CARDS {
            return Err(PolicyError::Threshold);
        }
        if self.thresholds.values().iter().any(|&t| t < self.k || t > self.n) {
            return Err(PolicyError::OperationThreshold);
        }
        if !(1..=15).contains(&self.pin_retry_limit) {
            return Err(PolicyError::RetryLimit);
        }
        if !(1_000..=86_400_000).contains(&self.authority_timeout_ms) {
            return Err(PolicyError::Timeout);
        }
        Ok(())
    }
}

/// One enrolled card as the card registry holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledCard {
    pub serial: Serial,
    pub role: CardRole,
    pub public_key: CardKey,
    /// The share's x-coordinate (administrator cards), 0 otherwise.
    pub x: u8,
}

/// What a session may do, as reported after each login step and by `AdminStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminStatus {
    /// `true` once a ceremony initialized the device (administration then needs a quorum).
    pub ceremony_initialized: bool,
    pub n: u8,
    pub k: u8,
    /// Card-set epoch (bumped by every replacement).
    pub epoch: u32,
    /// Distinct administrator cards logged in on this session.
    pub admins: u8,
    /// `true` while this session holds quorum authority.
    pub authority: bool,
    /// Milliseconds of authority left (0 without authority).
    pub expires_in_ms: u64,
    /// An operator / auditor card logged in on this session.
    pub role: Option<CardRole>,
    /// A ceremony in progress on this card (any session).
    pub ceremony: Option<CeremonyKind>,
    pub policy: Option<QuorumPolicy>,
    /// This session asked for approval (`AdminRequestApproval`) and waits: the code the
    /// panel will show.
    pub approval: Option<u16>,
    /// Another session waits for this one's approval (this session holds a quorum's
    /// authority or a role of its own): its code, for the panel to show.
    pub awaiting: Option<u16>,
}

/// Which ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CeremonyKind {
    Init,
    CardReplacement,
}

/// A step of a ceremony, as the audit log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CeremonyStep {
    Begun,
    CardEnrolled,
    ShareIssued,
    CardVerified,
    Committed,
    Aborted,
    /// A step asked for out of order or with bad input; nothing changed.
    Refused,
}

/// Why quorum authority ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuthorityEnd {
    /// A card logged out (or was removed) and fewer than k remain.
    BelowQuorum,
    Expired,
    SessionClosed,
    Zeroized,
    /// The card set was replaced: the old cards' logins are void.
    CardSetReplaced,
}

/// An administrative action, as the audit log names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminAction {
    PolicyChanged,
    ApplicationRevoked {
        cert_sha256: [u8; 32],
    },
    ApplicationRegistered {
        cert_sha256: [u8; 32],
    },
    UnblockAuthorized {
        serial: Serial,
    },
    Zeroized,
    /// The service was stopped: applications are refused until it starts again.
    ServiceStopped,
    ServiceStarted,
    /// A tool's session was approved (or refused) by the session holding the authority.
    ToolSession {
        code: u16,
        approved: bool,
    },
    /// An auditor's certificate was registered (it may read the audit trail remotely).
    AuditorRegistered {
        cert_sha256: [u8; 32],
    },
}

/// A share blob as relayed to and from an admin card: opaque, bounded by the card's slot.
pub type ShareBlob = Vec<u8>;

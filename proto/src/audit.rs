//! Audit records: what the card's hash-chained audit log holds and what auditors read.

use serde::{Deserialize, Serialize};

use crate::admin::{AdminAction, AuthorityEnd, CardRole, CeremonyKind, CeremonyStep, Serial};
use crate::request::{KeyAlg, Label, Principal};
use crate::status::Status;

/// What happened. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditEvent {
    /// The card booted; `error` is set when it came up in its error state.
    Boot {
        error: Option<heapless::String<96>>,
    },
    /// The device left the factory state.
    Initialized,
    KeyGenerated {
        label: Label,
        alg: KeyAlg,
    },
    KeyDeleted {
        label: Label,
    },
    /// A request was refused for a reason that matters to an auditor (access, state).
    Denied {
        request: u8,
        status: Status,
    },
    /// The card entered its error state while running.
    ErrorState {
        reason: heapless::String<96>,
    },
    /// A tamper event zeroized the device master key.
    Tamper,
    /// A ceremony step (see `docs/ceremonies.md`); `serial` names the card it concerns.
    Ceremony {
        ceremony: CeremonyKind,
        step: CeremonyStep,
        serial: Option<Serial>,
    },
    /// A card login attempt (accepted or not).
    CardLogin {
        serial: Serial,
        role: Option<CardRole>,
        accepted: bool,
    },
    /// A session reached quorum authority with `cards` distinct administrator cards.
    AuthorityGranted {
        cards: u8,
    },
    AuthorityEnded {
        reason: AuthorityEnd,
    },
    /// A card's contribution was withdrawn (logout or removal).
    CardLogout {
        serial: Serial,
    },
    /// An administrative action carried out under quorum authority.
    Admin {
        action: AdminAction,
    },
    /// The store had no room for the next record: the records `from..=to` (the oldest) were
    /// dropped to make it. The first record kept still chains to the last one dropped.
    Dropped {
        from: u64,
        to: u64,
    },
}

/// One entry of the audit log. Its hash is SM3 over its postcard encoding; the next entry's
/// `prev_hash` is that hash, so altering, removing or reordering entries breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Sequence number, from 1, never reused.
    pub seq: u64,
    /// The card's boot counter when the event happened.
    pub boot: u32,
    /// Card clock (ms since that boot).
    pub time_ms: u64,
    /// Who caused it (`None` for the card itself).
    pub principal: Option<Principal>,
    pub event: AuditEvent,
    /// Hash of the previous record (all zeros for seq 1).
    pub prev_hash: [u8; 32],
}

/// The state of the audit log as reported in the card status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditState {
    /// Oldest and newest sequence numbers held (0, 0 when empty).
    pub first_seq: u64,
    pub last_seq: u64,
    /// `Some(seq)`: the record `seq` does not chain to its predecessor (found at boot).
    pub chain_break: Option<u64>,
}

/// Domain separation of a checkpoint signature.
pub const CHECKPOINT_CONTEXT: &[u8] = b"gmhsm/v1/audit-checkpoint";

/// A checkpoint: the card's signature, with the device key `sdf:sign:0` (SM2 with SM3 and
/// the default ID), over [`checkpoint_message`]`(seq, record_hash)`. `record_hash` is SM3
/// over the encoding of record `seq`; since each record carries its predecessor's hash, the
/// signature vouches for the whole chain up to `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditCheckpoint {
    pub seq: u64,
    pub record_hash: [u8; 32],
    /// DER `SEQUENCE { r, s }`.
    #[serde(with = "serde_bytes")]
    pub signature: alloc::vec::Vec<u8>,
}

/// What a checkpoint signs: `CHECKPOINT_CONTEXT ‖ seq (u64 big endian) ‖ record_hash`.
pub fn checkpoint_message(seq: u64, record_hash: &[u8; 32]) -> [u8; 65] {
    let mut m = [0u8; 65];
    m[..25].copy_from_slice(CHECKPOINT_CONTEXT);
    m[25..33].copy_from_slice(&seq.to_be_bytes());
    m[33..].copy_from_slice(record_hash);
    m
}

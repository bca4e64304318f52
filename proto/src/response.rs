//! Responses: what the card (through the daemon) answers.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditRecord, AuditState};
use crate::request::{KeyAlg, Label};

/// The card's state as reported by [`crate::Request::GetStatus`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    /// `true` once the device left the factory state.
    pub initialized: bool,
    /// `None` when operational; otherwise why the card refuses cryptographic requests.
    pub error: Option<heapless::String<96>>,
    /// Number of stored keys.
    pub keys: u32,
    /// Boot counter of the card.
    pub boots: u32,
    /// The audit log's extent and integrity.
    pub audit: AuditState,
}

/// One successful answer. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    Pong,
    Status(StatusInfo),
    /// The key was generated; its public key as DER SubjectPublicKeyInfo.
    KeyGenerated { alg: KeyAlg, spki_der: Vec<u8> },
    PublicKey { alg: KeyAlg, spki_der: Vec<u8> },
    Signature(Vec<u8>),
    /// The signature verified.
    Verified,
    Deleted,
    Keys(Vec<(Label, KeyAlg)>),
    /// Audit records in sequence order.
    Audit(Vec<AuditRecord>),
}

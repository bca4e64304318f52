//! Responses: what the card (through the daemon) answers.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::admin::{AdminStatus, CardKey, CardSignature, ShareBlob};
use crate::audit::{AuditRecord, AuditState};
use crate::mech::Capabilities;
use crate::request::{KeyAlg, Label, Principal};

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
    /// `true` while the service is stopped (`Request::ServiceStop`): applications are refused.
    pub service_stopped: bool,
    /// Card sessions open now (connections the card has seen and not yet closed).
    pub sessions: u32,
    /// Requests the card has handled since it booted, whatever their outcome.
    pub requests: u64,
}

/// One successful answer. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Response {
    Pong,
    Status(StatusInfo),
    /// The key was generated; its public key as DER SubjectPublicKeyInfo.
    KeyGenerated {
        alg: KeyAlg,
        spki_der: Vec<u8>,
    },
    PublicKey {
        alg: KeyAlg,
        spki_der: Vec<u8>,
    },
    Signature(Vec<u8>),
    /// The signature verified.
    Verified,
    Deleted,
    Keys(Vec<(Label, KeyAlg)>),
    /// Audit records in sequence order.
    Audit(Vec<AuditRecord>),
    Random(Vec<u8>),
    Digest(Vec<u8>),
    /// Output bytes (ciphertext, plaintext, MAC, multi-part output).
    Data(Vec<u8>),
    /// A multi-part operation's handle.
    Handle(u32),
    /// A session key: its handle in this session and, when generated, its wrapped form.
    SessionKey {
        handle: u32,
        wrapped: Vec<u8>,
    },
    /// Initiator's ephemeral public key (65-byte SEC1) and the pending exchange's handle.
    Agreement {
        handle: u32,
        ephemeral: Vec<u8>,
    },
    /// Responder's answer: the derived session key's handle, its ephemeral public key and
    /// S_B for the initiator to check.
    AgreementReply {
        key_handle: u32,
        ephemeral: Vec<u8>,
        confirm: [u8; 32],
    },
    KeyInfo(KeyInfo),
    Done,
    /// A login nonce (see `Request::AdminChallenge`).
    AdminNonce([u8; 32]),
    AdminState(AdminStatus),
    /// The card's share x-coordinate (0 for operator / auditor cards) and the domain public
    /// key to bind on it.
    CardEnrolled {
        x: u8,
        domain_key: CardKey,
    },
    /// A share blob for an admin card and the domain authorization to store it.
    CardShare {
        blob: ShareBlob,
        authorization: CardSignature,
    },
    DomainAuthorization(CardSignature),
}

/// Attributes of a stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    pub alg: KeyAlg,
    pub caps: Capabilities,
    pub domains: u32,
    pub owner: Principal,
    /// DER SubjectPublicKeyInfo (empty for symmetric keys).
    pub spki_der: Vec<u8>,
    /// `true` when the key has a private-key access password.
    pub password: bool,
}

//! gmhsm client SDK: talk to a gmhsm appliance from an application server.
//!
//! A [`Profile`] (TOML) says where the appliance is and which credentials to use;
//! [`Client::connect`] opens a TLS 1.3 connection authenticated by the client certificate;
//! [`Client::call`] sends one request and waits for its answer, [`Client::pipeline`] sends many
//! and matches the answers by request id. Every failure is a [`ClientError`]; a refusal by the
//! appliance is [`ClientError::Status`] with the wire [`Status`].
//!
//! Invariants: arguments over a wire bound (labels over 64 bytes, messages over
//! [`gmhsm_proto::frame::MAX_MESSAGE_LEN`]) are refused before anything is sent; an answer
//! that does not fit the protocol is [`ClientError::Protocol`], never a panic.
#![forbid(unsafe_code)]

mod checkpoint;
mod client;
mod error;
mod keypair;
mod ops;
pub mod pem;
mod profile;

pub use client::{Client, sm2_with_id, to_label};
pub use error::ClientError;
pub use keypair::{KeyPair, WRAP_NONCE_LEN};
pub use ops::SessionKey;

/// SM3 over an audit record's encoding: the next record's `prev_hash` (auditors check the
/// chain with it).
pub fn audit_hash(rec: &AuditRecord) -> [u8; 32] {
    use sm3::Digest;
    let bytes = postcard::to_allocvec(rec).unwrap_or_default();
    sm3::Sm3::digest(&bytes).into()
}
pub use checkpoint::{AUDIT_KEY, CheckpointError, verify_checkpoint};
pub use profile::Profile;

pub use gmhsm_proto::request::KeyPairProtection;
pub use gmhsm_proto::response::{PrivateKeyOut, SecretBytes};
pub use gmhsm_proto::{
    AuditRecord, ByteBuf, Capabilities, CipherMech, HashAlg, KeyAlg, KeyInfo, KeyRef, Label, MAX_DECRYPT_BATCH,
    MAX_SIGN_BATCH, MacMech, Mechanism, MultiOp, Principal, Request, Response, Sm2Layout, Sm4Mode, Status, StatusInfo,
    WrapWith,
};

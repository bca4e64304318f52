//! gmhsm wire types: the contract between application servers, the daemon and the crypto card.
//!
//! Two links carry these types, both as length-prefixed postcard frames ([`frame`]):
//!
//! * the **private link** (client ⇄ daemon, inside TLS 1.3): [`ClientFrame`] up,
//!   [`ServerFrame`] down;
//! * the **card link** (daemon ⇄ crypto card): [`CardFrame`] up, [`ServerFrame`] down.
//!   The daemon adds the authenticated [`Principal`] to every request it relays.
//!
//! Invariants: enums are append-only (postcard encodes a variant by its index, so reordering
//! breaks every deployed client); every string and byte field that comes from outside has a
//! bound, either in its type (`heapless`) or by the frame limit [`frame::MAX_FRAME_LEN`].
//! The specification in prose is `docs/protocol.md`.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod admin;
pub mod admin_card;
pub mod audit;
pub mod cost;
pub mod frame;
pub mod kind;
#[cfg(feature = "std")]
pub mod link;
pub mod mech;
pub mod request;
pub mod response;
pub mod secret;
pub mod sessions;
pub mod status;

pub use admin::{AdminOp, AdminStatus, CardRole, QuorumPolicy, Thresholds};
pub use audit::{AuditCheckpoint, AuditEvent, AuditRecord, AuditState};
pub use frame::{CardFrame, ClientFrame, Deframer, FrameError, ServerFrame};
pub use mech::{Capabilities, CipherMech, HashAlg, MacMech, Sm2Layout, Sm4Mode};
pub use request::{
    AppQuota, KeyAlg, KeyRef, Label, MAX_DECRYPT_BATCH, MAX_SIGN_BATCH, MAX_SIGN_BATCH_RSA, Mechanism, MultiOp,
    Principal, Request, WrapWith,
};
pub use response::{KeyInfo, Response, SecretBytes, StatusInfo};
pub use secret::{Password, PinBlock};
pub use serde_bytes::ByteBuf;
pub use status::Status;

/// The protocol version this build speaks. A frame with another version is answered with
/// [`Status::UnsupportedVersion`] carrying this number.
pub const PROTOCOL_VERSION: u16 = 1;

/// The GB/T 35276 default SM2 distinguishing ID.
pub const SM2_DEFAULT_ID: &[u8] = b"1234567812345678";

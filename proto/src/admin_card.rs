//! The admin-card messages the crypto card signs or checks: purposes of domain-authorized
//! commands, the login message, SM2 distinguishing IDs and lengths. Shared by the firmware
//! (which must not depend on the card-reader crate) and `gmhsm-icc` (which re-exports them
//! in `gmhsm_icc::spec`). `docs/admin-card.md` is the normative text; this file must agree
//! with it byte for byte.

use alloc::vec::Vec;
use sm3::{Digest, Sm3};

/// GET CHALLENGE answer length.
pub const CARD_CHALLENGE_LEN: usize = 16;
/// Largest share blob the slot stores.
pub const MAX_SHARE_LEN: usize = 1024;
/// SEC1 uncompressed SM2 point length.
pub const SM2_POINT_LEN: usize = 65;
/// Raw SM2 signature `r ‖ s`.
pub const SM2_SIGNATURE_LEN: usize = 64;

/// SM2 distinguishing ID of the card's own signatures (INTERNAL AUTHENTICATE).
pub const CARD_DISTID: &str = "gmhsm-admin-card";
/// SM2 distinguishing ID of domain authorizations (signed by the crypto card).
pub const DOMAIN_DISTID: &str = "gmhsm-domain";

/// Purposes of domain-authorized commands (the first field of [`domain_message`]).
pub mod purpose {
    pub const RESET_RETRY_COUNTER: &[u8] = b"gmhsm/admin-card/rrc/v1";
    pub const PUT_SHARE: &[u8] = b"gmhsm/admin-card/share/v1";
    pub const BIND_DOMAIN: &[u8] = b"gmhsm/admin-card/bind/v1";
}

/// Prefix of the message the card signs in INTERNAL AUTHENTICATE.
pub const AUTH_PREFIX: &[u8] = b"gmhsm/admin-card/auth/v1";

/// The message a card signs for INTERNAL AUTHENTICATE:
/// `AUTH_PREFIX ‖ 00 ‖ len(serial) ‖ serial ‖ challenge`.
pub fn auth_message(serial: &[u8], challenge: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_PREFIX.len() + 2 + serial.len() + challenge.len());
    m.extend_from_slice(AUTH_PREFIX);
    m.push(0);
    m.push(serial.len() as u8);
    m.extend_from_slice(serial);
    m.extend_from_slice(challenge);
    m
}

/// The message the crypto card signs (SM2, [`DOMAIN_DISTID`]) to authorize a command on one
/// card: `purpose ‖ 00 ‖ len(serial) ‖ serial ‖ card challenge (16) ‖ SM3(payload)`.
pub fn domain_message(purpose: &[u8], serial: &[u8], card_challenge: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(purpose.len() + 2 + serial.len() + card_challenge.len() + 32);
    m.extend_from_slice(purpose);
    m.push(0);
    m.push(serial.len() as u8);
    m.extend_from_slice(serial);
    m.extend_from_slice(card_challenge);
    m.extend_from_slice(&Sm3::digest(payload));
    m
}

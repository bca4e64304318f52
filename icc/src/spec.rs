//! The admin-card application's constants and message layouts, shared by the client, the
//! simulated card and the crypto card firmware. `docs/admin-card.md` is the normative text;
//! this file must agree with it byte for byte.

use zeroize::Zeroizing;

/// Application identifier: `F0` (proprietary, unregistered RID) ‖ "GMHSM" ‖ app 01 ‖ v01.
pub const AID: [u8; 8] = [0xF0, b'G', b'M', b'H', b'S', b'M', 0x01, 0x01];
/// Application version reported in the FCI and in `C7`: major.minor.
pub const APP_VERSION: u16 = 0x0100;

/// Interindustry class byte (no secure messaging, no chaining, channel 0).
pub const CLA_ISO: u8 = 0x00;
/// Proprietary class byte.
pub const CLA_PROPRIETARY: u8 = 0x80;

pub mod ins {
    pub const SELECT: u8 = 0xA4;
    pub const GET_DATA: u8 = 0xCA;
    pub const PUT_DATA: u8 = 0xDA;
    pub const VERIFY: u8 = 0x20;
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    pub const GENERATE_KEY_PAIR: u8 = 0x47;
    pub const GET_CHALLENGE: u8 = 0x84;
    pub const INTERNAL_AUTHENTICATE: u8 = 0x88;
    /// Proprietary (CLA 80).
    pub const PERSONALIZE: u8 = 0x10;
}

/// Data object tags (GET DATA P1P2 / PUT DATA P1P2 / TLV tags).
pub mod tag {
    /// Card identity template, all of C1..C8 (GET DATA only).
    pub const CARD_INFO: u16 = 0x6E;
    pub const SERIAL: u16 = 0xC1;
    pub const ROLE: u16 = 0xC2;
    pub const STATE: u16 = 0xC3;
    /// Two bytes: retries left, retry limit.
    pub const PIN_RETRIES: u16 = 0xC4;
    /// 65 bytes, uncompressed SM2 point `04 ‖ X ‖ Y`.
    pub const CARD_PUBLIC_KEY: u16 = 0xC5;
    /// Two bytes: length of the stored share blob, 0 = empty.
    pub const SHARE_STATUS: u16 = 0xC6;
    pub const APP_VERSION: u16 = 0xC7;
    /// 65 bytes, the bound domain (crypto card) signing key, uncompressed SM2 point.
    pub const DOMAIN_KEY: u16 = 0xC8;
    /// The share slot (GET DATA / PUT DATA P1P2 = 00 D0).
    pub const SHARE_SLOT: u16 = 0xD0;
    /// Share blob inside PUT DATA D0.
    pub const SHARE_BLOB: u16 = 0xD1;
    /// New PIN block inside RESET RETRY COUNTER.
    pub const NEW_PIN: u16 = 0x82;
    /// 64-byte domain authorization signature `r ‖ s`.
    pub const DOMAIN_SIGNATURE: u16 = 0x9E;
    /// Public key template (GENERATE KEY PAIR response).
    pub const PUBLIC_KEY_TEMPLATE: u16 = 0x7F49;
    /// EC point inside `7F49`.
    pub const EC_POINT: u16 = 0x86;
    /// FCI template and AID inside it (SELECT response).
    pub const FCI: u16 = 0x6F;
    pub const FCI_AID: u16 = 0x84;
    pub const FCI_VERSION: u16 = 0x87;
}

/// PIN reference (P2 of VERIFY / CHANGE REFERENCE DATA / RESET RETRY COUNTER): specific PIN 1.
pub const PIN_REF: u8 = 0x81;
/// PIN block: 6..=8 ASCII digits, padded with `FF` to 8 bytes (as PIV).
pub const PIN_BLOCK_LEN: usize = 8;
pub const PIN_MIN_DIGITS: usize = 6;
/// Default and largest PIN retry limit.
pub const DEFAULT_RETRY_LIMIT: u8 = 3;
pub const MAX_RETRY_LIMIT: u8 = 15;
/// Serial number length bounds (bytes).
pub const MAX_SERIAL_LEN: usize = 16;
/// INTERNAL AUTHENTICATE challenge length bounds.
pub const MIN_CHALLENGE_LEN: usize = 16;
pub const MAX_CHALLENGE_LEN: usize = 64;
// The messages the crypto card signs or checks live in `gmhsm_proto::admin_card` (the
// firmware uses them without this crate); the names stay reachable here.
pub use gmhsm_proto::admin_card::{
    AUTH_PREFIX, CARD_CHALLENGE_LEN, CARD_DISTID, DOMAIN_DISTID, MAX_SHARE_LEN, SM2_POINT_LEN, SM2_SIGNATURE_LEN,
    auth_message, domain_message, purpose,
};

/// Role of a card's holder, fixed at personalization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Role {
    Administrator = 0x01,
    Operator = 0x02,
    Auditor = 0x03,
}

impl Role {
    pub fn from_byte(b: u8) -> Option<Role> {
        match b {
            0x01 => Some(Role::Administrator),
            0x02 => Some(Role::Operator),
            0x03 => Some(Role::Auditor),
            _ => None,
        }
    }
}

/// The card's life-cycle state as reported in `C3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CardState {
    /// Fresh from the vendor: only SELECT, GET DATA and PERSONALIZE work.
    Blank = 0x00,
    /// Role and serial set; waiting for the first PIN.
    Personalized = 0x01,
    /// PIN set; waiting for GENERATE KEY PAIR.
    PinSet = 0x02,
    /// Key pair generated: login, share slot and PIN management work.
    Operational = 0x03,
    /// PIN retry counter at zero: only SELECT, GET DATA, GET CHALLENGE and RESET RETRY
    /// COUNTER work.
    Locked = 0x04,
}

impl CardState {
    pub fn from_byte(b: u8) -> Option<CardState> {
        match b {
            0x00 => Some(CardState::Blank),
            0x01 => Some(CardState::Personalized),
            0x02 => Some(CardState::PinSet),
            0x03 => Some(CardState::Operational),
            0x04 => Some(CardState::Locked),
            _ => None,
        }
    }
}

/// Why a PIN was not accepted as a PIN at all (before any card is asked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinFormatError;

impl core::fmt::Display for PinFormatError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a PIN is 6 to 8 decimal digits")
    }
}

/// A PIN as its 8-byte block (digits, `FF` padding); zeroized on drop, never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<[u8; PIN_BLOCK_LEN]>);

impl core::fmt::Debug for Pin {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Pin(..)")
    }
}

impl Pin {
    /// A PIN from its digits (ASCII `0`..`9`, 6 to 8 of them).
    pub fn new(digits: &[u8]) -> Result<Pin, PinFormatError> {
        if !(PIN_MIN_DIGITS..=PIN_BLOCK_LEN).contains(&digits.len()) || !digits.iter().all(u8::is_ascii_digit) {
            return Err(PinFormatError);
        }
        let mut block = Zeroizing::new([0xFF; PIN_BLOCK_LEN]);
        block[..digits.len()].copy_from_slice(digits);
        Ok(Pin(block))
    }

    /// A PIN from a block as received in an APDU; checks the format.
    pub fn from_block(block: &[u8]) -> Result<Pin, PinFormatError> {
        let block: &[u8; PIN_BLOCK_LEN] = block.try_into().map_err(|_| PinFormatError)?;
        let digits = block.iter().take_while(|&&b| b != 0xFF).count();
        if digits < PIN_MIN_DIGITS
            || !block[..digits].iter().all(u8::is_ascii_digit)
            || !block[digits..].iter().all(|&b| b == 0xFF)
        {
            return Err(PinFormatError);
        }
        Ok(Pin(Zeroizing::new(*block)))
    }

    /// The 8-byte block as sent to the card.
    pub fn expose_block(&self) -> &[u8; PIN_BLOCK_LEN] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_blocks() {
        assert_eq!(Pin::new(b"123456").unwrap().expose_block(), b"123456\xFF\xFF");
        assert!(Pin::new(b"12345").is_err());
        assert!(Pin::new(b"123456789").is_err());
        assert!(Pin::new(b"12345a").is_err());
        assert!(Pin::from_block(b"12345678").is_ok());
        assert!(Pin::from_block(b"123456\xFF1").is_err());
        assert!(Pin::from_block(b"12345\xFF\xFF\xFF").is_err());
        assert!(Pin::from_block(b"1234567").is_err());
        assert_eq!(alloc::format!("{:?}", Pin::new(b"123456").unwrap()), "Pin(..)");
    }
}

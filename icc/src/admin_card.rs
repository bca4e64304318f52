//! The admin-card application client: one method per command of `docs/admin-card.md`,
//! typed results and errors, over any [`CardTransport`].
//!
//! The client holds no secret beyond the call that uses it: command and response buffers are
//! zeroizing (they carry PINs and shares), and it never retries a PIN by itself.

use alloc::vec::Vec;
use core::fmt;

use gmhsm_platform::{CardError, CardTransport};
use zeroize::Zeroizing;

use crate::apdu::{Command, MAX_NE, Response, StatusWord};
use crate::spec::{self, CardState, Pin, Role, ins, tag};
use crate::tlv;

/// Why an admin-card command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminCardError {
    /// The reader or transport failed (see [`CardError`]); the card's volatile state may be
    /// lost. Reconnect, SELECT, and start the exchange over.
    Transport(CardError),
    /// The card's answer did not parse (or the command could not be encoded); state unknown.
    /// Treat the card as faulty.
    Malformed,
    /// `63Cx`: wrong PIN; `retries_left` more wrong PINs lock the card.
    WrongPin { retries_left: u8 },
    /// `6983`: the PIN is blocked; the card needs RESET RETRY COUNTER (unblock ceremony).
    Blocked,
    /// `6982`: the command needs a verified PIN; VERIFY first.
    PinRequired,
    /// `6985`: the command is not allowed in the card's current state (see `state` in
    /// [`CardInfo`]), or a one-time command was repeated, or no fresh GET CHALLENGE.
    WrongState,
    /// `6300`: the domain authorization signature did not verify; nothing changed.
    AuthorizationRejected,
    /// `6A82` / `6A88`: the application or the data object is absent (not our card, no key,
    /// empty share slot).
    NotFound,
    /// `6A80` / `6700` / `6A84`: the card refused the data (format, length, too large).
    BadData,
    /// `6581`: the card failed to write its memory; the operation may be half done.
    MemoryFailure,
    /// Any other status word.
    Status(StatusWord),
}

impl fmt::Display for AdminCardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminCardError::Transport(e) => write!(f, "card transport: {e}"),
            AdminCardError::Malformed => f.write_str("malformed card answer"),
            AdminCardError::WrongPin { retries_left } => {
                write!(f, "wrong PIN, {retries_left} tries left")
            }
            AdminCardError::Blocked => f.write_str("PIN blocked"),
            AdminCardError::PinRequired => f.write_str("PIN not verified"),
            AdminCardError::WrongState => f.write_str("command not allowed in the card's state"),
            AdminCardError::AuthorizationRejected => f.write_str("domain authorization rejected"),
            AdminCardError::NotFound => f.write_str("application or data not found"),
            AdminCardError::BadData => f.write_str("card refused the data"),
            AdminCardError::MemoryFailure => f.write_str("card memory failure"),
            AdminCardError::Status(sw) => write!(f, "card status {sw}"),
        }
    }
}

impl core::error::Error for AdminCardError {}

impl From<CardError> for AdminCardError {
    fn from(e: CardError) -> Self {
        AdminCardError::Transport(e)
    }
}

impl AdminCardError {
    /// The error a non-9000 status word stands for.
    pub fn from_status(sw: StatusWord) -> Self {
        if let Some(retries_left) = sw.retries_left() {
            return AdminCardError::WrongPin { retries_left };
        }
        match sw {
            StatusWord::AUTH_BLOCKED => AdminCardError::Blocked,
            StatusWord::SECURITY_STATUS => AdminCardError::PinRequired,
            StatusWord::CONDITIONS_OF_USE => AdminCardError::WrongState,
            StatusWord::VERIFICATION_FAILED => AdminCardError::AuthorizationRejected,
            StatusWord::FILE_NOT_FOUND | StatusWord::DATA_NOT_FOUND => AdminCardError::NotFound,
            StatusWord::WRONG_DATA | StatusWord::WRONG_LENGTH | StatusWord::NOT_ENOUGH_MEMORY => {
                AdminCardError::BadData
            }
            StatusWord::MEMORY_FAILURE => AdminCardError::MemoryFailure,
            sw => AdminCardError::Status(sw),
        }
    }
}

/// An SM2 public key as an uncompressed SEC1 point `04 ‖ X ‖ Y`.
pub type Sm2Point = [u8; spec::SM2_POINT_LEN];
/// An SM2 signature `r ‖ s`.
pub type Sm2Signature = [u8; spec::SM2_SIGNATURE_LEN];

/// The card's identity and status (GET DATA `6E`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardInfo {
    /// Empty until personalized.
    pub serial: Vec<u8>,
    /// `None` until personalized.
    pub role: Option<Role>,
    pub state: CardState,
    pub pin_retries_left: u8,
    pub pin_retry_limit: u8,
    /// `None` until GENERATE KEY PAIR.
    pub public_key: Option<Sm2Point>,
    /// Length of the stored share blob; 0 = empty slot.
    pub share_len: u16,
    pub app_version: u16,
    /// The bound domain (crypto card) key, `None` until bound.
    pub domain_key: Option<Sm2Point>,
}

impl CardInfo {
    /// Parse the value of a `6E` template (or its content).
    pub fn parse(b: &[u8]) -> Result<CardInfo, AdminCardError> {
        let b = match tlv::find(b, tag::CARD_INFO) {
            Ok(Some(inner)) => inner,
            _ => b,
        };
        let get = |t| tlv::find(b, t).map_err(|_| AdminCardError::Malformed);
        let one = |v: Option<&[u8]>| match v {
            Some([x]) => Ok(*x),
            _ => Err(AdminCardError::Malformed),
        };
        let point = |v: Option<&[u8]>| match v {
            None | Some([]) => Ok(None),
            Some(p) => p.try_into().map(Some).map_err(|_| AdminCardError::Malformed),
        };
        let two = |v: Option<&[u8]>| match v {
            Some([a, b]) => Ok([*a, *b]),
            _ => Err(AdminCardError::Malformed),
        };
        let serial = get(tag::SERIAL)?.unwrap_or(&[]).to_vec();
        let role = match get(tag::ROLE)? {
            None | Some([0]) | Some([]) => None,
            Some([r]) => Some(Role::from_byte(*r).ok_or(AdminCardError::Malformed)?),
            Some(_) => return Err(AdminCardError::Malformed),
        };
        let state = CardState::from_byte(one(get(tag::STATE)?)?).ok_or(AdminCardError::Malformed)?;
        let [pin_retries_left, pin_retry_limit] = two(get(tag::PIN_RETRIES)?)?;
        Ok(CardInfo {
            serial,
            role,
            state,
            pin_retries_left,
            pin_retry_limit,
            public_key: point(get(tag::CARD_PUBLIC_KEY)?)?,
            share_len: u16::from_be_bytes(two(get(tag::SHARE_STATUS)?)?),
            app_version: u16::from_be_bytes(two(get(tag::APP_VERSION)?)?),
            domain_key: point(get(tag::DOMAIN_KEY)?)?,
        })
    }
}

/// Result of a PIN status query (VERIFY without data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinStatus {
    /// The PIN is verified in this card session.
    Verified,
    /// Not verified; this many tries are left.
    NotVerified {
        retries_left: u8,
    },
    Blocked,
}

/// A one-use card nonce from GET CHALLENGE, for a domain-authorized command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardChallenge(pub [u8; spec::CARD_CHALLENGE_LEN]);

/// The admin-card application on one card, through transport `T`.
pub struct AdminCard<T: CardTransport> {
    transport: T,
    capdu: Zeroizing<Vec<u8>>,
    rapdu: Zeroizing<Vec<u8>>,
}

impl<T: CardTransport> AdminCard<T> {
    /// Wrap a transport; call [`AdminCard::select`] before anything else.
    pub fn new(transport: T) -> Self {
        AdminCard { transport, capdu: Zeroizing::new(Vec::new()), rapdu: Zeroizing::new(Vec::new()) }
    }

    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Send `cmd`; on 9000 return the response data (valid until the next call).
    fn exchange(&mut self, cmd: Command<'_>) -> Result<&[u8], AdminCardError> {
        self.capdu.clear();
        cmd.emit(&mut self.capdu).map_err(|_| AdminCardError::Malformed)?;
        self.rapdu.clear();
        let sent = self.transport.transmit(&self.capdu, &mut self.rapdu);
        self.capdu.iter_mut().for_each(|b| *b = 0);
        sent?;
        let r = Response::new_checked(&self.rapdu).map_err(|_| AdminCardError::Malformed)?;
        if r.sw == StatusWord::OK { Ok(r.data) } else { Err(AdminCardError::from_status(r.sw)) }
    }

    /// SELECT the application by AID; returns the application version from the FCI.
    pub fn select(&mut self) -> Result<u16, AdminCardError> {
        let cmd = Command::new(spec::CLA_ISO, ins::SELECT, 0x04, 0x00).with_data(&spec::AID).with_ne(256);
        let fci = self.exchange(cmd)?;
        let inner = tlv::find(fci, tag::FCI).ok().flatten().ok_or(AdminCardError::Malformed)?;
        match tlv::find(inner, tag::FCI_VERSION) {
            Ok(Some([a, b])) => Ok(u16::from_be_bytes([*a, *b])),
            _ => Err(AdminCardError::Malformed),
        }
    }

    /// GET DATA `6E`: identity and status. Needs no PIN.
    pub fn info(&mut self) -> Result<CardInfo, AdminCardError> {
        let data = self.exchange(Command::new(spec::CLA_ISO, ins::GET_DATA, 0x00, 0x6E).with_ne(256))?;
        CardInfo::parse(data)
    }

    /// PERSONALIZE: set serial, role and PIN retry limit, once (state Blank → Personalized).
    pub fn personalize(&mut self, serial: &[u8], role: Role, retry_limit: u8) -> Result<(), AdminCardError> {
        let mut data = Vec::new();
        tlv::put(&mut data, tag::SERIAL, serial);
        tlv::put(&mut data, tag::ROLE, &[role as u8]);
        tlv::put(&mut data, tag::PIN_RETRIES, &[retry_limit]);
        self.exchange(Command::new(spec::CLA_PROPRIETARY, ins::PERSONALIZE, 0, 0).with_data(&data))?;
        Ok(())
    }

    /// CHANGE REFERENCE DATA P1=01: set the first PIN (Personalized → PinSet).
    pub fn set_initial_pin(&mut self, pin: &Pin) -> Result<(), AdminCardError> {
        let cmd =
            Command::new(spec::CLA_ISO, ins::CHANGE_REFERENCE_DATA, 0x01, spec::PIN_REF).with_data(pin.expose_block());
        self.exchange(cmd)?;
        Ok(())
    }

    /// VERIFY: present the PIN. A wrong PIN costs one try (`WrongPin`), the last one locks.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), AdminCardError> {
        let cmd = Command::new(spec::CLA_ISO, ins::VERIFY, 0x00, spec::PIN_REF).with_data(pin.expose_block());
        self.exchange(cmd)?;
        Ok(())
    }

    /// VERIFY without data: whether the PIN is verified, and the tries left. Costs no try.
    pub fn pin_status(&mut self) -> Result<PinStatus, AdminCardError> {
        match self.exchange(Command::new(spec::CLA_ISO, ins::VERIFY, 0x00, spec::PIN_REF)) {
            Ok(_) => Ok(PinStatus::Verified),
            Err(AdminCardError::WrongPin { retries_left }) => Ok(PinStatus::NotVerified { retries_left }),
            Err(AdminCardError::Blocked) => Ok(PinStatus::Blocked),
            Err(e) => Err(e),
        }
    }

    /// VERIFY P1=FF: forget the PIN verification (log out).
    pub fn logout(&mut self) -> Result<(), AdminCardError> {
        self.exchange(Command::new(spec::CLA_ISO, ins::VERIFY, 0xFF, spec::PIN_REF))?;
        Ok(())
    }

    /// CHANGE REFERENCE DATA P1=00: `old ‖ new`. A wrong `old` costs a try, as VERIFY.
    pub fn change_pin(&mut self, old: &Pin, new: &Pin) -> Result<(), AdminCardError> {
        let mut data = Zeroizing::new([0u8; 2 * spec::PIN_BLOCK_LEN]);
        data[..spec::PIN_BLOCK_LEN].copy_from_slice(old.expose_block());
        data[spec::PIN_BLOCK_LEN..].copy_from_slice(new.expose_block());
        self.exchange(
            Command::new(spec::CLA_ISO, ins::CHANGE_REFERENCE_DATA, 0x00, spec::PIN_REF).with_data(&data[..]),
        )?;
        Ok(())
    }

    /// GET CHALLENGE: a fresh card nonce for the next domain-authorized command.
    pub fn get_challenge(&mut self) -> Result<CardChallenge, AdminCardError> {
        let data =
            self.exchange(Command::new(spec::CLA_ISO, ins::GET_CHALLENGE, 0, 0).with_ne(spec::CARD_CHALLENGE_LEN))?;
        data.try_into().map(CardChallenge).map_err(|_| AdminCardError::Malformed)
    }

    /// RESET RETRY COUNTER P1=00: unblock with a new PIN, authorized by the crypto card's
    /// signature over `domain_message(purpose::RESET_RETRY_COUNTER, serial, challenge,
    /// new PIN block)`.
    pub fn reset_retry_counter(&mut self, new: &Pin, authorization: &Sm2Signature) -> Result<(), AdminCardError> {
        let mut data = Zeroizing::new(Vec::new());
        tlv::put(&mut data, tag::NEW_PIN, new.expose_block());
        tlv::put(&mut data, tag::DOMAIN_SIGNATURE, authorization);
        self.exchange(Command::new(spec::CLA_ISO, ins::RESET_RETRY_COUNTER, 0x00, spec::PIN_REF).with_data(&data))?;
        Ok(())
    }

    /// GENERATE ASYMMETRIC KEY PAIR: the card makes its SM2 key pair (once; PinSet →
    /// Operational; PIN verified) and returns the public key.
    pub fn generate_key(&mut self) -> Result<Sm2Point, AdminCardError> {
        let data = self.exchange(Command::new(spec::CLA_ISO, ins::GENERATE_KEY_PAIR, 0x80, 0x00).with_ne(256))?;
        parse_public_key(data)
    }

    /// GENERATE ASYMMETRIC KEY PAIR P1=81: read the public key. Needs no PIN.
    pub fn public_key(&mut self) -> Result<Sm2Point, AdminCardError> {
        let data = self.exchange(Command::new(spec::CLA_ISO, ins::GENERATE_KEY_PAIR, 0x81, 0x00).with_ne(256))?;
        parse_public_key(data)
    }

    /// INTERNAL AUTHENTICATE: SM2-sign `auth_message(serial, challenge)` with the card key
    /// (distinguishing ID [`spec::CARD_DISTID`]). PIN verified; 16..=64-byte challenge.
    pub fn authenticate(&mut self, challenge: &[u8]) -> Result<Sm2Signature, AdminCardError> {
        let data = self.exchange(
            Command::new(spec::CLA_ISO, ins::INTERNAL_AUTHENTICATE, 0x00, 0x00).with_data(challenge).with_ne(256),
        )?;
        data.try_into().map_err(|_| AdminCardError::Malformed)
    }

    /// PUT DATA `C8`: bind the card to a domain (crypto card) signing key. The first binding
    /// needs only the PIN; re-binding needs `authorization`, the old domain key's signature
    /// over `domain_message(purpose::BIND_DOMAIN, serial, challenge, new key)`.
    pub fn bind_domain(&mut self, key: &Sm2Point, authorization: Option<&Sm2Signature>) -> Result<(), AdminCardError> {
        let mut data = Vec::new();
        tlv::put(&mut data, tag::DOMAIN_KEY, key);
        if let Some(sig) = authorization {
            tlv::put(&mut data, tag::DOMAIN_SIGNATURE, sig);
        }
        self.exchange(Command::new(spec::CLA_ISO, ins::PUT_DATA, 0x00, tag::DOMAIN_KEY as u8).with_data(&data))?;
        Ok(())
    }

    /// PUT DATA `D0`: store (or with `None`, erase) the share blob. PIN verified, and the
    /// domain key's signature over `domain_message(purpose::PUT_SHARE, serial, challenge,
    /// blob or empty)`.
    pub fn put_share(&mut self, blob: Option<&[u8]>, authorization: &Sm2Signature) -> Result<(), AdminCardError> {
        if blob.is_some_and(|b| b.len() > spec::MAX_SHARE_LEN) {
            return Err(AdminCardError::BadData);
        }
        let mut data = Zeroizing::new(Vec::new());
        if let Some(b) = blob {
            tlv::put(&mut data, tag::SHARE_BLOB, b);
        }
        tlv::put(&mut data, tag::DOMAIN_SIGNATURE, authorization);
        self.exchange(Command::new(spec::CLA_ISO, ins::PUT_DATA, 0x00, tag::SHARE_SLOT as u8).with_data(&data))?;
        Ok(())
    }

    /// GET DATA `D0`: release the share blob (PIN verified). Opaque to the card and to us.
    pub fn get_share(&mut self) -> Result<Zeroizing<Vec<u8>>, AdminCardError> {
        let data =
            self.exchange(Command::new(spec::CLA_ISO, ins::GET_DATA, 0x00, tag::SHARE_SLOT as u8).with_ne(MAX_NE))?;
        Ok(Zeroizing::new(data.to_vec()))
    }
}

fn parse_public_key(data: &[u8]) -> Result<Sm2Point, AdminCardError> {
    let inner = tlv::find(data, tag::PUBLIC_KEY_TEMPLATE).ok().flatten().ok_or(AdminCardError::Malformed)?;
    let point = tlv::find(inner, tag::EC_POINT).ok().flatten().ok_or(AdminCardError::Malformed)?;
    match <Sm2Point>::try_from(point) {
        Ok(p @ [0x04, ..]) => Ok(p),
        _ => Err(AdminCardError::Malformed),
    }
}

//! The virtual admin card: the admin-card application of `docs/admin-card.md` running on a
//! simulated smart card, with its persistent memory in a file.
//!
//! Use it in-process (it implements [`CardTransport`]) or insert it into the real pcscd
//! through vpcd ([`crate::vpcd::VpcdCard`]): either way it answers the same bytes.
//!
//! Invariants: every input byte string is parsed with `new_checked` and never panics the
//! card; the PIN is stored only as a salted SM3 hash, compared in constant time; the retry
//! counter is decremented and saved before a PIN is compared; the card's private key and
//! share are only in zeroizing memory and in the image file (mode 0600). The key is born from
//! the host's OS randomness (a real card uses its TRNG).

mod commands;
mod crypto;
mod domain;
mod image;

use std::path::{Path, PathBuf};

use gmhsm_icc::apdu::{Command, Response, StatusWord as Sw};
use gmhsm_icc::spec::{self, ins};
use gmhsm_platform::{CardError, CardTransport};
use zeroize::Zeroizing;

pub use domain::{SimCryptoError, SimDomainKey, verify_card_signature};
pub use image::ImageError;
use image::{Image, Storage};

/// The card's answer to reset: T=1, historical bytes "GMHSMADM".
pub const ATR: [u8; 13] = atr();

const fn atr() -> [u8; 13] {
    // TS, T0 (TD1 present, 8 historical bytes), TD1 (TD2 present, T=0), TD2 (T=1), history, TCK.
    let mut a = [0x3B, 0x88, 0x80, 0x01, b'G', b'M', b'H', b'S', b'M', b'A', b'D', b'M', 0];
    let mut tck = 0u8;
    let mut i = 1;
    while i < 12 {
        tck ^= a[i];
        i += 1;
    }
    a[12] = tck;
    a
}

/// Volatile state, lost on power-off, reset and SELECT.
#[derive(Default)]
pub(crate) struct Session {
    selected: bool,
    pin_verified: bool,
    /// Issued by GET CHALLENGE; valid for the next command only.
    challenge: Option<[u8; spec::CARD_CHALLENGE_LEN]>,
}

/// A simulated admin card.
pub struct VirtualCard {
    image: Image,
    storage: Storage,
    session: Session,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualCard({:?}, state {:?})", self.image.serial, self.image.state())
    }
}

impl VirtualCard {
    /// A blank card whose memory lives only in this process.
    pub fn blank() -> VirtualCard {
        VirtualCard { image: Image::blank(), storage: Storage::Memory, session: Session::default() }
    }

    /// The card whose memory is the file `path` (a blank card if the file does not exist; it
    /// is created on the first change).
    pub fn open(path: &Path) -> Result<VirtualCard, ImageError> {
        let image = Storage::load(path)?.unwrap_or_else(Image::blank);
        Ok(VirtualCard { image, storage: Storage::File(PathBuf::from(path)), session: Session::default() })
    }

    /// Power off or reset: forget the volatile state (PIN verification, challenge, selection).
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    pub fn atr(&self) -> &'static [u8] {
        &ATR
    }

    /// Process one C-APDU and return the R-APDU (data ‖ SW1 SW2). Never panics.
    pub fn process(&mut self, capdu: &[u8]) -> Zeroizing<Vec<u8>> {
        // The challenge lives for exactly one command, whatever that command is.
        let challenge = self.session.challenge.take();
        let result = match Command::new_checked(capdu) {
            Err(_) => Err(Sw::WRONG_LENGTH),
            Ok(c) => self.dispatch(&c, challenge),
        };
        let mut out = Zeroizing::new(Vec::new());
        match result {
            Ok(data) => Response::emit(&data, Sw::OK, &mut out),
            Err(sw) => Response::emit(&[], sw, &mut out),
        }
        out
    }

    fn dispatch(&mut self, c: &Command<'_>, challenge: Option<[u8; 16]>) -> commands::Reply {
        if c.cla != spec::CLA_ISO && c.cla != spec::CLA_PROPRIETARY {
            return Err(Sw::CLA_NOT_SUPPORTED);
        }
        if (c.cla, c.ins) == (spec::CLA_ISO, ins::SELECT) {
            return self.select(c);
        }
        if !self.session.selected {
            return Err(Sw::CONDITIONS_OF_USE);
        }
        match (c.cla, c.ins) {
            (spec::CLA_ISO, ins::GET_DATA) => self.get_data(c),
            (spec::CLA_ISO, ins::PUT_DATA) => self.put_data(c, challenge),
            (spec::CLA_ISO, ins::VERIFY) => self.verify(c),
            (spec::CLA_ISO, ins::CHANGE_REFERENCE_DATA) => self.change_reference_data(c),
            (spec::CLA_ISO, ins::RESET_RETRY_COUNTER) => self.reset_retry_counter(c, challenge),
            (spec::CLA_ISO, ins::GENERATE_KEY_PAIR) => self.generate_key_pair(c),
            (spec::CLA_ISO, ins::GET_CHALLENGE) => {
                let (data, nonce) = self.get_challenge(c)?;
                self.session.challenge = Some(nonce);
                Ok(data)
            }
            (spec::CLA_ISO, ins::INTERNAL_AUTHENTICATE) => self.internal_authenticate(c),
            (spec::CLA_PROPRIETARY, ins::PERSONALIZE) => self.personalize(c),
            _ => Err(Sw::INS_NOT_SUPPORTED),
        }
    }
}

impl CardTransport for VirtualCard {
    fn transmit(&mut self, capdu: &[u8], rapdu: &mut Vec<u8>) -> Result<(), CardError> {
        let r = self.process(capdu);
        rapdu.clear();
        rapdu.extend_from_slice(&r);
        Ok(())
    }
}

#[cfg(test)]
mod tests;

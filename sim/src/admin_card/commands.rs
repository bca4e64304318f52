//! The APDU handlers of the virtual admin card, one function per command of
//! `docs/admin-card.md`. Each returns response data (for 9000) or the status word; a handler
//! that fails leaves the persistent image as it was, except the PIN retry counter, which is
//! decremented and saved *before* a PIN is compared (a power cut cannot buy a free try).

use gmhsm_icc::apdu::{Command, StatusWord as Sw};
use gmhsm_icc::spec::{self, CardState, Pin, Role, purpose, tag};
use gmhsm_icc::tlv;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::VirtualCard;
use super::crypto::{self, CryptoFailure};
use super::image::Image;

pub(crate) type Reply = Result<Zeroizing<Vec<u8>>, Sw>;

fn ok() -> Reply {
    Ok(Zeroizing::new(Vec::new()))
}

fn data(v: Vec<u8>) -> Reply {
    Ok(Zeroizing::new(v))
}

impl From<CryptoFailure> for Sw {
    fn from(_: CryptoFailure) -> Sw {
        Sw::UNKNOWN
    }
}

impl VirtualCard {
    /// Apply `f` to a copy of the image and save it; the change is kept only if saved.
    fn commit(&mut self, f: impl FnOnce(&mut Image)) -> Result<(), Sw> {
        let mut next = self.image.clone();
        f(&mut next);
        self.storage.save(&next).map_err(|_| Sw::MEMORY_FAILURE)?;
        self.image = next;
        Ok(())
    }

    fn require_pin_set(&self) -> Result<(), Sw> {
        match self.image.lifecycle {
            CardState::PinSet | CardState::Operational => Ok(()),
            _ => Err(Sw::CONDITIONS_OF_USE),
        }
    }

    fn require_operational_verified(&self) -> Result<(), Sw> {
        if self.image.lifecycle != CardState::Operational {
            return Err(Sw::CONDITIONS_OF_USE);
        }
        if !self.session.pin_verified {
            return Err(Sw::SECURITY_STATUS);
        }
        Ok(())
    }

    /// Check a PIN block against the stored hash, spending a try first.
    fn check_pin(&mut self, block: &[u8]) -> Result<(), Sw> {
        if self.image.retries_left == 0 {
            return Err(Sw::AUTH_BLOCKED);
        }
        let pin = Pin::from_block(block).map_err(|_| Sw::WRONG_DATA)?;
        self.session.pin_verified = false;
        self.commit(|i| i.retries_left -= 1)?;
        let stored = self.image.pin_hash.as_ref().ok_or(Sw::CONDITIONS_OF_USE)?;
        let given = crypto::pin_hash(&self.image.pin_salt, pin.expose_block());
        if bool::from(given[..].ct_eq(&stored[..])) {
            self.commit(|i| i.retries_left = i.retry_limit)?;
            Ok(())
        } else {
            Err(Sw::wrong_pin(self.image.retries_left))
        }
    }

    fn set_pin(&mut self, pin: &Pin, next: CardState) -> Result<(), Sw> {
        let salt = crypto::random::<16>()?;
        let hash = crypto::pin_hash(&salt, pin.expose_block());
        self.commit(|i| {
            i.pin_salt = salt;
            i.pin_hash = Some(hash);
            i.retries_left = i.retry_limit;
            i.lifecycle = next;
        })
    }

    /// Take the challenge issued by the immediately preceding GET CHALLENGE, and check a domain
    /// signature over `domain_message(purpose, serial, challenge, payload)` with `key`.
    fn check_domain(
        &self,
        key: &[u8; spec::SM2_POINT_LEN],
        challenge: Option<[u8; 16]>,
        purpose: &[u8],
        payload: &[u8],
        sig: Option<&[u8]>,
    ) -> Result<(), Sw> {
        let sig = sig.ok_or(Sw::WRONG_DATA)?;
        let challenge = challenge.ok_or(Sw::CONDITIONS_OF_USE)?;
        let msg = spec::domain_message(purpose, &self.image.serial, &challenge, payload);
        if crypto::verify_domain(key, &msg, sig) { Ok(()) } else { Err(Sw::VERIFICATION_FAILED) }
    }

    pub(crate) fn select(&mut self, c: &Command<'_>) -> Reply {
        if c.p1 != 0x04 || (c.p2 != 0x00 && c.p2 != 0x0C) {
            return Err(Sw::WRONG_P1P2);
        }
        self.session = Default::default();
        if c.data != spec::AID {
            return Err(Sw::FILE_NOT_FOUND);
        }
        self.session.selected = true;
        let mut inner = Vec::new();
        tlv::put(&mut inner, tag::FCI_AID, &spec::AID);
        tlv::put(&mut inner, tag::FCI_VERSION, &spec::APP_VERSION.to_be_bytes());
        let mut fci = Vec::new();
        tlv::put(&mut fci, tag::FCI, &inner);
        if c.p2 == 0x0C { ok() } else { data(fci) }
    }

    fn info_value(&self, t: u16) -> Option<Vec<u8>> {
        let i = &self.image;
        Some(match t {
            tag::SERIAL => i.serial.clone(),
            tag::ROLE => vec![i.role],
            tag::STATE => vec![i.state() as u8],
            tag::PIN_RETRIES => vec![i.retries_left, i.retry_limit],
            tag::CARD_PUBLIC_KEY => crypto::public_point(i.secret.as_deref()?).ok()?.to_vec(),
            tag::SHARE_STATUS => (i.share.as_ref().map_or(0, |s| s.len()) as u16).to_be_bytes().to_vec(),
            tag::APP_VERSION => spec::APP_VERSION.to_be_bytes().to_vec(),
            tag::DOMAIN_KEY => i.domain_key?.to_vec(),
            _ => return None,
        })
    }

    pub(crate) fn get_data(&mut self, c: &Command<'_>) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        if !c.data.is_empty() {
            return Err(Sw::WRONG_LENGTH);
        }
        match u16::from(c.p2) {
            tag::CARD_INFO => {
                let mut inner = Vec::new();
                for t in [
                    tag::SERIAL,
                    tag::ROLE,
                    tag::STATE,
                    tag::PIN_RETRIES,
                    tag::CARD_PUBLIC_KEY,
                    tag::SHARE_STATUS,
                    tag::APP_VERSION,
                    tag::DOMAIN_KEY,
                ] {
                    if let Some(v) = self.info_value(t) {
                        tlv::put(&mut inner, t, &v);
                    }
                }
                let mut out = Vec::new();
                tlv::put(&mut out, tag::CARD_INFO, &inner);
                data(out)
            }
            tag::SHARE_SLOT => {
                self.require_operational_verified()?;
                let share = self.image.share.as_ref().ok_or(Sw::DATA_NOT_FOUND)?;
                Ok(Zeroizing::new(share.to_vec()))
            }
            t => self.info_value(t).map(data).unwrap_or(Err(Sw::DATA_NOT_FOUND)),
        }
    }

    pub(crate) fn put_data(&mut self, c: &Command<'_>, challenge: Option<[u8; 16]>) -> Reply {
        if c.p1 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        match u16::from(c.p2) {
            tag::DOMAIN_KEY => {
                self.require_operational_verified()?;
                tlv::check(c.data, &[tag::DOMAIN_KEY, tag::DOMAIN_SIGNATURE]).map_err(|_| Sw::WRONG_DATA)?;
                let key = tlv::find(c.data, tag::DOMAIN_KEY).ok().flatten().ok_or(Sw::WRONG_DATA)?;
                let key: [u8; spec::SM2_POINT_LEN] = key.try_into().map_err(|_| Sw::WRONG_DATA)?;
                if !crypto::valid_point(&key) {
                    return Err(Sw::WRONG_DATA);
                }
                let sig = tlv::find(c.data, tag::DOMAIN_SIGNATURE).ok().flatten();
                match self.image.domain_key {
                    None if sig.is_some() => return Err(Sw::WRONG_DATA),
                    None => {}
                    Some(old) => self.check_domain(&old, challenge, purpose::BIND_DOMAIN, &key, sig)?,
                }
                self.commit(|i| i.domain_key = Some(key))?;
                ok()
            }
            tag::SHARE_SLOT => {
                self.require_operational_verified()?;
                let domain = self.image.domain_key.ok_or(Sw::CONDITIONS_OF_USE)?;
                tlv::check(c.data, &[tag::SHARE_BLOB, tag::DOMAIN_SIGNATURE]).map_err(|_| Sw::WRONG_DATA)?;
                let blob = tlv::find(c.data, tag::SHARE_BLOB).map_err(|_| Sw::WRONG_DATA)?;
                if blob.is_some_and(|b| b.len() > spec::MAX_SHARE_LEN) {
                    return Err(Sw::NOT_ENOUGH_MEMORY);
                }
                let sig = tlv::find(c.data, tag::DOMAIN_SIGNATURE).ok().flatten();
                self.check_domain(&domain, challenge, purpose::PUT_SHARE, blob.unwrap_or(&[]), sig)?;
                let share = blob.map(|b| Zeroizing::new(b.to_vec()));
                self.commit(|i| i.share = share)?;
                ok()
            }
            _ => Err(Sw::WRONG_P1P2),
        }
    }

    pub(crate) fn verify(&mut self, c: &Command<'_>) -> Reply {
        if c.p2 != spec::PIN_REF {
            return Err(Sw::DATA_NOT_FOUND);
        }
        match c.p1 {
            0xFF if c.data.is_empty() => {
                self.session.pin_verified = false;
                return ok();
            }
            0xFF => return Err(Sw::WRONG_LENGTH),
            0x00 => {}
            _ => return Err(Sw::WRONG_P1P2),
        }
        self.require_pin_set()?;
        if c.data.is_empty() {
            return match (self.image.retries_left, self.session.pin_verified) {
                (0, _) => Err(Sw::AUTH_BLOCKED),
                (_, true) => ok(),
                (n, false) => Err(Sw::wrong_pin(n)),
            };
        }
        self.check_pin(c.data)?;
        self.session.pin_verified = true;
        ok()
    }

    pub(crate) fn change_reference_data(&mut self, c: &Command<'_>) -> Reply {
        if c.p2 != spec::PIN_REF {
            return Err(Sw::DATA_NOT_FOUND);
        }
        match c.p1 {
            0x01 => {
                if self.image.lifecycle != CardState::Personalized {
                    return Err(Sw::CONDITIONS_OF_USE);
                }
                let pin = Pin::from_block(c.data).map_err(|_| Sw::WRONG_DATA)?;
                self.set_pin(&pin, CardState::PinSet)?;
                ok()
            }
            0x00 => {
                self.require_pin_set()?;
                if c.data.len() != 2 * spec::PIN_BLOCK_LEN {
                    return Err(Sw::WRONG_DATA);
                }
                let (old, new) = c.data.split_at(spec::PIN_BLOCK_LEN);
                let new = Pin::from_block(new).map_err(|_| Sw::WRONG_DATA)?;
                self.check_pin(old)?;
                let lifecycle = self.image.lifecycle;
                self.set_pin(&new, lifecycle)?;
                self.session.pin_verified = true;
                ok()
            }
            _ => Err(Sw::WRONG_P1P2),
        }
    }

    pub(crate) fn reset_retry_counter(&mut self, c: &Command<'_>, challenge: Option<[u8; 16]>) -> Reply {
        if c.p2 != spec::PIN_REF {
            return Err(Sw::DATA_NOT_FOUND);
        }
        if c.p1 != 0x00 {
            return Err(Sw::WRONG_P1P2);
        }
        self.require_pin_set()?;
        let domain = self.image.domain_key.ok_or(Sw::CONDITIONS_OF_USE)?;
        tlv::check(c.data, &[tag::NEW_PIN, tag::DOMAIN_SIGNATURE]).map_err(|_| Sw::WRONG_DATA)?;
        let block = tlv::find(c.data, tag::NEW_PIN).ok().flatten().ok_or(Sw::WRONG_DATA)?;
        let pin = Pin::from_block(block).map_err(|_| Sw::WRONG_DATA)?;
        let sig = tlv::find(c.data, tag::DOMAIN_SIGNATURE).ok().flatten();
        self.check_domain(&domain, challenge, purpose::RESET_RETRY_COUNTER, pin.expose_block(), sig)?;
        let lifecycle = self.image.lifecycle;
        self.set_pin(&pin, lifecycle)?;
        self.session.pin_verified = false;
        ok()
    }

    fn public_key_template(&self) -> Reply {
        let secret = self.image.secret.as_deref().ok_or(Sw::DATA_NOT_FOUND)?;
        let mut inner = Vec::new();
        tlv::put(&mut inner, tag::EC_POINT, &crypto::public_point(secret)?);
        let mut out = Vec::new();
        tlv::put(&mut out, tag::PUBLIC_KEY_TEMPLATE, &inner);
        data(out)
    }

    pub(crate) fn generate_key_pair(&mut self, c: &Command<'_>) -> Reply {
        if c.p2 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        match c.p1 {
            0x80 => {
                if self.image.state() != CardState::PinSet {
                    return Err(Sw::CONDITIONS_OF_USE);
                }
                if !self.session.pin_verified {
                    return Err(Sw::SECURITY_STATUS);
                }
                let secret = crypto::generate_secret()?;
                self.commit(|i| {
                    i.secret = Some(secret);
                    i.lifecycle = CardState::Operational;
                })?;
                self.public_key_template()
            }
            0x81 => self.public_key_template(),
            _ => Err(Sw::WRONG_P1P2),
        }
    }

    pub(crate) fn get_challenge(&mut self, c: &Command<'_>) -> Result<(Zeroizing<Vec<u8>>, [u8; 16]), Sw> {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        if !c.data.is_empty() || c.ne != Some(spec::CARD_CHALLENGE_LEN) {
            return Err(Sw::WRONG_LENGTH);
        }
        let nonce = crypto::random::<16>()?;
        Ok((Zeroizing::new(nonce.to_vec()), nonce))
    }

    pub(crate) fn internal_authenticate(&mut self, c: &Command<'_>) -> Reply {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        self.require_operational_verified()?;
        if !(spec::MIN_CHALLENGE_LEN..=spec::MAX_CHALLENGE_LEN).contains(&c.data.len()) {
            return Err(Sw::WRONG_LENGTH);
        }
        let secret = self.image.secret.as_deref().ok_or(Sw::CONDITIONS_OF_USE)?;
        let msg = spec::auth_message(&self.image.serial, c.data);
        data(crypto::sign(secret, &msg)?.to_vec())
    }

    pub(crate) fn personalize(&mut self, c: &Command<'_>) -> Reply {
        if c.p1 != 0 || c.p2 != 0 {
            return Err(Sw::WRONG_P1P2);
        }
        if self.image.lifecycle != CardState::Blank {
            return Err(Sw::CONDITIONS_OF_USE);
        }
        tlv::check(c.data, &[tag::SERIAL, tag::ROLE, tag::PIN_RETRIES]).map_err(|_| Sw::WRONG_DATA)?;
        let serial = tlv::find(c.data, tag::SERIAL).ok().flatten().ok_or(Sw::WRONG_DATA)?;
        if serial.is_empty() || serial.len() > spec::MAX_SERIAL_LEN {
            return Err(Sw::WRONG_DATA);
        }
        let role = match tlv::find(c.data, tag::ROLE) {
            Ok(Some([r])) => Role::from_byte(*r).ok_or(Sw::WRONG_DATA)?,
            _ => return Err(Sw::WRONG_DATA),
        };
        let limit = match tlv::find(c.data, tag::PIN_RETRIES) {
            Ok(None) => spec::DEFAULT_RETRY_LIMIT,
            Ok(Some([n])) if (1..=spec::MAX_RETRY_LIMIT).contains(n) => *n,
            _ => return Err(Sw::WRONG_DATA),
        };
        let serial = serial.to_vec();
        self.commit(|i| {
            i.serial = serial;
            i.role = role as u8;
            i.retry_limit = limit;
            i.retries_left = limit;
            i.lifecycle = CardState::Personalized;
        })?;
        ok()
    }
}

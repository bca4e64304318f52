//! One-shot ciphers and MACs: `Encrypt`, `Decrypt`, `DecryptBatch`, `Mac`, `VerifyMac`.
//!
//! An SM2 decryption with a stored SM2 key is checked here and left to the plan's compute
//! step ([`Step::Sm2Decrypt`]), which computes consecutive ones together.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{Capabilities as C, CipherMech, KeyRef, MacMech, Principal, Request, Response, SecretBytes};

use super::super::plan::{Sm2Decrypt, Step, decrypt_split};
use super::super::{Hsm, usage, usage::Shape};
use crate::alg::sm4::Direction;
use crate::error::Error;
use crate::keys::LoadedKey;
use crate::ops;

impl<P: Platform> Hsm<P> {
    pub(super) fn cipher_request(
        &mut self,
        principal: &Principal,
        session: u64,
        request: Request,
    ) -> Result<Step, Error> {
        let answer = match request {
            // SM2 to a stored SM2 key goes through the card's tables (the key's own once it is
            // used often: `Sm2Fast::encrypt`); any other key type is refused by `ops::encrypt`.
            Request::Encrypt { key: KeyRef::Label(label), mechanism: CipherMech::Sm2 { layout }, data } => {
                self.use_key(principal, session, &label, C::ENCRYPT)?;
                let out = match self.cache.get(&label).ok_or(Error::Internal("key not in cache after use_key"))? {
                    LoadedKey::Sm2(secret) => {
                        let public = *secret.public();
                        self.fast.encrypt(&label, &public, &data, ops::sm2_layout(layout), &mut self.rng)?
                    }
                    other => ops::encrypt(other, &CipherMech::Sm2 { layout }, &data, &mut self.rng, None)?,
                };
                Response::Data(SecretBytes::new(out))
            }
            Request::Encrypt { key, mechanism, data } => {
                let table = self.fast.table().clone();
                let need = usage::cipher_need(C::ENCRYPT, &mechanism, Direction::Encrypt, Shape::OneShot);
                let out = self.with_key(principal, session, &key, need, |key, rng| {
                    ops::encrypt(key, &mechanism, &data, rng, Some(&table))
                })?;
                Response::Data(SecretBytes::new(out))
            }
            Request::Decrypt { key, mechanism, data } => return self.decrypt(principal, session, key, mechanism, data),
            Request::DecryptBatch { label, mechanism, ciphertexts } => {
                if ciphertexts.is_empty() || ciphertexts.len() > gmhsm_proto::MAX_DECRYPT_BATCH {
                    return Err(Error::Invalid("batch size"));
                }
                self.use_key(principal, session, &label, C::DECRYPT)?;
                let (Some(LoadedKey::Sm2(secret)), CipherMech::Sm2 { layout }) = (self.cache.get(&label), mechanism)
                else {
                    return Err(Error::WrongKeyType);
                };
                let cts: Vec<&[u8]> = ciphertexts.iter().map(|c| &c[..]).collect();
                let out = decrypt_split::<P>(secret, &cts, ops::sm2_layout(layout));
                Response::Plaintexts(out.into_iter().map(|r| r.ok().map(|m| SecretBytes::new(m.to_vec()))).collect())
            }
            Request::Mac { key, mechanism, data } => {
                let need = usage::mac_need(mechanism)?;
                let out = self.with_key(principal, session, &key, need, |key, _| mac_with(key, mechanism, &data))?;
                Response::Data(SecretBytes::new(out))
            }
            Request::VerifyMac { key, mechanism, data, mac } => {
                let need = usage::mac_need(mechanism)?;
                let tag = self.with_key(principal, session, &key, need, |key, _| mac_with(key, mechanism, &data))?;
                use subtle::ConstantTimeEq;
                if tag.len() != mac.len() || !bool::from(tag.ct_eq(&mac)) {
                    return Err(Error::SignatureInvalid);
                }
                Response::Verified
            }
            _ => return Err(Error::Internal("not a cipher request")),
        };
        Ok(Step::Answer(answer))
    }

    /// `Decrypt`: checked as every use of a key; an SM2 decryption with a stored SM2 key is
    /// planned (its key copied), any other computed here.
    fn decrypt(
        &mut self,
        principal: &Principal,
        session: u64,
        key: KeyRef,
        mechanism: CipherMech,
        data: Vec<u8>,
    ) -> Result<Step, Error> {
        let need = usage::cipher_need(C::DECRYPT, &mechanism, Direction::Decrypt, Shape::OneShot);
        let out = self.with_key(principal, session, &key, need, |key, rng| match (key, &mechanism) {
            (LoadedKey::Sm2(secret), CipherMech::Sm2 { layout }) => {
                Ok(Decrypted::Planned(sm2::SecretKey::clone(secret), *layout))
            }
            _ => ops::decrypt(key, &mechanism, &data, rng).map(|z| Decrypted::Plain(z.to_vec())),
        })?;
        match (out, key) {
            (Decrypted::Plain(plain), _) => Ok(Step::Answer(Response::Data(SecretBytes::new(plain)))),
            (Decrypted::Planned(secret, layout), KeyRef::Label(label)) => {
                Ok(Step::Sm2Decrypt(Sm2Decrypt { label, secret, layout, data }))
            }
            // Session keys are SM4 keys.
            (Decrypted::Planned(..), _) => Err(Error::Internal("SM2 session key")),
        }
    }
}

/// What checking a `Decrypt` made: the plaintext, or the key and layout of a planned SM2
/// decryption.
enum Decrypted {
    Plain(Vec<u8>),
    Planned(sm2::SecretKey, gmhsm_proto::Sm2Layout),
}

fn mac_with(key: &LoadedKey, mechanism: MacMech, data: &[u8]) -> Result<Vec<u8>, Error> {
    let raw = ops::secret_bytes(key).ok_or(Error::WrongKeyType)?;
    ops::mac(raw, mechanism, data)
}

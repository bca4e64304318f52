//! Signatures: `Sign` (a batch of one), `SignBatch` (all or nothing) and `Verify`. SM2 keys
//! sign through the card's nonce pool and tables (`hsm/fast.rs`), ECDSA P-256 through its
//! own pool, the rest through [`ops::sign`].

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{Capabilities as C, KeyAlg, Label, Mechanism, Principal, Request, Response};

use super::super::Hsm;
use crate::error::Error;
use crate::keys::{KeyRecord, LoadedKey};
use crate::ops::{self, Public};

impl<P: Platform> Hsm<P> {
    pub(super) fn sign_request(
        &mut self,
        principal: &Principal,
        session: u64,
        request: Request,
    ) -> Result<Response, Error> {
        match request {
            Request::Sign { label, mechanism, message } => {
                self.signing_key(principal, session, &label, &mechanism)?;
                let mut sig = self.sign_many(&label, &mechanism, &[&message[..]])?;
                Ok(Response::Signature(sig.pop().ok_or(Error::Internal("no signature"))?))
            }
            Request::SignBatch { label, mechanism, messages } => {
                if messages.is_empty() || messages.len() > gmhsm_proto::MAX_SIGN_BATCH {
                    return Err(Error::Invalid("batch size"));
                }
                let rec = self.signing_key(principal, session, &label, &mechanism)?;
                let rsa = matches!(rec.alg, KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096);
                if rsa && messages.len() > gmhsm_proto::MAX_SIGN_BATCH_RSA {
                    return Err(Error::Invalid("RSA batch size"));
                }
                // All or nothing: a message the mechanism refuses fails the batch before any
                // nonce is spent.
                if matches!(mechanism, Mechanism::Sm2Digest) && messages.iter().any(|m| m.len() != 32) {
                    return Err(Error::Invalid("digest length"));
                }
                let messages: Vec<&[u8]> = messages.iter().map(|m| &m[..]).collect();
                let signatures = self.sign_many(&label, &mechanism, &messages)?;
                Ok(Response::Signatures(signatures.into_iter().map(gmhsm_proto::ByteBuf::from).collect()))
            }
            Request::Verify { label, mechanism, message, signature } => {
                let rec = self.use_key(principal, session, &label, C::VERIFY)?;
                match Public::from_spki(&rec.spki_der)? {
                    Public::Sm2(p) if ops::mechanism_fits(rec.alg, &mechanism) => {
                        self.fast.verify(&label, &p, &mechanism, &message, &signature)?
                    }
                    public => ops::verify(&public, &mechanism, &message, &signature)?,
                }
                Ok(Response::Verified)
            }
            _ => Err(Error::Internal("not a signature request")),
        }
    }

    /// The record of the key `label` for signing with `mechanism`: the caller may sign with it
    /// (loaded, password proved if it has one) and the mechanism fits its algorithm.
    fn signing_key(
        &mut self,
        principal: &Principal,
        session: u64,
        label: &Label,
        mechanism: &Mechanism,
    ) -> Result<KeyRecord, Error> {
        let rec = self.use_key(principal, session, label, C::SIGN)?;
        if !ops::mechanism_fits(rec.alg, mechanism) {
            return Err(Error::WrongKeyType);
        }
        Ok(rec)
    }

    /// One signature with the loaded key `label`, not an SM2 key (access and mechanism already
    /// checked): ECDSA P-256 through the card's nonce pool, the rest through [`ops::sign`].
    /// `ahead`: signatures this request still makes, this one included (sizes an inline refill).
    fn sign_one(
        &mut self,
        label: &Label,
        mechanism: &Mechanism,
        message: &[u8],
        ahead: usize,
    ) -> Result<Vec<u8>, Error> {
        let key = self.cache.get(label).ok_or(Error::Internal("key not in cache after use_key"))?;
        match (key, mechanism) {
            (LoadedKey::P256(key), Mechanism::EcdsaP256Sha256) => {
                self.fast.sign_p256(key, message, &mut self.rng, ahead)
            }
            (key, _) => ops::sign(key, mechanism, message, &mut self.rng),
        }
    }

    /// Every message signed with the loaded key `label`, in order (access and mechanism
    /// already checked; `Sign` is a batch of one): SM2 keys in one call of
    /// `Sm2Fast::sign_many` (digests computed together), other keys one `sign_one` at a time.
    fn sign_many(&mut self, label: &Label, mechanism: &Mechanism, messages: &[&[u8]]) -> Result<Vec<Vec<u8>>, Error> {
        if let Some(LoadedKey::Sm2(secret)) = self.cache.get(label) {
            return self.fast.sign_many(label, secret, mechanism, messages, &mut self.rng);
        }
        (0..messages.len()).map(|i| self.sign_one(label, mechanism, messages[i], messages.len() - i)).collect()
    }
}

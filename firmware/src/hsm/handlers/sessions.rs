//! Session keys (SM4, in the caller's session only): generated and wrapped out, imported,
//! destroyed; and the SM2 key exchange (GM/T 0003.3) whose agreed key becomes one.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{Capabilities as C, KeyRef, Label, Principal, Request, Response, WrapWith};
use zeroize::Zeroizing;

use super::super::{Hsm, usage, usage::Shape};
use super::sec1;
use crate::alg::{self, sm4::Direction};
use crate::error::Error;
use crate::keys::LoadedKey;
use crate::ops::{self, Public};
use crate::session::Handle;

/// Bytes of an agreed key (an SM4 session key).
const AGREED_KEY_LEN: u16 = 16;

impl<P: Platform> Hsm<P> {
    pub(super) fn session_request(
        &mut self,
        principal: &Principal,
        session: u64,
        request: Request,
    ) -> Result<Response, Error> {
        match request {
            Request::GenerateSessionKey { wrap } => self.generate_session_key(principal, session, wrap),
            Request::ImportSessionKey { unwrap_with, mechanism, wrapped } => {
                let need = usage::cipher_need(C::UNWRAP, &mechanism, Direction::Decrypt, Shape::OneShot);
                let raw = self.with_key(principal, session, &KeyRef::Label(unwrap_with), need, |key, rng| {
                    ops::decrypt(key, &mechanism, &wrapped, rng).map(|z| z.to_vec())
                })?;
                let raw = Zeroizing::new(raw);
                let k: [u8; 16] = raw.as_slice().try_into().map_err(|_| Error::DecryptFailed)?;
                let handle = self.sessions.get(session, principal)?.insert(Handle::Key(Zeroizing::new(k)))?;
                Ok(Response::SessionKey { handle, wrapped: Vec::new() })
            }
            Request::DestroySessionKey { handle } => {
                let s = self.sessions.get(session, principal)?;
                match s.take(handle)? {
                    Handle::Key(_) => Ok(Response::Done),
                    other => {
                        s.insert(other)?;
                        Err(Error::UnknownHandle)
                    }
                }
            }
            Request::AgreementInit { label, own_id, key_len } => {
                self.agreement_init(principal, session, label, &own_id, key_len)
            }
            Request::AgreementRespond { label, own_id, peer_id, peer_public, peer_ephemeral, key_len } => {
                if key_len != AGREED_KEY_LEN {
                    return Err(Error::Invalid("agreed key length"));
                }
                self.use_key(principal, session, &label, C::DERIVE)?;
                let peer = alg::sm2::public_from_sec1(&peer_public)?;
                let peer_eph = alg::sm2::public_from_sec1(&peer_ephemeral)?;
                let Some(LoadedKey::Sm2(secret)) = self.cache.get(&label) else { return Err(Error::WrongKeyType) };
                let party = alg::sm2_kex::Party { id: &peer_id, public: &peer };
                let (reply, key) = alg::sm2_kex::respond(&mut self.rng, secret, &own_id, party, &peer_eph, 16)?;
                let k = to_key16(&key.without_confirmation())?;
                let key_handle = self.sessions.get(session, principal)?.insert(Handle::Key(k))?;
                Ok(Response::AgreementReply { key_handle, ephemeral: sec1(&reply.ephemeral), confirm: reply.sb })
            }
            Request::AgreementFinish { handle, peer_id, peer_public, peer_ephemeral } => {
                let peer = alg::sm2::public_from_sec1(&peer_public)?;
                let peer_eph = alg::sm2::public_from_sec1(&peer_ephemeral)?;
                let s = self.sessions.get(session, principal)?;
                let Handle::Agreement { initiator, key_len, .. } = s.take(handle)? else {
                    return Err(Error::UnknownHandle);
                };
                let party = alg::sm2_kex::Party { id: &peer_id, public: &peer };
                let out = initiator.finish(party, &peer_eph, key_len as usize, None)?;
                let k = to_key16(&out.key)?;
                let key_handle = s.insert(Handle::Key(k))?;
                Ok(Response::SessionKey { handle: key_handle, wrapped: Vec::new() })
            }
            _ => Err(Error::Internal("not a session request")),
        }
    }

    /// `AgreementInit`: the initiator's ephemeral key, kept under a handle of this session.
    fn agreement_init(
        &mut self,
        principal: &Principal,
        session: u64,
        label: Label,
        own_id: &[u8],
        key_len: u16,
    ) -> Result<Response, Error> {
        if key_len != AGREED_KEY_LEN {
            return Err(Error::Invalid("agreed key length"));
        }
        self.use_key(principal, session, &label, C::DERIVE)?;
        let Some(LoadedKey::Sm2(secret)) = self.cache.get(&label) else { return Err(Error::WrongKeyType) };
        let initiator = alg::sm2_kex::Initiator::start(&mut self.rng, secret, own_id)?;
        let ephemeral = sec1(initiator.ephemeral());
        let handle = self.sessions.get(session, principal)?.insert(Handle::Agreement { initiator, label, key_len })?;
        Ok(Response::Agreement { handle, ephemeral })
    }

    fn generate_session_key(&mut self, principal: &Principal, session: u64, wrap: WrapWith) -> Result<Response, Error> {
        let mut k = Zeroizing::new([0u8; 16]);
        self.rng.fill(&mut k[..])?;
        let wrapped = match wrap {
            WrapWith::Key { label, mechanism } => {
                let table = self.fast.table().clone();
                let need = usage::cipher_need(C::WRAP, &mechanism, Direction::Encrypt, Shape::OneShot);
                self.with_key(principal, session, &KeyRef::Label(label), need, |key, rng| {
                    ops::encrypt(key, &mechanism, &k[..], rng, Some(&table))
                })?
            }
            WrapWith::External { spki_der, mechanism } => {
                let public = Public::from_spki(&spki_der)?;
                ops::encrypt_public(&public, &mechanism, &k[..], &mut self.rng, Some(self.fast.table()))?
            }
            _ => return Err(Error::Invalid("wrapping")),
        };
        let handle = self.sessions.get(session, principal)?.insert(Handle::Key(k))?;
        Ok(Response::SessionKey { handle, wrapped })
    }
}

fn to_key16(k: &[u8]) -> Result<Zeroizing<[u8; 16]>, Error> {
    let a: [u8; 16] = k.try_into().map_err(|_| Error::Internal("agreed key length"))?;
    Ok(Zeroizing::new(a))
}

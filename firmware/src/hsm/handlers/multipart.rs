//! Multi-part operations (`OpInit`, `OpUpdate`, `OpFinal`): hashes, SM4 modes and GCM,
//! MACs, each a handle in the caller's session.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::{
    Capabilities as C, CipherMech, HashAlg, KeyRef, MacMech, MultiOp, Principal, Request, Response, SecretBytes,
};
use sha2::Digest as _;

use super::super::{Hsm, usage, usage::Shape};
use crate::alg::{self, sm4, sm4::Direction};
use crate::error::Error;
use crate::keys::LoadedKey;
use crate::ops::{self, Public};
use crate::session::{Handle, Op};

impl<P: Platform> Hsm<P> {
    pub(super) fn multipart_request(
        &mut self,
        principal: &Principal,
        session: u64,
        request: Request,
    ) -> Result<Response, Error> {
        match request {
            Request::OpInit { op } => self.op_init(principal, session, op),
            Request::OpUpdate { handle, data } => self.op_update(principal, session, handle, &data),
            Request::OpFinal { handle, data } => self.op_final(principal, session, handle, &data),
            _ => Err(Error::Internal("not a multi-part request")),
        }
    }

    fn op_init(&mut self, principal: &Principal, session: u64, op: MultiOp) -> Result<Response, Error> {
        let e = Error::Alg;
        let op = match op {
            MultiOp::Hash { alg: HashAlg::Sm3 } => Op::Sm3(alg::sm3::Sm3Ctx::new()),
            MultiOp::Hash { alg: HashAlg::Sha256 } => Op::Sha256(sha2::Sha256::new()),
            MultiOp::HashSm2 { spki_der, distid } => {
                let Public::Sm2(p) = Public::from_spki(&spki_der)? else { return Err(Error::WrongKeyType) };
                let mut ctx = alg::sm3::Sm3Ctx::new();
                ctx.update(&alg::sm2::z_hash(&distid, &p).map_err(e)?);
                Op::Sm3(ctx)
            }
            MultiOp::Encrypt { key, mechanism } => {
                self.sym_op(principal, session, &key, &mechanism, Direction::Encrypt)?
            }
            MultiOp::Decrypt { key, mechanism } => {
                self.sym_op(principal, session, &key, &mechanism, Direction::Decrypt)?
            }
            MultiOp::Mac { key, mechanism } => {
                self.with_key(principal, session, &key, usage::mac_need(mechanism)?, |key, _| {
                    let raw = ops::secret_bytes(key).ok_or(Error::WrongKeyType)?;
                    Ok(match mechanism {
                        MacMech::HmacSm3 => Op::Hmac(alg::sm3::HmacSm3Ctx::new(raw).map_err(e)?),
                        MacMech::Sm4Cmac => Op::Cmac(sm4::Sm4CmacCtx::new(raw).map_err(e)?),
                        MacMech::Sm4CbcMac { .. } => Op::CbcMac(sm4::Sm4CbcMacCtx::new(raw).map_err(e)?),
                        _ => return Err(Error::Invalid("MAC mechanism")),
                    })
                })?
            }
            _ => return Err(Error::Invalid("multi-part operation")),
        };
        let handle = self.sessions.get(session, principal)?.insert(Handle::Op(op))?;
        Ok(Response::Handle(handle))
    }

    fn sym_op(
        &mut self,
        principal: &Principal,
        session: u64,
        key: &KeyRef,
        mechanism: &CipherMech,
        dir: Direction,
    ) -> Result<Op, Error> {
        let base = if dir == Direction::Encrypt { C::ENCRYPT } else { C::DECRYPT };
        let need = usage::cipher_need(base, mechanism, dir, Shape::MultiPart);
        self.with_key(principal, session, key, need, |key, rng| {
            let LoadedKey::Sm4(raw) = key else { return Err(Error::WrongKeyType) };
            Ok(match ops::sym_ctx(&raw[..], mechanism, dir, rng)? {
                ops::SymCtx::Sm4(c) => Op::Sm4(c),
                ops::SymCtx::Gcm(c) => Op::Gcm(c),
            })
        })
    }

    fn op_update(&mut self, principal: &Principal, session: u64, handle: u32, data: &[u8]) -> Result<Response, Error> {
        let s = self.sessions.get(session, principal)?;
        let Handle::Op(op) = s.get_mut(handle)? else { return Err(Error::UnknownHandle) };
        let out = match op {
            Op::Sm3(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Sha256(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Sm4(c) => c.update(data).to_vec(),
            Op::Gcm(c) => match c.update(data) {
                Ok(o) => o.to_vec(),
                Err(e) => {
                    let _ = s.take(handle);
                    return Err(Error::Alg(e));
                }
            },
            Op::Hmac(c) => {
                c.update(data);
                Vec::new()
            }
            Op::Cmac(c) => {
                c.update(data);
                Vec::new()
            }
            Op::CbcMac(c) => {
                c.update(data);
                Vec::new()
            }
        };
        Ok(Response::Data(SecretBytes::new(out)))
    }

    fn op_final(&mut self, principal: &Principal, session: u64, handle: u32, data: &[u8]) -> Result<Response, Error> {
        let s = self.sessions.get(session, principal)?;
        let Handle::Op(op) = s.take(handle)? else { return Err(Error::UnknownHandle) };
        let e = Error::Alg;
        let out = match op {
            Op::Sm3(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Sha256(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Sm4(mut c) => {
                let mut out = c.update(data).to_vec();
                out.extend_from_slice(&c.finalize().map_err(e)?);
                out
            }
            Op::Gcm(mut c) => {
                c.update(data).map_err(e)?;
                c.finalize().map_err(e)?.to_vec()
            }
            Op::Hmac(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::Cmac(mut c) => {
                c.update(data);
                c.finalize().to_vec()
            }
            Op::CbcMac(mut c) => {
                c.update(data);
                c.finalize().map_err(e)?.to_vec()
            }
        };
        Ok(Response::Data(SecretBytes::new(out)))
    }
}

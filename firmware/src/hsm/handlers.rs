//! The request layer's router: the gates every request passes (service stopped, certificate,
//! administration, device state, reserved labels, administrators' authority), then one
//! handler module per domain, each checking access through [`Hsm::use_key`] before any key
//! is touched:
//!
//! | module | requests |
//! |---|---|
//! | `device` | `Ping`, `GetStatus`, `CloseSession`, `SelfTest`, `GenerateRandom`, `Hash` |
//! | `audit` | `ReadAudit`, `AuditCheckpoint` |
//! | `admin` (`hsm/admin.rs`) | logins, ceremonies and the quorum's operations |
//! | `keys` | `GenerateKey`, `ExportPublicKey`, `GetKeyInfo`, `DeleteKey`, `ListKeys`, `SetKeyPassword`, `AuthorizeKey`, `RegisterApplication`, `ImportEnvelopedKeyPair`, `GenerateKeyPair`, `KeyExportPolicy` |
//! | `sign` | `Sign`, `SignBatch`, `Verify` |
//! | `cipher` | `Encrypt`, `Decrypt`, `DecryptBatch`, `Mac`, `VerifyMac` |
//! | `multipart` | `OpInit`, `OpUpdate`, `OpFinal` |
//! | `sessions` | session keys and the SM2 key exchange |
//!
//! A handler answers a [`Step`]: the answer, or work the plan computes afterwards
//! (`hsm/plan.rs`).

use gmhsm_platform::Platform;
use gmhsm_proto::{Capabilities as C, KeyRef, Principal, Request};
use zeroize::Zeroizing;

use super::plan::Step;
use super::{Hsm, State, usage};
use crate::error::Error;
use crate::keys::LoadedKey;

mod audit;
mod cipher;
mod device;
mod keys;
mod multipart;
mod sessions;
mod sign;

impl<P: Platform> Hsm<P> {
    /// Check `request` into a [`Step`]: every gate, then its domain's handler.
    pub(super) fn dispatch(&mut self, principal: &Principal, session: u64, request: Request) -> Result<Step, Error> {
        let kind = request.index();
        if self.service_refuses(principal, &request) {
            return Err(Error::ServiceStopped);
        }
        if self.certificate_refuses(principal, &request) {
            return Err(self.deny(principal, kind, Error::AccessDenied));
        }
        let request = match request {
            r @ (Request::Ping | Request::GetStatus | Request::CloseSession | Request::SelfTest) => {
                return self.device_request(session, r).map(Step::Answer);
            }
            r @ (Request::ReadAudit { .. } | Request::AuditCheckpoint { .. }) => {
                return self.audit_request(principal, kind, r).map(Step::Answer);
            }
            r if super::admin::is_admin(&r) => return self.admin(principal, session, kind, r).map(Step::Answer),
            r => r,
        };
        match self.state {
            State::Factory => return Err(self.deny(principal, kind, Error::NotInitialized)),
            State::Error(_) => return Err(self.deny(principal, kind, Error::Device("error state"))),
            State::Operational(_) => {}
        }
        self.reserved_gate(principal, kind, &request)?;
        self.admin_gate(principal, session, kind, &request)?;
        match request {
            r @ (Request::GenerateRandom { .. } | Request::Hash { .. }) => {
                self.device_request(session, r).map(Step::Answer)
            }
            r @ (Request::Sign { .. } | Request::SignBatch { .. } | Request::Verify { .. }) => {
                self.sign_request(principal, session, r).map(Step::Answer)
            }
            r @ (Request::Encrypt { .. }
            | Request::Decrypt { .. }
            | Request::DecryptBatch { .. }
            | Request::Mac { .. }
            | Request::VerifyMac { .. }) => self.cipher_request(principal, session, r),
            r @ (Request::OpInit { .. } | Request::OpUpdate { .. } | Request::OpFinal { .. }) => {
                self.multipart_request(principal, session, r).map(Step::Answer)
            }
            r @ (Request::GenerateSessionKey { .. }
            | Request::ImportSessionKey { .. }
            | Request::DestroySessionKey { .. }
            | Request::AgreementInit { .. }
            | Request::AgreementRespond { .. }
            | Request::AgreementFinish { .. }) => self.session_request(principal, session, r).map(Step::Answer),
            r => self.key_request(principal, session, kind, r),
        }
    }

    /// Run `f` with the key a [`KeyRef`] names (stored: after every access check and the
    /// rules of [`usage::check_key`]; session: from this session, no capability rules).
    fn with_key<T>(
        &mut self,
        principal: &Principal,
        session: u64,
        key: &KeyRef,
        need: C,
        f: impl FnOnce(&LoadedKey, &mut crate::rng::CardRng<P::Noise>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match key {
            KeyRef::Label(label) => {
                let rec = self.use_key(principal, session, label, need)?;
                usage::check_key(rec.alg, rec.caps, need)?;
                let k = self.cache.get(label).ok_or(Error::Internal("key not in cache after use_key"))?;
                f(k, &mut self.rng)
            }
            KeyRef::Session(h) => {
                let k = LoadedKey::Sm4(Zeroizing::new(*self.sessions.get(session, principal)?.key(*h)?));
                f(&k, &mut self.rng)
            }
        }
    }
}

/// The uncompressed SEC1 encoding of an SM2 point.
fn sec1(p: &sm2::PublicKey) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec![4u8];
    out.extend_from_slice(&crate::alg::sm2::public_xy(p));
    out
}

//! What a quorum's (or an operator's) authority does: auditors, unblocking admin cards,
//! the policy, revoking applications, stopping and starting the service, zeroizing.

use alloc::vec::Vec;
use gmhsm_platform::Platform;
use gmhsm_proto::admin::{AdminAction, AdminOp, AuthorityEnd, Serial};
use gmhsm_proto::admin_card::purpose;
use gmhsm_proto::{AuditEvent, Principal, Request, Response};

use super::super::{Hsm, KEY_PREFIX, META_INIT, META_SERVICE, State};
use super::{APP_PREFIX, AUDITOR_PREFIX, REVOKED_PREFIX, cert_key};
use crate::dmk;
use crate::quorum::record::RECORD_KEY;
use crate::quorum::{AdminRecord, QuorumError, share};

impl<P: Platform> Hsm<P> {
    /// `RegisterAuditor`, `AuthorizeUnblock`, `SetPolicy`, `RevokeApplication`,
    /// `ServiceStop`, `ServiceStart`, `Zeroize`.
    pub(super) fn quorum_operation(&mut self, session: u64, request: Request) -> Result<Response, QuorumError> {
        let local = Some(Principal::Local);
        match request {
            Request::RegisterAuditor { cert_sha256, name } => {
                if !self.may(session, AdminOp::KeyManagement) {
                    return Err(QuorumError::NotAuthorized);
                }
                if self.revoked(&Principal::Application { cert_sha256 }) {
                    return Err(QuorumError::NotAuthorized);
                }
                self.sealed_put(&cert_key(AUDITOR_PREFIX, &cert_sha256), Some(name.as_bytes()))
                    .map_err(|_| QuorumError::Store)?;
                self.log(local, AuditEvent::Admin { action: AdminAction::AuditorRegistered { cert_sha256 } });
                Ok(Response::Done)
            }
            Request::AuthorizeUnblock { serial, card_challenge, new_pin_block } => {
                self.authorize_unblock(session, serial, &card_challenge, new_pin_block.expose_secret())
            }
            Request::SetPolicy { policy } => {
                let mut rec = self.admin_record().ok_or(QuorumError::NotAuthorized)?;
                if !self.may(session, AdminOp::PolicyChange) {
                    return Err(QuorumError::NotAuthorized);
                }
                if policy.n != rec.policy.n || policy.k != rec.policy.k {
                    return Err(QuorumError::Unexpected {
                        expected: "the same n and k (use card-set replacement)",
                        got: "SetPolicy",
                    });
                }
                policy.check().map_err(QuorumError::BadPolicy)?;
                rec.policy = policy;
                self.save_admin_record(&rec)?;
                self.log(local, AuditEvent::Admin { action: AdminAction::PolicyChanged });
                Ok(Response::Done)
            }
            Request::RevokeApplication { cert_sha256 } => self.revoke_application(session, cert_sha256),
            r @ (Request::ServiceStop | Request::ServiceStart) => {
                let stop = r == Request::ServiceStop;
                let got = if stop { "ServiceStop" } else { "ServiceStart" };
                if !matches!(self.state, State::Operational(_)) {
                    return Err(QuorumError::Unexpected { expected: "operational device", got });
                }
                if !self.may_operate(session) {
                    return Err(QuorumError::NotAuthorized);
                }
                self.set_service_stopped(stop)?;
                let action = if stop { AdminAction::ServiceStopped } else { AdminAction::ServiceStarted };
                self.log(local, AuditEvent::Admin { action });
                Ok(Response::Done)
            }
            Request::Zeroize => {
                if matches!(self.state, State::Factory) {
                    return Err(QuorumError::Unexpected { expected: "initialized device", got: "Zeroize" });
                }
                if !self.may(session, AdminOp::Zeroize) {
                    return Err(QuorumError::NotAuthorized);
                }
                self.zeroize_device()?;
                Ok(Response::Done)
            }
            _ => Err(QuorumError::Internal),
        }
    }

    /// `AuthorizeUnblock`: the domain key's authorization for an admin card to reset its PIN
    /// retry counter to `new_pin_block` (the unblock quorum's authority).
    fn authorize_unblock(
        &mut self,
        session: u64,
        serial: Serial,
        card_challenge: &[u8; 16],
        new_pin_block: &[u8; 8],
    ) -> Result<Response, QuorumError> {
        let rec = self.admin_record().ok_or(QuorumError::NotAuthorized)?;
        if !self.may(session, AdminOp::Unblock) {
            return Err(QuorumError::NotAuthorized);
        }
        if rec.card(&serial).is_none() {
            return Err(QuorumError::UnknownCard);
        }
        let domain = {
            let a = self.admin.session(session).authority().ok_or(QuorumError::NotAuthorized)?;
            share::domain_key(a.expose_dk())?
        };
        let sig = share::authorize(
            &mut self.rng,
            &domain,
            purpose::RESET_RETRY_COUNTER,
            &serial,
            card_challenge,
            new_pin_block,
        )?;
        self.log(Some(Principal::Local), AuditEvent::Admin { action: AdminAction::UnblockAuthorized { serial } });
        Ok(Response::DomainAuthorization(sig))
    }

    /// `RevokeApplication`: the certificate's tombstone, then its application and auditor
    /// records (the key-management quorum's authority, on an operational device).
    fn revoke_application(&mut self, session: u64, cert_sha256: [u8; 32]) -> Result<Response, QuorumError> {
        if !matches!(self.state, State::Operational(_)) {
            return Err(QuorumError::Unexpected { expected: "operational device", got: "RevokeApplication" });
        }
        if !self.may(session, AdminOp::KeyManagement) {
            return Err(QuorumError::NotAuthorized);
        }
        // The tombstone first: a cut after it leaves the certificate revoked.
        let (app, auditor) = (cert_key(APP_PREFIX, &cert_sha256), cert_key(AUDITOR_PREFIX, &cert_sha256));
        let store = self.store.as_ref().ok_or(QuorumError::Store)?;
        if !store.contains(&app) && !store.contains(&auditor) {
            return Err(QuorumError::UnknownCard);
        }
        let sealed = |_| QuorumError::Store;
        self.sealed_put(&cert_key(REVOKED_PREFIX, &cert_sha256), Some(&[1])).map_err(sealed)?;
        self.sealed_put(&app, None).map_err(sealed)?;
        self.sealed_put(&auditor, None).map_err(sealed)?;
        self.log(Some(Principal::Local), AuditEvent::Admin { action: AdminAction::ApplicationRevoked { cert_sha256 } });
        Ok(Response::Done)
    }

    /// Persist the service state first, then mirror it in RAM (a failed write changes nothing).
    pub(super) fn set_service_stopped(&mut self, stop: bool) -> Result<(), QuorumError> {
        let value: &[u8] = &[1];
        self.sealed_put(META_SERVICE, stop.then_some(value)).map_err(|_| QuorumError::Store)?;
        self.service_stopped = stop;
        Ok(())
    }

    pub(super) fn save_admin_record(&mut self, rec: &AdminRecord) -> Result<(), QuorumError> {
        let value = postcard::to_allocvec(rec).map_err(|_| QuorumError::Internal)?;
        self.sealed_put(RECORD_KEY, Some(&value)).map_err(|_| QuorumError::Store)?;
        Ok(())
    }

    /// Wipe the DMK first (every stored key is unreadable from that instant), then the
    /// key records, applications, admin record and init marker: the card is back in its
    /// factory state, ready for a new init ceremony. The audit log is kept.
    pub(super) fn zeroize_device(&mut self) -> Result<(), QuorumError> {
        if matches!(self.state, State::Error(_)) {
            self.remount()?;
        }
        // The commit point is the authenticated removal of the init marker; a card whose
        // flash failed its checks (or has no keys to check it) removes it as it is.
        if self.begin_zeroize().is_err() {
            let store = self.store.as_mut().ok_or(QuorumError::Store)?;
            store.remove(META_INIT)?;
            dmk::zeroize(&mut self.tamper).map_err(|_| QuorumError::Store)?;
            crate::integrity::Register::clear(&mut self.tamper).map_err(|_| QuorumError::Store)?;
            self.integrity = None;
            self.mode = None;
        }
        self.state = State::Factory;
        self.cache.clear();
        self.records.clear();
        self.fast.clear();
        self.sessions.clear();
        self.admin.end_all();
        self.admin = Default::default();
        self.service_stopped = false;
        let store = self.store.as_mut().ok_or(QuorumError::Store)?;
        let doomed: Vec<Vec<u8>> = store
            .keys()
            .filter(|k| {
                k.starts_with(KEY_PREFIX)
                    || k.starts_with(APP_PREFIX)
                    || k.starts_with(AUDITOR_PREFIX)
                    || k.starts_with(REVOKED_PREFIX)
                    || *k == RECORD_KEY
                    || *k == META_INIT
                    || *k == META_SERVICE
            })
            .map(|k| k.to_vec())
            .collect();
        for k in doomed {
            store.remove(&k)?;
        }
        let local = Some(Principal::Local);
        self.log(local.clone(), AuditEvent::AuthorityEnded { reason: AuthorityEnd::Zeroized });
        self.log(local, AuditEvent::Admin { action: AdminAction::Zeroized });
        Ok(())
    }

    /// Reopen the store and the audit trail as a boot would: it repairs what a failed write
    /// left, and a store that a flash error stopped takes writes again (a zeroize in the
    /// error state must be able to remove what it wipes).
    pub(super) fn remount(&mut self) -> Result<(), QuorumError> {
        let flash = self.store.take().ok_or(QuorumError::Store)?.into_flash();
        let store = crate::store::Store::open(flash).map_err(|_| QuorumError::Store)?;
        self.audit = Some(crate::audit::AuditLog::load(&store, None));
        self.store = Some(store);
        Ok(())
    }
}

//! Administration requests: logins, ceremonies, and the operations that need a quorum's
//! authority (policy, applications, unblock, zeroize, service stop / start). The rules live
//! in [`crate::quorum`]; this file applies them to the card's store, tamper RAM, audit log
//! and device state.
//!
//! Demo devices: a card initialized by [`Hsm::initialize`] (tests and benches; the simulator's
//! `--demo` runs the init ceremony) has no admin record; on it local administration (`Principal::Local`) needs no quorum, as before.
//! A card initialized by the init ceremony has the record, and then every administrative
//! request needs the session's quorum authority for its operation ([`Hsm::admin_gate`]).
//!
//! Authority belongs to the card-link session that logged the cards in (the front panel's).
//! A tool's session gets it only by approval: it asks (`AdminRequestApproval`, a 4-digit
//! code), the panel shows the code, the people holding the authority approve
//! (`AdminApprove`), and the tool's session then acts under that very authority (or
//! operator / auditor login) until it ends. Roles: operators stop and start the service;
//! auditors read the audit trail (auditor certificates remotely too, [`Hsm::audit_reader`]).
//!
//! In the error state the quorum can still log in, read its status and zeroize.
//!
//! Which of the two a card is comes from tamper RAM (the mode stored with the DMK), never
//! from the flash: on a ceremony card a missing or unauthenticated admin record is the error
//! state, and authority is refused, not granted.

use gmhsm_platform::{Clock, Platform};
use gmhsm_proto::admin::{AdminAction, AdminOp, AuthorityEnd, CardRole, CeremonyKind, CeremonyStep, Serial};
use gmhsm_proto::{AuditEvent, Principal, Request, Response};

use super::{Hsm, State};
use crate::error::Error;
use crate::quorum::record::RECORD_KEY;
use crate::quorum::{AdminRecord, QuorumError};

mod ceremony;
mod login;
mod operations;

pub(super) const APP_PREFIX: &[u8; 4] = b"app:";
/// Auditor certificates (`aud:` + SHA-256).
pub(super) const AUDITOR_PREFIX: &[u8; 4] = b"aud:";
/// Revoked certificates (`rvk:` + SHA-256): never usable nor registrable again.
pub(super) const REVOKED_PREFIX: &[u8; 4] = b"rvk:";

/// The store key `prefix` (4 bytes) + certificate SHA-256, on the stack: the revocation and
/// auditor checks run for every application request.
pub(super) fn cert_key(prefix: &[u8; 4], fp: &[u8; 32]) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..4].copy_from_slice(prefix);
    k[4..].copy_from_slice(fp);
    k
}

/// Is this an administration request (handled here, from local tools only)?
pub(super) fn is_admin(r: &Request) -> bool {
    is_ceremony_step(r)
        || matches!(
            r,
            Request::AdminChallenge
                | Request::AdminLogin { .. }
                | Request::AdminLogout { .. }
                | Request::AdminStatus
                | Request::AuthorizeUnblock { .. }
                | Request::SetPolicy { .. }
                | Request::RevokeApplication { .. }
                | Request::Zeroize
                | Request::ServiceStop
                | Request::ServiceStart
                | Request::AdminRequestApproval
                | Request::AdminApprove { .. }
                | Request::RegisterAuditor { .. }
        )
}

/// Is this a step of a ceremony (its refusals are audited as the ceremony's)?
fn is_ceremony_step(r: &Request) -> bool {
    matches!(
        r,
        Request::InitBegin { .. }
            | Request::ReplaceBegin { .. }
            | Request::CeremonyEnroll { .. }
            | Request::CeremonyShare { .. }
            | Request::CeremonyVerify { .. }
            | Request::CeremonyCommit
            | Request::CeremonyAbort
    )
}

/// Administration requests the quorum may make in the error state.
fn allowed_in_error(r: &Request) -> bool {
    matches!(
        r,
        Request::AdminChallenge
            | Request::AdminLogin { .. }
            | Request::AdminLogout { .. }
            | Request::AdminStatus
            | Request::AdminRequestApproval
            | Request::AdminApprove { .. }
            | Request::Zeroize
    )
}

pub(super) fn serial_of(s: &[u8]) -> Serial {
    Serial::from_slice(&s[..s.len().min(16)]).unwrap_or_default()
}

impl<P: Platform> Hsm<P> {
    /// The admin record, if a ceremony initialized this device; authenticated (one that
    /// fails its check puts the card in the error state and reads as `None`, which callers
    /// on a ceremony card treat as "no authority").
    pub(super) fn admin_record(&mut self) -> Option<AdminRecord> {
        if !self.ceremony_mode() {
            return None;
        }
        let raw = self.sealed_get(RECORD_KEY).ok()??;
        postcard::from_bytes(&raw).ok()
    }

    /// End the authority this session acts under (its own, or its approver's) if it lapsed
    /// (audited).
    fn expire(&mut self, session: u64) {
        let now = self.clock.now_ms();
        let approver = self.admin.sessions.get(&session).and_then(|s| s.grant).map(|g| g.from);
        for id in core::iter::once(session).chain(approver) {
            if self.admin.sessions.get_mut(&id).is_some_and(|s| s.expire(now)) {
                self.log(Some(Principal::Local), AuditEvent::AuthorityEnded { reason: AuthorityEnd::Expired });
            }
        }
    }

    /// Does `session` hold the authority `op` needs, its own or by approval (always true on
    /// a demo device)?
    pub(super) fn may(&mut self, session: u64, op: AdminOp) -> bool {
        if !self.ceremony_mode() {
            return true;
        }
        let Some(rec) = self.admin_record() else { return false };
        self.expire(session);
        self.admin.acting(session).is_some_and(|s| s.may(op, &rec.policy))
    }

    /// The operator / auditor login `session` acts under (its own or by approval).
    fn role_of(&mut self, session: u64) -> Option<CardRole> {
        self.admin.acting(session).and_then(|s| s.role)
    }

    /// Stopping and starting the service: the key-management quorum, or an operator.
    fn may_operate(&mut self, session: u64) -> bool {
        self.may(session, AdminOp::KeyManagement) || self.role_of(session) == Some(CardRole::Operator)
    }

    /// Is this certificate revoked (`RevokeApplication`)?
    pub(super) fn revoked(&self, principal: &Principal) -> bool {
        let Principal::Application { cert_sha256 } = principal else { return false };
        self.store.as_ref().is_some_and(|s| s.contains(&cert_key(REVOKED_PREFIX, cert_sha256)))
    }

    /// Is this a registered auditor's certificate?
    pub(super) fn auditor(&self, principal: &Principal) -> bool {
        let Principal::Application { cert_sha256 } = principal else { return false };
        self.sealed_peek(&cert_key(AUDITOR_PREFIX, cert_sha256)).is_some()
    }

    /// May `principal` on `session` read the audit trail? The appliance's own tools, and
    /// registered auditor certificates over the private link.
    pub(super) fn audit_reader(&self, principal: &Principal) -> bool {
        *principal == Principal::Local || self.auditor(principal)
    }

    /// Refuse and audit.
    fn refuse(&mut self, principal: &Principal, kind: u8, e: QuorumError) -> Error {
        self.deny(principal, kind, Error::Quorum(e))
    }

    /// Requests that existed before quorum administration and need its authority on a
    /// ceremony-initialized device: application registration and, from the local principal,
    /// SDF key indices (`sdf:` labels) and their passwords.
    pub(super) fn admin_gate(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        request: &Request,
    ) -> Result<(), Error> {
        let local = *principal == Principal::Local;
        let sdf = |l: &gmhsm_proto::Label| l.starts_with("sdf:");
        if let Request::RegisterApplication { cert_sha256, .. } = request
            && self.revoked(&Principal::Application { cert_sha256: *cert_sha256 })
        {
            return Err(self.refuse(principal, kind, QuorumError::NotAuthorized));
        }
        let gated = match request {
            Request::RegisterApplication { .. } => true,
            Request::GenerateKey { label, .. }
            | Request::SetKeyPassword { label, .. }
            | Request::DeleteKey { label } => local && sdf(label),
            _ => false,
        };
        if !gated || !self.ceremony_mode() {
            return Ok(());
        }
        if !local || !self.may(session, AdminOp::KeyManagement) {
            return Err(self.refuse(principal, kind, QuorumError::NotAuthorized));
        }
        if let Request::RegisterApplication { cert_sha256, .. } = request {
            self.log(
                Some(Principal::Local),
                AuditEvent::Admin { action: AdminAction::ApplicationRegistered { cert_sha256: *cert_sha256 } },
            );
        }
        Ok(())
    }

    /// The session closed: its logins and authority end with it.
    pub(super) fn admin_session_closed(&mut self, session: u64) {
        if let Some(mut s) = self.admin.sessions.remove(&session)
            && s.authority().is_some()
        {
            s.end();
            self.log(Some(Principal::Local), AuditEvent::AuthorityEnded { reason: AuthorityEnd::SessionClosed });
        }
    }

    /// One administration request (`Request::AdminChallenge` and after).
    pub(super) fn admin(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        request: Request,
    ) -> Result<Response, Error> {
        if *principal != Principal::Local {
            return Err(self.refuse(principal, kind, QuorumError::NotLocal));
        }
        if matches!(self.state, State::Error(_)) && !allowed_in_error(&request) {
            return Err(self.deny(principal, kind, Error::Device("error state")));
        }
        let ceremony_step = is_ceremony_step(&request);
        let serial = match &request {
            Request::CeremonyEnroll { serial, .. }
            | Request::CeremonyShare { serial, .. }
            | Request::CeremonyVerify { serial, .. } => Some(serial.clone()),
            _ => None,
        };
        match self.admin_inner(session, request) {
            Ok(r) => Ok(r),
            Err(e) if ceremony_step => {
                let ceremony = self.admin.ceremony.kind().unwrap_or(CeremonyKind::Init);
                self.log(
                    Some(principal.clone()),
                    AuditEvent::Ceremony { ceremony, step: CeremonyStep::Refused, serial },
                );
                Err(Error::Quorum(e))
            }
            Err(e) => Err(self.refuse(principal, kind, e)),
        }
    }

    fn admin_inner(&mut self, session: u64, request: Request) -> Result<Response, QuorumError> {
        match request {
            r @ (Request::AdminChallenge
            | Request::AdminRequestApproval
            | Request::AdminApprove { .. }
            | Request::AdminStatus
            | Request::AdminLogin { .. }
            | Request::AdminLogout { .. }) => self.login_request(session, r),
            r if is_ceremony_step(&r) => self.ceremony_request(session, r),
            r => self.quorum_operation(session, r),
        }
    }
}

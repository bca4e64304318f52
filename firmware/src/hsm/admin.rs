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

use alloc::vec::Vec;
use gmhsm_platform::{Clock, Platform};
use gmhsm_proto::admin::{
    AdminAction, AdminOp, AdminStatus, AuthorityEnd, CardRole, CeremonyKind, CeremonyStep, Serial,
};
use gmhsm_proto::admin_card::purpose;
use gmhsm_proto::{AuditEvent, Principal, Request, Response, Status};
use zeroize::Zeroizing;

use super::{Hsm, KEY_PREFIX, META_INIT, META_SERVICE, State, store_status};
use crate::dmk;
use crate::quorum::ceremony::{Input, Output, Secrets};
use crate::quorum::record::RECORD_KEY;
use crate::quorum::{AdminRecord, Committed, QuorumError, share};

const APP_PREFIX: &[u8; 4] = b"app:";
/// Auditor certificates (`aud:` + SHA-256).
const AUDITOR_PREFIX: &[u8; 4] = b"aud:";
/// Revoked certificates (`rvk:` + SHA-256): never usable nor registrable again.
const REVOKED_PREFIX: &[u8; 4] = b"rvk:";

/// The store key `prefix` (4 bytes) + certificate SHA-256, on the stack: the revocation and
/// auditor checks run for every application request.
fn cert_key(prefix: &[u8; 4], fp: &[u8; 32]) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..4].copy_from_slice(prefix);
    k[4..].copy_from_slice(fp);
    k
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

fn serial_of(s: &[u8]) -> Serial {
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
    fn refuse(&mut self, principal: &Principal, kind: u8, e: QuorumError) -> Status {
        self.deny(principal, kind, e.status())
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
    ) -> Result<(), Status> {
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

    fn admin_status(&mut self, session: u64) -> AdminStatus {
        self.expire(session);
        let rec = self.admin_record();
        let ceremony_initialized = self.ceremony_mode();
        let now = self.clock.now_ms();
        let ceremony = self.admin.ceremony.kind();
        let own = self.admin.session(session);
        let approval = own.approval;
        let approver = own.grantable().is_some() && own.grant.is_none();
        let awaiting = if approver { self.admin.waiting(session, None).map(|(_, c)| c) } else { None };
        let s = self.admin.acting(session);
        let authority = s.and_then(|s| s.authority());
        AdminStatus {
            ceremony_initialized,
            n: rec.as_ref().map_or(0, |r| r.policy.n),
            k: rec.as_ref().map_or(0, |r| r.policy.k),
            epoch: rec.as_ref().map_or(0, |r| r.epoch),
            admins: s.map_or(0, |s| s.admins()),
            authority: authority.is_some(),
            expires_in_ms: authority.map_or(0, |a| a.expires_at.saturating_sub(now)),
            role: s.and_then(|s| s.role),
            ceremony,
            policy: rec.map(|r| r.policy),
            approval,
            awaiting,
        }
    }

    /// The share-wrapping key of the stored DMK.
    fn stored_share_key(&mut self) -> Result<Zeroizing<[u8; 16]>, QuorumError> {
        match dmk::load(&mut self.tamper) {
            dmk::Slot::Key(k, _) => Ok(share::share_key(&k)),
            _ => Err(QuorumError::Internal),
        }
    }

    fn random<const N: usize>(&mut self) -> Result<Zeroizing<[u8; N]>, QuorumError> {
        let mut b = Zeroizing::new([0u8; N]);
        self.rng.fill(&mut b[..]).map_err(|_| QuorumError::Rng)?;
        Ok(b)
    }

    /// A login nonce: from the DRBG; in the error state with a failed noise source, HMAC-SM3
    /// under a DMK-derived key of (boot count, a counter of this boot), so the quorum can
    /// still log in to zeroize. Unique (never repeats on this device) and unpredictable to
    /// anyone without the DMK, which is all a challenge needs.
    fn login_nonce(&mut self) -> Result<[u8; 32], QuorumError> {
        if let Ok(n) = self.random::<32>() {
            return Ok(*n);
        }
        let key = self.stored_share_key()?;
        let count = self.admin.fresh_id();
        let mut m = Vec::with_capacity(40);
        m.extend_from_slice(b"gmhsm/login-nonce/v1");
        m.extend_from_slice(&self.boots.to_be_bytes());
        m.extend_from_slice(&count.to_be_bytes());
        crate::alg::sm3::hmac_sm3(&key[..], &m).map_err(|_| QuorumError::Internal)
    }

    /// A fresh 4-digit approval code for `session`, unlike any other waiting.
    fn approval_code(&mut self, session: u64) -> Result<u16, QuorumError> {
        loop {
            let n = self.login_nonce()?;
            let code = u16::from_be_bytes([n[0], n[1]]) % 10_000;
            if self.admin.waiting(session, Some(code)).is_none() {
                return Ok(code);
            }
        }
    }

    /// `AdminApprove`: from a session with an authority or login of its own.
    fn approve(&mut self, session: u64, code: u16, approve: bool) -> Result<Response, QuorumError> {
        self.expire(session);
        let own = self.admin.session(session);
        let id = own.grantable().filter(|_| own.grant.is_none()).ok_or(QuorumError::NotAuthorized)?;
        let (tool, code) = self.admin.waiting(session, Some(code)).ok_or(QuorumError::UnknownCard)?;
        let t = self.admin.session(tool);
        t.approval = None;
        if approve {
            t.grant = Some(crate::quorum::Grant { from: session, id });
        }
        let action = AdminAction::ToolSession { code, approved: approve };
        self.log(Some(Principal::Local), AuditEvent::Admin { action });
        Ok(Response::AdminState(self.admin_status(session)))
    }

    /// One administration request (`Request::AdminChallenge` and after).
    pub(super) fn admin(
        &mut self,
        principal: &Principal,
        session: u64,
        kind: u8,
        request: Request,
    ) -> Result<Response, Status> {
        if *principal != Principal::Local {
            return Err(self.refuse(principal, kind, QuorumError::NotLocal));
        }
        if matches!(self.state, State::Error(_)) && !allowed_in_error(&request) {
            return Err(self.deny(principal, kind, Status::DeviceError));
        }
        let ceremony_step = matches!(
            request,
            Request::InitBegin { .. }
                | Request::ReplaceBegin { .. }
                | Request::CeremonyEnroll { .. }
                | Request::CeremonyShare { .. }
                | Request::CeremonyVerify { .. }
                | Request::CeremonyCommit
                | Request::CeremonyAbort
        );
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
                Err(e.status())
            }
            Err(e) => Err(self.refuse(principal, kind, e)),
        }
    }

    fn admin_inner(&mut self, session: u64, request: Request) -> Result<Response, QuorumError> {
        let local = Some(Principal::Local);
        match request {
            Request::AdminChallenge => {
                let n = self.login_nonce()?;
                self.admin.session(session).set_nonce(n);
                Ok(Response::AdminNonce(n))
            }
            Request::AdminRequestApproval => {
                // Only while someone can approve: a quorum or an operator / auditor logged in.
                let approver = self.admin.sessions.iter().any(|(id, s)| *id != session && s.grantable().is_some());
                if !approver && self.admin_record().is_some() {
                    return Err(QuorumError::NotAuthorized);
                }
                if self.admin.session(session).approval.is_none() {
                    let code = self.approval_code(session)?;
                    self.admin.session(session).approval = Some(code);
                }
                Ok(Response::AdminState(self.admin_status(session)))
            }
            Request::AdminApprove { code, approve } => self.approve(session, code, approve),
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
            Request::AdminStatus => Ok(Response::AdminState(self.admin_status(session))),
            Request::AdminLogin { serial, signature, share } => self.login(session, serial, &signature, &share),
            Request::AdminLogout { serial } => {
                let ended = self.admin.session(session).logout(serial.as_deref());
                if let Some(s) = serial {
                    self.log(local.clone(), AuditEvent::CardLogout { serial: s });
                }
                if let Some(reason) = ended {
                    self.log(local, AuditEvent::AuthorityEnded { reason });
                }
                Ok(Response::AdminState(self.admin_status(session)))
            }
            Request::InitBegin { policy } => {
                if !matches!(self.state, State::Factory) {
                    return Err(QuorumError::Unexpected { expected: "factory state", got: "InitBegin" });
                }
                let dk = self.random::<32>()?;
                let dmk = self.random::<32>()?;
                let domain_id = *self.random::<16>()?;
                let secrets = Secrets::new(dk, Some(dmk.clone()), share::share_key(&dmk))?;
                self.ceremony(session, Input::BeginInit { policy, domain_id, secrets })
            }
            Request::ReplaceBegin { n, k } => {
                let rec = self
                    .admin_record()
                    .ok_or(QuorumError::Unexpected { expected: "ceremony-initialized device", got: "ReplaceBegin" })?;
                if !self.may(session, AdminOp::CardReplacement) {
                    return Err(QuorumError::NotAuthorized);
                }
                let dk = {
                    let a = self.admin.session(session).authority().ok_or(QuorumError::NotAuthorized)?;
                    Zeroizing::new(*a.expose_dk())
                };
                let mut policy = rec.policy;
                policy.n = n;
                policy.k = k;
                policy.thresholds = clamp_thresholds(policy.thresholds, rec.policy.k, k, n);
                let secrets = Secrets::new(dk, None, self.stored_share_key()?)?;
                self.ceremony(session, Input::BeginReplace { policy, old: &rec, secrets })
            }
            Request::CeremonyEnroll { serial, role, public_key } => {
                self.ceremony(session, Input::Enroll { serial, role, public_key })
            }
            Request::CeremonyShare { serial, card_challenge } => {
                self.ceremony(session, Input::Share { serial: &serial, card_challenge })
            }
            Request::CeremonyVerify { serial, signature, share } => {
                let nonce = self.admin.session(session).take_nonce()?;
                self.ceremony(session, Input::Verify { serial: &serial, nonce, signature: &signature, share: &share })
            }
            Request::CeremonyCommit => {
                if self.admin.ceremony.kind() == Some(CeremonyKind::Init) && !matches!(self.state, State::Factory) {
                    return Err(QuorumError::Unexpected { expected: "factory state", got: "CeremonyCommit" });
                }
                self.ceremony(session, Input::Commit)
            }
            Request::CeremonyAbort => self.ceremony(session, Input::Abort),
            Request::AuthorizeUnblock { serial, card_challenge, new_pin_block } => {
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
                    &card_challenge,
                    new_pin_block.expose_secret(),
                )?;
                self.log(local, AuditEvent::Admin { action: AdminAction::UnblockAuthorized { serial } });
                Ok(Response::DomainAuthorization(sig))
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
            Request::RevokeApplication { cert_sha256 } => {
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
                self.log(local, AuditEvent::Admin { action: AdminAction::ApplicationRevoked { cert_sha256 } });
                Ok(Response::Done)
            }
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

    /// Persist the service state first, then mirror it in RAM (a failed write changes nothing).
    fn set_service_stopped(&mut self, stop: bool) -> Result<(), QuorumError> {
        let value: &[u8] = &[1];
        self.sealed_put(META_SERVICE, stop.then_some(value)).map_err(|_| QuorumError::Store)?;
        self.service_stopped = stop;
        Ok(())
    }

    fn save_admin_record(&mut self, rec: &AdminRecord) -> Result<(), QuorumError> {
        let value = postcard::to_allocvec(rec).map_err(|_| QuorumError::Internal)?;
        self.sealed_put(RECORD_KEY, Some(&value)).map_err(|_| QuorumError::Store)?;
        Ok(())
    }

    fn login(&mut self, session: u64, serial: Serial, signature: &[u8], blob: &[u8]) -> Result<Response, QuorumError> {
        let rec = self
            .admin_record()
            .ok_or(QuorumError::Unexpected { expected: "ceremony-initialized device", got: "AdminLogin" })?;
        self.expire(session);
        let nonce = self.admin.session(session).take_nonce()?;
        let local = Some(Principal::Local);
        let card = rec.card(&serial).cloned();
        let checked = match &card {
            None => Err(QuorumError::UnknownCard),
            Some(c) => share::verify_card(&c.public_key, &serial, &nonce, signature).map(|()| c.clone()),
        };
        let card = match checked {
            Ok(c) => c,
            Err(e) => {
                self.log(local, AuditEvent::CardLogin { serial, role: card.map(|c| c.role), accepted: false });
                return Err(e);
            }
        };
        let now = self.clock.now_ms();
        let counted = match card.role {
            CardRole::Administrator => {
                let opened = self
                    .stored_share_key()
                    .and_then(|key| share::open(&key, &rec.domain_id, rec.epoch, card.x, &serial, blob));
                let id = self.admin.fresh_id();
                opened.and_then(|s| self.admin.session(session).add_admin(serial.clone(), s, &rec, now, id))
            }
            role => {
                let id = self.admin.fresh_id();
                self.admin.session(session).set_role(role, serial.clone(), id);
                Ok(false)
            }
        };
        let accepted = counted.is_ok();
        self.log(local.clone(), AuditEvent::CardLogin { serial, role: Some(card.role), accepted });
        if counted? {
            let cards = self.admin.session(session).admins();
            self.log(local, AuditEvent::AuthorityGranted { cards });
        }
        Ok(Response::AdminState(self.admin_status(session)))
    }

    /// Advance the ceremony state machine by one input; audit the step; apply a commit.
    fn ceremony(&mut self, session: u64, input: Input<'_>) -> Result<Response, QuorumError> {
        let serial = match &input {
            Input::Enroll { serial, .. } => Some(serial.clone()),
            Input::Share { serial, .. } | Input::Verify { serial, .. } => Some(serial_of(serial)),
            _ => None,
        };
        let state = core::mem::take(&mut self.admin.ceremony);
        let kind_before = state.kind();
        let (next, out) = state.step(session, input, &mut self.rng);
        self.admin.ceremony = next;
        let out = out?;
        let ceremony = self.admin.ceremony.kind().or(kind_before).unwrap_or(CeremonyKind::Init);
        let local = Some(Principal::Local);
        let (step, response) = match out {
            Output::Begun => (CeremonyStep::Begun, Response::Done),
            Output::Enrolled { x, domain_key } => {
                (CeremonyStep::CardEnrolled, Response::CardEnrolled { x, domain_key })
            }
            Output::Share { blob, authorization } => {
                (CeremonyStep::ShareIssued, Response::CardShare { blob, authorization })
            }
            Output::Verified => (CeremonyStep::CardVerified, Response::Done),
            Output::Aborted => (CeremonyStep::Aborted, Response::Done),
            Output::Committed(c) => {
                self.apply_commit(c)?;
                (CeremonyStep::Committed, Response::Done)
            }
        };
        self.log(local, AuditEvent::Ceremony { ceremony, step, serial });
        Ok(response)
    }

    fn apply_commit(&mut self, c: Committed) -> Result<(), QuorumError> {
        match (c.kind, c.dmk) {
            (CeremonyKind::Init, Some(dmk)) => {
                // Order: DMK (ceremony mode), record, then the init marker (the commit point,
                // `Hsm::commit_init`). A power cut before the marker boots to the factory state.
                let value = postcard::to_allocvec(&c.record).map_err(|_| QuorumError::Internal)?;
                self.commit_init(&dmk, dmk::Mode::Ceremony, Some(&value)).map_err(|_| QuorumError::Store)?;
                self.log(None, AuditEvent::Initialized);
                self.ensure_device_keys().map_err(|_| QuorumError::Store)
            }
            (CeremonyKind::CardReplacement, None) => {
                self.save_admin_record(&c.record)?;
                // The old cards' logins are void: every session's authority ends.
                let had = self.admin.sessions.values().any(|s| s.authority().is_some());
                self.admin.end_all();
                if had {
                    self.log(
                        Some(Principal::Local),
                        AuditEvent::AuthorityEnded { reason: AuthorityEnd::CardSetReplaced },
                    );
                }
                Ok(())
            }
            _ => Err(QuorumError::Internal),
        }
    }

    /// Wipe the DMK first (every stored key is unreadable from that instant), then the
    /// key records, applications, admin record and init marker: the card is back in its
    /// factory state, ready for a new init ceremony. The audit log is kept.
    fn zeroize_device(&mut self) -> Result<(), QuorumError> {
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
            store.remove(&k).map_err(|e| {
                let _ = store_status(e);
                QuorumError::Store
            })?;
        }
        let local = Some(Principal::Local);
        self.log(local.clone(), AuditEvent::AuthorityEnded { reason: AuthorityEnd::Zeroized });
        self.log(local, AuditEvent::Admin { action: AdminAction::Zeroized });
        Ok(())
    }
}

impl<P: Platform> Hsm<P> {
    /// Reopen the store and the audit trail as a boot would: it repairs what a failed write
    /// left, and a store that a flash error stopped takes writes again (a zeroize in the
    /// error state must be able to remove what it wipes).
    fn remount(&mut self) -> Result<(), QuorumError> {
        let flash = self.store.take().ok_or(QuorumError::Store)?.into_flash();
        let store = crate::store::Store::open(flash).map_err(|_| QuorumError::Store)?;
        self.audit = Some(crate::audit::AuditLog::load(&store, None));
        self.store = Some(store);
        Ok(())
    }
}

/// After a replacement changes k and n: an operation that needed the old k needs the new k;
/// any other keeps its quorum, clamped into the new k..=n.
fn clamp_thresholds(mut t: gmhsm_proto::Thresholds, old_k: u8, k: u8, n: u8) -> gmhsm_proto::Thresholds {
    for v in [
        &mut t.key_management,
        &mut t.policy_change,
        &mut t.card_replacement,
        &mut t.unblock,
        &mut t.zeroize,
        &mut t.backup,
        &mut t.restore,
        &mut t.firmware_update,
    ] {
        *v = if *v == old_k { k } else { (*v).clamp(k, n.max(k)) };
    }
    t
}

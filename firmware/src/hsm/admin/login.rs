//! Logins and tool sessions: challenges, card logins (administrators' shares, operators,
//! auditors), logouts, approval of a tool's session by those holding authority, and the
//! administration status a session sees.

use alloc::vec::Vec;
use gmhsm_platform::{Clock, Platform};
use gmhsm_proto::admin::{AdminAction, AdminStatus, CardRole, Serial};
use gmhsm_proto::{AuditEvent, Principal, Request, Response};
use zeroize::Zeroizing;

use super::super::Hsm;
use crate::dmk;
use crate::quorum::{QuorumError, share};

impl<P: Platform> Hsm<P> {
    /// `AdminChallenge`, `AdminRequestApproval`, `AdminApprove`, `AdminStatus`, `AdminLogin`,
    /// `AdminLogout`.
    pub(super) fn login_request(&mut self, session: u64, request: Request) -> Result<Response, QuorumError> {
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
            _ => Err(QuorumError::Internal),
        }
    }

    pub(super) fn admin_status(&mut self, session: u64) -> AdminStatus {
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
    pub(super) fn stored_share_key(&mut self) -> Result<Zeroizing<[u8; 16]>, QuorumError> {
        match dmk::load(&mut self.tamper) {
            dmk::Slot::Key(k, _) => Ok(share::share_key(&k)),
            _ => Err(QuorumError::Internal),
        }
    }

    pub(super) fn random<const N: usize>(&mut self) -> Result<Zeroizing<[u8; N]>, QuorumError> {
        let mut b = Zeroizing::new([0u8; N]);
        self.rng.fill(&mut b[..]).map_err(|_| QuorumError::Rng)?;
        Ok(b)
    }

    /// A login nonce: from the DRBG; in the error state with a failed noise source, HMAC-SM3
    /// under a DMK-derived key of (boot count, a counter of this boot), so the quorum can
    /// still log in to zeroize. Unique (never repeats on this device) and unpredictable to
    /// anyone without the DMK, which is all a challenge needs.
    pub(super) fn login_nonce(&mut self) -> Result<[u8; 32], QuorumError> {
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
    pub(super) fn approval_code(&mut self, session: u64) -> Result<u16, QuorumError> {
        loop {
            let n = self.login_nonce()?;
            let code = u16::from_be_bytes([n[0], n[1]]) % 10_000;
            if self.admin.waiting(session, Some(code)).is_none() {
                return Ok(code);
            }
        }
    }

    /// `AdminApprove`: from a session with an authority or login of its own.
    pub(super) fn approve(&mut self, session: u64, code: u16, approve: bool) -> Result<Response, QuorumError> {
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

    pub(super) fn login(
        &mut self,
        session: u64,
        serial: Serial,
        signature: &[u8],
        blob: &[u8],
    ) -> Result<Response, QuorumError> {
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
}

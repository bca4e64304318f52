//! The init and card-set replacement ceremonies: begun here, advanced by value through
//! [`crate::quorum::ceremony`], audited step by step, and applied at their commit.

use gmhsm_platform::Platform;
use gmhsm_proto::admin::{AdminOp, AuthorityEnd, CeremonyKind, CeremonyStep};
use gmhsm_proto::{AuditEvent, Principal, Request, Response};
use zeroize::Zeroizing;

use super::super::{Hsm, State};
use super::serial_of;
use crate::dmk;
use crate::quorum::ceremony::{Input, Output, Secrets};
use crate::quorum::{Committed, QuorumError, share};

impl<P: Platform> Hsm<P> {
    /// `InitBegin`, `ReplaceBegin` and the ceremony steps.
    pub(super) fn ceremony_request(&mut self, session: u64, request: Request) -> Result<Response, QuorumError> {
        match request {
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
            _ => Err(QuorumError::Internal),
        }
    }

    /// Advance the ceremony state machine by one input; audit the step; apply a commit.
    pub(super) fn ceremony(&mut self, session: u64, input: Input<'_>) -> Result<Response, QuorumError> {
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

    pub(super) fn apply_commit(&mut self, c: Committed) -> Result<(), QuorumError> {
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

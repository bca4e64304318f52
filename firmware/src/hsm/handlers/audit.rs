//! Reading the audit trail (local tools and registered auditors) and signing checkpoints of
//! it (local tools; `hsm/checkpoint.rs`).

use gmhsm_platform::Platform;
use gmhsm_proto::{Principal, Request, Response};

use super::super::Hsm;
use crate::error::Error;

/// Most records per `ReadAudit`.
const MAX_READ: u16 = 256;

impl<P: Platform> Hsm<P> {
    pub(super) fn audit_request(
        &mut self,
        principal: &Principal,
        kind: u8,
        request: Request,
    ) -> Result<Response, Error> {
        match request {
            Request::ReadAudit { from_seq, max } => {
                if !self.audit_reader(principal) {
                    return Err(self.deny(principal, kind, Error::AccessDenied));
                }
                let (Some(store), Some(audit)) = (self.store.as_ref(), self.audit.as_ref()) else {
                    return Err(Error::Device("no store or audit log"));
                };
                Ok(Response::Audit(audit.read(store, from_seq, max.min(MAX_READ))))
            }
            Request::AuditCheckpoint { seq } => {
                if *principal != Principal::Local {
                    return Err(self.deny(principal, kind, Error::AccessDenied));
                }
                self.audit_checkpoint(seq).map(Response::AuditCheckpoint)
            }
            _ => Err(Error::Internal("not an audit request")),
        }
    }
}

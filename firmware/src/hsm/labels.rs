//! Reserved label prefixes: the card's and the quorum's alone.
//!
//! `sdf:` names GM/T 0018 key indices (shared by every application that uses the index;
//! managed by the quorum, see `admin_gate`) and `tls:` the daemon's card-held TLS server keys
//! (owned by the appliance). An application that could create one would hijack an index other
//! applications use, or block the appliance's own key; so an application may not create,
//! import, delete or set the password of a key under a reserved prefix (`AccessDenied`,
//! audited). Using such a key within its domains and capabilities is unaffected.

use gmhsm_platform::Platform;
use gmhsm_proto::{Label, Principal, Request};

use super::Hsm;
use crate::error::Error;

/// The reserved prefixes (documented in `docs/protocol.md`).
pub const RESERVED_PREFIXES: [&str; 2] = ["sdf:", "tls:"];

/// Is `label` under a reserved prefix?
pub fn is_reserved(label: &Label) -> bool {
    RESERVED_PREFIXES.iter().any(|p| label.starts_with(p))
}

/// The label a request would create, import, delete or re-protect.
fn managed_label(request: &Request) -> Option<&Label> {
    match request {
        Request::GenerateKey { label, .. }
        | Request::ImportEnvelopedKeyPair { label, .. }
        | Request::DeleteKey { label }
        | Request::SetKeyPassword { label, .. } => Some(label),
        _ => None,
    }
}

impl<P: Platform> Hsm<P> {
    /// Refuse (audited) an application's management of a reserved label.
    pub(super) fn reserved_gate(&mut self, principal: &Principal, kind: u8, request: &Request) -> Result<(), Error> {
        let app = matches!(principal, Principal::Application { .. });
        match managed_label(request) {
            Some(label) if app && is_reserved(label) => Err(self.deny(principal, kind, Error::AccessDenied)),
            _ => Ok(()),
        }
    }
}

//! Faults injected into the panel's card link (the simulator's counterpart of a link that
//! loses a frame): with [`LinkFaults::drop_logouts`] every `AdminLogout` the panel sends is
//! lost — never reaches the crypto card — while the link itself stays up and answers
//! everything else. Tests use it to show the panel's fail-closed logout: it retries, then
//! closes its card link, and the card ends every login held on that link.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gmhsm_proto::Request;
use gmhsm_provisioning::CeremonyError;

/// Shared switches of the panel's card link (cheap to clone; all off by default).
#[derive(Clone, Default)]
pub struct LinkFaults {
    drop_logouts: Arc<AtomicBool>,
}

impl LinkFaults {
    /// Lose every `AdminLogout` from now on (`false`: deliver them again).
    pub fn drop_logouts(&self, on: bool) {
        self.drop_logouts.store(on, Ordering::SeqCst);
    }

    /// `Err` when `request` is to be lost: the sender sees a failed exchange, the card sees
    /// nothing, and the link is not closed by it.
    pub(crate) fn lose(&self, request: &Request) -> Result<(), CeremonyError> {
        if matches!(request, Request::AdminLogout { .. }) && self.drop_logouts.load(Ordering::SeqCst) {
            return Err(CeremonyError::Link("AdminLogout lost (injected fault)".into()));
        }
        Ok(())
    }
}

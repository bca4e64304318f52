//! Signed audit checkpoints (`Request::AuditCheckpoint`): the card's SM2 signature with its
//! audit key over the hash of one audit record, which commits to the chain before it.
//!
//! The audit key (`audit:sign`, SM2, owned by the appliance, capability `VERIFY` only, no
//! domain) is made at initialization beside the SDF index-0 pairs. No request can sign with
//! it (no principal holds `SIGN` on it), so a checkpoint cannot be forged through the card;
//! its public key is read with `ExportPublicKey` and pinned by the auditor.

use gmhsm_platform::Platform;
use gmhsm_proto::audit::checkpoint_message;
use gmhsm_proto::{AuditCheckpoint, Label, Mechanism};

use super::{Hsm, State};
use crate::error::Error;
use crate::ops;

/// Label of the audit checkpoint key.
pub const AUDIT_KEY: &str = "audit:sign";

impl<P: Platform> Hsm<P> {
    /// Sign a checkpoint at record `seq`: refused unless the card is operational, its log has
    /// no chain break, and record `seq` is held and authentic.
    pub(super) fn audit_checkpoint(&mut self, seq: u64) -> Result<AuditCheckpoint, Error> {
        if !matches!(self.state, State::Operational(_)) {
            return Err(Error::Device("no store, audit log or integrity keys"));
        }
        let (Some(store), Some(audit), Some(keys)) =
            (self.store.as_ref(), self.audit.as_ref(), self.integrity.as_ref())
        else {
            return Err(Error::Device("no store, audit log or integrity keys"));
        };
        if audit.state().chain_break.is_some() {
            return Err(Error::Device("no store, audit log or integrity keys"));
        }
        let (_, record_hash) = audit.record(store, keys, seq).ok_or(Error::Invalid("audit sequence number"))?;
        let label = Label::try_from(AUDIT_KEY).map_err(|_| Error::Internal("audit key label"))?;
        let rec = self.load_record(&label)?;
        self.ensure_loaded(&label, &rec)?;
        let key = self.cache.get(&label).ok_or(Error::Internal("audit key not loaded"))?;
        let message = checkpoint_message(seq, &record_hash);
        let signature = ops::sign(key, &Mechanism::sm2_default(), &message, &mut self.rng)?;
        Ok(AuditCheckpoint { seq, record_hash, signature })
    }
}

//! Off-appliance check of a signed audit checkpoint (`Request::AuditCheckpoint`): the card's
//! SM2 signature, with its audit key, over the hash of the last record an auditor read.

use gmhsm_proto::audit::checkpoint_message;
use gmhsm_proto::{AuditCheckpoint, AuditRecord};
use sm2::dsa::signature::Verifier;
use sm2::pkcs8::DecodePublicKey;

/// Label of the card's audit checkpoint key (read its public key with `ExportPublicKey` and
/// pin it).
pub const AUDIT_KEY: &str = "audit:sign";

/// Why a checkpoint does not vouch for the records read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    /// The checkpoint is for another record, or that record's hash differs from what was read.
    WrongRecord,
    /// The public key is not an SM2 SubjectPublicKeyInfo.
    BadKey,
    /// The signature does not verify under the pinned key.
    BadSignature,
}

impl core::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            CheckpointError::WrongRecord => "the checkpoint names another record or another hash",
            CheckpointError::BadKey => "the audit public key is not an SM2 key",
            CheckpointError::BadSignature => "the checkpoint signature does not verify",
        })
    }
}

/// Check that `cp` signs `last` (the last record of a run whose `prev_hash` chain the caller
/// checked) under the audit key `spki_der`: then the card vouches for the whole run.
pub fn verify_checkpoint(spki_der: &[u8], last: &AuditRecord, cp: &AuditCheckpoint) -> Result<(), CheckpointError> {
    if cp.seq != last.seq || cp.record_hash != crate::audit_hash(last) {
        return Err(CheckpointError::WrongRecord);
    }
    let public = sm2::PublicKey::from_public_key_der(spki_der).map_err(|_| CheckpointError::BadKey)?;
    let id = core::str::from_utf8(gmhsm_proto::SM2_DEFAULT_ID).map_err(|_| CheckpointError::BadKey)?;
    let key = sm2::dsa::VerifyingKey::new(id, public).map_err(|_| CheckpointError::BadKey)?;
    let sig = sm2::dsa::Signature::from_der(&cp.signature).map_err(|_| CheckpointError::BadSignature)?;
    key.verify(&checkpoint_message(cp.seq, &cp.record_hash), &sig).map_err(|_| CheckpointError::BadSignature)
}

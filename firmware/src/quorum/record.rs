//! The persistent administration record: policy, card registry, domain id, epoch, DK check.

use alloc::vec::Vec;
use gmhsm_proto::admin::{CardKey, CardRole, EnrolledCard, QuorumPolicy};
use serde::{Deserialize, Serialize};

/// Store key of the record. Present = the device was initialized by a ceremony.
pub const RECORD_KEY: &[u8] = b"q:admin";

/// What the card remembers about its administration (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminRecord {
    pub version: u8,
    pub policy: QuorumPolicy,
    pub cards: Vec<EnrolledCard>,
    /// Random at init; in every share blob's associated data and in the DK check.
    pub domain_id: [u8; 16],
    /// Card-set epoch: 1 at init, +1 per replacement.
    pub epoch: u32,
    /// `HMAC-SM3(DK, "gmhsm/dk-check/v1" ‖ domain_id)`.
    pub dk_check: [u8; 32],
    /// The domain signing key's public point, as bound on the cards.
    pub domain_public: CardKey,
}

impl AdminRecord {
    pub fn card(&self, serial: &[u8]) -> Option<&EnrolledCard> {
        self.cards.iter().find(|c| c.serial.as_slice() == serial)
    }

    pub fn admins(&self) -> impl Iterator<Item = &EnrolledCard> {
        self.cards.iter().filter(|c| c.role == CardRole::Administrator)
    }
}

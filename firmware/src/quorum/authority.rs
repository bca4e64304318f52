//! Logins and quorum authority, per card-link session: the single-use nonce, the
//! administrator cards counted so far, their shares until DK is recombined, and the
//! authority (DK in RAM with its deadline).

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use gmhsm_proto::admin::{AdminOp, AuthorityEnd, CardRole, QuorumPolicy, Serial};
use zeroize::Zeroizing;

use super::ceremony::Ceremony;
use super::record::AdminRecord;
use super::{QuorumError, share};
use crate::shamir::{self, Share};

/// Most sessions with administration state at once (one per operator console is normal).
pub const MAX_ADMIN_SESSIONS: usize = 16;

/// Quorum authority: the recombined DK and when it lapses.
pub struct Authority {
    dk: Zeroizing<[u8; share::DK_LEN]>,
    pub expires_at: u64,
}

impl Authority {
    pub fn expose_dk(&self) -> &[u8; share::DK_LEN] {
        &self.dk
    }
}

/// One session's administration state.
#[derive(Default)]
pub struct SessionAdmin {
    nonce: Option<[u8; 32]>,
    /// Distinct administrator cards logged in, in order.
    cards: Vec<Serial>,
    /// Their shares, kept only until DK is recombined.
    pending: Vec<Share>,
    authority: Option<Authority>,
    /// An operator or auditor card logged in on this session.
    pub role: Option<CardRole>,
}

impl SessionAdmin {
    pub fn set_nonce(&mut self, n: [u8; 32]) {
        self.nonce = Some(n);
    }

    /// The nonce, consumed: a second use finds none.
    pub fn take_nonce(&mut self) -> Result<[u8; 32], QuorumError> {
        self.nonce.take().ok_or(QuorumError::NoNonce)
    }

    pub fn admins(&self) -> u8 {
        self.cards.len() as u8
    }

    pub fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// Count one administrator card's verified share. Returns `Ok(true)` when this card
    /// completed the quorum (authority granted now). A card already counted is not counted
    /// twice. A recombined DK that fails its check drops every share collected
    /// ([`QuorumError::Integrity`]).
    pub fn add_admin(&mut self, serial: Serial, s: Share, record: &AdminRecord, now: u64) -> Result<bool, QuorumError> {
        if self.cards.contains(&serial) {
            return Ok(false);
        }
        self.cards.push(serial);
        if self.authority.is_some() {
            return Ok(false);
        }
        self.pending.push(s);
        let k = record.policy.k;
        if self.pending.len() < usize::from(k) {
            return Ok(false);
        }
        let dk = shamir::combine(&self.pending, k).map_err(|_| QuorumError::Integrity);
        self.pending.clear();
        let dk = match dk {
            Ok(dk) if dk.len() == share::DK_LEN && share::dk_matches(&dk, &record.domain_id, &record.dk_check) => dk,
            _ => {
                self.cards.clear();
                return Err(QuorumError::Integrity);
            }
        };
        let mut a = Zeroizing::new([0u8; share::DK_LEN]);
        a.copy_from_slice(&dk);
        self.authority = Some(Authority { dk: a, expires_at: now.saturating_add(record.policy.authority_timeout_ms) });
        Ok(true)
    }

    /// Withdraw one card (or all). Returns why authority ended, if it did.
    pub fn logout(&mut self, serial: Option<&[u8]>, k: u8) -> Option<AuthorityEnd> {
        match serial {
            None => {
                self.cards.clear();
                self.pending.clear();
                self.role = None;
            }
            Some(s) => {
                if let Some(i) = self.cards.iter().position(|c| c.as_slice() == s) {
                    self.cards.remove(i);
                    // Before the quorum the shares are in the same order as the cards.
                    if self.authority.is_none() && i < self.pending.len() {
                        self.pending.remove(i);
                    }
                }
            }
        }
        if self.authority.is_some() && self.cards.len() < usize::from(k) {
            self.end();
            return Some(AuthorityEnd::BelowQuorum);
        }
        None
    }

    /// End authority and forget every card (DK zeroized on drop).
    pub fn end(&mut self) {
        self.authority = None;
        self.cards.clear();
        self.pending.clear();
    }

    /// End authority if its deadline passed. `true` if it just expired.
    pub fn expire(&mut self, now: u64) -> bool {
        if self.authority.as_ref().is_some_and(|a| now >= a.expires_at) {
            self.end();
            return true;
        }
        false
    }

    /// May this session do `op` under `policy` now?
    pub fn may(&self, op: AdminOp, policy: &QuorumPolicy) -> bool {
        self.authority.is_some() && self.cards.len() >= usize::from(policy.thresholds.get(op))
    }
}

/// All administration state in card RAM: per-session logins and the running ceremony.
#[derive(Default)]
pub struct AdminRuntime {
    pub sessions: BTreeMap<u64, SessionAdmin>,
    /// The ceremony in progress and the session that runs it.
    pub ceremony: Ceremony,
}

impl AdminRuntime {
    /// The session's state, created if new (past the bound, the lowest-numbered session's
    /// administration state is dropped, its authority with it).
    pub fn session(&mut self, id: u64) -> &mut SessionAdmin {
        if !self.sessions.contains_key(&id)
            && self.sessions.len() >= MAX_ADMIN_SESSIONS
            && let Some(&first) = self.sessions.keys().next()
        {
            self.sessions.remove(&first);
        }
        self.sessions.entry(id).or_default()
    }

    /// Forget everything (zeroize, tamper, replacement of the card set).
    pub fn end_all(&mut self) {
        for s in self.sessions.values_mut() {
            s.end();
            s.nonce = None;
        }
    }
}

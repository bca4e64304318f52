//! Logins and quorum authority, per card-link session: the single-use nonce, the
//! administrator cards counted so far, their shares until DK is recombined, the authority
//! (DK in RAM with its deadline), an operator / auditor login, and grants: a tool's session
//! that the session holding the authority (or role) approved acts under it, for as long as
//! that very authority (or login) lasts — each one carries a fresh id, and a grant names it.

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
    /// Unique per card boot ([`AdminRuntime::fresh_id`]): a grant names it.
    pub id: u64,
}

/// A session's approval by another one: valid while the approver still holds the authority
/// or login whose id it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub from: u64,
    pub id: u64,
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
    /// The id of that login (a grant names it).
    pub role_id: u64,
    role_serial: Option<Serial>,
    /// This session asked for approval: the code the panel shows.
    pub approval: Option<u16>,
    /// This session was approved by another.
    pub grant: Option<Grant>,
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
    pub fn add_admin(
        &mut self,
        serial: Serial,
        s: Share,
        record: &AdminRecord,
        now: u64,
        id: u64,
    ) -> Result<bool, QuorumError> {
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
        let expires_at = now.saturating_add(record.policy.authority_timeout_ms);
        self.authority = Some(Authority { dk: a, expires_at, id });
        Ok(true)
    }

    /// Withdraw one card (or all, with the role login and any grant). Once the quorum is
    /// reached its cards stand together: any one of them leaving ends the authority and
    /// forgets them all (with a single reader the quorum's last card holds it for every card
    /// before it). Returns why authority ended, if it did.
    pub fn logout(&mut self, serial: Option<&[u8]>) -> Option<AuthorityEnd> {
        let had = self.authority.is_some();
        match serial {
            None => {
                self.end();
                self.role = None;
                self.grant = None;
            }
            Some(s) => {
                if self.role.is_some() && self.role_serial.as_deref() == Some(s) {
                    self.role = None;
                }
                if let Some(i) = self.cards.iter().position(|c| c.as_slice() == s) {
                    if had {
                        self.end();
                        return Some(AuthorityEnd::BelowQuorum);
                    }
                    self.cards.remove(i);
                    // Before the quorum the shares are in the same order as the cards.
                    if i < self.pending.len() {
                        self.pending.remove(i);
                    }
                }
            }
        }
        (had && self.authority.is_none()).then_some(AuthorityEnd::BelowQuorum)
    }

    /// An operator or auditor card logged in on this session (login id `id`).
    pub fn set_role(&mut self, role: CardRole, serial: Serial, id: u64) {
        self.role = Some(role);
        self.role_serial = Some(serial);
        self.role_id = id;
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

    /// May this session do `op` under `policy` now, by its own authority?
    pub fn may(&self, op: AdminOp, policy: &QuorumPolicy) -> bool {
        self.authority.is_some() && self.cards.len() >= usize::from(policy.thresholds.get(op))
    }

    /// Does this session's own authority or login carry `id` (what a grant from it names)?
    fn carries(&self, id: u64) -> bool {
        self.authority.as_ref().is_some_and(|a| a.id == id) || (self.role.is_some() && self.role_id == id)
    }

    /// The id a grant from this session would name: its authority's, else its login's.
    pub fn grantable(&self) -> Option<u64> {
        match (&self.authority, self.role) {
            (Some(a), _) => Some(a.id),
            (None, Some(_)) => Some(self.role_id),
            (None, None) => None,
        }
    }
}

/// All administration state in card RAM: per-session logins and the running ceremony.
#[derive(Default)]
pub struct AdminRuntime {
    pub sessions: BTreeMap<u64, SessionAdmin>,
    /// The ceremony in progress and the session that runs it.
    pub ceremony: Ceremony,
    last_id: u64,
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

    /// A new authority / login id, never given before on this boot.
    pub fn fresh_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The session whose authority or login acts for `session`: itself, or the approver
    /// its grant names while that still carries the granted id. A dead grant is dropped.
    pub fn acting(&mut self, session: u64) -> Option<&SessionAdmin> {
        let grant = self.sessions.get(&session)?.grant;
        let Some(g) = grant else { return self.sessions.get(&session) };
        if self.sessions.get(&g.from).is_some_and(|a| a.carries(g.id)) {
            return self.sessions.get(&g.from);
        }
        if let Some(s) = self.sessions.get_mut(&session) {
            s.grant = None;
        }
        self.sessions.get(&session)
    }

    /// The session waiting for approval with `code`, other than `approver`.
    pub fn waiting(&self, approver: u64, code: Option<u16>) -> Option<(u64, u16)> {
        self.sessions
            .iter()
            .filter(|(id, _)| **id != approver)
            .find_map(|(id, s)| s.approval.filter(|c| code.is_none_or(|want| want == *c)).map(|c| (*id, c)))
    }

    /// Forget everything (zeroize, tamper, replacement of the card set).
    pub fn end_all(&mut self) {
        for s in self.sessions.values_mut() {
            s.end();
            s.nonce = None;
            s.grant = None;
            s.approval = None;
        }
    }
}

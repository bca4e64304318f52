//! Per-session state in the card: multi-part operations, session keys, pending SM2 key
//! exchanges, and the keys whose access password this session has proved.
//!
//! A session is the daemon's connection; it dies with `CloseSession`, when the card reboots,
//! or when it is reclaimed: the daemon's `CloseSession` can be lost (a link that dropped, a
//! daemon that crashed), so the card does not rely on it. Everything here is secret or bound
//! to a secret and zeroizes on drop. Bounds, all enforced by the card itself:
//! * [`MAX_HANDLES`] handles per session, of which at most [`MAX_GCM_OPS`] buffering SM4-GCM
//!   contexts;
//! * [`MAX_SESSIONS`] sessions, and at most [`MAX_STATE_BYTES`] of session state in all
//!   (each handle counted at its worst case, [`handle_bytes`]): past either, the least
//!   recently used session other than the one asking is dropped;
//! * a session unused for [`IDLE_EXPIRY_MS`] of the card's clock (passed in with
//!   [`Sessions::tick`] before each request) is dropped, state or not.
//!
//! [`Sessions::touch`] also keeps the ids of every session seen (with or without state) for
//! the status's session count, under the same bound and expiry.

use alloc::collections::{BTreeMap, BTreeSet};
use gmhsm_proto::{Label, Principal};
use zeroize::Zeroizing;

use crate::alg::{sm2_kex, sm3, sm4};
use crate::error::Error;

pub const MAX_SESSIONS: usize = 4096;
pub const MAX_HANDLES: usize = 64;
/// SM4-GCM contexts per session: each buffers up to 1 MiB until its tag is checked, so this
/// bounds what one connection can make the card hold to 4 MiB.
pub const MAX_GCM_OPS: usize = 4;
/// Session state the card holds in all, counted at each handle's worst case.
pub const MAX_STATE_BYTES: usize = 64 << 20;
/// A session unused for this long (card clock) is dropped: five minutes past the daemon's
/// default idle timeout, after which the daemon would have closed it.
pub const IDLE_EXPIRY_MS: u64 = 10 * 60 * 1000;
/// How often idle sessions are looked for (a request's [`Sessions::tick`] scans at most
/// this often, so expiry costs no scan per request).
const EXPIRY_SCAN_MS: u64 = 10 * 1000;
/// What one handle other than a GCM context may hold at most (a session key, a hash or MAC
/// context, a pending key exchange), and one proved label.
const SMALL_BYTES: usize = 512;
/// A GCM context: the largest message it buffers and its context.
const GCM_BYTES: usize = (1 << 20) + SMALL_BYTES;

/// A multi-part operation in progress.
pub enum Op {
    Sm3(sm3::Sm3Ctx),
    Sha256(sha2::Sha256),
    Sm4(sm4::Sm4Ctx),
    Gcm(sm4::Sm4GcmCtx),
    Hmac(sm3::HmacSm3Ctx),
    Cmac(sm4::Sm4CmacCtx),
    CbcMac(sm4::Sm4CbcMacCtx),
}

/// What a handle names.
pub enum Handle {
    Op(Op),
    Key(Zeroizing<[u8; 16]>),
    Agreement { initiator: sm2_kex::Initiator, label: Label, key_len: u16 },
}

/// The most a handle can make the card hold.
pub fn handle_bytes(h: &Handle) -> usize {
    if matches!(h, Handle::Op(Op::Gcm(_))) { GCM_BYTES } else { SMALL_BYTES }
}

pub struct Session {
    pub principal: Principal,
    handles: BTreeMap<u32, Handle>,
    next: u32,
    pub authorized: BTreeSet<Label>,
    /// Order of last use (for least-recently-used eviction).
    last_used: u64,
}

impl Session {
    pub fn insert(&mut self, h: Handle) -> Result<u32, Error> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Error::SessionFull);
        }
        let gcm = |h: &Handle| matches!(h, Handle::Op(Op::Gcm(_)));
        if gcm(&h) && self.handles.values().filter(|h| gcm(h)).count() >= MAX_GCM_OPS {
            return Err(Error::SessionFull);
        }
        self.next = self.next.wrapping_add(1).max(1);
        while self.handles.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1).max(1);
        }
        self.handles.insert(self.next, h);
        Ok(self.next)
    }

    pub fn take(&mut self, id: u32) -> Result<Handle, Error> {
        self.handles.remove(&id).ok_or(Error::UnknownHandle)
    }

    pub fn get_mut(&mut self, id: u32) -> Result<&mut Handle, Error> {
        self.handles.get_mut(&id).ok_or(Error::UnknownHandle)
    }

    pub fn key(&self, id: u32) -> Result<&[u8; 16], Error> {
        match self.handles.get(&id) {
            Some(Handle::Key(k)) => Ok(k),
            _ => Err(Error::UnknownHandle),
        }
    }

    /// The most this session can make the card hold.
    fn bytes(&self) -> usize {
        self.handles.values().map(handle_bytes).sum::<usize>() + self.authorized.len() * SMALL_BYTES
    }
}

#[derive(Default)]
pub struct Sessions {
    map: BTreeMap<u64, Session>,
    /// Every session seen and not closed, with the card time (ms) of its last request.
    seen: BTreeMap<u64, u64>,
    /// Bumped by every [`Sessions::get`]: the order of use.
    order: u64,
    /// The card's clock at the last [`Sessions::tick`].
    now_ms: u64,
    next_scan_ms: u64,
    /// [`Session::bytes`] summed over `map`, exact but for `open`'s session.
    bytes: usize,
    /// The session handed out by the last `get` (it may have changed since) and what it
    /// weighed when `bytes` last counted it.
    open: Option<(u64, usize)>,
}

impl Sessions {
    /// The card's clock reads `now_ms` (before each request): drop sessions idle for
    /// [`IDLE_EXPIRY_MS`], looking at most every [`EXPIRY_SCAN_MS`].
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
        if now_ms < self.next_scan_ms {
            return;
        }
        self.next_scan_ms = now_ms.saturating_add(EXPIRY_SCAN_MS);
        let idle: alloc::vec::Vec<u64> = self
            .seen
            .iter()
            .filter(|(_, last)| now_ms.saturating_sub(**last) >= IDLE_EXPIRY_MS)
            .map(|(id, _)| *id)
            .collect();
        for id in idle {
            self.close(id);
        }
    }

    /// A request for session `id` arrived; `CloseSession` forgets it.
    pub fn touch(&mut self, id: u64, closing: bool) {
        if closing {
            self.close(id);
            return;
        }
        if self.seen.insert(id, self.now_ms).is_none()
            && self.seen.len() > MAX_SESSIONS
            && let Some((&oldest, _)) = self.seen.iter().filter(|(s, _)| **s != id).min_by_key(|(_, last)| **last)
        {
            self.close(oldest);
        }
    }

    /// Sessions seen and not closed nor reclaimed.
    pub fn seen(&self) -> usize {
        self.seen.len()
    }

    /// The session `id`, created for `principal` if new. A session is bound to the principal
    /// that opened it; another principal naming it is refused. Makes room first: past
    /// [`MAX_SESSIONS`] or [`MAX_STATE_BYTES`], the least recently used other sessions go.
    pub fn get(&mut self, id: u64, principal: &Principal) -> Result<&mut Session, Error> {
        self.settle();
        self.order += 1;
        let new = !self.map.contains_key(&id);
        while (new && self.map.len() >= MAX_SESSIONS) || self.bytes > MAX_STATE_BYTES {
            let Some((&oldest, _)) = self.map.iter().filter(|(s, _)| **s != id).min_by_key(|(_, s)| s.last_used) else {
                break;
            };
            self.drop_state(oldest);
        }
        let order = self.order;
        let s = self.map.entry(id).or_insert_with(|| Session {
            principal: principal.clone(),
            handles: BTreeMap::new(),
            next: 0,
            authorized: BTreeSet::new(),
            last_used: order,
        });
        if &s.principal != principal {
            return Err(Error::AccessDenied);
        }
        s.last_used = order;
        self.open = Some((id, s.bytes()));
        Ok(s)
    }

    pub fn close(&mut self, id: u64) {
        self.seen.remove(&id);
        self.drop_state(id);
    }

    /// Forget a label's authorization everywhere (password changed, key deleted).
    pub fn revoke(&mut self, label: &Label) {
        for s in self.map.values_mut() {
            s.authorized.remove(label);
        }
        self.recount();
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.seen.clear();
        self.recount();
    }

    /// Session state held, as [`MAX_STATE_BYTES`] counts it.
    pub fn state_bytes(&mut self) -> usize {
        self.settle();
        self.bytes
    }

    /// Count again the session the last `get` handed out.
    fn settle(&mut self) {
        if let Some((id, was)) = self.open.take() {
            let now = self.map.get(&id).map_or(0, Session::bytes);
            self.bytes = self.bytes.saturating_sub(was) + now;
        }
    }

    fn drop_state(&mut self, id: u64) {
        self.settle();
        if let Some(s) = self.map.remove(&id) {
            self.bytes = self.bytes.saturating_sub(s.bytes());
        }
    }

    fn recount(&mut self) {
        self.open = None;
        self.bytes = self.map.values().map(Session::bytes).sum();
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

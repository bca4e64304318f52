//! Per-session state in the card: multi-part operations, session keys, pending SM2 key
//! exchanges, and the keys whose access password this session has proved.
//!
//! A session is the daemon's connection; it dies with `CloseSession` (or when the card
//! reboots). Everything here is secret or bound to a secret and zeroizes on drop. Bounds:
//! [`MAX_SESSIONS`] sessions (the least recently used is dropped past it) and
//! [`MAX_HANDLES`] handles per session, of which at most [`MAX_GCM_OPS`] buffering SM4-GCM
//! contexts.

use alloc::collections::{BTreeMap, BTreeSet};
use gmhsm_proto::{Label, Principal, Status};
use zeroize::Zeroizing;

use crate::alg::{sm2_kex, sm3, sm4};

pub const MAX_SESSIONS: usize = 4096;
pub const MAX_HANDLES: usize = 64;
/// SM4-GCM contexts per session: each buffers up to 1 MiB until its tag is checked, so this
/// bounds what one connection can make the card hold to 4 MiB.
pub const MAX_GCM_OPS: usize = 4;

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

pub struct Session {
    pub principal: Principal,
    handles: BTreeMap<u32, Handle>,
    next: u32,
    pub authorized: BTreeSet<Label>,
    last_used: u64,
}

impl Session {
    pub fn insert(&mut self, h: Handle) -> Result<u32, Status> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Status::Busy);
        }
        let gcm = |h: &Handle| matches!(h, Handle::Op(Op::Gcm(_)));
        if gcm(&h) && self.handles.values().filter(|h| gcm(h)).count() >= MAX_GCM_OPS {
            return Err(Status::Busy);
        }
        self.next = self.next.wrapping_add(1).max(1);
        while self.handles.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1).max(1);
        }
        self.handles.insert(self.next, h);
        Ok(self.next)
    }

    pub fn take(&mut self, id: u32) -> Result<Handle, Status> {
        self.handles.remove(&id).ok_or(Status::UnknownHandle)
    }

    pub fn get_mut(&mut self, id: u32) -> Result<&mut Handle, Status> {
        self.handles.get_mut(&id).ok_or(Status::UnknownHandle)
    }

    pub fn key(&self, id: u32) -> Result<&[u8; 16], Status> {
        match self.handles.get(&id) {
            Some(Handle::Key(k)) => Ok(k),
            _ => Err(Status::UnknownHandle),
        }
    }
}

#[derive(Default)]
pub struct Sessions {
    map: BTreeMap<u64, Session>,
    clock: u64,
}

impl Sessions {
    /// The session `id`, created for `principal` if new. A session is bound to the principal
    /// that opened it; another principal naming it is refused.
    pub fn get(&mut self, id: u64, principal: &Principal) -> Result<&mut Session, Status> {
        self.clock += 1;
        if !self.map.contains_key(&id)
            && self.map.len() >= MAX_SESSIONS
            && let Some((&oldest, _)) = self.map.iter().min_by_key(|(_, s)| s.last_used)
        {
            self.map.remove(&oldest);
        }
        let clock = self.clock;
        let s = self.map.entry(id).or_insert_with(|| Session {
            principal: principal.clone(),
            handles: BTreeMap::new(),
            next: 0,
            authorized: BTreeSet::new(),
            last_used: clock,
        });
        if &s.principal != principal {
            return Err(Status::AccessDenied);
        }
        s.last_used = clock;
        Ok(s)
    }

    pub fn close(&mut self, id: u64) {
        self.map.remove(&id);
    }

    /// Forget a label's authorization everywhere (password changed, key deleted).
    pub fn revoke(&mut self, label: &Label) {
        for s in self.map.values_mut() {
            s.authorized.remove(label);
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

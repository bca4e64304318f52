//! Handles that reach into the running event loop from other threads: shutdown and reload;
//! and what the loop does when the card revokes a certificate (its live connections close).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use log::warn;
use mio::Waker;

pub(crate) struct ControlInner {
    shutdown: AtomicBool,
    reload: AtomicBool,
    waker: Waker,
}

impl ControlInner {
    pub(crate) fn new(waker: Waker) -> Arc<Self> {
        Arc::new(ControlInner { shutdown: AtomicBool::new(false), reload: AtomicBool::new(false), waker })
    }

    pub(crate) fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            warn!("cannot wake the event loop: {e}");
        }
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// `true` once per [`ReloadHandle::reload`] call (coalesced).
    pub(crate) fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::SeqCst)
    }
}

/// Wakes the event loop and asks it to stop. Cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    pub(crate) inner: Arc<ControlInner>,
}

impl ShutdownHandle {
    /// Ask the daemon to stop; [`crate::Daemon::run`] returns once requests in flight are
    /// answered (or the drain timeout passes).
    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.wake();
    }
}

/// Wakes the event loop and asks it to re-read the client CA file and the applications list
/// (`DaemonConfig::client_ca_path`, `DaemonConfig::applications_path`). New connections use
/// the new files; existing connections go on unchanged. A file that fails to load is logged
/// and the previous configuration stays in force.
#[derive(Clone)]
pub struct ReloadHandle {
    pub(crate) inner: Arc<ControlInner>,
}

impl ReloadHandle {
    pub fn reload(&self) {
        self.inner.reload.store(true, Ordering::SeqCst);
        self.inner.wake();
    }
}

/// The certificate a request revokes, if it is a local tool's `RevokeApplication`: the loop
/// closes that certificate's live connections once the card answers `Done`
/// ([`close_revoked`]). Decoded only for that request kind.
pub(crate) fn revokes(principal: &gmhsm_proto::Principal, kind: &str, request: &[u8]) -> Option<[u8; 32]> {
    if kind != "RevokeApplication" || *principal != gmhsm_proto::Principal::Local {
        return None;
    }
    match gmhsm_proto::frame::decode(request) {
        Ok(gmhsm_proto::Request::RevokeApplication { cert_sha256 }) => Some(cert_sha256),
        _ => None,
    }
}

/// The connections of the certificate `cert_sha256`, which the card has just revoked.
pub(crate) fn close_revoked<'a>(
    cert_sha256: &[u8; 32],
    conns: impl Iterator<Item = (&'a mio::Token, Option<&'a gmhsm_proto::Principal>)>,
) -> Vec<mio::Token> {
    let revoked = gmhsm_proto::Principal::Application { cert_sha256: *cert_sha256 };
    conns.filter(|(_, p)| *p == Some(&revoked)).map(|(t, _)| *t).collect()
}

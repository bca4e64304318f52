//! The local tools socket: a Unix listener in the same poll, authenticated by the peer's
//! credentials (`SO_PEERCRED`) instead of TLS. Accepted connections act as
//! [`gmhsm_proto::Principal::Local`].

use std::io;
use std::os::unix::fs::PermissionsExt;

use anyhow::Context;
use log::warn;
use mio::net::{UnixListener, UnixStream};
use nix::sys::socket::{getsockopt, sockopt};

use crate::config::LocalSocket;

/// The listener and who may connect.
pub struct LocalListener {
    pub listener: UnixListener,
    allowed_uids: Vec<u32>,
}

impl LocalListener {
    /// Bind `cfg.path`, replacing a stale socket file. The file is made connectable by every
    /// user (0666): the uid check on each connection is the access control.
    pub fn bind(cfg: &LocalSocket) -> anyhow::Result<Self> {
        match std::fs::symlink_metadata(&cfg.path) {
            Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
                std::fs::remove_file(&cfg.path).with_context(|| format!("removing stale {}", cfg.path.display()))?;
            }
            Ok(_) => anyhow::bail!("{} exists and is not a socket", cfg.path.display()),
            Err(_) => {}
        }
        let listener =
            UnixListener::bind(&cfg.path).with_context(|| format!("binding local socket {}", cfg.path.display()))?;
        std::fs::set_permissions(&cfg.path, std::fs::Permissions::from_mode(0o666))
            .with_context(|| format!("chmod {}", cfg.path.display()))?;
        Ok(LocalListener { listener, allowed_uids: cfg.allowed_uids.clone() })
    }

    /// The next connection whose peer uid is allowed, with a description of the peer for
    /// logs. Refused peers are logged and closed; `Ok(None)` when no connection is waiting.
    pub fn accept(&self) -> io::Result<Option<(UnixStream, String)>> {
        loop {
            let (sock, _) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let creds = match getsockopt(&sock, sockopt::PeerCredentials) {
                Ok(c) => c,
                Err(e) => {
                    warn!("event=refuse peer=local reason=no_peer_credentials error=\"{e}\"");
                    continue;
                }
            };
            let peer = format!("uid:{}/pid:{}", creds.uid(), creds.pid());
            if !self.allowed_uids.contains(&creds.uid()) {
                warn!("event=refuse peer={peer} reason=uid_not_allowed");
                let _ = sock.shutdown(std::net::Shutdown::Both);
                continue;
            }
            return Ok(Some((sock, peer)));
        }
    }
}

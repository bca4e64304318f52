//! The loop's side of TCP connections before they are established: accept, the bound on
//! connections, TLS handshakes handed to the workers and back (see [`crate::handshake`]).

use std::time::Instant;

use log::{debug, warn};
use mio::{Interest, Token};
use rustls::ServerConnection;

use super::Daemon;
use crate::conn::{Close, Conn};
use crate::gate::{self, Full};
use crate::handshake::{Handshake, Step};

impl Daemon {
    /// Network connections, counted against `max_connections`: established ones and
    /// handshakes (local tools have their own budget).
    pub(super) fn connections(&self) -> usize {
        self.conns.len() - self.local_conns + self.handshakes.len()
    }

    pub(super) fn accept_tcp(&mut self, now: Instant) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let (mut sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("event=accept_failed error=\"{e}\"");
                    return;
                }
            };
            let token = Token(self.next_token);
            let full = self.connections() >= self.config.max_connections;
            match self.gate.admit(gate::source_of(&peer), token.0, full) {
                Err(Full) => {
                    warn!("event=refuse peer={peer} reason=max_connections bound={}", self.config.max_connections);
                    let _ = sock.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                Ok(Some(victim)) => self.close_handshake(Token(victim), &Close::Refused("evicted")),
                Ok(None) => {}
            }
            self.next_token += 1;
            // Answers and handshake flights go out as soon as they are written: without this,
            // Nagle's algorithm and the peer's delayed ACK add ~40 ms to a handshake.
            if let Err(e) = sock.set_nodelay(true) {
                debug!("event=nodelay_failed peer={peer} error=\"{e}\"");
            }
            let tls = match ServerConnection::new(self.tls.clone()) {
                Ok(tls) => tls,
                Err(e) => {
                    warn!("event=refuse peer={peer} reason=tls_setup error=\"{e}\"");
                    self.gate.remove(token.0);
                    continue;
                }
            };
            if let Err(e) = self.poll.registry().register(&mut sock, token, Interest::READABLE | Interest::WRITABLE) {
                warn!("event=refuse peer={peer} reason=register error=\"{e}\"");
                self.gate.remove(token.0);
                continue;
            }
            debug!("event=accept conn={} peer={peer}", token.0);
            let deadline = now + self.config.handshake_timeout;
            let hs = Handshake::new(sock, tls, peer.to_string(), deadline);
            self.handshakes.insert(token, hs);
            self.pump_handshake(token);
        }
    }

    /// Socket I/O for a handshake; new bytes go to a worker.
    pub(super) fn pump_handshake(&mut self, token: Token) {
        let Some(hs) = self.handshakes.get_mut(&token) else {
            return;
        };
        match hs.pump(token) {
            Step::Wait => {}
            Step::Work(job) => {
                if !self.workers.submit(job) {
                    self.close_handshake(token, &Close::Refused("no_handshake_worker"));
                }
            }
            Step::Failed(why) => self.close_handshake(token, &why),
        }
    }

    /// Take every connection the workers are done with.
    pub(super) fn take_handshakes(&mut self, now: Instant, accepting: bool) {
        while let Some(p) = self.workers.try_done() {
            let token = p.token;
            let Some(hs) = self.handshakes.get_mut(&token) else {
                debug!("event=handshake_dropped conn={} reason=closed", token.0);
                continue;
            };
            match hs.returned(p.tls, p.result) {
                Err(why) => self.close_handshake(token, &why),
                Ok(false) => self.pump_handshake(token),
                Ok(true) => self.established(token, now, accepting),
            }
        }
    }

    /// The handshake is complete: the same token and registration go on as a connection.
    fn established(&mut self, token: Token, now: Instant, accepting: bool) {
        let Some(hs) = self.handshakes.remove(&token) else {
            return;
        };
        self.gate.remove(token.0);
        let peer = hs.peer.clone();
        let Some(wire) = hs.into_wire() else {
            return; // unreachable: `returned` put the TLS state back
        };
        let conn = Conn::new(token, peer, wire, self.limits(), now);
        self.conns.insert(token, conn);
        // The client's first requests may have come with its last handshake flight.
        self.pump(token, now, accepting);
    }

    pub(super) fn close_handshake(&mut self, token: Token, why: &Close) {
        if let Some(mut hs) = self.handshakes.remove(&token) {
            self.gate.remove(token.0);
            hs.close(token, why);
            let _ = self.poll.registry().deregister(&mut hs.sock);
        }
    }

    pub(super) fn expire_handshakes(&mut self, now: Instant) {
        let expired: Vec<Token> =
            self.handshakes.iter().filter(|(_, h)| h.deadline() <= now).map(|(t, _)| *t).collect();
        for token in expired {
            self.close_handshake(token, &Close::Timeout);
        }
    }

    /// On shutdown: handshakes under way are dropped (a late worker answer finds nothing).
    pub(super) fn close_handshakes(&mut self) {
        let tokens: Vec<Token> = self.handshakes.keys().copied().collect();
        for token in tokens {
            self.close_handshake(token, &Close::Refused("shutting_down"));
        }
    }
}

//! One client connection: TCP socket, rustls server session, deframer, output queue.
//!
//! [`Conn::pump`] is safe to call on any event: it reads what is there (unless the output
//! queue is past its high-water mark, which is the connection's back-pressure), turns frames
//! into actions through the [`Session`], and writes what it can. It returns [`Close`] when the
//! connection must go; the server then calls [`Conn::close`].

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info};
use mio::Token;
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Principal, ServerFrame, Status};

use crate::cardlink::{CardLink, Completion};
use crate::session::{self, Action, Session};
use crate::tls;

/// Queued output past which the connection stops reading requests until the client reads.
const OUT_HIGH_WATER: usize = 2 * frame::MAX_FRAME_LEN;

/// Why a connection ends.
#[derive(Debug)]
pub enum Close {
    /// The peer closed and everything it asked for was answered.
    Done,
    /// The TLS layer failed (bad handshake, missing or rejected client certificate, ...).
    Tls(rustls::Error),
    /// The socket failed.
    Io(io::Error),
    /// The handshake or idle deadline passed.
    Timeout,
}

/// The per-connection bounds, taken from the daemon's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

/// One connection.
pub struct Conn {
    token: Token,
    peer: SocketAddr,
    pub sock: TcpStream,
    tls: ServerConnection,
    deframer: Deframer,
    session: Session,
    principal: Option<Principal>,
    out: VecDeque<Vec<u8>>,
    out_off: usize,
    out_bytes: usize,
    read_closed: bool,
    handshake_deadline: Instant,
    last_activity: Instant,
    idle_timeout: Duration,
}

impl Conn {
    pub fn new(
        token: Token,
        peer: SocketAddr,
        sock: TcpStream,
        config: Arc<ServerConfig>,
        limits: Limits,
        now: Instant,
    ) -> Result<Self, rustls::Error> {
        Ok(Conn {
            token,
            peer,
            sock,
            tls: ServerConnection::new(config)?,
            deframer: Deframer::new(),
            session: Session::new(limits.max_in_flight),
            principal: None,
            out: VecDeque::new(),
            out_off: 0,
            out_bytes: 0,
            read_closed: false,
            handshake_deadline: now + limits.handshake_timeout,
            last_activity: now,
            idle_timeout: limits.idle_timeout,
        })
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Read, process and write as far as the socket allows. `accept_requests` is false while
    /// the daemon drains for shutdown: nothing more is read.
    pub fn pump(
        &mut self,
        now: Instant,
        card: &mut CardLink,
        accept_requests: bool,
    ) -> Result<(), Close> {
        loop {
            let blocked = self.out_bytes >= OUT_HIGH_WATER;
            let mut progressed = false;
            if accept_requests && !self.read_closed && !blocked {
                progressed = self.read_some(now, card)?;
            }
            self.flush(now).map_err(Close::Io)?;
            // Readiness is edge-triggered: once the back-pressure lifts, read again now, as
            // no new readable event may come for bytes already waiting in the socket.
            if blocked && self.out_bytes < OUT_HIGH_WATER {
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        if self.read_closed && self.session.in_flight() == 0 && self.flushed() {
            return Err(Close::Done);
        }
        Ok(())
    }

    /// An answer from the card for this connection.
    pub fn deliver(&mut self, c: Completion) {
        self.session.completed();
        let frame = ServerFrame {
            header: FrameHeader {
                version: PROTOCOL_VERSION,
                id: c.client_id,
            },
            result: c.result,
        };
        self.queue(&frame);
    }

    /// Everything queued has been handed to the socket.
    pub fn flushed(&self) -> bool {
        self.out_bytes == 0 && !self.tls.wants_write()
    }

    /// Requests of this connection waiting for the card.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// When this connection times out, if nothing happens before. Activity is bytes read
    /// or written; a connection waiting for the card does not time out (the card link has
    /// its own deadline), one whose peer stops reading its answers does.
    pub fn deadline(&self) -> Option<Instant> {
        if self.tls.is_handshaking() {
            Some(self.handshake_deadline)
        } else if self.session.in_flight() > 0 {
            None
        } else {
            Some(self.last_activity + self.idle_timeout)
        }
    }

    pub fn expired(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }

    /// Say goodbye (TLS close_notify when established) and shut the socket down.
    pub fn close(&mut self, why: &Close) {
        match why {
            Close::Done => debug!("{}: closed by peer", self.peer),
            Close::Tls(e) => info!("{}: TLS error: {e}", self.peer),
            Close::Io(e) => info!("{}: I/O error: {e}", self.peer),
            Close::Timeout => info!("{}: timed out", self.peer),
        }
        if !self.tls.is_handshaking() {
            self.tls.send_close_notify();
        }
        let _ = self.flush(Instant::now());
        let _ = self.sock.shutdown(Shutdown::Both);
    }

    /// One `read_tls` and everything it makes available. `Ok(true)` if bytes came in.
    fn read_some(&mut self, now: Instant, card: &mut CardLink) -> Result<bool, Close> {
        let got = match self.tls.read_tls(&mut self.sock) {
            Ok(0) => {
                self.read_closed = true;
                false
            }
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(true),
            Err(e) => return Err(Close::Io(e)),
        };
        if got {
            self.last_activity = now;
        }
        if let Err(e) = self.tls.process_new_packets() {
            // Send the alert rustls queued, then go.
            let _ = self.tls.write_tls(&mut self.sock);
            return Err(Close::Tls(e));
        }
        if self.tls.is_handshaking() {
            return Ok(got);
        }
        if self.principal.is_none() {
            match tls::principal_of(self.tls.peer_certificates()) {
                Some(p) => {
                    info!("{}: authenticated", self.peer);
                    self.principal = Some(p);
                }
                None => return Err(Close::Tls(rustls::Error::NoCertificatesPresented)),
            }
        }
        self.read_plaintext();
        self.take_frames(now, card);
        Ok(got)
    }

    fn read_plaintext(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.tls.reader().read(&mut buf) {
                Ok(0) => {
                    self.read_closed = true; // close_notify
                    return;
                }
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.read_closed = true; // EOF without close_notify
                    return;
                }
            }
        }
    }

    fn take_frames(&mut self, now: Instant, card: &mut CardLink) {
        let Some(principal) = self.principal.clone() else {
            return;
        };
        loop {
            let action = match self.deframer.next_frame() {
                Ok(Some(body)) => self.session.on_frame(&body),
                Ok(None) => return,
                Err(e) => Action::Reply(self.session.on_deframe_error(e)),
            };
            match action {
                Action::Reply(frame) => self.queue(&frame),
                Action::Relay { id, request } => {
                    if let Err(status) =
                        card.submit(now, self.token, id, principal.clone(), request)
                    {
                        self.session.completed();
                        self.queue(&session::reply(id, status));
                    }
                }
            }
        }
    }

    fn queue(&mut self, frame: &ServerFrame) {
        let bytes = match frame::encode(frame) {
            Ok(b) => b,
            Err(_) => {
                let fallback = session::reply(frame.header.id, Status::Internal);
                match frame::encode(&fallback) {
                    Ok(b) => b,
                    Err(_) => return, // a bare status always encodes
                }
            }
        };
        self.out_bytes += bytes.len();
        self.out.push_back(bytes);
    }

    fn flush(&mut self, now: Instant) -> io::Result<()> {
        loop {
            while let Some(front) = self.out.front() {
                let n = self.tls.writer().write(&front[self.out_off..])?;
                if n == 0 {
                    break;
                }
                self.out_off += n;
                self.out_bytes -= n;
                if self.out_off == front.len() {
                    self.out.pop_front();
                    self.out_off = 0;
                }
            }
            if !self.tls.wants_write() {
                return Ok(());
            }
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Ok(()),
                Ok(_) => self.last_activity = now,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

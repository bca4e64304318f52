//! A connection's transport: TLS over TCP (the private link) or plain bytes over a Unix
//! socket (local tools), with the queue of frames waiting to be written.
//!
//! Both carry the same length-prefixed frames; only the TLS side authenticates in-band (the
//! local side is authenticated by peer credentials before the connection exists).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use rustls::ServerConnection;

use gmhsm_proto::{Deframer, Principal};

use crate::tls;

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
    /// A bound or the applications list refused the authenticated peer.
    Refused(&'static str),
}

/// What one read brought.
#[derive(Debug, Default, Clone, Copy)]
pub struct Read1 {
    /// Bytes came in from the socket.
    pub got: bool,
    /// The peer will send nothing more.
    pub eof: bool,
}

/// Encoded frames waiting for the socket.
#[derive(Debug, Default)]
pub struct OutQueue {
    frames: VecDeque<Vec<u8>>,
    off: usize,
    bytes: usize,
}

impl OutQueue {
    pub fn push(&mut self, frame: Vec<u8>) {
        self.bytes += frame.len();
        self.frames.push_back(frame);
    }

    /// Bytes not yet handed to the transport.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Hand bytes to `w` until it takes no more; `Ok(true)` if any were taken.
    fn drain_into(&mut self, w: &mut impl Write) -> io::Result<bool> {
        let mut any = false;
        while let Some(front) = self.frames.front() {
            let n = match w.write(&front[self.off..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            any = true;
            self.off += n;
            self.bytes -= n;
            if self.off == front.len() {
                self.frames.pop_front();
                self.off = 0;
            }
        }
        Ok(any)
    }
}

/// The transport of one connection.
pub enum Wire {
    Tls { sock: TcpStream, tls: Box<ServerConnection> },
    Plain { sock: UnixStream },
}

impl Wire {
    /// The socket, for (de)registration with the poll.
    pub fn source(&mut self) -> &mut dyn Source {
        match self {
            Wire::Tls { sock, .. } => sock,
            Wire::Plain { sock } => sock,
        }
    }

    pub fn handshaking(&self) -> bool {
        match self {
            Wire::Tls { tls, .. } => tls.is_handshaking(),
            Wire::Plain { .. } => false,
        }
    }

    /// Who the peer is, once the transport knows. A TLS session after its handshake without
    /// a peer certificate (never with our verifier) is an error.
    pub fn principal(&self) -> Result<Principal, Close> {
        match self {
            Wire::Tls { tls, .. } => {
                tls::principal_of(tls.peer_certificates()).ok_or(Close::Tls(rustls::Error::NoCertificatesPresented))
            }
            Wire::Plain { .. } => Ok(Principal::Local),
        }
    }

    /// One socket read, and every plaintext byte it makes available pushed to `deframer`.
    pub fn read(&mut self, deframer: &mut Deframer) -> Result<Read1, Close> {
        let mut r = Read1::default();
        match self {
            Wire::Plain { sock } => {
                let mut buf = [0u8; 16 * 1024];
                match sock.read(&mut buf) {
                    Ok(0) => r.eof = true,
                    Ok(n) => {
                        r.got = true;
                        deframer.push(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => r.got = true,
                    Err(e) => return Err(Close::Io(e)),
                }
                Ok(r)
            }
            Wire::Tls { sock, tls } => {
                let mut fresh = true;
                match tls.read_tls(sock) {
                    Ok(0) => r.eof = true,
                    Ok(_) => r.got = true,
                    // Plaintext may wait in rustls already: the handshake worker processed
                    // the records that came with the client's last handshake flight.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => fresh = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                        r.got = true;
                        return Ok(r);
                    }
                    Err(e) => return Err(Close::Io(e)),
                }
                if fresh && let Err(e) = tls.process_new_packets() {
                    // Send the alert rustls queued, then go.
                    let _ = tls.write_tls(sock);
                    return Err(Close::Tls(e));
                }
                if !tls.is_handshaking() {
                    r.eof |= read_plaintext(tls, deframer);
                }
                Ok(r)
            }
        }
    }

    /// Write queued frames and transport bytes as far as the socket takes them;
    /// `Ok(true)` if bytes went to the socket.
    pub fn flush(&mut self, out: &mut OutQueue) -> io::Result<bool> {
        match self {
            Wire::Plain { sock } => out.drain_into(sock),
            Wire::Tls { sock, tls } => {
                let mut wrote = false;
                loop {
                    out.drain_into(&mut tls.writer())?;
                    if !tls.wants_write() {
                        return Ok(wrote);
                    }
                    match tls.write_tls(sock) {
                        Ok(0) => return Ok(wrote),
                        Ok(_) => wrote = true,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(wrote),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// Transport bytes (TLS records) wait to be written.
    pub fn wants_write(&self) -> bool {
        match self {
            Wire::Tls { tls, .. } => tls.wants_write(),
            Wire::Plain { .. } => false,
        }
    }

    /// Say goodbye (TLS close_notify when established), flush what we can, shut down.
    pub fn close(&mut self, out: &mut OutQueue) {
        if let Wire::Tls { tls, .. } = self
            && !tls.is_handshaking()
        {
            tls.send_close_notify();
        }
        let _ = self.flush(out);
        let _ = match self {
            Wire::Tls { sock, .. } => sock.shutdown(Shutdown::Both),
            Wire::Plain { sock } => sock.shutdown(Shutdown::Both),
        };
    }
}

/// Move decrypted bytes to the deframer; `true` at the end of the peer's stream.
fn read_plaintext(tls: &mut ServerConnection, deframer: &mut Deframer) -> bool {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tls.reader().read(&mut buf) {
            Ok(0) => return true, // close_notify
            Ok(n) => deframer.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true, // EOF without close_notify
        }
    }
}

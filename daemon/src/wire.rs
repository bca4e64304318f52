//! A connection's transport: TLS over TCP (the private link) or plain bytes over a Unix
//! socket (local tools), with the queue of frames waiting to be written.
//!
//! Both carry the same length-prefixed frames; only the TLS side authenticates in-band (the
//! local side is authenticated by peer credentials before the connection exists).

use std::io::{self, BufRead, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use rustls::ServerConnection;

use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{Deframer, Principal};

use crate::tls;

/// Room offered to one read of a local socket.
const PLAIN_READ: usize = 16 * 1024;

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
    /// The socket has nothing more to read for now: it returned `WouldBlock`, or fewer
    /// bytes than asked for. Readiness is edge-triggered, so the next bytes to arrive bring
    /// a new readable event; reading again before that would only return `WouldBlock`.
    pub drained: bool,
}

/// Encoded frames waiting for the transport, back to back in one buffer: replies are encoded
/// straight into it and it is handed to the transport in one write, so one TLS record
/// carries as many frames as fit.
#[derive(Debug, Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    off: usize,
}

impl OutQueue {
    /// Capacity kept once everything is written; a buffer grown past it by a large answer is
    /// released.
    const KEEP: usize = 64 * 1024;

    /// Append `frame`, encoded (length prefix included).
    pub fn push<T: serde::Serialize>(&mut self, frame: &T) -> Result<(), FrameError> {
        frame::encode_into(frame, &mut self.buf)
    }

    /// Append a `ServerFrame` whose response arrives encoded (`frame::encode_answer`).
    pub fn push_answer(&mut self, header: &FrameHeader, response: &[u8]) -> Result<(), FrameError> {
        frame::encode_answer(header, response, &mut self.buf)
    }

    /// Bytes not yet handed to the transport.
    pub fn bytes(&self) -> usize {
        self.buf.len() - self.off
    }

    /// Hand bytes to `w` until it takes no more; `Ok(true)` if any were taken.
    fn drain_into(&mut self, w: &mut impl Write) -> io::Result<bool> {
        let mut any = false;
        while self.off < self.buf.len() {
            match w.write(&self.buf[self.off..]) {
                Ok(0) => break,
                Ok(n) => {
                    any = true;
                    self.off += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
            if self.buf.capacity() > Self::KEEP {
                self.buf = Vec::new();
            }
        } else if self.off > frame::MAX_FRAME_LEN {
            self.buf.drain(..self.off);
            self.off = 0;
        }
        Ok(any)
    }
}

/// A socket as `io::Read` that remembers whether the last read came back short (the socket
/// is drained), for `ServerConnection::read_tls`, which asks for as much as its buffer has room.
struct Counted<'a, R> {
    inner: &'a mut R,
    short: bool,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.short = n < buf.len();
        Ok(n)
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
                let room = deframer.spare(PLAIN_READ);
                let want = room.len();
                match sock.read(room) {
                    Ok(0) => r.eof = true,
                    Ok(n) => {
                        r.got = true;
                        r.drained = n < want;
                        deframer.commit(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.drained = true,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => r.got = true,
                    Err(e) => return Err(Close::Io(e)),
                }
                Ok(r)
            }
            Wire::Tls { sock, tls } => {
                let mut fresh = true;
                let mut src = Counted { inner: sock, short: false };
                match tls.read_tls(&mut src) {
                    Ok(0) => r.eof = true,
                    Ok(_) => {
                        r.got = true;
                        r.drained = src.short;
                    }
                    // Plaintext may wait in rustls already: the handshake worker processed
                    // the records that came with the client's last handshake flight.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        fresh = false;
                        r.drained = true;
                    }
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
    let mut reader = tls.reader();
    loop {
        let n = match reader.fill_buf() {
            Ok([]) => return true, // close_notify
            Ok(bytes) => {
                deframer.push(bytes);
                bytes.len()
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(_) => return true, // EOF without close_notify
        };
        reader.consume(n);
    }
}

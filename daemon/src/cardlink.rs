//! The card link: a non-blocking Unix stream to the crypto card, in the daemon's poll.
//!
//! Each relayed request gets the next card-side id; a ring of pending requests indexed by
//! that id (slot `i` is id `first_id + i`) routes the card's answer back to (connection
//! token, client request id). The card answers a link's requests in order, so answers
//! come off the front and the ring stays as short as the requests in flight; an answer out
//! of order only leaves an empty slot behind until the ones before it are answered or
//! expire. Invariants:
//! * nothing here blocks: reads and writes stop at `WouldBlock`, output is queued;
//! * every request handed to [`CardLink::submit`] is answered exactly once through a
//!   [`Completion`]: by the card, or with `Status::CardUnavailable` when the link goes down or
//!   the card does not answer within the card timeout;
//! * when the link is down, the link tries to reconnect every [`RECONNECT_DELAY`];
//! * a `CloseSession` for a closed connection is not lost to a link that is down or full: it
//!   waits in a retry queue (at most [`MAX_CLOSING`]) and is sent again, also when the link
//!   went down with it unanswered. The card expires idle sessions anyway; the queue frees
//!   their state sooner.
//!
//! Per request the link allocates nothing: requests are encoded into one output buffer
//! (the client's request bytes are copied in as they came, see
//! `gmhsm_proto::frame::encode_card_frame`), answers are read straight into the deframer and
//! decoded from it. The stream is polled for writability only while output is waiting, so
//! the card reading a request does not wake the loop.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use log::{debug, info, warn};
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, Principal, Request, Status};
use zeroize::Zeroizing;

mod ring;
use ring::{Pending, Ring};

/// The poll token of the card link.
pub const TOKEN: Token = Token(2);

/// How long to wait between reconnection attempts.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Bytes queued towards the card past which new requests are refused with `Status::Busy`.
const OUT_LIMIT: usize = 16 * frame::MAX_FRAME_LEN;

/// Output buffer capacity kept once everything is written.
const OUT_KEEP: usize = 256 * 1024;

/// `CloseSession`s waiting to be sent again; past it the oldest is dropped (the card's idle
/// expiry reclaims that session).
pub const MAX_CLOSING: usize = 4096;

/// Room offered to one read from the card.
const READ_CHUNK: usize = 64 * 1024;

/// An answer for one client request. Its bytes zeroize on drop and its `Debug` shows only
/// their length: an answer may carry a plaintext or a key.
pub struct Completion {
    pub token: Token,
    pub client_id: u64,
    /// The card's `Response` as the card encoded it (relayed without decoding,
    /// `frame::split_answer`; zeroed on drop: it may be a plaintext), or the status.
    pub result: Result<Zeroizing<Vec<u8>>, Status>,
    /// The request's variant name, for the log line.
    pub kind: &'static str,
    /// When the request was submitted.
    pub started: Instant,
    /// The certificate this request revoked, once the card did (`control::revokes`).
    pub revoked: Option<[u8; 32]>,
}

impl std::fmt::Debug for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let result = self.result.as_ref().map(|bytes| format!("<{} bytes redacted>", bytes.len()));
        f.debug_struct("Completion")
            .field("token", &self.token)
            .field("client_id", &self.client_id)
            .field("result", &result)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The link to the crypto card.
pub struct CardLink {
    path: PathBuf,
    stream: Option<UnixStream>,
    deframer: Deframer,
    out: Vec<u8>,
    out_pos: usize,
    /// In submission order, so with their deadlines (`started + card_timeout`) sorted.
    pending: Ring,
    /// The stream is registered for writability (output waits for room).
    want_write: bool,
    reconnect_at: Option<Instant>,
    card_timeout: Duration,
    /// `CloseSession`s to send again (connection token, principal), oldest first.
    closing: VecDeque<(Token, Principal)>,
}

impl CardLink {
    /// Connect to the card socket at `path`, retrying for up to `wait` (this blocks; it is
    /// called before the event loop starts).
    pub fn connect(path: &Path, wait: Duration, card_timeout: Duration) -> anyhow::Result<Self> {
        let give_up = Instant::now() + wait;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if Instant::now() < give_up => {
                    debug!("card socket {} not ready ({e}); retrying", path.display());
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("connecting to card socket {}", path.display()));
                }
            }
        };
        info!("card link up: {}", path.display());
        Ok(CardLink {
            path: path.to_owned(),
            stream: Some(stream),
            deframer: Deframer::new(),
            out: Vec::new(),
            out_pos: 0,
            pending: Ring::new(1),
            want_write: false,
            reconnect_at: None,
            card_timeout,
            closing: VecDeque::new(),
        })
    }

    /// Register the link's stream (if up) with the poll.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(s) => {
                self.want_write = false;
                registry.register(s, TOKEN, Interest::READABLE)
            }
            None => Ok(()),
        }
    }

    /// Requests sent to the card and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.live
    }

    /// Queue a request for the card: `request` is the encoded request as it came in the
    /// client's frame (see `gmhsm_proto::frame::decode_client`), `kind` its variant name. On
    /// `Err`, nothing was queued and the caller answers the client with the status. Call
    /// [`CardLink::flush`] before polling again.
    pub fn submit(
        &mut self,
        now: Instant,
        token: Token,
        client_id: u64,
        principal: &Principal,
        kind: &'static str,
        request: &[u8],
    ) -> Result<(), Status> {
        let session = session_of(token, principal);
        let revokes = crate::control::revokes(principal, kind, request);
        self.queue(now, token, client_id, kind, None, |header, out| {
            frame::encode_card_frame(&header, principal, session, request, out)
        })?;
        self.pending.revokes_last(revokes);
        Ok(())
    }

    /// Encode a request into the output buffer with `encode` (given its frame header) and
    /// remember who waits for its answer.
    fn queue(
        &mut self,
        now: Instant,
        token: Token,
        client_id: u64,
        kind: &'static str,
        closes: Option<Principal>,
        encode: impl FnOnce(FrameHeader, &mut Vec<u8>) -> Result<(), FrameError>,
    ) -> Result<(), Status> {
        if self.stream.is_none() {
            return Err(Status::CardUnavailable);
        }
        if self.out.len() - self.out_pos > OUT_LIMIT {
            return Err(Status::Busy);
        }
        let header = FrameHeader { version: PROTOCOL_VERSION, id: self.pending.next_id() };
        encode(header, &mut self.out).map_err(|_| Status::FrameTooLarge)?;
        self.pending.push(Pending { token, client_id, kind, started: now, closes, revokes: None });
        Ok(())
    }

    /// Tell the card that connection `token` ended, so it drops that session's state. The
    /// answer, when it comes, finds no connection and is dropped. With the link down or full,
    /// the request waits in the retry queue and goes when the link can take it.
    pub fn close_session(&mut self, now: Instant, token: Token, principal: Principal) {
        if let Err(status) = self.send_close(now, token, principal.clone()) {
            debug!("event=close_session conn={} status={status:?} action=retry", token.0);
            self.retry_close(token, principal);
        }
    }

    fn send_close(&mut self, now: Instant, token: Token, principal: Principal) -> Result<(), Status> {
        let session = session_of(token, &principal);
        self.queue(now, token, 0, "CloseSession", Some(principal.clone()), |header, out| {
            frame::encode_into(&CardFrame { header, principal, session, request: Request::CloseSession }, out)
        })
    }

    fn retry_close(&mut self, token: Token, principal: Principal) {
        if self.closing.len() >= MAX_CLOSING
            && let Some((lost, _)) = self.closing.pop_front()
        {
            warn!("event=close_session conn={} status=dropped reason=retry_queue_full", lost.0);
        }
        self.closing.push_back((token, principal));
    }

    /// Send the queued `CloseSession`s while the link takes them.
    fn resend_closes(&mut self, now: Instant) {
        while let Some((token, principal)) = self.closing.pop_front() {
            if self.send_close(now, token, principal.clone()).is_err() {
                self.closing.push_front((token, principal));
                return;
            }
        }
    }

    /// Handle a readiness event for [`TOKEN`]; answers go to `done`.
    pub fn on_event(&mut self, registry: &Registry, now: Instant, done: &mut Vec<Completion>) {
        if let Err(e) = self.read(done) {
            self.down(registry, now, &e, done);
            return;
        }
        self.flush(registry, now, done);
    }

    /// Write queued requests; give up on late answers; reconnect when due.
    pub fn tick(&mut self, registry: &Registry, now: Instant, done: &mut Vec<Completion>) {
        if !self.closing.is_empty() && self.stream.is_some() {
            self.resend_closes(now);
        }
        self.flush(registry, now, done);
        while let Some((id, p)) = self.pending.front() {
            if p.started + self.card_timeout > now {
                break;
            }
            if let Some(p) = self.pending.remove(id) {
                warn!("card did not answer request {id} in time");
                done.push(p.complete(Err(Status::CardUnavailable)));
            }
        }
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect(registry, now);
        }
    }

    /// Write queued requests; if the link fails, the completions go to `done`.
    pub fn flush(&mut self, registry: &Registry, now: Instant, done: &mut Vec<Completion>) {
        if let Err(e) = self.write(registry) {
            self.down(registry, now, &e, done);
        }
    }

    /// The earliest instant at which [`CardLink::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let first_timeout = self.pending.front().map(|(_, p)| p.started + self.card_timeout);
        match (first_timeout, self.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Read until the socket is drained (`WouldBlock` or a short read), routing answers.
    fn read(&mut self, done: &mut Vec<Completion>) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        loop {
            let room = self.deframer.spare(READ_CHUNK);
            let want = room.len();
            match stream.read(room) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "card closed the link"));
                }
                Ok(n) => {
                    self.deframer.commit(n);
                    take_frames(&mut self.deframer, &mut self.pending, done);
                    if n < want {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Write what is queued until the socket takes no more; poll for writability only while
    /// something is left.
    fn write(&mut self, registry: &Registry) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::WriteZero, "card link wrote 0 bytes"));
                }
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        let waiting = self.out_pos < self.out.len();
        if waiting != self.want_write {
            let interest = if waiting { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
            registry.reregister(stream, TOKEN, interest)?;
            self.want_write = waiting;
        }
        if !waiting {
            self.out.clear();
            self.out_pos = 0;
            if self.out.capacity() > OUT_KEEP {
                self.out = Vec::new();
            }
        } else if self.out_pos > frame::MAX_FRAME_LEN {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// The link failed: answer everything pending, drop the stream, schedule a reconnect.
    fn down(&mut self, registry: &Registry, now: Instant, why: &io::Error, done: &mut Vec<Completion>) {
        warn!("card link down ({why}); {} requests answered CardUnavailable", self.pending.live);
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.deframer = Deframer::new();
        self.out.clear();
        self.out_pos = 0;
        self.want_write = false;
        let mut closes = Vec::new();
        for p in self.pending.drain() {
            match p.closes {
                Some(principal) => closes.push((p.token, principal)),
                None => done.push(p.complete(Err(Status::CardUnavailable))),
            }
        }
        for (token, principal) in closes {
            self.retry_close(token, principal);
        }
        self.reconnect_at = Some(now + RECONNECT_DELAY);
    }

    fn reconnect(&mut self, registry: &Registry, now: Instant) {
        match UnixStream::connect(&self.path) {
            Ok(s) => {
                self.stream = Some(s);
                self.reconnect_at = None;
                if let Err(e) = self.register(registry) {
                    warn!("card link: cannot register the new stream: {e}");
                    self.stream = None;
                    self.reconnect_at = Some(now + RECONNECT_DELAY);
                } else {
                    info!("card link up again: {}", self.path.display());
                }
            }
            Err(e) => {
                debug!("card reconnect failed: {e}");
                self.reconnect_at = Some(now + RECONNECT_DELAY);
            }
        }
    }
}

/// The card session of connection `token`: the token itself (unique, never reused), for
/// local tools too. A tool acts under the quorum's authority only once the people at the
/// panel approved its own session (`AdminRequestApproval`, docs/ceremonies.md).
fn session_of(token: Token, _principal: &Principal) -> u64 {
    token.0 as u64
}

/// Route every complete frame from the card to its pending request.
fn take_frames(deframer: &mut Deframer, pending: &mut Ring, done: &mut Vec<Completion>) {
    loop {
        let body = match deframer.next_body() {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                warn!("card sent an unreadable frame: {e:?}");
                continue;
            }
        };
        let (id, result) = match frame::split_answer(body) {
            Ok((header, result)) => (header.id, result.map(|r| Zeroizing::new(r.to_vec()))),
            Err(FrameError::Malformed { header: Some(h) }) => {
                warn!("card answer {} did not decode", h.id);
                (h.id, Err(Status::Internal))
            }
            Err(e) => {
                warn!("card sent an undecodable frame: {e:?}");
                continue;
            }
        };
        match pending.remove(id) {
            Some(p) => done.push(p.complete(result)),
            None => warn!("card answered unknown or expired request {id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(client_id: u64) -> Pending {
        Pending { token: Token(16), client_id, kind: "Ping", started: Instant::now(), closes: None, revokes: None }
    }

    /// Guards finding 9: a completion's `Debug` shows the answer's length, never its bytes
    /// (it may be a plaintext); the bytes are in a zeroizing buffer.
    #[test]
    fn completion_debug_is_redacted() {
        let c = pending(1).complete(Ok(Zeroizing::new(b"SECRET-PLAINTEXT".to_vec())));
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("83, 69") && shown.contains("16 bytes"), "{shown}");
    }
}

//! The card link: a non-blocking Unix stream to the crypto card, in the daemon's poll.
//!
//! Each relayed request gets a fresh card-side id; a map from that id to (connection token,
//! client request id) routes the card's answer back. Invariants:
//! * nothing here blocks: reads and writes stop at `WouldBlock`, output is queued;
//! * every request handed to [`CardLink::submit`] is answered exactly once through a
//!   [`Completion`]: by the card, or with `Status::CardUnavailable` when the link goes down or
//!   the card does not answer within the card timeout;
//! * when the link is down, the link tries to reconnect every [`RECONNECT_DELAY`].

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use log::{debug, info, warn};
use mio::net::UnixStream;
use mio::{Interest, Registry, Token};

use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame, Status};

/// The poll token of the card link.
pub const TOKEN: Token = Token(2);

/// How long to wait between reconnection attempts.
pub const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Bytes queued towards the card past which new requests are refused with `Status::Busy`.
const OUT_LIMIT: usize = 16 * frame::MAX_FRAME_LEN;

/// An answer for one client request.
#[derive(Debug)]
pub struct Completion {
    pub token: Token,
    pub client_id: u64,
    pub result: Result<Response, Status>,
    /// The request's variant name, for the log line.
    pub kind: &'static str,
    /// When the request was submitted.
    pub started: Instant,
}

struct Pending {
    token: Token,
    client_id: u64,
    kind: &'static str,
    started: Instant,
}

impl Pending {
    fn complete(self, result: Result<Response, Status>) -> Completion {
        Completion { token: self.token, client_id: self.client_id, result, kind: self.kind, started: self.started }
    }
}

/// The link to the crypto card.
pub struct CardLink {
    path: PathBuf,
    stream: Option<UnixStream>,
    deframer: Deframer,
    out: Vec<u8>,
    out_pos: usize,
    pending: HashMap<u64, Pending>,
    /// Card ids in submission order with their deadlines (the timeout is constant, so the
    /// deadlines are sorted). Ids already answered are skipped when they reach the front.
    deadlines: VecDeque<(Instant, u64)>,
    next_id: u64,
    reconnect_at: Option<Instant>,
    card_timeout: Duration,
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
            pending: HashMap::new(),
            deadlines: VecDeque::new(),
            next_id: 1,
            reconnect_at: None,
            card_timeout,
        })
    }

    /// Register the link's stream (if up) with the poll.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match self.stream.as_mut() {
            Some(s) => registry.register(s, TOKEN, Interest::READABLE | Interest::WRITABLE),
            None => Ok(()),
        }
    }

    /// Requests sent to the card and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Queue `request` for the card. On `Err`, nothing was queued and the caller answers the
    /// client with the status. Call [`CardLink::flush`] before polling again.
    pub fn submit(
        &mut self,
        now: Instant,
        token: Token,
        client_id: u64,
        principal: Principal,
        request: Request,
    ) -> Result<(), Status> {
        if self.stream.is_none() {
            return Err(Status::CardUnavailable);
        }
        if self.out.len() - self.out_pos > OUT_LIMIT {
            return Err(Status::Busy);
        }
        let kind = crate::session::kind(&request);
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let frame = CardFrame {
            header: FrameHeader { version: PROTOCOL_VERSION, id },
            // The connection's token is its card session: unique, never reused. Tools on the
            // local socket share the appliance's own session with the front panel, so a
            // quorum logged in at the panel authorizes them (see LOCAL_ADMIN_SESSION).
            session: if principal == Principal::Local { gmhsm_proto::LOCAL_ADMIN_SESSION } else { token.0 as u64 },
            principal,
            request,
        };
        let bytes = frame::encode(&frame).map_err(|_| Status::FrameTooLarge)?;
        self.out.extend_from_slice(&bytes);
        self.pending.insert(id, Pending { token, client_id, kind, started: now });
        self.deadlines.push_back((now + self.card_timeout, id));
        Ok(())
    }

    /// Tell the card that connection `token` ended, so it drops that session's state. The
    /// answer, when it comes, finds no connection and is dropped. Best effort: with the link
    /// down there is nothing to tell (the card loses its sessions with the link).
    pub fn close_session(&mut self, now: Instant, token: Token, principal: Principal) {
        if let Err(status) = self.submit(now, token, 0, principal, Request::CloseSession) {
            debug!("event=close_session conn={} status={status:?}", token.0);
        }
    }

    /// Handle a readiness event for [`TOKEN`].
    pub fn on_event(&mut self, registry: &Registry, now: Instant) -> Vec<Completion> {
        let mut done = Vec::new();
        if let Err(e) = self.read(&mut done) {
            self.down(registry, now, &e, &mut done);
            return done;
        }
        if let Err(e) = self.write() {
            self.down(registry, now, &e, &mut done);
        }
        done
    }

    /// Write queued requests; give up on late answers; reconnect when due.
    pub fn tick(&mut self, registry: &Registry, now: Instant) -> Vec<Completion> {
        let mut done = Vec::new();
        self.flush(registry, now, &mut done);
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if !self.pending.contains_key(&id) {
                self.deadlines.pop_front();
                continue;
            }
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some(p) = self.pending.remove(&id) {
                warn!("card did not answer request {id} in time");
                done.push(p.complete(Err(Status::CardUnavailable)));
            }
        }
        if self.reconnect_at.is_some_and(|t| t <= now) {
            self.reconnect(registry, now);
        }
        done
    }

    /// Write queued requests; if the link fails, the completions go to `done`.
    pub fn flush(&mut self, registry: &Registry, now: Instant, done: &mut Vec<Completion>) {
        if let Err(e) = self.write() {
            self.down(registry, now, &e, done);
        }
    }

    /// The earliest instant at which [`CardLink::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let first_timeout = self.deadlines.front().map(|&(t, _)| t);
        match (first_timeout, self.reconnect_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn read(&mut self, done: &mut Vec<Completion>) -> io::Result<()> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "card closed the link"));
                }
                Ok(n) => {
                    self.deframer.push(&buf[..n]);
                    take_frames(&mut self.deframer, &mut self.pending, done);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self) -> io::Result<()> {
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
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > frame::MAX_FRAME_LEN {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        Ok(())
    }

    /// The link failed: answer everything pending, drop the stream, schedule a reconnect.
    fn down(&mut self, registry: &Registry, now: Instant, why: &io::Error, done: &mut Vec<Completion>) {
        warn!("card link down ({why}); {} requests answered CardUnavailable", self.pending.len());
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.deframer = Deframer::new();
        self.out.clear();
        self.out_pos = 0;
        self.deadlines.clear();
        done.extend(self.pending.drain().map(|(_, p)| p.complete(Err(Status::CardUnavailable))));
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

/// Route every complete frame from the card to its pending request.
fn take_frames(deframer: &mut Deframer, pending: &mut HashMap<u64, Pending>, done: &mut Vec<Completion>) {
    loop {
        let body = match deframer.next_frame() {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                warn!("card sent an unreadable frame: {e:?}");
                continue;
            }
        };
        let (id, result) = match frame::decode::<ServerFrame>(&body) {
            Ok(f) => (f.header.id, f.result),
            Err(FrameError::Malformed { header: Some(h) }) => {
                warn!("card answer {} did not decode", h.id);
                (h.id, Err(Status::Internal))
            }
            Err(e) => {
                warn!("card sent an undecodable frame: {e:?}");
                continue;
            }
        };
        match pending.remove(&id) {
            Some(p) => done.push(p.complete(result)),
            None => warn!("card answered unknown or expired request {id}"),
        }
    }
}

//! One client connection: a [`Wire`] (TLS over TCP, or a local Unix socket), a deframer,
//! the [`Session`] grammar and an output queue.
//!
//! [`Conn::pump`] is safe to call on any event: it reads what is there (unless the output
//! queue is past its high-water mark, which is the connection's back-pressure), turns frames
//! into actions, and writes what it can. It returns [`Close`] when the connection must go;
//! the server then calls [`Conn::close`] and, if [`Conn::counted`], `Bounds::leave`.

use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::Token;

use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{Deframer, PROTOCOL_VERSION, Principal, ServerFrame, Status};

use crate::bounds::{self, Bounds, Refusal};
use crate::cardlink::{CardLink, Completion};
use crate::session::{self, Action, Session};
pub use crate::wire::Close;
use crate::wire::{OutQueue, Wire};

/// Queued output past which the connection stops reading requests until the client reads.
const OUT_HIGH_WATER: usize = 2 * frame::MAX_FRAME_LEN;

/// What became of one frame from the client.
enum Step {
    /// The daemon answers it itself.
    Reply(ServerFrame),
    /// It went to the card link, or the link or the rate limit refused it with a status.
    Relayed { id: u64, kind: &'static str, result: Result<(), Status> },
}

/// The per-connection bounds, taken from the daemon's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_in_flight: usize,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
}

/// What a connection needs from the daemon while it pumps.
pub struct Ctx<'a> {
    pub card: &'a mut CardLink,
    pub bounds: &'a mut Bounds,
    /// False while the daemon drains for shutdown: nothing more is read.
    pub accepting: bool,
}

/// One connection.
pub struct Conn {
    token: Token,
    peer: String,
    pub wire: Wire,
    deframer: Deframer,
    session: Session,
    principal: Option<Principal>,
    /// The principal was counted by `Bounds::enter`.
    counted: bool,
    refused: Option<&'static str>,
    /// A request reached the card, so the card may hold session state for this connection.
    relayed: bool,
    out: OutQueue,
    /// The socket may have bytes to read: set by a readable event, cleared once a read finds
    /// it drained, so answers delivered in between do not cost a read that would block.
    readable: bool,
    read_closed: bool,
    handshake_deadline: Instant,
    last_activity: Instant,
    idle_timeout: Duration,
}

impl Conn {
    pub fn new(token: Token, peer: String, wire: Wire, limits: Limits, now: Instant) -> Self {
        Conn {
            token,
            peer,
            wire,
            deframer: Deframer::new(),
            session: Session::new(limits.max_in_flight),
            principal: None,
            counted: false,
            refused: None,
            relayed: false,
            out: OutQueue::default(),
            // A local connection may have sent already; an established TLS one may hold
            // plaintext its handshake worker decrypted.
            readable: true,
            read_closed: false,
            handshake_deadline: now + limits.handshake_timeout,
            last_activity: now,
            idle_timeout: limits.idle_timeout,
        }
    }

    /// The fields every log line about this connection starts with.
    pub fn tag(&self) -> String {
        format!("conn={} peer={} principal={}", self.token.0, self.peer, bounds::short(self.principal.as_ref()))
    }

    /// The principal to release with `Bounds::leave` when this connection goes.
    pub fn counted(&self) -> Option<&Principal> {
        self.principal.as_ref().filter(|_| self.counted)
    }

    /// The authenticated principal, once known.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The principal whose card session must be closed when this connection goes.
    pub fn card_session(&self) -> Option<&Principal> {
        self.principal.as_ref().filter(|_| self.relayed)
    }

    /// The socket reported readiness to read (or its end, or an error).
    pub fn on_readable(&mut self) {
        self.readable = true;
    }

    /// Read, process and write as far as the socket allows: reads until the socket is
    /// drained, then one write of everything queued (a TLS record carries many answers).
    pub fn pump(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        loop {
            // Readiness is edge-triggered: bytes left in the socket bring no new event, so
            // read until it is drained, unless the client is not reading its answers (then
            // the flag stays set and reading resumes once the back-pressure lifts).
            let can_read = ctx.accepting && !self.read_closed && self.readable;
            if can_read && self.out.bytes() < OUT_HIGH_WATER {
                self.read_some(now, ctx)?;
                continue;
            }
            if self.wire.flush(&mut self.out).map_err(Close::Io)? {
                self.last_activity = now;
            }
            if !(can_read && self.out.bytes() < OUT_HIGH_WATER) {
                break;
            }
        }
        if self.read_closed && self.session.in_flight() == 0 && self.flushed() {
            return Err(self.refused.map_or(Close::Done, Close::Refused));
        }
        Ok(())
    }

    /// An answer from the card for this connection.
    pub fn deliver(&mut self, c: Completion, now: Instant) {
        self.session.completed();
        // Answered requests are `debug` (tens of thousands a second would make the log the
        // daemon's main work); refused and failed ones are `info`.
        let level = if c.result.is_ok() { log::Level::Debug } else { log::Level::Info };
        log::log!(
            level,
            "event=request {} id={} kind={} status={} latency_us={}",
            self.tag(),
            c.client_id,
            c.kind,
            session::status_name(c.result.as_ref().err()),
            now.saturating_duration_since(c.started).as_micros()
        );
        let header = FrameHeader { version: PROTOCOL_VERSION, id: c.client_id };
        match c.result {
            Ok(response) => {
                if self.out.push_answer(&header, &response).is_err() {
                    self.queue(&session::reply(c.client_id, Status::Internal));
                }
            }
            Err(status) => self.queue(&ServerFrame { header, result: Err(status) }),
        }
    }

    /// Everything queued has been handed to the socket.
    pub fn flushed(&self) -> bool {
        self.out.bytes() == 0 && !self.wire.wants_write()
    }

    /// Requests of this connection waiting for the card.
    pub fn in_flight(&self) -> usize {
        self.session.in_flight()
    }

    /// When this connection times out, if nothing happens before. Activity is bytes read
    /// or written; a connection waiting for the card does not time out (the card link has
    /// its own deadline), one whose peer stops reading its answers does.
    pub fn deadline(&self) -> Option<Instant> {
        if self.wire.handshaking() {
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

    /// Log why, say goodbye (TLS close_notify when established) and shut the socket down.
    pub fn close(&mut self, why: &Close) {
        let tag = self.tag();
        let n = self.in_flight();
        match why {
            Close::Done => debug!("event=close {tag} reason=peer_closed in_flight={n}"),
            Close::Tls(e) => info!("event=close {tag} reason=tls in_flight={n} error=\"{e}\""),
            Close::Io(e) => info!("event=close {tag} reason=io in_flight={n} error=\"{e}\""),
            Close::Timeout => info!("event=close {tag} reason=timeout in_flight={n}"),
            Close::Refused(r) => warn!("event=close {tag} reason={r} in_flight={n}"),
        }
        self.wire.close(&mut self.out);
    }

    /// One socket read and everything it makes available.
    fn read_some(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        let r = self.wire.read(&mut self.deframer)?;
        if r.got {
            self.last_activity = now;
        }
        self.read_closed |= r.eof;
        self.readable &= !r.drained;
        if self.wire.handshaking() {
            return Ok(());
        }
        if self.principal.is_none() {
            self.authenticate(ctx.bounds)?;
        }
        if self.refused.is_none() {
            self.take_frames(now, ctx);
        }
        Ok(())
    }

    /// The transport knows the peer: count it against the bounds or refuse it.
    fn authenticate(&mut self, bounds: &mut Bounds) -> Result<(), Close> {
        let p = self.wire.principal()?;
        let result = bounds.enter(&p);
        self.principal = Some(p);
        match result {
            Ok(()) => {
                self.counted = true;
                info!("event=auth {}", self.tag());
            }
            Err(refusal) => {
                let (reason, status) = match refusal {
                    Refusal::TooManyConnections => ("too_many_connections", Status::Busy),
                    Refusal::NotListed => ("not_in_applications", Status::AccessDenied),
                };
                // One status frame (id 0: no request was read), then close once flushed.
                self.refused = Some(reason);
                self.read_closed = true;
                self.queue(&session::reply(0, status));
            }
        }
        Ok(())
    }

    fn take_frames(&mut self, now: Instant, ctx: &mut Ctx<'_>) {
        let Some(principal) = self.principal.clone() else {
            return;
        };
        loop {
            // The body is borrowed from the deframer: a relayed request's bytes go from there
            // into the card link's output buffer, nowhere else.
            let step = match self.deframer.next_body() {
                Ok(None) => return,
                Ok(Some(body)) => match self.session.on_frame(body) {
                    Action::Reply(frame) => Step::Reply(frame),
                    Action::Relay { id, kind, cost, raw } => {
                        let result = if ctx.bounds.take_tokens(&principal, cost) {
                            ctx.card.submit(now, self.token, id, &principal, kind, &body[raw])
                        } else {
                            Err(Status::Busy)
                        };
                        Step::Relayed { id, kind, result }
                    }
                },
                Err(e) => Step::Reply(self.session.on_deframe_error(e)),
            };
            match step {
                Step::Reply(frame) => {
                    info!(
                        "event=request {} id={} kind=- status={} latency_us=0",
                        self.tag(),
                        frame.header.id,
                        session::status_name(frame.result.as_ref().err())
                    );
                    self.queue(&frame);
                }
                Step::Relayed { result: Ok(()), .. } => self.relayed = true,
                Step::Relayed { id, kind, result: Err(status) } => {
                    self.session.completed();
                    info!(
                        "event=request {} id={id} kind={kind} status={} latency_us=0",
                        self.tag(),
                        session::status_name(Some(&status))
                    );
                    self.queue(&session::reply(id, status));
                }
            }
        }
    }

    /// Encode `frame` at the end of the output queue.
    fn queue(&mut self, frame: &ServerFrame) {
        if self.out.push(frame).is_err() {
            // A bare status always encodes.
            let _ = self.out.push(&session::reply(frame.header.id, Status::Internal));
        }
    }
}

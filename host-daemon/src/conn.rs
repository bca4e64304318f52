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

    /// The principal whose card session must be closed when this connection goes.
    pub fn card_session(&self) -> Option<&Principal> {
        self.principal.as_ref().filter(|_| self.relayed)
    }

    /// Read, process and write as far as the socket allows.
    pub fn pump(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Result<(), Close> {
        loop {
            let blocked = self.out.bytes() >= OUT_HIGH_WATER;
            let mut progressed = false;
            if ctx.accepting && !self.read_closed && !blocked {
                progressed = self.read_some(now, ctx)?;
            }
            if self.wire.flush(&mut self.out).map_err(Close::Io)? {
                self.last_activity = now;
            }
            // Readiness is edge-triggered: once the back-pressure lifts, read again now, as
            // no new readable event may come for bytes already waiting in the socket.
            if blocked && self.out.bytes() < OUT_HIGH_WATER {
                progressed = true;
            }
            if !progressed {
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
        let frame =
            ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: c.client_id }, result: c.result };
        self.queue(&frame);
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

    /// One socket read and everything it makes available. `Ok(true)` if bytes came in.
    fn read_some(&mut self, now: Instant, ctx: &mut Ctx<'_>) -> Result<bool, Close> {
        let r = self.wire.read(&mut self.deframer)?;
        if r.got {
            self.last_activity = now;
        }
        self.read_closed |= r.eof;
        if self.wire.handshaking() {
            return Ok(r.got);
        }
        if self.principal.is_none() {
            self.authenticate(ctx.bounds)?;
        }
        if self.refused.is_none() {
            self.take_frames(now, ctx);
        }
        Ok(r.got)
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
            let action = match self.deframer.next_frame() {
                Ok(Some(body)) => self.session.on_frame(&body),
                Ok(None) => return,
                Err(e) => Action::Reply(self.session.on_deframe_error(e)),
            };
            match action {
                Action::Reply(frame) => {
                    info!(
                        "event=request {} id={} kind=- status={} latency_us=0",
                        self.tag(),
                        frame.header.id,
                        session::status_name(frame.result.as_ref().err())
                    );
                    self.queue(&frame);
                }
                Action::Relay { id, request } => {
                    let kind = session::kind(&request);
                    let result = if ctx.bounds.take_token(&principal) {
                        ctx.card.submit(now, self.token, id, principal.clone(), request)
                    } else {
                        Err(Status::Busy)
                    };
                    self.relayed |= result.is_ok();
                    if let Err(status) = result {
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
        self.out.push(bytes);
    }
}

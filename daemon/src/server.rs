//! The event loop: one mio poll owning the TCP listener, the local socket, the connections
//! and the card link.
//!
//! Tokens: [`LISTENER`], [`WAKER`] (shutdown, reload), [`cardlink::TOKEN`], [`LOCAL`], then
//! one per connection from [`FIRST_CONN`] up, never reused, so a late card answer for a
//! closed connection finds no connection and is dropped. The token number is the `conn=`
//! field of the logs.
//!
//! Admission (see [`crate::gate`]): network connections (handshakes under way included) are
//! bounded by `max_connections`, handshakes per source by `max_handshakes_per_source`; a new
//! connection that finds a budget full evicts the oldest handshake (its source's, or the
//! busiest source's) rather than being refused. Only when the network budget is full of
//! established connections is it accepted and closed at once (no TLS, no answer), the
//! cheapest refusal. Local tools have a budget of their own, `max_local_connections`, which
//! network connections never use.
//!
//! A TCP connection starts as a [`Handshake`] whose TLS processing runs on the handshake
//! workers (see [`crate::handshake`]; the loop side is in `server/accept.rs`); once
//! established it becomes a [`Conn`] under the same token.
//!
//! Shutdown: [`ShutdownHandle::shutdown`] wakes the loop; it closes the listeners, stops
//! reading requests, waits up to `drain_timeout` for the card's answers to requests already
//! in flight and for their delivery, then closes every connection and returns.
//!
//! Reload: [`ReloadHandle::reload`] wakes the loop, which re-reads the client CA and the
//! applications list; connections accepted afterwards use them. The server identities
//! (certificates, card-held keys) are built once at bind.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use log::{debug, error, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::ServerConfig;

use crate::applications::Admission;
use crate::bounds::Bounds;
use crate::busypoll::BusyPoll;
use crate::cardlink::{self, CardLink, Completion};
use crate::config::DaemonConfig;
use crate::conn::{Close, Conn, Ctx, Limits};
use crate::control::{ControlInner, ReloadHandle, ShutdownHandle};
use crate::gate::Gate;
use crate::handshake::{Handshake, Workers};
use crate::local::LocalListener;
use crate::tls;
use crate::wire::Wire;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const LOCAL: Token = Token(3);
const FIRST_CONN: usize = 16;
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// The longest the connections go unscanned for expiry (bounds how late a deadline that moved
/// earlier, or reappeared, is noticed).
const RESCAN_EVERY: Duration = Duration::from_millis(50);

mod accept;

/// A bound daemon, ready to [`Daemon::run`].
pub struct Daemon {
    poll: Poll,
    listener: Option<TcpListener>,
    local: Option<LocalListener>,
    local_addr: SocketAddr,
    card: CardLink,
    identities: tls::Identities,
    tls: Arc<ServerConfig>,
    workers: Workers,
    handshakes: TokenMap<Handshake>,
    /// The handshakes by source, for per-source admission.
    gate: Gate,
    /// Local tools connections among `conns`.
    local_conns: usize,
    bounds: Bounds,
    config: DaemonConfig,
    control: Arc<ControlInner>,
    conns: TokenMap<Conn>,
    /// When the connections must next be scanned for expiry: the earliest connection deadline
    /// seen at the last scan (or of a connection added since), at most [`RESCAN_EVERY`] ahead.
    /// Scanning every connection on every loop pass would cost O(connections) per request.
    scan_at: Instant,
    next_token: usize,
    /// Scratch lists reused by every loop iteration: answers to hand to connections, and the
    /// connections they touched.
    done: Vec<Completion>,
    touched: Vec<Token>,
    busy: BusyPoll,
}

/// Connections and handshakes by token.
type TokenMap<V> = HashMap<Token, V, BuildHasherDefault<TokenHasher>>;

/// Hashes a token with one multiplication. Tokens are numbers the daemon hands out in
/// sequence, so there is nothing for a peer to choose and SipHash's protection is not needed.
#[derive(Default)]
struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, n: usize) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Daemon {
    /// Build the TLS configuration, read the applications list, bind the TCP listener and
    /// the local socket, connect to the card socket (waiting up to
    /// `config.card_connect_wait` for it to appear), connect the card-held TLS keys' own
    /// card links, and start the handshake workers.
    pub fn bind(config: DaemonConfig) -> anyhow::Result<Daemon> {
        let identities = tls::identities(&config)?;
        let tls = tls::server_config(&identities, &config.client_ca_pem)?;
        let mut bounds = Bounds::new(config.max_connections_per_client, config.rate_limit, config.clock.clone());
        bounds.set_admission(Admission::load(config.applications.clone())?);
        let poll = Poll::new().context("creating the poll")?;
        let waker = Waker::new(poll.registry(), WAKER).context("creating the waker")?;
        let listener = TcpListener::bind(config.listen).with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("listener address")?;
        let local = config.local.as_ref().map(LocalListener::bind).transpose()?;
        let card = CardLink::connect(&config.card_socket, config.card_connect_wait, config.card_timeout)?;
        identities.connect_card_keys();
        let control = ControlInner::new(waker);
        let workers = Workers::start(config.handshake_workers, control.clone())?;
        let busy = BusyPoll::new(config.busy_poll);
        Ok(Daemon {
            poll,
            listener: Some(listener),
            local,
            local_addr,
            card,
            identities,
            tls,
            workers,
            handshakes: TokenMap::default(),
            gate: Gate::new(config.max_handshakes_per_source),
            local_conns: 0,
            bounds,
            config,
            control,
            conns: TokenMap::default(),
            scan_at: Instant::now(),
            next_token: FIRST_CONN,
            done: Vec::new(),
            touched: Vec::new(),
            busy,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops [`Daemon::run`] from another thread or a signal handler thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle { inner: self.control.clone() }
    }

    /// A handle that makes the running daemon re-read its client CA and applications list.
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle { inner: self.control.clone() }
    }

    /// Serve until shut down.
    pub fn run(mut self) -> anyhow::Result<()> {
        if let Some(l) = self.listener.as_mut() {
            self.poll.registry().register(l, LISTENER, Interest::READABLE)?;
        }
        if let Some(l) = self.local.as_mut() {
            self.poll.registry().register(&mut l.listener, LOCAL, Interest::READABLE)?;
        }
        self.card.register(self.poll.registry()).context("registering the card link")?;
        info!("event=listen addr={}", self.local_addr);

        let mut events = Events::with_capacity(256);
        let mut drain_until: Option<Instant> = None;
        let mut next_sweep = Instant::now() + SWEEP_EVERY;
        loop {
            let now = Instant::now();
            if drain_until.is_none() && self.control.shutdown_requested() {
                info!("event=shutdown in_flight={}", self.card.pending());
                drain_until = Some(now + self.config.drain_timeout);
                if let Some(mut l) = self.listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
                if let Some(mut l) = self.local.take() {
                    let _ = self.poll.registry().deregister(&mut l.listener);
                }
                self.close_handshakes();
            }
            if let Some(until) = drain_until {
                let drained = self.card.pending() == 0 && self.conns.values().all(Conn::flushed);
                if drained || now >= until {
                    break;
                }
            }
            if now >= next_sweep {
                self.bounds.sweep();
                next_sweep = now + SWEEP_EVERY;
            }

            let timeout = self.next_deadline(drain_until).map(|d| d.min(next_sweep).saturating_duration_since(now));
            if let Err(e) = self.busy.wait(&mut self.poll, &mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("polling");
            }

            // Before accepting: a connection made after `reload()` returned sees the reload.
            if self.control.take_reload() {
                self.reload();
            }
            let now = Instant::now();
            if !events.is_empty() {
                self.busy.active(now);
            }
            let accepting = drain_until.is_none();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_tcp(now),
                    LOCAL => self.accept_local(now),
                    WAKER => {}
                    cardlink::TOKEN => {
                        self.card.on_event(self.poll.registry(), now, &mut self.done);
                        self.deliver(now, accepting);
                    }
                    token => {
                        if let Some(conn) = self.conns.get_mut(&token) {
                            if event.is_readable() || event.is_read_closed() || event.is_error() {
                                conn.on_readable();
                            }
                            self.pump(token, now, accepting);
                        } else {
                            self.pump_handshake(token);
                        }
                    }
                }
            }
            self.take_handshakes(now, accepting);
            // One write towards the card per iteration: every request the events above queued.
            self.card.tick(self.poll.registry(), now, &mut self.done);
            self.deliver(now, accepting);
            self.card.flush(self.poll.registry(), now, &mut self.done);
            self.deliver(now, accepting);
            self.expire(now);
        }

        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.close(token, &Close::Done);
        }
        // Best effort: hand the CloseSession frames to the card before going.
        self.card.flush(self.poll.registry(), Instant::now(), &mut self.done);
        info!("event=stopped");
        Ok(())
    }

    fn next_deadline(&self, drain_until: Option<Instant>) -> Option<Instant> {
        Some(self.scan_at)
            .into_iter()
            .chain(self.handshakes.values().map(Handshake::deadline))
            .chain(self.card.next_deadline())
            .chain(drain_until)
            .min()
    }

    fn limits(&self) -> Limits {
        Limits {
            max_in_flight: self.config.max_in_flight_per_conn,
            handshake_timeout: self.config.handshake_timeout,
            idle_timeout: self.config.idle_timeout,
        }
    }

    fn accept_local(&mut self, now: Instant) {
        loop {
            let Some(local) = self.local.as_ref() else {
                return;
            };
            match local.accept() {
                Ok(Some((sock, peer))) => {
                    if self.local_conns >= self.config.max_local_connections {
                        warn!("event=refuse peer={peer} reason=max_local_connections");
                        let _ = sock.shutdown(std::net::Shutdown::Both);
                        continue;
                    }
                    self.local_conns += 1;
                    self.add(peer, Wire::Plain { sock }, now);
                }
                Ok(None) => return,
                Err(e) => {
                    warn!("event=accept_failed socket=local error=\"{e}\"");
                    return;
                }
            }
        }
    }

    fn add(&mut self, peer: String, mut wire: Wire, now: Instant) {
        let token = Token(self.next_token);
        self.next_token += 1;
        if let Err(e) = self.poll.registry().register(wire.source(), token, Interest::READABLE | Interest::WRITABLE) {
            warn!("event=refuse peer={peer} reason=register error=\"{e}\"");
            self.local_conns -= 1;
            return;
        }
        debug!("event=accept conn={} peer={peer}", token.0);
        let conn = Conn::new(token, peer, wire, self.limits(), now);
        if let Some(d) = conn.deadline() {
            self.scan_at = self.scan_at.min(d);
        }
        self.conns.insert(token, conn);
        // A local connection needs no handshake and may have sent already.
        self.pump(token, now, true);
    }

    fn pump(&mut self, token: Token, now: Instant, accepting: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let mut ctx = Ctx { card: &mut self.card, bounds: &mut self.bounds, accepting };
        if let Err(why) = conn.pump(now, &mut ctx) {
            self.close(token, &why);
        }
    }

    /// Hand the answers in `self.done` to their connections (encoded into each one's output
    /// queue), then write once per connection.
    fn deliver(&mut self, now: Instant, accepting: bool) {
        if self.done.is_empty() {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        let mut revoked = Vec::new();
        for c in self.done.drain(..) {
            revoked.extend(c.revoked);
            let token = c.token;
            match self.conns.get_mut(&token) {
                Some(conn) => {
                    conn.deliver(c, now);
                    if !touched.contains(&token) {
                        touched.push(token);
                    }
                }
                None => debug!("event=answer_dropped conn={} reason=closed", token.0),
            }
        }
        for &token in &touched {
            self.pump(token, now, accepting);
        }
        touched.clear();
        self.touched = touched;
        for cert in revoked {
            let conns = self.conns.iter().map(|(t, c)| (t, c.principal()));
            for token in crate::control::close_revoked(&cert, conns) {
                self.close(token, &Close::Refused("certificate revoked"));
            }
        }
    }

    /// Close the connections past their deadline. A full scan is due only at the earliest
    /// deadline the last one found (activity moves deadlines later), and at least every
    /// [`RESCAN_EVERY`]: a deadline that reappears when requests complete, or that moves
    /// earlier (an idle timeout shorter than the rest of the handshake timeout), is noticed
    /// at most that late.
    fn expire(&mut self, now: Instant) {
        if now >= self.scan_at {
            let expired: Vec<Token> = self.conns.iter().filter(|(_, c)| c.expired(now)).map(|(t, _)| *t).collect();
            for token in expired {
                self.close(token, &Close::Timeout);
            }
            let earliest = self.conns.values().filter_map(Conn::deadline).min();
            self.scan_at = earliest.map_or(now + RESCAN_EVERY, |d| d.min(now + RESCAN_EVERY));
        }
        self.expire_handshakes(now);
    }

    fn close(&mut self, token: Token, why: &Close) {
        if let Some(mut conn) = self.conns.remove(&token) {
            conn.close(why);
            if matches!(conn.wire, Wire::Plain { .. }) {
                self.local_conns -= 1;
            }
            let _ = self.poll.registry().deregister(conn.wire.source());
            if let Some(p) = conn.counted() {
                self.bounds.leave(p);
            }
            // Local tools too: their card session (and any approval it got) ends with them.
            if let Some(p) = conn.card_session() {
                self.card.close_session(Instant::now(), token, p.clone());
            }
        }
    }

    /// Re-read the client CA and the applications list; keep the old ones on error.
    fn reload(&mut self) {
        if let Some(path) = &self.config.client_ca_path {
            let loaded = std::fs::read(path).with_context(|| format!("reading {}", path.display())).and_then(|ca| {
                let tls = tls::server_config(&self.identities, &ca)?;
                Ok((ca, tls))
            });
            match loaded {
                Ok((ca, tls)) => {
                    self.config.client_ca_pem = ca;
                    self.tls = tls;
                    info!("event=reload what=client_ca path={}", path.display());
                }
                Err(e) => error!("event=reload_failed what=client_ca error=\"{e:#}\""),
            }
        }
        if let Err(e) = self.bounds.admission().reload() {
            error!("event=reload_failed what=applications error=\"{e:#}\"");
        }
    }
}

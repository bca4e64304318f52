//! The event loop: one mio poll owning the TCP listener, the connections and the card link.
//!
//! Tokens: [`LISTENER`], [`WAKER`] (shutdown), [`cardlink::TOKEN`], then one per connection
//! from [`FIRST_CONN`] up, never reused, so a late card answer for a closed connection
//! finds no connection and is dropped.
//!
//! Past `max_connections`, a new connection is accepted and closed at once (no TLS, no
//! answer): the cheapest refusal, and the client sees a reset it can retry on.
//!
//! Shutdown: [`ShutdownHandle::shutdown`] wakes the loop; it closes the listener, stops
//! reading requests, waits up to `drain_timeout` for the card's answers to requests already
//! in flight and for their delivery, then closes every connection and returns.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::Context;
use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use rustls::ServerConfig;

use crate::cardlink::{self, CardLink, Completion};
use crate::config::DaemonConfig;
use crate::conn::{Close, Conn, Limits};
use crate::tls;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 16;

/// Wakes the event loop and asks it to stop. Cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    inner: Arc<ShutdownInner>,
}

struct ShutdownInner {
    requested: AtomicBool,
    waker: Waker,
}

impl ShutdownHandle {
    /// Ask the daemon to stop; [`Daemon::run`] returns once requests in flight are answered
    /// (or the drain timeout passes).
    pub fn shutdown(&self) {
        self.inner.requested.store(true, Ordering::SeqCst);
        if let Err(e) = self.inner.waker.wake() {
            warn!("cannot wake the event loop: {e}");
        }
    }

    fn requested(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }
}

/// A bound daemon, ready to [`Daemon::run`].
pub struct Daemon {
    poll: Poll,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    card: CardLink,
    tls: Arc<ServerConfig>,
    config: DaemonConfig,
    shutdown: ShutdownHandle,
    conns: HashMap<Token, Conn>,
    next_token: usize,
}

impl Daemon {
    /// Build the TLS configuration, bind the TCP listener and connect to the card socket
    /// (waiting up to `config.card_connect_wait` for it to appear).
    pub fn bind(config: DaemonConfig) -> anyhow::Result<Daemon> {
        let tls = tls::server_config(
            &config.server_cert_chain_pem,
            &config.server_key_pem,
            &config.client_ca_pem,
        )?;
        let poll = Poll::new().context("creating the poll")?;
        let waker = Waker::new(poll.registry(), WAKER).context("creating the waker")?;
        let listener = TcpListener::bind(config.listen)
            .with_context(|| format!("binding {}", config.listen))?;
        let local_addr = listener.local_addr().context("listener address")?;
        let card = CardLink::connect(
            &config.card_socket,
            config.card_connect_wait,
            config.card_timeout,
        )?;
        let shutdown = ShutdownHandle {
            inner: Arc::new(ShutdownInner {
                requested: AtomicBool::new(false),
                waker,
            }),
        };
        Ok(Daemon {
            poll,
            listener: Some(listener),
            local_addr,
            card,
            tls,
            config,
            shutdown,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops [`Daemon::run`] from another thread or a signal handler thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Serve until shut down.
    pub fn run(mut self) -> anyhow::Result<()> {
        if let Some(l) = self.listener.as_mut() {
            self.poll
                .registry()
                .register(l, LISTENER, Interest::READABLE)?;
        }
        self.card
            .register(self.poll.registry())
            .context("registering the card link")?;
        info!("listening on {}", self.local_addr);

        let mut events = Events::with_capacity(256);
        let mut drain_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if drain_until.is_none() && self.shutdown.requested() {
                info!("shutting down; {} requests in flight", self.card.pending());
                drain_until = Some(now + self.config.drain_timeout);
                if let Some(mut l) = self.listener.take() {
                    let _ = self.poll.registry().deregister(&mut l);
                }
            }
            if let Some(until) = drain_until {
                let drained = self.card.pending() == 0 && self.conns.values().all(Conn::flushed);
                if drained || now >= until {
                    break;
                }
            }

            let timeout = self
                .next_deadline(drain_until)
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e).context("polling");
            }

            let now = Instant::now();
            let accepting = drain_until.is_none();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(now),
                    WAKER => {}
                    cardlink::TOKEN => {
                        let done = self.card.on_event(self.poll.registry(), now);
                        self.deliver(done, now, accepting);
                    }
                    token => self.pump(token, now, accepting),
                }
            }
            let done = self.card.tick(self.poll.registry(), now);
            self.deliver(done, now, accepting);
            let mut done = Vec::new();
            self.card.flush(self.poll.registry(), now, &mut done);
            self.deliver(done, now, accepting);
            self.expire(now);
        }

        let tokens: Vec<Token> = self.conns.keys().copied().collect();
        for token in tokens {
            self.close(token, &Close::Done);
        }
        info!("stopped");
        Ok(())
    }

    fn next_deadline(&self, drain_until: Option<Instant>) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(Conn::deadline)
            .chain(self.card.next_deadline())
            .chain(drain_until)
            .min()
    }

    fn accept(&mut self, now: Instant) {
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        loop {
            let (mut sock, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            };
            if self.conns.len() >= self.config.max_connections {
                warn!(
                    "{peer}: refused, at the bound of {} connections",
                    self.config.max_connections
                );
                let _ = sock.shutdown(std::net::Shutdown::Both);
                continue;
            }
            let token = Token(self.next_token);
            self.next_token += 1;
            let limits = Limits {
                max_in_flight: self.config.max_in_flight_per_conn,
                handshake_timeout: self.config.handshake_timeout,
                idle_timeout: self.config.idle_timeout,
            };
            if let Err(e) = self.poll.registry().register(
                &mut sock,
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("{peer}: cannot register: {e}");
                continue;
            }
            match Conn::new(token, peer, sock, self.tls.clone(), limits, now) {
                Ok(conn) => {
                    debug!("{peer}: accepted");
                    self.conns.insert(token, conn);
                }
                Err(e) => warn!("{peer}: cannot start TLS: {e}"),
            }
        }
    }

    fn pump(&mut self, token: Token, now: Instant, accepting: bool) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        if let Err(why) = conn.pump(now, &mut self.card, accepting) {
            self.close(token, &why);
        }
    }

    fn deliver(&mut self, done: Vec<Completion>, now: Instant, accepting: bool) {
        let mut touched = Vec::new();
        for c in done {
            let token = c.token;
            match self.conns.get_mut(&token) {
                Some(conn) => {
                    conn.deliver(c);
                    if !touched.contains(&token) {
                        touched.push(token);
                    }
                }
                None => debug!("answer for a closed connection dropped"),
            }
        }
        for token in touched {
            self.pump(token, now, accepting);
        }
    }

    fn expire(&mut self, now: Instant) {
        let expired: Vec<Token> = self
            .conns
            .iter()
            .filter(|(_, c)| c.expired(now))
            .map(|(t, _)| *t)
            .collect();
        for token in expired {
            self.close(token, &Close::Timeout);
        }
    }

    fn close(&mut self, token: Token, why: &Close) {
        if let Some(mut conn) = self.conns.remove(&token) {
            conn.close(why);
            let _ = self.poll.registry().deregister(&mut conn.sock);
            debug!(
                "{}: {} requests in flight abandoned",
                conn.peer(),
                conn.in_flight()
            );
        }
    }
}

//! TLS handshakes with their work off the event loop.
//!
//! rustls does the handshake's computing (and, with card-held keys, waits for the card's
//! signature) inside `ServerConnection::process_new_packets`. That call runs on a small pool
//! of handshake worker threads ([`Workers`]); everything else stays in the loop:
//!
//! 1. the loop accepts the socket, makes the `ServerConnection` and registers the socket;
//! 2. on readiness, [`Handshake::pump`] writes what TLS has queued and reads once without
//!    blocking; bytes read make a [`Job`]: the `ServerConnection` goes to a worker (the
//!    socket stays in the loop);
//! 3. the worker runs `process_new_packets`, sends the connection back as [`Processed`] and
//!    wakes the loop;
//! 4. [`Handshake::returned`]: an error closes the connection (after a best-effort alert);
//!    a finished handshake becomes a [`crate::conn::Conn`] on the same token; otherwise back
//!    to 2.
//!
//! So workers never wait on the network: a client that stalls its handshake costs a map
//! entry until the handshake deadline, not a worker, and a slow card signature delays only
//! the handshakes queued behind it, never an established connection. The same path serves
//! PEM keys, so there is one handshake path to test and to harden.

use std::io::{self, ErrorKind};
use std::net::Shutdown;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::Context;
use log::{debug, info};
use mio::Token;
use mio::net::TcpStream;
use rustls::ServerConnection;

use crate::control::ControlInner;
use crate::wire::{Close, Wire};

/// A connection whose new handshake bytes a worker must process.
pub struct Job {
    pub token: Token,
    pub tls: Box<ServerConnection>,
}

/// A connection back from a worker.
pub struct Processed {
    pub token: Token,
    pub tls: Box<ServerConnection>,
    pub result: Result<(), rustls::Error>,
}

/// The handshake worker threads. Dropping this stops them once their current job is done.
pub struct Workers {
    jobs: Sender<Job>,
    done: Receiver<Processed>,
    _threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Start `n` (at least 1) workers; each finished job wakes the loop through `control`.
    pub fn start(n: usize, control: Arc<ControlInner>) -> anyhow::Result<Workers> {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Processed>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let job_rx = Arc::clone(&job_rx);
            let done_tx = done_tx.clone();
            let control = Arc::clone(&control);
            let t = std::thread::Builder::new()
                .name(format!("handshake-{i}"))
                .spawn(move || work(&job_rx, &done_tx, &control))
                .context("starting a handshake worker")?;
            threads.push(t);
        }
        Ok(Workers { jobs, done, _threads: threads })
    }

    /// Hand a job to the pool; `false` when the workers are gone (the caller closes).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }

    /// A connection a worker has finished with, if any.
    pub fn try_done(&self) -> Option<Processed> {
        self.done.try_recv().ok()
    }
}

fn work(jobs: &Mutex<Receiver<Job>>, done: &Sender<Processed>, control: &ControlInner) {
    loop {
        // Holding the lock while waiting is the point: one idle worker waits for the next job.
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(Job { token, mut tls }) = job else {
            return; // the daemon is gone
        };
        let result = tls.process_new_packets().map(|_| ());
        if done.send(Processed { token, tls, result }).is_err() {
            return;
        }
        control.wake();
    }
}

/// What [`Handshake::pump`] found.
pub enum Step {
    /// Nothing to do until the socket is ready again (or the worker is done).
    Wait,
    /// New bytes for a worker to process.
    Work(Job),
    /// The connection must go.
    Failed(Close),
}

/// A TCP connection whose TLS handshake is under way.
pub struct Handshake {
    pub sock: TcpStream,
    /// `None` while a worker has it.
    tls: Option<Box<ServerConnection>>,
    pub peer: String,
    deadline: Instant,
}

impl Handshake {
    pub fn new(sock: TcpStream, tls: ServerConnection, peer: String, deadline: Instant) -> Self {
        Handshake { sock, tls: Some(Box::new(tls)), peer, deadline }
    }

    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Write what TLS has queued, then read once; see the module docs.
    pub fn pump(&mut self, token: Token) -> Step {
        let Some(tls) = self.tls.as_mut() else {
            return Step::Wait;
        };
        if let Err(e) = write_tls(tls, &mut self.sock) {
            return Step::Failed(Close::Io(e));
        }
        loop {
            match tls.read_tls(&mut self.sock) {
                Ok(0) => return Step::Failed(Close::Done),
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Step::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Step::Failed(Close::Io(e)),
            }
        }
        match self.tls.take() {
            Some(tls) => Step::Work(Job { token, tls }),
            None => Step::Wait,
        }
    }

    /// The connection came back from a worker: `Ok(true)` when the handshake is complete
    /// (make it a connection), `Ok(false)` to pump again.
    pub fn returned(&mut self, tls: Box<ServerConnection>, result: Result<(), rustls::Error>) -> Result<bool, Close> {
        let tls = self.tls.insert(tls);
        if let Err(e) = result {
            // The alert rustls queued, best effort.
            let _ = write_tls(tls, &mut self.sock);
            return Err(Close::Tls(e));
        }
        Ok(!tls.is_handshaking())
    }

    /// The established connection's transport; `None` while a worker has the TLS state.
    pub fn into_wire(self) -> Option<Wire> {
        let tls = self.tls?;
        Some(Wire::Tls { sock: self.sock, tls })
    }

    /// Log why and shut the socket down (no close_notify: nothing was established).
    pub fn close(&mut self, token: Token, why: &Close) {
        let tag = format!("conn={} peer={} principal=-", token.0, self.peer);
        match why {
            Close::Done => debug!("event=close {tag} reason=peer_closed in_flight=0"),
            Close::Tls(e) => info!("event=close {tag} reason=tls in_flight=0 error=\"{e}\""),
            Close::Io(e) => info!("event=close {tag} reason=io in_flight=0 error=\"{e}\""),
            Close::Timeout => info!("event=close {tag} reason=handshake_timeout in_flight=0"),
            Close::Refused(r) => info!("event=close {tag} reason={r} in_flight=0"),
        }
        let _ = self.sock.shutdown(Shutdown::Both);
    }
}

/// Write queued TLS records until done or the socket would block.
fn write_tls(tls: &mut ServerConnection, sock: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

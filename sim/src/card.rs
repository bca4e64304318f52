//! The simulated crypto card process: the firmware behind a Unix socket speaking card-link
//! frames (`CardFrame` in, `ServerFrame` out), exactly what the daemon would see on hardware.
//!
//! Sessions belong to the link they came on: each link's session numbers map to card sessions
//! of their own ([`LinkSessions`]), so a process on one link cannot name (and act in) a session
//! of another — the front panel's, where a quorum logged in. When a link goes, the card closes
//! every session it had: the authority held in one ends with its link.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gmhsm_firmware::Hsm;
use gmhsm_firmware::hsm::{RefillDone, RefillJob, Started};
use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, ServerFrame, Status};

use crate::board::SimPlatform;

mod longops;

/// A request as the link thread keeps it: its frame header (for the answer), who sent it, in
/// which card session.
type Item = (FrameHeader, gmhsm_proto::Principal, u64, gmhsm_proto::Request);

/// Most card-link connections served at once (the daemon's relay link, its TLS signing link,
/// the simulator's provisioning link).
const MAX_LINKS: usize = 8;

/// The longest the nonce engine sleeps without being woken (it is woken when a link thread
/// drew jobs for it; this bound only covers changes no request announces, and hands in what
/// the engine computed after the last request of a burst).
const REFILL_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Refill jobs (each at most one batch per pool) drawn ahead for the nonce engine.
const JOBS_AHEAD: usize = 4;

/// The card, and the work it exchanges with its nonce engine.
struct Card {
    hsm: Mutex<Hsm<SimPlatform>>,
    /// Behind its own short lock, so that the engine never waits for the card's: whoever holds
    /// the card (a link thread, before each request) hands in what the engine computed and
    /// draws new jobs (the scalars come from the card's DRBG). An earlier engine took the
    /// card's lock itself; under a stream of long requests (`SignBatch`) it spent a third of
    /// its time waiting for one to end, and the standard mutex, not being fair, could keep it
    /// out for as long as the stream lasted.
    exchange: Mutex<Exchange>,
    /// Signalled (with `exchange`) when jobs were drawn.
    wake: Condvar,
    /// Where RSA key generations are computed, off the card's lock (`card/longops.rs`).
    workers: longops::Workers,
}

#[derive(Default)]
struct Exchange {
    /// Drawn, to be computed by the engine.
    todo: std::collections::VecDeque<RefillJob>,
    /// Computed, to be handed in. Batches drawn before a zeroize or tamper response are
    /// dropped (zeroized) when handed in: the card checks their epoch.
    done: Vec<RefillDone>,
}

impl Card {
    /// With the card held: hand in the engine's finished batches and, when a pool has room,
    /// draw jobs for it (waking it).
    fn service_engine(&self, hsm: &mut Hsm<SimPlatform>) {
        let Ok(mut ex) = self.exchange.lock() else { return };
        for done in ex.done.drain(..) {
            hsm.accept_refill(done);
        }
        let before = ex.todo.len();
        while ex.todo.len() < JOBS_AHEAD {
            // `None` when no pool has room (or the card is not operational).
            let Some(job) = hsm.refill_job() else { break };
            ex.todo.push_back(job);
        }
        if ex.todo.len() > before {
            self.wake.notify_one();
        }
    }
}

/// Serve card-link connections on `socket` until the process is killed. Each connection gets
/// a thread; the card itself is one state machine behind a mutex, so requests are executed
/// one at a time, in order per connection. A second thread is the card's nonce engine: it
/// keeps the nonce and key-pair pools (SM2, P-256) full, computing in parallel with requests
/// on the other core the jobs the link threads draw for it (see [`Card::exchange`]), and
/// sleeping while there are none.
///
/// `busy_poll`: after answering, a link's thread keeps reading without blocking for this
/// long before it blocks (see [`read_link`]); zero: it blocks at once.
pub fn serve(hsm: Hsm<SimPlatform>, socket: &Path, busy_poll: Duration) -> anyhow::Result<()> {
    let listener = listen_atomically(socket)?;
    log::info!("card: listening on {}", socket.display());
    let card = Arc::new(Card {
        hsm: Mutex::new(hsm),
        exchange: Mutex::new(Exchange::default()),
        wake: Condvar::new(),
        workers: longops::Workers::start()?,
    });
    let refiller = card.clone();
    std::thread::Builder::new().name("card-nonces".into()).spawn(move || refill_loop(&refiller))?;
    let links = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if links.load(Ordering::Relaxed) >= MAX_LINKS {
                    log::warn!("card: refusing a link: {MAX_LINKS} already open");
                    continue;
                }
                links.fetch_add(1, Ordering::Relaxed);
                let (card, links) = (card.clone(), links.clone());
                std::thread::spawn(move || {
                    if let Err(e) = serve_conn(&card, stream, busy_poll) {
                        log::warn!("card: link closed: {e}");
                    }
                    links.fetch_sub(1, Ordering::Relaxed);
                });
            }
            Err(e) => log::warn!("card: accept failed: {e}"),
        }
    }
    Ok(())
}

/// Bind and listen on a temporary name, restrict it to the owner, then rename it to `socket`:
/// whoever waits for `socket` to exist (the simulator, the ceremony tools) finds a listening
/// socket with its final mode. Binding at the final name leaves a window between `bind` and
/// `listen` in which a connect is refused.
fn listen_atomically(socket: &Path) -> anyhow::Result<UnixListener> {
    let mut tmp = socket.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, socket)?;
    Ok(listener)
}

/// The nonce engine: compute the jobs the link threads drew, until a lock is poisoned (a
/// panic inside the card). It holds only the exchange's lock, and that briefly; with nothing
/// drawn for [`REFILL_IDLE`] (no requests) it takes the card itself to hand in and draw, which
/// also fills the pools after boot.
fn refill_loop(card: &Card) {
    loop {
        let job = {
            let Ok(mut ex) = card.exchange.lock() else { return };
            loop {
                if let Some(job) = ex.todo.pop_front() {
                    break Some(job);
                }
                let Ok((guard, wait)) = card.wake.wait_timeout(ex, REFILL_IDLE) else { return };
                ex = guard;
                if wait.timed_out() && ex.todo.is_empty() {
                    break None;
                }
            }
        };
        match job {
            Some(job) => {
                let done = job.compute();
                let Ok(mut ex) = card.exchange.lock() else { return };
                ex.done.push(done);
                // Nothing else drawn: hand in now if the card is free (after boot, or between
                // requests); if a request holds it, its link thread hands in before the next.
                if ex.todo.is_empty() {
                    drop(ex);
                    if let Ok(mut hsm) = card.hsm.try_lock() {
                        card.service_engine(&mut hsm);
                    }
                }
            }
            None => {
                let Ok(mut hsm) = card.hsm.lock() else { return };
                card.service_engine(&mut hsm);
            }
        }
    }
}

fn answer(header: FrameHeader, result: Result<gmhsm_proto::Response, Status>) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: header.id }, result }
}

/// Encode `reply` onto `out`; a reply that does not encode becomes a bare `Internal`.
fn push_answer(reply: &ServerFrame, out: &mut Vec<u8>) {
    if frame::encode_into(reply, out).is_err() {
        // A bare status always encodes.
        let _ = frame::encode_into(&answer(reply.header, Err(Status::Internal)), out);
    }
}

/// Room offered to one read of the link.
const READ_CHUNK: usize = 64 * 1024;

/// Card sessions handed out to links, never reused while the card runs.
static NEXT_SESSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Most sessions one link may have open at once (the daemon closes a connection's session when
/// it goes; past this a new session number is refused).
const MAX_LINK_SESSIONS: usize = 1 << 16;

/// One link's session numbers and the card sessions they stand for.
#[derive(Default)]
struct LinkSessions(std::collections::HashMap<u64, u64>);

impl LinkSessions {
    /// The card session for the link's `session` (a new one the first time; `None` past the
    /// bound). `CloseSession` forgets it.
    fn map(&mut self, session: u64, request: &gmhsm_proto::Request) -> Option<u64> {
        let closing = matches!(request, gmhsm_proto::Request::CloseSession);
        if closing {
            return Some(self.0.remove(&session).unwrap_or(0));
        }
        if let Some(s) = self.0.get(&session) {
            return Some(*s);
        }
        if self.0.len() >= MAX_LINK_SESSIONS {
            return None;
        }
        let s = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
        Some(*self.0.entry(session).or_insert(s))
    }

    /// The link went: close every session it had (as `Principal::Local`, which may close any).
    fn close_all(self, card: &Card) {
        let Ok(mut hsm) = card.hsm.lock() else { return };
        for s in self.0.into_values() {
            let _ = hsm.execute(&gmhsm_proto::Principal::Local, s, gmhsm_proto::Request::CloseSession);
        }
    }
}

fn serve_conn(card: &Card, stream: UnixStream, busy_poll: Duration) -> anyhow::Result<()> {
    let mut sessions = LinkSessions::default();
    let r = serve_link(card, stream, busy_poll, &mut sessions);
    sessions.close_all(card);
    r
}

/// One card link: read what the daemon sent, execute every complete frame in order, answer
/// them all with one write. The read goes straight into the deframer, frames are decoded
/// from it in place and the answers encoded into one reused buffer. An RSA key generation
/// goes to the keygen worker after its checks; the link serves its other sessions meanwhile
/// and answers it when the worker is done (see `card/longops.rs`).
fn serve_link(
    card: &Card,
    mut stream: UnixStream,
    busy_poll: Duration,
    sessions: &mut LinkSessions,
) -> anyhow::Result<()> {
    let mut deframer = Deframer::new();
    let mut jobs = longops::LinkJobs::new()?;
    let mut out = Vec::new();
    loop {
        // With jobs out, wait for the link or a finished job, whichever comes first.
        let readable = jobs.parked.is_empty() || jobs.wait(&stream)?;
        for f in jobs.take_finished() {
            finish_keygen(card, f, &mut jobs, &mut out)?;
        }
        if readable {
            let n = read_link(&mut stream, deframer.spare(READ_CHUNK), busy_poll)?;
            if n == 0 {
                return Ok(());
            }
            deframer.commit(n);
            let items = decode_frames(&mut deframer, sessions, &mut out);
            run_items(card, items, &mut jobs, &mut out)?;
        }
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
            if out.capacity() > Deframer::KEEP {
                out = Vec::new();
            }
        }
    }
}

/// Every complete frame of the deframer: refusals answered onto `out` at once, the requests
/// returned in order.
fn decode_frames(deframer: &mut Deframer, sessions: &mut LinkSessions, out: &mut Vec<u8>) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        let refusal = match deframer.next_body() {
            Ok(None) => break,
            Ok(Some(body)) => match frame::decode::<CardFrame>(body) {
                Ok(f) if f.header.version != PROTOCOL_VERSION => {
                    answer(f.header, Err(Status::UnsupportedVersion { supported: PROTOCOL_VERSION }))
                }
                Ok(f) => match sessions.map(f.session, &f.request) {
                    Some(session) => {
                        items.push((f.header, f.principal, session, f.request));
                        continue;
                    }
                    None => answer(f.header, Err(Status::Busy)),
                },
                Err(FrameError::Malformed { header }) => {
                    answer(header.unwrap_or(FrameHeader { version: PROTOCOL_VERSION, id: 0 }), Err(Status::BadFrame))
                }
                Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::BadFrame)),
            },
            Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::FrameTooLarge)),
        };
        push_answer(&refusal, out);
    }
    items
}

/// Execute `items` in order, answers onto `out`: runs of ordinary requests together (so that
/// the card can compute consecutive SM2 decryptions as one batch, `Hsm::execute_many`), an
/// RSA key generation started on its own, and a request of a session with a job out queued
/// behind that job. The daemon routes answers by id.
fn run_items(card: &Card, items: Vec<Item>, jobs: &mut longops::LinkJobs, out: &mut Vec<u8>) -> io::Result<()> {
    let mut run = Vec::new();
    for item in items {
        if let Some(waiting) = jobs.parked.get_mut(&item.2) {
            waiting.push_back(item);
        } else if gmhsm_firmware::hsm::is_long(&item.3) {
            execute_run(card, std::mem::take(&mut run), out);
            start_keygen(card, item, jobs, out)?;
        } else {
            run.push(item);
        }
    }
    execute_run(card, run, out);
    Ok(())
}

/// Execute a run of requests under the card's lock, as they came.
fn execute_run(card: &Card, run: Vec<Item>, out: &mut Vec<u8>) {
    if run.is_empty() {
        return;
    }
    let (headers, requests): (Vec<_>, Vec<_>) = run.into_iter().map(|(h, p, s, r)| (h, (p, s, r))).unzip();
    let results = match card.hsm.lock() {
        // Fresh nonces in before each request, new jobs out for the engine.
        Ok(mut hsm) => hsm.execute_many(requests, |hsm| card.service_engine(hsm)),
        // A thread panicked inside the card: refuse rather than go on.
        Err(_) => headers.iter().map(|_| Err(Status::DeviceError)).collect(),
    };
    for (header, result) in headers.into_iter().zip(results) {
        push_answer(&answer(header, result), out);
    }
}

/// The checks of an RSA key generation under the card's lock: refused, answered now;
/// passed, its job goes to the workers and its session waits for it.
fn start_keygen(card: &Card, item: Item, jobs: &mut longops::LinkJobs, out: &mut Vec<u8>) -> io::Result<()> {
    let (header, principal, session, request) = item;
    let started = match card.hsm.lock() {
        Ok(mut hsm) => {
            card.service_engine(&mut hsm);
            hsm.execute_start(&principal, session, request)
        }
        Err(_) => Started::Answered(Err(Status::DeviceError)),
    };
    match started {
        Started::Answered(result) => push_answer(&answer(header, result), out),
        Started::Keygen(job) => jobs.submit(&card.workers, header, *job)?,
    }
    Ok(())
}

/// A job is back: finish it under the card's lock (every check again), answer it, then run
/// what its session sent meanwhile.
fn finish_keygen(card: &Card, f: longops::Finished, jobs: &mut longops::LinkJobs, out: &mut Vec<u8>) -> io::Result<()> {
    let session = f.done.session();
    let result = match card.hsm.lock() {
        Ok(mut hsm) => {
            card.service_engine(&mut hsm);
            hsm.finish_keygen(f.done)
        }
        Err(_) => Err(Status::DeviceError),
    };
    push_answer(&answer(f.header, result), out);
    let waiting = jobs.parked.remove(&session).unwrap_or_default();
    run_items(card, waiting.into(), jobs, out)
}

/// Read what the daemon sent into `buf`: for up to `spin` without blocking, again and again,
/// then blocking. The daemon's next request often follows an answer within a few tens of
/// microseconds; finding it while still running saves this thread a sleep and a wake-up, which
/// on a virtual machine costs about as much as the request itself. Zero `spin`: block at once.
fn read_link(stream: &mut UnixStream, buf: &mut [u8], spin: Duration) -> io::Result<usize> {
    use nix::errno::Errno;
    use nix::sys::socket::{MsgFlags, recv};
    if !spin.is_zero() {
        let until = Instant::now() + spin;
        loop {
            match recv(stream.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(Errno::EAGAIN | Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            if Instant::now() >= until {
                break;
            }
            // Let a thread that is ready run first (the daemon, the client, the nonce engine):
            // spinning without yielding on two cores made latency worse, not better.
            std::thread::yield_now();
        }
    }
    stream.read(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While it spins, `read_link` does not block: with a 5 ms read timeout on the socket and the
    /// data 50 ms away, the blocking read times out and the spinning one gets the data.
    #[test]
    fn spinning_reads_outlast_a_blocking_timeout() {
        for (spin, expect_data) in [(Duration::ZERO, false), (Duration::from_millis(100), true)] {
            let (mut a, mut b) = UnixStream::pair().expect("pair");
            b.set_read_timeout(Some(Duration::from_millis(5))).expect("timeout");
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                let _ = a.write_all(b"late");
                a
            });
            let mut buf = [0u8; 16];
            match read_link(&mut b, &mut buf, spin) {
                Ok(n) => assert!(expect_data && &buf[..n] == b"late", "spin {spin:?}: got {:?}", &buf[..n]),
                Err(e) => assert!(!expect_data, "spin {spin:?}: {e}"),
            }
            drop(writer.join().expect("writer"));
        }
    }

    /// Issue 12, finding 7: while one session's RSA key generation is computed, another
    /// session on the same link is answered, and the generating session's later request waits
    /// for its answer. Sent in one write: a keygen (session 1), a ping (session 2), a ping
    /// (session 1). Before the split the card answered 1, 2, 3 (the ping waited for the primes);
    /// now 2 comes first, then the key, then session 1's ping.
    #[test]
    fn other_sessions_are_answered_while_a_key_is_generated() {
        use gmhsm_proto::{KeyAlg, Principal, Request, Response};
        let dir = std::env::temp_dir().join(format!("gmhsm-longops-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let mut hsm = Hsm::boot(crate::board::devices(&dir, None).expect("devices"));
        hsm.initialize().expect("initialize");
        let socket = dir.join("card.sock");
        let s = socket.clone();
        std::thread::spawn(move || serve(hsm, &s, Duration::ZERO));
        while !socket.exists() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut link = UnixStream::connect(&socket).expect("connect");
        let label = gmhsm_proto::Label::try_from("big").expect("label");
        let keygen =
            Request::GenerateKey { label, alg: KeyAlg::Rsa3072, caps: gmhsm_proto::Capabilities::DEFAULT, domains: 0 };
        let mut sent = Vec::new();
        for (id, session, request) in [(1, 1, keygen), (2, 2, Request::Ping), (3, 1, Request::Ping)] {
            let header = FrameHeader { version: PROTOCOL_VERSION, id };
            let f = CardFrame { header, principal: Principal::Local, session, request };
            frame::encode_into(&f, &mut sent).expect("encode");
        }
        link.write_all(&sent).expect("send");
        let mut deframer = Deframer::new();
        let mut answers = Vec::new();
        while answers.len() < 3 {
            let n = link.read(deframer.spare(READ_CHUNK)).expect("read");
            assert!(n > 0, "link closed after {answers:?}");
            deframer.commit(n);
            while let Some(body) = deframer.next_body().expect("frame") {
                let f: ServerFrame = frame::decode(body).expect("decode");
                answers.push((f.header.id, f.result));
            }
        }
        let ids: Vec<u64> = answers.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [2, 1, 3], "{answers:?}");
        assert_eq!(answers[0].1, Ok(Response::Pong));
        assert!(matches!(answers[1].1, Ok(Response::KeyGenerated { alg: KeyAlg::Rsa3072, .. })), "{answers:?}");
        assert_eq!(answers[2].1, Ok(Response::Pong));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn read_link_returns_what_was_sent_with_and_without_spinning() {
        for spin in [Duration::ZERO, Duration::from_micros(50), Duration::from_secs(60)] {
            let (mut a, mut b) = UnixStream::pair().expect("pair");
            let mut buf = [0u8; 16];
            a.write_all(b"first").expect("write");
            assert_eq!(read_link(&mut b, &mut buf, spin).expect("read"), 5);
            assert_eq!(&buf[..5], b"first");
            // Sent after the read started: found by the spin or by the blocking read after it.
            let writer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                a.write_all(b"second").expect("write");
                a
            });
            assert_eq!(read_link(&mut b, &mut buf, spin).expect("read"), 6);
            assert_eq!(&buf[..6], b"second");
            drop(writer.join().expect("writer"));
            assert_eq!(read_link(&mut b, &mut buf, spin).expect("read"), 0, "closed: end of stream");
        }
    }
}

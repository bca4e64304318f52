//! The simulated crypto card process: the firmware behind a Unix socket speaking card-link
//! frames (`CardFrame` in, `ServerFrame` out), exactly what the daemon would see on hardware.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gmhsm_firmware::Hsm;
use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, ServerFrame, Status};

use crate::board::SimPlatform;

/// Most card-link connections served at once (the daemon's relay link, its TLS signing link,
/// the simulator's provisioning link).
const MAX_LINKS: usize = 8;

/// The longest the nonce engine sleeps without being woken (it is woken when a request left
/// room in a pool; this bound only covers changes no request announces).
const REFILL_IDLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Refill jobs (each at most one batch per pool) the nonce engine computes per acquisition
/// of the card's lock.
const JOBS_PER_LOCK: usize = 4;

/// The card and the nonce engine's wake-up: the link threads notify `wake` when what they
/// executed left a pool with room for a batch.
struct Card {
    hsm: Mutex<Hsm<SimPlatform>>,
    wake: Condvar,
    /// The nonce engine is waiting for `hsm`. The standard mutex is not fair: a link thread
    /// that executes request after request (a stream of `SignBatch`es) unlocks and relocks at
    /// once and would keep the engine out for as long as the stream lasts, leaving the other
    /// core idle while the link thread computes every nonce itself. Link threads let the
    /// engine in first.
    engine_waiting: AtomicBool,
}

impl Card {
    /// The card for a link thread: after the nonce engine if it is waiting (a few
    /// microseconds: it only draws scalars or hands a batch in under the lock).
    fn lock_for_request(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Hsm<SimPlatform>>> {
        while self.engine_waiting.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        self.hsm.lock()
    }

    /// The card for the nonce engine, announced so that link threads step aside.
    fn lock_for_engine(&self) -> std::sync::LockResult<std::sync::MutexGuard<'_, Hsm<SimPlatform>>> {
        self.engine_waiting.store(true, Ordering::Release);
        let guard = self.hsm.lock();
        self.engine_waiting.store(false, Ordering::Release);
        guard
    }
}

/// Serve card-link connections on `socket` until the process is killed. Each connection gets
/// a thread; the card itself is one state machine behind a mutex, so requests are executed
/// one at a time, in order per connection. A second thread is the card's nonce engine: it
/// keeps the nonce and key-pair pools (SM2, P-256) full, computing outside the lock (in
/// parallel with requests on the other core), holding the lock only to draw a batch's scalars
/// and to hand the batch in, and sleeping until a request leaves room for a batch.
///
/// `busy_poll`: after answering, a link's thread keeps reading without blocking for this
/// long before it blocks (see [`read_link`]); zero: it blocks at once.
pub fn serve(hsm: Hsm<SimPlatform>, socket: &Path, busy_poll: Duration) -> anyhow::Result<()> {
    let listener = listen_atomically(socket)?;
    log::info!("card: listening on {}", socket.display());
    let card = Arc::new(Card { hsm: Mutex::new(hsm), wake: Condvar::new(), engine_waiting: AtomicBool::new(false) });
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

/// Keep the nonce pools full until the card's lock is poisoned (a panic inside the card).
/// With nothing to do the engine sleeps on `wake` (not polling): the check and the wait are
/// under the card's lock, so a notification cannot slip between them.
///
/// Up to [`JOBS_PER_LOCK`] jobs are drawn at once and handed in together: the engine takes the
/// lock between requests, so under a stream of long requests (`SignBatch`) each acquisition
/// may wait for one; more work per acquisition keeps its core busy.
fn refill_loop(card: &Card) {
    let Ok(mut guard) = card.lock_for_engine() else { return };
    let mut jobs = Vec::with_capacity(JOBS_PER_LOCK);
    loop {
        while jobs.len() < JOBS_PER_LOCK {
            match guard.refill_job() {
                Some(job) => jobs.push(job),
                None => break,
            }
        }
        match jobs.is_empty() {
            false => {
                drop(guard);
                let done: Vec<_> = jobs.drain(..).map(|job| job.compute()).collect();
                guard = match card.lock_for_engine() {
                    Ok(g) => g,
                    Err(_) => return,
                };
                for d in done {
                    guard.accept_refill(d);
                }
            }
            true => {
                guard = match card.wake.wait_timeout(guard, REFILL_IDLE) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
        }
    }
}

fn answer(header: FrameHeader, result: Result<gmhsm_proto::Response, Status>) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: header.id }, result }
}

/// Room offered to one read of the link.
const READ_CHUNK: usize = 64 * 1024;

/// One card link: read what the daemon sent, execute every complete frame in order, answer
/// them all with one write. The read goes straight into the deframer, frames are decoded
/// from it in place and the answers encoded into one reused buffer.
fn serve_conn(card: &Card, mut stream: UnixStream, busy_poll: Duration) -> anyhow::Result<()> {
    let mut deframer = Deframer::new();
    let mut out = Vec::new();
    loop {
        let n = read_link(&mut stream, deframer.spare(READ_CHUNK), busy_poll)?;
        if n == 0 {
            return Ok(());
        }
        deframer.commit(n);
        loop {
            let reply = match deframer.next_body() {
                Ok(None) => break,
                Ok(Some(body)) => match frame::decode::<CardFrame>(body) {
                    Ok(f) if f.header.version != PROTOCOL_VERSION => {
                        answer(f.header, Err(Status::UnsupportedVersion { supported: PROTOCOL_VERSION }))
                    }
                    Ok(f) => {
                        let result = match card.lock_for_request() {
                            Ok(mut hsm) => {
                                let result = hsm.execute(&f.principal, f.session, f.request);
                                // Wake the nonce engine only when there is a batch to compute:
                                // most requests leave the pools above that mark.
                                if hsm.wants_refill() {
                                    card.wake.notify_one();
                                }
                                result
                            }
                            // A thread panicked inside the card: refuse rather than go on.
                            Err(_) => Err(Status::DeviceError),
                        };
                        answer(f.header, result)
                    }
                    Err(FrameError::Malformed { header }) => answer(
                        header.unwrap_or(FrameHeader { version: PROTOCOL_VERSION, id: 0 }),
                        Err(Status::BadFrame),
                    ),
                    Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::BadFrame)),
                },
                Err(_) => answer(FrameHeader { version: PROTOCOL_VERSION, id: 0 }, Err(Status::FrameTooLarge)),
            };
            if frame::encode_into(&reply, &mut out).is_err() {
                // A bare status always encodes.
                let _ = frame::encode_into(&answer(reply.header, Err(Status::Internal)), &mut out);
            }
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

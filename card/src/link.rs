//! One card link: frames read, decoded, mapped to the link's card sessions, executed in runs
//! (RSA key generations off the card's lock, `longops.rs`), answered with one write.

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gmhsm_firmware::hsm::Started;
use gmhsm_platform::Platform;
use gmhsm_proto::frame::{self, FrameError, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, ServerFrame, Status};

use crate::Card;
use crate::longops;

/// A request as the link thread keeps it: its frame header (for the answer), who sent it, in
/// which card session.
pub(crate) type Item = (FrameHeader, gmhsm_proto::Principal, u64, gmhsm_proto::Request);

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
    fn close_all<P: Platform>(self, card: &Card<P>) {
        let Ok(mut hsm) = card.hsm.lock() else { return };
        for s in self.0.into_values() {
            let _ = hsm.execute(&gmhsm_proto::Principal::Local, s, gmhsm_proto::Request::CloseSession);
        }
    }
}

pub(crate) fn serve_conn<P: Platform>(card: &Card<P>, stream: UnixStream, busy_poll: Duration) -> io::Result<()> {
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
fn serve_link<P: Platform>(
    card: &Card<P>,
    mut stream: UnixStream,
    busy_poll: Duration,
    sessions: &mut LinkSessions,
) -> io::Result<()> {
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
            let items = decode_frames(&mut deframer, sessions, card.tap.as_ref(), &mut out);
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
fn decode_frames(
    deframer: &mut Deframer,
    sessions: &mut LinkSessions,
    tap: Option<&crate::Tap>,
    out: &mut Vec<u8>,
) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        let refusal = match deframer.next_body() {
            Ok(None) => break,
            Ok(Some(body)) => match tapped(frame::decode::<CardFrame>(body), tap) {
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

/// Show a decoded frame to the tap, if any.
fn tapped(decoded: Result<CardFrame, FrameError>, tap: Option<&crate::Tap>) -> Result<CardFrame, FrameError> {
    if let (Some(tap), Ok(f)) = (tap, &decoded) {
        tap(f);
    }
    decoded
}

/// Execute `items` in order, answers onto `out`: runs of ordinary requests together (so that
/// the card can compute consecutive SM2 decryptions as one batch, `Hsm::execute_many`), an
/// RSA key generation started on its own, and a request of a session with a job out queued
/// behind that job (`Busy` past [`longops::MAX_PARKED`] waiting). The daemon routes answers by id.
fn run_items<P: Platform>(
    card: &Card<P>,
    items: Vec<Item>,
    jobs: &mut longops::LinkJobs,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut run = Vec::new();
    for item in items {
        if jobs.parked.contains_key(&item.2) {
            if let Err(header) = jobs.park(item) {
                // Past the session's bound: refused, not queued without end.
                push_answer(&answer(header, Err(Status::Busy)), out);
            }
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
fn execute_run<P: Platform>(card: &Card<P>, run: Vec<Item>, out: &mut Vec<u8>) {
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
fn start_keygen<P: Platform>(
    card: &Card<P>,
    item: Item,
    jobs: &mut longops::LinkJobs,
    out: &mut Vec<u8>,
) -> io::Result<()> {
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
fn finish_keygen<P: Platform>(
    card: &Card<P>,
    f: longops::Finished,
    jobs: &mut longops::LinkJobs,
    out: &mut Vec<u8>,
) -> io::Result<()> {
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
    use std::io::Write;

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

//! The blocking card-link client (feature `std`): one request at a time to the crypto card's
//! Unix socket, speaking as the appliance itself (`Principal::Local`). The front panel's
//! ceremonies, the boot-time provisioning of the card-held TLS keys and each card-held TLS
//! key's signatures use it; the daemon's event loop has its own non-blocking link.
//!
//! Invariants:
//! * every exchange is bounded in time: writes and reads both stop at the call's deadline;
//! * answers are matched by id: a late answer to an abandoned request is skipped, never taken
//!   for the current one;
//! * after any failure the caller should drop the link ([`LinkError::retryable`] says whether
//!   a fresh connection is worth one more try).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::frame::{self, FrameHeader};
use crate::{CardFrame, Deframer, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame, Status};

/// Why an exchange failed (the card's refusals are `Ok(Err(status))`, not errors).
#[derive(Debug)]
pub enum LinkError {
    /// The connection broke before the answer came (a card restart): reconnect.
    Io(io::Error),
    /// The card closed the link.
    Closed,
    /// No answer before the deadline.
    Timeout,
    /// The card sent something that is not an answer frame, or the request did not encode.
    Protocol(&'static str),
}

impl LinkError {
    /// `true` when a fresh connection may succeed (the link broke, nothing was answered).
    pub fn retryable(&self) -> bool {
        matches!(self, LinkError::Io(_) | LinkError::Closed)
    }
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::Io(e) => write!(f, "{e}"),
            LinkError::Closed => f.write_str("the card closed the link"),
            LinkError::Timeout => f.write_str("no answer from the card in time"),
            LinkError::Protocol(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for LinkError {}

/// A blocking connection to the card socket.
pub struct BlockingLink {
    stream: UnixStream,
    deframer: Deframer,
    next: u64,
}

impl BlockingLink {
    pub fn connect(socket: &Path) -> io::Result<Self> {
        Ok(BlockingLink { stream: UnixStream::connect(socket)?, deframer: Deframer::new(), next: 0 })
    }

    /// One request on card session `session`, answered within `timeout`.
    pub fn call(
        &mut self,
        session: u64,
        request: Request,
        timeout: Duration,
    ) -> Result<Result<Response, Status>, LinkError> {
        let deadline = Instant::now() + timeout;
        self.next = self.next.wrapping_add(1).max(1);
        let id = self.next;
        let bytes = frame::encode(&CardFrame {
            header: FrameHeader { version: PROTOCOL_VERSION, id },
            principal: Principal::Local,
            session,
            request,
        })
        .map_err(|_| LinkError::Protocol("the request does not encode"))?;
        self.stream.set_write_timeout(Some(remaining(deadline)?)).map_err(LinkError::Io)?;
        self.stream.write_all(&bytes).map_err(timeout_or_io)?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            while let Some(body) =
                self.deframer.next_frame().map_err(|_| LinkError::Protocol("the card sent an oversized frame"))?
            {
                let answer: ServerFrame =
                    frame::decode(&body).map_err(|_| LinkError::Protocol("the card's answer does not decode"))?;
                if answer.header.id == id {
                    return Ok(answer.result);
                }
                // A late answer to an earlier, abandoned request.
            }
            self.stream.set_read_timeout(Some(remaining(deadline)?)).map_err(LinkError::Io)?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => self.deframer.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(timeout_or_io(e)),
            }
        }
    }
}

/// Time left before `deadline`; none left is a timeout (a zero socket timeout would mean
/// "block forever").
fn remaining(deadline: Instant) -> Result<Duration, LinkError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() { Err(LinkError::Timeout) } else { Ok(left) }
}

fn timeout_or_io(e: io::Error) -> LinkError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => LinkError::Timeout,
        _ => LinkError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// A card that first answers an id nobody asked for, then the request; or says nothing.
    fn card(name: &str, answer: bool) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("gmhsm-proto-link-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("card.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        std::thread::spawn(move || {
            let Ok((mut s, _)) = listener.accept() else { return };
            let mut d = Deframer::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    return;
                }
                d.push(&buf[..n]);
                while let Ok(Some(body)) = d.next_frame() {
                    let f: CardFrame = frame::decode(&body).expect("card frame");
                    assert_eq!((f.principal, f.session), (Principal::Local, 9));
                    if !answer {
                        continue;
                    }
                    let late = FrameHeader { version: PROTOCOL_VERSION, id: f.header.id + 100 };
                    let stale = ServerFrame { header: late, result: Err(Status::Busy) };
                    let out = ServerFrame { header: f.header, result: Ok(Response::Pong) };
                    s.write_all(&frame::encode(&stale).expect("encode")).expect("write");
                    s.write_all(&frame::encode(&out).expect("encode")).expect("write");
                }
            }
        });
        path
    }

    #[test]
    fn answers_are_matched_by_id_and_every_call_is_bounded() {
        let mut link = BlockingLink::connect(&card("answers", true)).expect("connect");
        for _ in 0..3 {
            let r = link.call(9, Request::Ping, Duration::from_secs(5)).expect("answer");
            assert_eq!(r, Ok(Response::Pong), "the stale answer is skipped");
        }
        let mut link = BlockingLink::connect(&card("silent", false)).expect("connect");
        let started = Instant::now();
        let e = link.call(9, Request::Ping, Duration::from_millis(200)).expect_err("no answer");
        assert!(matches!(e, LinkError::Timeout) && !e.retryable(), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

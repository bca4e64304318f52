//! The card link as a ceremony sees it: requests to the crypto card as the appliance itself.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{CardFrame, Deframer, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame, Status};

use crate::CeremonyError;

/// Sends requests to the crypto card as `Principal::Local`. `session` names the card-link
/// session the ceremony's logins and authority belong to.
pub trait CardLink {
    /// One request on `session`; `Err` = the link failed, `Ok(Err)` = the card refused.
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError>;

    /// The ceremony's own session.
    fn session(&self) -> u64;

    /// One request on the ceremony's session; a refusal is an error.
    fn call(&mut self, request: Request) -> Result<Response, CeremonyError> {
        let s = self.session();
        Ok(self.call_in(s, request)??)
    }
}

impl<T: CardLink + ?Sized> CardLink for &mut T {
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
        (**self).call_in(session, request)
    }
    fn session(&self) -> u64 {
        (**self).session()
    }
}

/// A blocking card link over the card's Unix socket (the simulator's card process; on the
/// appliance the daemon relays the same frames).
pub struct UnixCardLink {
    stream: UnixStream,
    deframer: Deframer,
    next: u64,
    session: u64,
}

impl UnixCardLink {
    pub fn connect(socket: &Path, session: u64) -> std::io::Result<Self> {
        let stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(UnixCardLink { stream, deframer: Deframer::new(), next: 1, session })
    }
}

fn link(e: impl core::fmt::Debug) -> CeremonyError {
    CeremonyError::Link(format!("{e:?}"))
}

impl CardLink for UnixCardLink {
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
        let id = self.next;
        self.next += 1;
        let f = CardFrame {
            header: FrameHeader { version: PROTOCOL_VERSION, id },
            principal: Principal::Local,
            session,
            request,
        };
        self.stream.write_all(&frame::encode(&f).map_err(link)?).map_err(link)?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(body) = self.deframer.next_frame().map_err(link)? {
                let answer: ServerFrame = frame::decode(&body).map_err(link)?;
                if answer.header.id != id {
                    return Err(CeremonyError::Link(format!("answer {} while {id} was pending", answer.header.id)));
                }
                return Ok(answer.result);
            }
            let n = self.stream.read(&mut buf).map_err(link)?;
            if n == 0 {
                return Err(CeremonyError::Link("the card closed the link".into()));
            }
            self.deframer.push(&buf[..n]);
        }
    }

    fn session(&self) -> u64 {
        self.session
    }
}

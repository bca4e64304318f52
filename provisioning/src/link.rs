//! The card link as a ceremony sees it: requests to the crypto card as the appliance itself.

use std::path::Path;
use std::time::Duration;

use gmhsm_proto::link::BlockingLink;
use gmhsm_proto::{Request, Response, Status};

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

/// A blocking card link over the card's Unix socket: [`gmhsm_proto::link::BlockingLink`],
/// the one blocking card-link client, each request answered within a minute.
pub struct UnixCardLink {
    link: BlockingLink,
    session: u64,
}

/// How long one request may take (an RSA key generation on the card is the slowest).
const ANSWER: Duration = Duration::from_secs(60);

impl UnixCardLink {
    pub fn connect(socket: &Path, session: u64) -> std::io::Result<Self> {
        Ok(UnixCardLink { link: BlockingLink::connect(socket)?, session })
    }
}

impl CardLink for UnixCardLink {
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
        self.link.call(session, request, ANSWER).map_err(|e| CeremonyError::Link(e.to_string()))
    }

    fn session(&self) -> u64 {
        self.session
    }
}

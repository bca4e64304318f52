//! The panel's card link, connected when first needed and again after it failed (a card
//! restart), on the panel's own session.

use std::path::PathBuf;

use gmhsm_proto::{Request, Response, Status, sessions};

use crate::{CardLink, CeremonyError, UnixCardLink};

/// Sees each request before it goes to the card: `Err` loses it (the sender sees a failed
/// exchange, the card sees nothing, the link stays up). Tests inject faults with it.
pub type LinkFilter = Box<dyn FnMut(&Request) -> Result<(), CeremonyError> + Send>;

pub(crate) struct LazyLink {
    pub socket: PathBuf,
    /// `None` after a failure or a fail-closed logout: the next request connects anew.
    pub link: Option<UnixCardLink>,
    pub filter: Option<LinkFilter>,
}

impl CardLink for LazyLink {
    fn call_in(&mut self, session: u64, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
        if let Some(f) = self.filter.as_mut() {
            f(&request)?;
        }
        let link = match self.link.as_mut() {
            Some(l) => l,
            None => self.link.insert(
                UnixCardLink::connect(&self.socket, sessions::PANEL).map_err(|e| CeremonyError::Link(e.to_string()))?,
            ),
        };
        let r = link.call_in(session, request);
        if matches!(r, Err(CeremonyError::Link(_))) {
            self.link = None;
        }
        r
    }

    fn session(&self) -> u64 {
        sessions::PANEL
    }
}

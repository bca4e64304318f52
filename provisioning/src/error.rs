//! The ceremony runner's one error enum.

use core::fmt;

use gmhsm_icc::AdminCardError;
use gmhsm_platform::CardError;
use gmhsm_proto::Status;

/// Why a ceremony stopped. A ceremony that stops leaves the crypto card as it was before it
/// began (init and replacement are aborted on the card); the panel shows the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CeremonyError {
    /// A step in the wrong state of the runner's machine (a bug, or a misuse of the API).
    Unexpected { expected: &'static str, got: &'static str },
    /// Someone pressed CANCEL.
    Cancelled,
    /// Nobody acted before the timeout.
    Timeout,
    /// The admin card refused or failed.
    Card(AdminCardError),
    /// The reader (pcscd) failed.
    Reader(CardError),
    /// The crypto card refused the step.
    Refused(Status),
    /// The card link to the crypto card failed.
    Link(String),
    /// The card in the reader is not one this step can use (wrong role, not blank, not
    /// enrolled, already counted).
    WrongCard(&'static str),
    /// The card's PIN is blocked.
    Locked,
    /// The keypad or display failed.
    Panel,
    /// The quorum's authority ended (card removed, timeout).
    AuthorityEnded,
    /// A logout the crypto card did not confirm: the caller must end the session some other
    /// way (close its card link: the card then ends every authority held in it).
    LogoutUnconfirmed,
}

impl fmt::Display for CeremonyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CeremonyError::Unexpected { expected, got } => write!(f, "expected {expected}, got {got}"),
            CeremonyError::Cancelled => f.write_str("cancelled"),
            CeremonyError::Timeout => f.write_str("timed out"),
            CeremonyError::Card(e) => write!(f, "admin card: {e}"),
            CeremonyError::Reader(e) => write!(f, "card reader: {e}"),
            CeremonyError::Refused(s) => write!(f, "crypto card refused: {s}"),
            CeremonyError::Link(e) => write!(f, "card link: {e}"),
            CeremonyError::WrongCard(why) => write!(f, "wrong card: {why}"),
            CeremonyError::Locked => f.write_str("card locked"),
            CeremonyError::Panel => f.write_str("front panel failed"),
            CeremonyError::AuthorityEnded => f.write_str("quorum authority ended"),
            CeremonyError::LogoutUnconfirmed => f.write_str("the crypto card did not confirm the logout"),
        }
    }
}

impl std::error::Error for CeremonyError {}

impl From<AdminCardError> for CeremonyError {
    fn from(e: AdminCardError) -> Self {
        match e {
            AdminCardError::Blocked => CeremonyError::Locked,
            e => CeremonyError::Card(e),
        }
    }
}

impl From<CardError> for CeremonyError {
    fn from(e: CardError) -> Self {
        CeremonyError::Reader(e)
    }
}

impl From<Status> for CeremonyError {
    fn from(s: Status) -> Self {
        CeremonyError::Refused(s)
    }
}

//! The request layer's one error enum, mapped to the wire in exactly one place
//! ([`Error::status`]), as the quorum layer's [`QuorumError`] is.
//!
//! Every handler, key operation (`keys.rs`, `ops.rs`), session table (`session.rs`) and
//! store helper of the card answers an [`Error`]; [`crate::Hsm::execute`] turns it into a
//! [`Status`] as it leaves, and a denial's audit record carries that same status. The
//! variants say why; several share a wire status (the wire keeps what a caller may learn:
//! a bad padding, a bad tag and a wrong key all read `DecryptFailed`).
//!
//! Nothing secret is in an error: the reasons are static strings, and the wrapped
//! [`AlgError`] is opaque by design.

use gmhsm_proto::Status;

use crate::alg::AlgError;
use crate::quorum::QuorumError;
use crate::rng::RngError;
use crate::store::StoreError;

/// Why a request was not carried out. Every variant leaves the card's persistent state as
/// it was, unless the handler's doc says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A field of the request is out of range or malformed; names which.
    Invalid(&'static str),
    /// No key has that label, or the caller may not see it.
    UnknownKey,
    /// A key with that label already exists.
    KeyExists,
    /// The key's algorithm does not do what the request asks.
    WrongKeyType,
    /// No such handle in this session (operation, session key, agreement).
    UnknownHandle,
    /// The session is at its bound of handles or state.
    SessionFull,
    /// The caller may not do this (key capabilities, ownership, role, certificate).
    AccessDenied,
    /// The key has an access password this session has not proved.
    PasswordRequired,
    /// The access password is wrong; the key's failure counter went up.
    WrongPassword,
    /// Locked after too many wrong passwords.
    KeyLocked,
    /// The administrators stopped the service.
    ServiceStopped,
    /// The card waits for its initialization.
    NotInitialized,
    /// The application is at its quota, or the store at the room kept for audit and
    /// administration.
    QuotaExceeded,
    /// A signature or MAC does not verify.
    SignatureInvalid,
    /// Decryption or unwrapping failed.
    DecryptFailed,
    /// The card cannot serve this now: error state, no store, lost DMK, tamper RAM failure;
    /// names which.
    Device(&'static str),
    /// The random number generator failed (the card's error state follows).
    Rng(RngError),
    /// The store refused a write.
    Store(StoreError),
    /// The audit record of an application's request did not fit; the request was undone.
    Unaudited,
    /// A cryptographic primitive refused its input or failed.
    Alg(AlgError),
    /// An administration request was refused by the quorum layer.
    Quorum(QuorumError),
    /// An inconsistency that is not the caller's fault; names it.
    Internal(&'static str),
}

impl Error {
    /// The wire status for this error (the one mapping).
    pub fn status(self) -> Status {
        match self {
            Error::Invalid(_) => Status::InvalidArgument,
            Error::UnknownKey => Status::UnknownKey,
            Error::KeyExists => Status::KeyExists,
            Error::WrongKeyType => Status::WrongKeyType,
            Error::UnknownHandle => Status::UnknownHandle,
            Error::SessionFull => Status::Busy,
            Error::AccessDenied => Status::AccessDenied,
            Error::PasswordRequired => Status::PasswordRequired,
            Error::WrongPassword => Status::WrongPassword,
            Error::KeyLocked => Status::KeyLocked,
            Error::ServiceStopped => Status::ServiceStopped,
            Error::NotInitialized => Status::NotInitialized,
            Error::QuotaExceeded => Status::QuotaExceeded,
            Error::SignatureInvalid => Status::SignatureInvalid,
            Error::DecryptFailed => Status::DecryptFailed,
            Error::Device(_) | Error::Rng(_) => Status::DeviceError,
            Error::Store(StoreError::Full) | Error::Unaudited => Status::StoreFull,
            Error::Store(_) | Error::Internal(_) => Status::Internal,
            Error::Alg(e) => match e {
                AlgError::InvalidKey | AlgError::InvalidInput => Status::InvalidArgument,
                AlgError::DecryptFailed => Status::DecryptFailed,
                AlgError::VerifyFailed => Status::SignatureInvalid,
                AlgError::Rng => Status::DeviceError,
            },
            Error::Quorum(e) => e.status(),
        }
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        e.status()
    }
}

impl From<AlgError> for Error {
    fn from(e: AlgError) -> Self {
        Error::Alg(e)
    }
}

impl From<QuorumError> for Error {
    fn from(e: QuorumError) -> Self {
        Error::Quorum(e)
    }
}

impl From<RngError> for Error {
    fn from(e: RngError) -> Self {
        Error::Rng(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one mapping keeps the wire answers the card gave before the enum existed: the
    /// causes that share a status, and the wrapped layers' own mappings.
    #[test]
    fn causes_map_to_their_wire_status() {
        let cases = [
            (Error::Invalid("x"), Status::InvalidArgument),
            (Error::SessionFull, Status::Busy),
            (Error::Device("x"), Status::DeviceError),
            (Error::Rng(RngError::NotReady), Status::DeviceError),
            (Error::Store(StoreError::Full), Status::StoreFull),
            (Error::Store(StoreError::Corrupt), Status::Internal),
            (Error::Unaudited, Status::StoreFull),
            (Error::Alg(AlgError::InvalidKey), Status::InvalidArgument),
            (Error::Alg(AlgError::InvalidInput), Status::InvalidArgument),
            (Error::Alg(AlgError::DecryptFailed), Status::DecryptFailed),
            (Error::Alg(AlgError::VerifyFailed), Status::SignatureInvalid),
            (Error::Alg(AlgError::Rng), Status::DeviceError),
            (Error::Quorum(QuorumError::NotAuthorized), Status::AccessDenied),
            (Error::Quorum(QuorumError::BadShare), Status::DecryptFailed),
            (Error::Internal("x"), Status::Internal),
        ];
        for (e, want) in cases {
            assert_eq!(Status::from(e), want, "{e:?}");
        }
    }
}

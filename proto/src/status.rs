//! Status codes: every way a request can fail, as seen on the wire.

use core::fmt;
use serde::{Deserialize, Serialize};

/// Why a request was not carried out. Append-only: the wire carries the variant index.
///
/// Every status leaves the device unchanged unless its doc says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// The frame could not be decoded. The connection stays usable.
    BadFrame,
    /// The frame's protocol version is not spoken here; `supported` is the server's version.
    UnsupportedVersion { supported: u16 },
    /// No key has that label (or the caller may not see it).
    UnknownKey,
    /// A key with that label already exists; nothing was overwritten.
    KeyExists,
    /// The key does not support the requested mechanism.
    WrongKeyType,
    /// A parameter is out of range or malformed.
    InvalidArgument,
    /// The signature does not verify.
    SignatureInvalid,
    /// The caller may not do this with this key.
    AccessDenied,
    /// The key store is full.
    StoreFull,
    /// The card is in its error state (failed self-test, bad entropy source, tamper); it
    /// refuses every cryptographic request until the cause is cleared.
    DeviceError,
    /// The card is not initialized yet (waiting for the init ceremony).
    NotInitialized,
    /// The card link is down or the card did not answer.
    CardUnavailable,
    /// An internal failure that is not the caller's fault.
    Internal,
    /// The frame is larger than the server accepts.
    FrameTooLarge,
    /// The server is at a bound (connections, requests in flight); try again later.
    Busy,
    /// Decryption or unwrapping failed (wrong key, altered ciphertext, bad tag or padding).
    DecryptFailed,
    /// The private-key access password is wrong; the key's failure counter went up.
    WrongPassword,
    /// The key is locked after too many wrong passwords; an administrator must reset it.
    KeyLocked,
    /// The key has a private-key access password and this session has not proved it.
    PasswordRequired,
    /// No such handle in this session (operation, session key, agreement).
    UnknownHandle,
    /// The appliance's service is stopped by its administrators (`ServiceStop`); it answers
    /// applications again after `ServiceStart`. Nothing was done; retry later or elsewhere.
    ServiceStopped,
    /// The application is at its quota of keys or bytes in the card's store (set at
    /// registration), or the store is down to the room kept for audit and administration.
    /// Nothing was stored; delete keys of this application, or ask for a larger quota.
    QuotaExceeded,
}

impl Status {
    /// A stable number for scripts and for the CLI's exit codes.
    pub fn code(&self) -> u16 {
        match self {
            Status::BadFrame => 1,
            Status::UnsupportedVersion { .. } => 2,
            Status::UnknownKey => 3,
            Status::KeyExists => 4,
            Status::WrongKeyType => 5,
            Status::InvalidArgument => 6,
            Status::SignatureInvalid => 7,
            Status::AccessDenied => 8,
            Status::StoreFull => 9,
            Status::DeviceError => 10,
            Status::NotInitialized => 11,
            Status::CardUnavailable => 12,
            Status::Internal => 13,
            Status::FrameTooLarge => 14,
            Status::Busy => 15,
            Status::DecryptFailed => 16,
            Status::WrongPassword => 17,
            Status::KeyLocked => 18,
            Status::PasswordRequired => 19,
            Status::UnknownHandle => 20,
            Status::ServiceStopped => 21,
            Status::QuotaExceeded => 22,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::BadFrame => f.write_str("malformed frame"),
            Status::UnsupportedVersion { supported } => {
                write!(f, "unsupported protocol version (server speaks {supported})")
            }
            Status::UnknownKey => f.write_str("no such key"),
            Status::KeyExists => f.write_str("a key with this label already exists"),
            Status::WrongKeyType => f.write_str("the key does not support this mechanism"),
            Status::InvalidArgument => f.write_str("invalid argument"),
            Status::SignatureInvalid => f.write_str("signature does not verify"),
            Status::AccessDenied => f.write_str("access denied"),
            Status::StoreFull => f.write_str("key store full"),
            Status::DeviceError => f.write_str("crypto card in error state"),
            Status::NotInitialized => f.write_str("appliance not initialized"),
            Status::CardUnavailable => f.write_str("crypto card unavailable"),
            Status::Internal => f.write_str("internal error"),
            Status::FrameTooLarge => f.write_str("frame too large"),
            Status::Busy => f.write_str("server busy"),
            Status::DecryptFailed => f.write_str("decryption failed"),
            Status::WrongPassword => f.write_str("wrong key access password"),
            Status::KeyLocked => f.write_str("key locked after too many wrong passwords"),
            Status::PasswordRequired => f.write_str("key access password required"),
            Status::UnknownHandle => f.write_str("no such handle in this session"),
            Status::ServiceStopped => f.write_str("service stopped by the administrators"),
            Status::QuotaExceeded => f.write_str("application quota of keys or store bytes exceeded"),
        }
    }
}

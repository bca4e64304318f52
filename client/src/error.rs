//! The client's error type: one variant per kind of failure, so callers (and the CLI's exit
//! codes) can tell a refusal from a broken link from a local mistake.

use std::fmt;
use std::io;

use gmhsm_proto::Status;

/// Why a client operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The appliance refused the request; the connection is still usable.
    Status(Status),
    /// The network failed (connect, read, write, timeout); reconnect to retry.
    Io(io::Error),
    /// The TLS layer failed (untrusted server, rejected client certificate, ...); the
    /// connection is unusable.
    Tls(String),
    /// The appliance's answer does not fit the protocol; the connection should be dropped.
    Protocol(String),
    /// The profile or the credentials it names could not be read or used.
    Config(String),
    /// An argument is outside what the protocol allows; nothing was sent.
    InvalidArgument(String),
}

impl ClientError {
    /// Classify an I/O error from the TLS stream: rustls errors travel inside `io::Error`.
    pub(crate) fn from_stream(e: io::Error) -> Self {
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => ClientError::Tls(tls.to_string()),
            None => ClientError::Io(e),
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Status(s) => write!(f, "appliance refused: {s} (status {})", s.code()),
            ClientError::Io(e) => write!(f, "network error: {e}"),
            ClientError::Tls(e) => write!(f, "TLS error: {e}"),
            ClientError::Protocol(e) => write!(f, "protocol error: {e}"),
            ClientError::Config(e) => write!(f, "configuration error: {e}"),
            ClientError::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Status(s)
    }
}

//! gmhsmd library: the appliance daemon that serves the private link and relays to the card.
//!
//! One mio event loop ([`server`]) owns the TCP listener, every client connection ([`conn`])
//! and the card link ([`cardlink`]). A connection is TLS 1.3 with a required client
//! certificate ([`tls`]); the frames inside it follow the grammar in [`session`], which knows
//! nothing of sockets.
//!
//! Invariants:
//! * the loop never blocks: sockets are non-blocking and the card is reached through a
//!   non-blocking Unix stream registered in the same poll;
//! * every request relayed to the card carries the [`gmhsm_proto::Principal`] derived from the
//!   client's certificate (SHA-256 of its DER), never anything the client sent;
//! * input from the network never panics the daemon: a bad frame gets a
//!   [`gmhsm_proto::Status`] answer, a TLS error or a deadline closes only that connection;
//! * bounds: frame size (by the proto deframer), connections, requests in flight per
//!   connection, bytes queued per connection and towards the card, handshake and idle
//!   deadlines, a deadline for each card answer;
//! * request payloads are never logged.
#![forbid(unsafe_code)]

mod cardlink;
mod config;
mod conn;
mod server;
pub mod session;
mod tls;

pub use config::DaemonConfig;
pub use server::{Daemon, ShutdownHandle};

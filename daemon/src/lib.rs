//! gmhsmd library: the appliance daemon that serves the private link and relays to the card.
//!
//! One mio event loop ([`server`]) owns the TCP listener, the local tools socket
//! ([`local`]), every client connection ([`conn`]) and the card link ([`cardlink`]). A
//! network connection is TLS 1.3 with a required client certificate ([`tls`]: the RFC 8998
//! SM suite and the standard suites, one provider); its handshake's processing runs on the
//! handshake workers ([`handshake`]). The server's TLS key may be held by the card
//! ([`cardkey`]): each handshake signature is then a `Sign` request the card answers for
//! `Principal::Local`, and the daemon never has the private key. A local connection is
//! authenticated by its peer uid. The frames inside follow the grammar in [`session`],
//! which knows nothing of sockets. [`harden`] locks the process down once everything is
//! bound; [`settings`] reads `gmhsmd.toml`. [`panel`] hosts the front panel (LCD, keypad,
//! admin-card reader and the ceremonies of `gmhsm-provisioning`) on a thread of its own.
//!
//! Invariants:
//! * the loop never blocks: sockets are non-blocking, the card is reached through a
//!   non-blocking Unix stream registered in the same poll, and TLS handshake processing
//!   (which may wait for a card signature) runs on the handshake workers, which in turn never
//!   wait on the network;
//! * every request relayed to the card carries the [`gmhsm_proto::Principal`] derived from the
//!   client's certificate (SHA-256 of its DER) or `Local` for an allowed local uid, never
//!   anything the client sent;
//! * input from the network never panics the daemon: a bad frame gets a
//!   [`gmhsm_proto::Status`] answer, a TLS error or a deadline closes only that connection;
//! * bounds: frame size (by the proto deframer), connections in total and per client
//!   certificate, requests in flight per connection, requests per second per application,
//!   bytes queued per connection and towards the card, handshake and idle deadlines, a
//!   deadline for each card answer;
//! * request payloads are never logged: log lines carry ids, kinds, statuses and latencies.
#![forbid(unsafe_code)]

mod applications;
mod bounds;
mod busypoll;
mod cardkey;
mod cardlink;
mod config;
mod conn;
mod control;
mod gate;
mod handshake;
pub mod harden;
mod local;
pub mod panel;
mod server;
pub mod session;
pub mod settings;
mod tls;
mod wire;

pub use config::{Applications, CardKeyScheme, CardTlsKey, Clock, DaemonConfig, LocalSocket, RateLimit, SystemClock};
pub use control::{ReloadHandle, ShutdownHandle};
pub use server::Daemon;

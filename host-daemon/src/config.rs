//! The daemon's configuration: where to listen, its credentials, and its bounds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// Everything [`crate::Daemon::bind`] needs. Build it with [`DaemonConfig::new`], which fills
/// the bounds with defaults, then adjust the public fields.
#[derive(Clone)]
pub struct DaemonConfig {
    /// TCP address of the private link.
    pub listen: SocketAddr,
    /// PEM: the server certificate, then its intermediates.
    pub server_cert_chain_pem: Vec<u8>,
    /// PEM: the server's private key (PKCS#8, SEC1 or PKCS#1). Zeroized on drop.
    pub server_key_pem: Zeroizing<Vec<u8>>,
    /// PEM: the CA(s) whose certificates authenticate application servers.
    pub client_ca_pem: Vec<u8>,
    /// Unix socket of the crypto card.
    pub card_socket: PathBuf,
    /// Connections past this bound are accepted and closed at once, without a TLS handshake.
    pub max_connections: usize,
    /// Requests relayed to the card and not yet answered, per connection; past it the
    /// daemon answers `Status::Busy`.
    pub max_in_flight_per_conn: usize,
    /// A connection with nothing in flight and no bytes received for this long is closed.
    pub idle_timeout: Duration,
    /// A connection that has not completed its TLS handshake within this is closed.
    pub handshake_timeout: Duration,
    /// A card request unanswered for this long is answered `Status::CardUnavailable`.
    pub card_timeout: Duration,
    /// How long [`crate::Daemon::bind`] waits for the card socket to appear.
    pub card_connect_wait: Duration,
    /// On shutdown, how long to wait for answers to requests already in flight.
    pub drain_timeout: Duration,
}

impl DaemonConfig {
    /// A configuration with default bounds: 256 connections, 32 requests in flight per
    /// connection, 5 min idle, 10 s handshake, 30 s per card answer, 5 s to find the card,
    /// 5 s drain on shutdown.
    pub fn new(
        listen: SocketAddr,
        server_cert_chain_pem: Vec<u8>,
        server_key_pem: Vec<u8>,
        client_ca_pem: Vec<u8>,
        card_socket: PathBuf,
    ) -> Self {
        DaemonConfig {
            listen,
            server_cert_chain_pem,
            server_key_pem: Zeroizing::new(server_key_pem),
            client_ca_pem,
            card_socket,
            max_connections: 256,
            max_in_flight_per_conn: 32,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            card_timeout: Duration::from_secs(30),
            card_connect_wait: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("listen", &self.listen)
            .field("server_key_pem", &"<redacted>")
            .field("card_socket", &self.card_socket)
            .field("max_connections", &self.max_connections)
            .field("max_in_flight_per_conn", &self.max_in_flight_per_conn)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("card_timeout", &self.card_timeout)
            .finish_non_exhaustive()
    }
}

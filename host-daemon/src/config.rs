//! The daemon's configuration: where to listen, its credentials, and its bounds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// A source of time for the rate limiter; injectable so tests can advance it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The system's monotonic clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A per-application token bucket: `per_second` tokens are added each second up to `burst`;
/// a request takes one token, and a request that finds none gets `Status::Busy`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// The Unix socket for tools on the appliance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalSocket {
    /// Path of the socket; a stale file there is removed at bind.
    pub path: PathBuf,
    /// Peer uids (from `SO_PEERCRED`) allowed to connect; everyone else is closed at once.
    pub allowed_uids: Vec<u32>,
}

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
    /// Where `client_ca_pem` came from; re-read on [`crate::ReloadHandle::reload`]. `None`:
    /// reload keeps the CA given at bind.
    pub client_ca_path: Option<PathBuf>,
    /// A file of allowed application certificate fingerprints (SHA-256, hex, one per line,
    /// `#` comments); re-read on reload. `None`: every certificate the CA issued is allowed.
    pub applications_path: Option<PathBuf>,
    /// Unix socket of the crypto card.
    pub card_socket: PathBuf,
    /// The local tools socket; `None` for none.
    pub local: Option<LocalSocket>,
    /// Connections past this bound are accepted and closed at once, without a TLS handshake.
    pub max_connections: usize,
    /// Authenticated connections per client certificate; past it the new connection gets one
    /// `Status::Busy` frame (request id 0) and is closed.
    pub max_connections_per_client: usize,
    /// Requests relayed to the card and not yet answered, per connection; past it the
    /// daemon answers `Status::Busy`.
    pub max_in_flight_per_conn: usize,
    /// Per-application request rate; `None` for no limit. Local tools are not rate limited.
    pub rate_limit: Option<RateLimit>,
    /// The clock the rate limiter reads (tests inject one they can advance).
    pub clock: Arc<dyn Clock>,
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

/// Default bounds, shared by [`DaemonConfig::new`] and the configuration file.
pub mod defaults {
    use std::time::Duration;
    pub const MAX_CONNECTIONS: usize = 256;
    pub const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
    pub const MAX_IN_FLIGHT_PER_CONN: usize = 32;
    pub const RATE_PER_SECOND: f64 = 1000.0;
    pub const RATE_BURST: u32 = 2000;
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CARD_TIMEOUT: Duration = Duration::from_secs(30);
    pub const CARD_CONNECT_WAIT: Duration = Duration::from_secs(5);
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
}

impl DaemonConfig {
    /// A configuration with default bounds: 256 connections, 16 per client certificate,
    /// 32 requests in flight per connection, 1000 requests/s per application with a burst
    /// of 2000, 5 min idle, 10 s handshake, 30 s per card answer, 5 s to find the card,
    /// 5 s drain on shutdown; no local socket, no reload source.
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
            client_ca_path: None,
            applications_path: None,
            card_socket,
            local: None,
            max_connections: defaults::MAX_CONNECTIONS,
            max_connections_per_client: defaults::MAX_CONNECTIONS_PER_CLIENT,
            max_in_flight_per_conn: defaults::MAX_IN_FLIGHT_PER_CONN,
            rate_limit: Some(RateLimit {
                per_second: defaults::RATE_PER_SECOND,
                burst: defaults::RATE_BURST,
            }),
            clock: Arc::new(SystemClock),
            idle_timeout: defaults::IDLE_TIMEOUT,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            card_timeout: defaults::CARD_TIMEOUT,
            card_connect_wait: defaults::CARD_CONNECT_WAIT,
            drain_timeout: defaults::DRAIN_TIMEOUT,
        }
    }
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("listen", &self.listen)
            .field("server_key_pem", &"<redacted>")
            .field("client_ca_path", &self.client_ca_path)
            .field("applications_path", &self.applications_path)
            .field("card_socket", &self.card_socket)
            .field("local", &self.local)
            .field("max_connections", &self.max_connections)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("max_in_flight_per_conn", &self.max_in_flight_per_conn)
            .field("rate_limit", &self.rate_limit)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("card_timeout", &self.card_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

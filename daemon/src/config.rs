//! The daemon's configuration: where to listen, its credentials, and its bounds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

pub use crate::applications::Applications;

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

/// The signature a card-held TLS key makes, and so the certificates it can stand behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardKeyScheme {
    /// ECDSA on P-256 with SHA-256 (TLS `ecdsa_secp256r1_sha256`): the card answers
    /// `Sign { mechanism: EcdsaP256Sha256 }` with a DER signature over SHA-256(message).
    EcdsaP256Sha256,
    /// SM2 with SM3 (TLS `sm2sig_sm3`, RFC 8998): the card answers
    /// `Sign { mechanism: Sm2Sm3 { distid: "TLSv1.3+GM+Cipher+Suite" } }` with a DER signature.
    Sm2Sm3,
}

/// A TLS server identity whose private key stays in the crypto card: the daemon holds only
/// the key's label and its certificate chain, and asks the card for each handshake signature
/// (as `Principal::Local`, on a card-link connection of its own).
#[derive(Clone, PartialEq, Eq)]
pub struct CardTlsKey {
    /// The key's label on the card (at most 64 bytes).
    pub label: String,
    /// PEM: the certificate for the card's public key, then its intermediates.
    pub cert_chain_pem: Vec<u8>,
    /// What the key signs with.
    pub scheme: CardKeyScheme,
}

impl std::fmt::Debug for CardTlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardTlsKey")
            .field("label", &self.label)
            .field("scheme", &self.scheme)
            .field("cert_chain_pem_len", &self.cert_chain_pem.len())
            .finish()
    }
}

/// Everything [`crate::Daemon::bind`] needs. Build it with [`DaemonConfig::new`], which fills
/// the bounds with defaults, then adjust the public fields.
#[derive(Clone)]
pub struct DaemonConfig {
    /// TCP address of the private link.
    pub listen: SocketAddr,
    /// PEM: the server certificate, then its intermediates.
    pub server_cert_chain_pem: Vec<u8>,
    /// PEM: the server's private key (PKCS#8, SEC1 or PKCS#1; an SM2 key as PKCS#8).
    /// Zeroized on drop. Unused (may be empty) when `card_tls_keys` is not empty.
    pub server_key_pem: Zeroizing<Vec<u8>>,
    /// Server identities whose keys the card holds. Empty (the default): the daemon uses
    /// `server_cert_chain_pem` and `server_key_pem`. Otherwise these are the server's
    /// certificates and the two PEM fields are not used: at most one
    /// [`CardKeyScheme::Sm2Sm3`] key (offered to clients that offer `sm2sig_sm3`) and at most
    /// one standard key (offered to everyone else).
    pub card_tls_keys: Vec<CardTlsKey>,
    /// Threads that run the CPU and card work of TLS handshakes (`process_new_packets`,
    /// which signs through the card for card keys), so the event loop never waits for a
    /// signature. At least 1.
    pub handshake_workers: usize,
    /// PEM: the CA(s) whose certificates authenticate application servers.
    pub client_ca_pem: Vec<u8>,
    /// Where `client_ca_pem` came from; re-read on [`crate::ReloadHandle::reload`]. `None`:
    /// reload keeps the CA given at bind.
    pub client_ca_path: Option<PathBuf>,
    /// The application certificates admitted: nobody (the default), those a file lists
    /// (SHA-256 fingerprints, hex, one per line, `#` comments; re-read on reload and when it
    /// changed), or every certificate the client CA issued (an explicit choice).
    pub applications: Applications,
    /// Unix socket of the crypto card.
    pub card_socket: PathBuf,
    /// The local tools socket; `None` for none.
    pub local: Option<LocalSocket>,
    /// Network connections (TLS handshakes under way and established connections) at once.
    /// When it is reached, a new connection evicts the oldest handshake of the source holding
    /// the most (see `gate`); only when there is no handshake to evict is it accepted and
    /// closed at once, without a TLS handshake. Local connections are not counted here.
    pub max_connections: usize,
    /// TLS handshakes under way from one source (an IPv4 address, an IPv6 /64); past it a new
    /// connection from that source evicts the source's oldest handshake.
    pub max_handshakes_per_source: usize,
    /// Local tools socket connections at once, apart from the network's budget (so network
    /// connections never starve local tools); past it a new local connection is closed.
    pub max_local_connections: usize,
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
    /// After handling events, how long the event loop keeps polling without sleeping before
    /// it blocks (see `crate::busypoll`): trades CPU for the latency of an unpipelined
    /// request. Zero (the default): block at once.
    pub busy_poll: Duration,
}

/// Default bounds, shared by [`DaemonConfig::new`] and the configuration file.
pub mod defaults {
    use std::time::Duration;
    pub const MAX_CONNECTIONS: usize = 256;
    pub const MAX_HANDSHAKES_PER_SOURCE: usize = 32;
    pub const MAX_LOCAL_CONNECTIONS: usize = 16;
    pub const MAX_CONNECTIONS_PER_CLIENT: usize = 16;
    pub const MAX_IN_FLIGHT_PER_CONN: usize = 32;
    pub const RATE_PER_SECOND: f64 = 1000.0;
    pub const RATE_BURST: u32 = 2000;
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const CARD_TIMEOUT: Duration = Duration::from_secs(30);
    pub const CARD_CONNECT_WAIT: Duration = Duration::from_secs(5);
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
    pub const HANDSHAKE_WORKERS: usize = 2;
    pub const BUSY_POLL: Duration = Duration::ZERO;
}

impl DaemonConfig {
    /// A configuration with default bounds: 256 network connections (32 handshakes per
    /// source), 16 local ones, 16 per client certificate,
    /// 32 requests in flight per connection, 1000 requests/s per application with a burst
    /// of 2000, 5 min idle, 10 s handshake, 30 s per card answer, 5 s to find the card,
    /// 5 s drain on shutdown, 2 handshake workers, no busy polling; no card-held TLS keys, no
    /// local socket, no reload source, no application admitted.
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
            card_tls_keys: Vec::new(),
            handshake_workers: defaults::HANDSHAKE_WORKERS,
            client_ca_pem,
            client_ca_path: None,
            applications: Applications::Nobody,
            card_socket,
            local: None,
            max_connections: defaults::MAX_CONNECTIONS,
            max_handshakes_per_source: defaults::MAX_HANDSHAKES_PER_SOURCE,
            max_local_connections: defaults::MAX_LOCAL_CONNECTIONS,
            max_connections_per_client: defaults::MAX_CONNECTIONS_PER_CLIENT,
            max_in_flight_per_conn: defaults::MAX_IN_FLIGHT_PER_CONN,
            rate_limit: Some(RateLimit { per_second: defaults::RATE_PER_SECOND, burst: defaults::RATE_BURST }),
            clock: Arc::new(SystemClock),
            idle_timeout: defaults::IDLE_TIMEOUT,
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            card_timeout: defaults::CARD_TIMEOUT,
            card_connect_wait: defaults::CARD_CONNECT_WAIT,
            drain_timeout: defaults::DRAIN_TIMEOUT,
            busy_poll: defaults::BUSY_POLL,
        }
    }
}

impl std::fmt::Debug for DaemonConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonConfig")
            .field("listen", &self.listen)
            .field("server_key_pem", &"<redacted>")
            .field("card_tls_keys", &self.card_tls_keys)
            .field("handshake_workers", &self.handshake_workers)
            .field("client_ca_path", &self.client_ca_path)
            .field("applications", &self.applications)
            .field("card_socket", &self.card_socket)
            .field("local", &self.local)
            .field("max_connections", &self.max_connections)
            .field("max_handshakes_per_source", &self.max_handshakes_per_source)
            .field("max_local_connections", &self.max_local_connections)
            .field("max_connections_per_client", &self.max_connections_per_client)
            .field("max_in_flight_per_conn", &self.max_in_flight_per_conn)
            .field("rate_limit", &self.rate_limit)
            .field("idle_timeout", &self.idle_timeout)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("card_timeout", &self.card_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .field("busy_poll", &self.busy_poll)
            .finish_non_exhaustive()
    }
}

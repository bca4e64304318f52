//! `gmhsmd.toml`: the daemon's configuration file, its defaults, and its translation into a
//! [`DaemonConfig`] and a [`HardenConfig`].
//!
//! Every table and key is optional (a missing one takes its default, documented in
//! `docs/daemon.md` and `daemon/gmhsmd.example.toml`); an unknown key is an error that
//! names it. Durations are whole milliseconds (`*_ms`), except the busy-poll window
//! (`busy_poll_us`, microseconds).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use nix::unistd::User;
use serde::Deserialize;

use crate::config::{Applications, CardKeyScheme, CardTlsKey, DaemonConfig, LocalSocket, RateLimit, defaults};
use crate::harden::{HardenConfig, SeccompMode};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// TCP address of the private link.
    pub listen: SocketAddr,
    /// Where the TLS server key is: `card` (the default: the `card_tls_key` tables) or
    /// `file` (`cert` and `key`).
    pub tls_key: String,
    /// PEM: server certificate followed by its chain (`tls_key = "file"`).
    pub cert: PathBuf,
    /// PEM: the server's private key (`tls_key = "file"`).
    pub key: PathBuf,
    /// Server identities whose keys the card holds (`tls_key = "card"`); by default the
    /// appliance's `tls:p256` and `tls:sm2` keys.
    pub card_tls_key: Vec<CardTlsKeySetting>,
    /// PEM: the CA(s) issuing application client certificates; re-read on SIGHUP.
    pub client_ca: PathBuf,
    /// Admitted application certificate fingerprints; re-read on SIGHUP and when it changed.
    /// Empty: nobody is admitted, unless `admit_any_client_certificate`.
    pub applications: PathBuf,
    /// Admit every certificate `client_ca` issued, without a list (only for a CA dedicated to
    /// this appliance); refused together with `applications`.
    pub admit_any_client_certificate: bool,
    /// Unix socket of the crypto card.
    pub card_socket: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` overrides it.
    pub log_level: String,
    pub local: Local,
    pub limits: Limits,
    pub timeouts: Timeouts,
    pub tuning: Tuning,
    pub harden: Harden,
    pub panel: crate::panel::PanelSettings,
}

/// `[[card_tls_key]]`: a TLS server identity whose private key stays in the card.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardTlsKeySetting {
    /// The key's label on the card.
    pub label: String,
    /// PEM: the key's certificate, then its chain.
    pub cert: PathBuf,
    /// `ecdsa-p256` or `sm2`.
    pub scheme: String,
}

impl CardTlsKeySetting {
    /// The appliance's own key `tls:NAME` (`p256` or `sm2`), certified in
    /// `/etc/gmhsm/tls-NAME.pem`.
    fn appliance(name: &str) -> Self {
        CardTlsKeySetting {
            label: format!("tls:{name}"),
            cert: format!("/etc/gmhsm/tls-{name}.pem").into(),
            scheme: if name == "sm2" { "sm2" } else { "ecdsa-p256" }.into(),
        }
    }

    fn scheme(&self) -> anyhow::Result<CardKeyScheme> {
        match self.scheme.as_str() {
            "ecdsa-p256" => Ok(CardKeyScheme::EcdsaP256Sha256),
            "sm2" => Ok(CardKeyScheme::Sm2Sm3),
            other => bail!("card_tls_key `{}`: scheme `{other}` is not one of ecdsa-p256, sm2", self.label),
        }
    }
}

/// `[local]`: the socket for tools on the appliance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Local {
    pub enabled: bool,
    pub path: PathBuf,
    /// User names, resolved to uids at start.
    pub allowed_users: Vec<String>,
    pub allowed_uids: Vec<u32>,
}

/// `[limits]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub max_connections: usize,
    pub max_handshakes_per_source: usize,
    pub max_local_connections: usize,
    pub max_connections_per_client: usize,
    pub max_in_flight_per_connection: usize,
    /// Requests per second per application; 0 turns the rate limit off.
    pub rate_per_second: f64,
    pub rate_burst: u32,
    /// Threads doing the TLS handshakes' computing and card signatures.
    pub handshake_workers: usize,
}

/// `[timeouts]`, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    pub handshake_ms: u64,
    pub idle_ms: u64,
    pub card_ms: u64,
    pub card_connect_ms: u64,
    pub drain_ms: u64,
}

/// `[tuning]`: trading CPU for latency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// Microseconds the event loop keeps polling without sleeping after it handled events;
    /// 0 turns busy polling off.
    pub busy_poll_us: u64,
}

/// The longest busy-poll window accepted, in microseconds.
pub const MAX_BUSY_POLL_US: u64 = 10_000;

/// `[harden]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Harden {
    /// Apply the hardening at all (turn off only for development).
    pub enabled: bool,
    /// Service user to drop to when started as root; empty: stay root (refused).
    pub user: String,
    pub require_mlock: bool,
    /// `errno`, `kill` or `off`.
    pub seccomp: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            tls_key: "card".into(),
            cert: "/etc/gmhsm/server.pem".into(),
            key: "/etc/gmhsm/server.key".into(),
            card_tls_key: ["p256", "sm2"].map(CardTlsKeySetting::appliance).to_vec(),
            client_ca: "/etc/gmhsm/client-ca.pem".into(),
            applications: PathBuf::new(),
            admit_any_client_certificate: false,
            card_socket: "/run/gmhsm/card.sock".into(),
            log_level: "info".into(),
            local: Local::default(),
            limits: Limits::default(),
            timeouts: Timeouts::default(),
            tuning: Tuning::default(),
            harden: Harden::default(),
            panel: crate::panel::PanelSettings::default(),
        }
    }
}

impl Default for Local {
    fn default() -> Self {
        Local { enabled: true, path: "/run/gmhsm/gmhsmd.sock".into(), allowed_users: vec![], allowed_uids: vec![0] }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: defaults::MAX_CONNECTIONS,
            max_handshakes_per_source: defaults::MAX_HANDSHAKES_PER_SOURCE,
            max_local_connections: defaults::MAX_LOCAL_CONNECTIONS,
            max_connections_per_client: defaults::MAX_CONNECTIONS_PER_CLIENT,
            max_in_flight_per_connection: defaults::MAX_IN_FLIGHT_PER_CONN,
            rate_per_second: defaults::RATE_PER_SECOND,
            rate_burst: defaults::RATE_BURST,
            handshake_workers: defaults::HANDSHAKE_WORKERS,
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        let ms = |d: Duration| d.as_millis() as u64;
        Timeouts {
            handshake_ms: ms(defaults::HANDSHAKE_TIMEOUT),
            idle_ms: ms(defaults::IDLE_TIMEOUT),
            card_ms: ms(defaults::CARD_TIMEOUT),
            card_connect_ms: ms(defaults::CARD_CONNECT_WAIT),
            drain_ms: ms(defaults::DRAIN_TIMEOUT),
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { busy_poll_us: defaults::BUSY_POLL.as_micros() as u64 }
    }
}

impl Default for Harden {
    fn default() -> Self {
        Harden { enabled: true, user: "gmhsm".into(), require_mlock: false, seccomp: "errno".into() }
    }
}

impl Settings {
    /// Parse a configuration file's text; errors name the unknown or malformed key.
    pub fn parse(text: &str) -> anyhow::Result<Settings> {
        let s: Settings = toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim()))?;
        s.check()?;
        Ok(s)
    }

    /// Read and parse `path`.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Settings::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    /// Check the values' ranges (done by [`Settings::parse`]; again after flags change them).
    pub fn check(&self) -> anyhow::Result<()> {
        self.panel.check()?;
        let l = &self.limits;
        if [l.max_connections, l.max_connections_per_client, l.max_handshakes_per_source, l.max_local_connections]
            .contains(&0)
        {
            bail!("limits: connection bounds must be at least 1");
        }
        if l.max_in_flight_per_connection == 0 {
            bail!("limits.max_in_flight_per_connection must be at least 1");
        }
        if !(l.rate_per_second >= 0.0 && l.rate_per_second.is_finite()) {
            bail!("limits.rate_per_second must be a finite number >= 0");
        }
        if l.rate_per_second > 0.0 && l.rate_burst == 0 {
            bail!("limits.rate_burst must be at least 1 when rate_per_second > 0");
        }
        if l.handshake_workers == 0 || l.handshake_workers > 64 {
            bail!("limits.handshake_workers must be between 1 and 64");
        }
        if self.tuning.busy_poll_us > MAX_BUSY_POLL_US {
            bail!("tuning.busy_poll_us must be between 0 and {MAX_BUSY_POLL_US}");
        }
        for k in &self.card_tls_key {
            k.scheme()?;
        }
        if self.card_key()? && self.card_tls_key.is_empty() {
            bail!("tls_key = \"card\" needs at least one [[card_tls_key]] (or tls_key = \"file\")");
        }
        if self.admit_any_client_certificate && !self.applications.as_os_str().is_empty() {
            bail!("admit_any_client_certificate and applications exclude each other");
        }
        self.seccomp_mode()?;
        Ok(())
    }

    /// Whether the TLS server key is held by the card (`tls_key`).
    fn card_key(&self) -> anyhow::Result<bool> {
        match self.tls_key.as_str() {
            "card" => Ok(true),
            "file" => Ok(false),
            other => bail!("tls_key: `{other}` is not one of card, file"),
        }
    }

    fn seccomp_mode(&self) -> anyhow::Result<SeccompMode> {
        match self.harden.seccomp.as_str() {
            "errno" => Ok(SeccompMode::Errno),
            "kill" => Ok(SeccompMode::Kill),
            "off" => Ok(SeccompMode::Off),
            other => bail!("harden.seccomp: `{other}` is not one of errno, kill, off"),
        }
    }

    /// Read the files the settings name and build the daemon configuration.
    pub fn daemon_config(&self) -> anyhow::Result<DaemonConfig> {
        let read = |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
        // With card-held keys there is no server key file to read (nor a `cert` to pair it).
        let card = self.card_key()?;
        let (cert, key) = if card { (Vec::new(), Vec::new()) } else { (read(&self.cert)?, read(&self.key)?) };
        let mut c = DaemonConfig::new(self.listen, cert, key, read(&self.client_ca)?, self.card_socket.clone());
        for k in self.card_tls_key.iter().filter(|_| card) {
            c.card_tls_keys.push(CardTlsKey {
                label: k.label.clone(),
                cert_chain_pem: read(&k.cert)?,
                scheme: k.scheme()?,
            });
        }
        c.client_ca_path = Some(self.client_ca.clone());
        c.applications = if self.admit_any_client_certificate {
            Applications::AnyCertificate
        } else if self.applications.as_os_str().is_empty() {
            Applications::Nobody
        } else {
            Applications::File(self.applications.clone())
        };
        if self.local.enabled {
            let mut uids = self.local.allowed_uids.clone();
            for name in &self.local.allowed_users {
                let user = User::from_name(name)
                    .with_context(|| format!("looking up local.allowed_users {name}"))?
                    .ok_or_else(|| anyhow!("local.allowed_users: no such user {name}"))?;
                uids.push(user.uid.as_raw());
            }
            c.local = Some(LocalSocket { path: self.local.path.clone(), allowed_uids: uids });
        }
        let l = &self.limits;
        c.max_connections = l.max_connections;
        c.max_handshakes_per_source = l.max_handshakes_per_source;
        c.max_local_connections = l.max_local_connections;
        c.max_connections_per_client = l.max_connections_per_client;
        c.max_in_flight_per_conn = l.max_in_flight_per_connection;
        c.handshake_workers = l.handshake_workers;
        c.rate_limit =
            (l.rate_per_second > 0.0).then_some(RateLimit { per_second: l.rate_per_second, burst: l.rate_burst });
        let t = &self.timeouts;
        c.handshake_timeout = Duration::from_millis(t.handshake_ms);
        c.idle_timeout = Duration::from_millis(t.idle_ms);
        c.card_timeout = Duration::from_millis(t.card_ms);
        c.card_connect_wait = Duration::from_millis(t.card_connect_ms);
        c.drain_timeout = Duration::from_millis(t.drain_ms);
        c.busy_poll = Duration::from_micros(self.tuning.busy_poll_us);
        Ok(c)
    }

    /// The hardening to apply; `None` when `harden.enabled` is false.
    pub fn harden_config(&self) -> anyhow::Result<Option<HardenConfig>> {
        if !self.harden.enabled {
            return Ok(None);
        }
        Ok(Some(HardenConfig {
            user: (!self.harden.user.is_empty()).then(|| self.harden.user.clone()),
            allow_root: false,
            require_mlock: self.harden.require_mlock,
            seccomp: self.seccomp_mode()?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_and_equals_the_defaults() {
        let text = include_str!("../gmhsmd.example.toml");
        assert_eq!(Settings::parse(text).expect("example parses"), Settings::default());
    }

    #[test]
    fn card_tls_keys_replace_the_key_file() {
        let dir = std::env::temp_dir().join(format!("gmhsmd-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ca.pem"), "ca").expect("write");
        std::fs::write(dir.join("p256.pem"), "p256 chain").expect("write");
        std::fs::write(dir.join("sm2.pem"), "sm2 chain").expect("write");
        let text = format!(
            "client_ca = \"{d}/ca.pem\"\nkey = \"{d}/absent.key\"\n\
             [[card_tls_key]]\nlabel = \"tls:p256\"\ncert = \"{d}/p256.pem\"\nscheme = \"ecdsa-p256\"\n\
             [[card_tls_key]]\nlabel = \"tls:sm2\"\ncert = \"{d}/sm2.pem\"\nscheme = \"sm2\"\n\
             [local]\nenabled = false\n",
            d = dir.display()
        );
        let c = Settings::parse(&text).expect("parses").daemon_config().expect("no key file is read");
        assert!(c.server_key_pem.is_empty());
        let keys: Vec<_> =
            c.card_tls_keys.iter().map(|k| (k.label.as_str(), k.cert_chain_pem.as_slice(), k.scheme)).collect();
        assert_eq!(
            keys,
            [
                ("tls:p256", &b"p256 chain"[..], CardKeyScheme::EcdsaP256Sha256),
                ("tls:sm2", &b"sm2 chain"[..], CardKeyScheme::Sm2Sm3),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Guards finding 9: by default the TLS key is the card's and nobody is admitted; the file
    /// key and admitting every certificate of the CA are explicit choices.
    #[test]
    fn defaults_are_the_card_key_and_no_application() {
        let d = Settings::default();
        assert_eq!(d.tls_key, "card");
        assert_eq!(d.card_tls_key.iter().map(|k| k.label.as_str()).collect::<Vec<_>>(), ["tls:p256", "tls:sm2"]);
        assert!(d.applications.as_os_str().is_empty() && !d.admit_any_client_certificate);
        assert!(Settings::parse("tls_key = \"file\"\n").is_ok());
        assert!(Settings::parse("tls_key = \"disk\"\n").is_err());
        assert!(Settings::parse("card_tls_key = []\n").is_err(), "card keys, but none named");
        assert!(Settings::parse("admit_any_client_certificate = true\napplications = \"/x\"\n").is_err());
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(Settings::parse("").expect("parses"), Settings::default());
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        for (text, key) in [
            ("listen_addr = \"1.2.3.4:5\"\n", "listen_addr"),
            ("[limits]\nmax_conns = 3\n", "max_conns"),
            ("[harden]\nseccomp_mode = \"kill\"\n", "seccomp_mode"),
            ("[nonsense]\n", "nonsense"),
        ] {
            let err = Settings::parse(text).expect_err(text).to_string();
            assert!(err.contains(key), "{err}");
        }
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(Settings::parse("[harden]\nseccomp = \"maybe\"\n").is_err());
        assert!(Settings::parse("[limits]\nmax_connections = 0\n").is_err());
        assert!(Settings::parse("listen = \"nowhere\"\n").is_err());
        assert!(Settings::parse("[limits]\nhandshake_workers = 0\n").is_err());
        let bad_scheme = "[[card_tls_key]]\nlabel = \"k\"\ncert = \"c\"\nscheme = \"rsa\"\n";
        assert!(Settings::parse(bad_scheme).is_err());
        let s = Settings::parse("[limits]\nrate_per_second = 0\n").expect("rate off");
        assert_eq!(s.limits.rate_per_second, 0.0);
        assert!(Settings::parse("[tuning]\nbusy_poll_us = 10001\n").is_err());
        assert!(Settings::parse("[tuning]\nbusy_poll_us = -1\n").is_err());
    }

    #[test]
    fn busy_poll_is_off_by_default_and_set_in_microseconds() {
        let dir = std::env::temp_dir().join(format!("gmhsmd-settings-busy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ca.pem"), "ca").expect("write");
        let config = |tuning: &str| {
            let text = format!(
                "client_ca = \"{d}/ca.pem\"\n\
                 [[card_tls_key]]\nlabel = \"k\"\ncert = \"{d}/ca.pem\"\nscheme = \"sm2\"\n\
                 [local]\nenabled = false\n{tuning}",
                d = dir.display()
            );
            Settings::parse(&text).expect("parses").daemon_config().expect("config")
        };
        assert_eq!(config("").busy_poll, Duration::ZERO);
        assert_eq!(config("[tuning]\nbusy_poll_us = 0\n").busy_poll, Duration::ZERO);
        assert_eq!(config("[tuning]\nbusy_poll_us = 40\n").busy_poll, Duration::from_micros(40));
        assert_eq!(config("[tuning]\nbusy_poll_us = 10000\n").busy_poll, Duration::from_millis(10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

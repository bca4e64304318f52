//! The private link's TLS configuration: TLS 1.3 only, the RFC 8998 provider
//! (`gmhsm_tls_sm::provider()`: `TLS_SM4_GCM_SM3` / `curveSM2` / `sm2sig_sm3` first, ring's
//! AES-GCM and ChaCha20 suites beside them), client certificates required and verified with
//! the same provider (SM2 and standard chains alike).
//!
//! The server's identities are built once at bind ([`identities`]): card-held keys
//! ([`crate::cardkey`]) or the PEM key. With an SM2 and a standard identity,
//! [`SmOrStandardResolver`] gives the SM2 certificate to clients offering `sm2sig_sm3` and the
//! standard one to the others. A reload rebuilds only the client verifier ([`server_config`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use gmhsm_proto::Principal;
use gmhsm_tls_sm::SmOrStandardResolver;

use crate::cardkey::CardSigningKey;
use crate::config::{CardKeyScheme, DaemonConfig};

/// The server's certificates and keys, chosen per client hello.
pub struct Identities {
    resolver: Arc<dyn ResolvesServerCert>,
    card_keys: Vec<Arc<CardSigningKey>>,
}

impl Identities {
    /// Open the card keys' own card connections now (called at bind, before the hardening
    /// drops privileges; a key that cannot connect now tries again at its first signature).
    pub fn connect_card_keys(&self) {
        for k in &self.card_keys {
            k.connect();
        }
    }
}

/// Always the same certificate.
#[derive(Debug)]
struct Single(Arc<CertifiedKey>);

impl ResolvesServerCert for Single {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(gmhsm_tls_sm::provider())
}

/// The card session number of the `n`th card key's own link: from the top of the range, far
/// from the connection tokens the event loop uses as session numbers.
fn card_key_session(n: usize) -> u64 {
    gmhsm_proto::sessions::tls_key(n as u64)
}

/// Build the server identities from `config`: its card-held keys when it has any, otherwise
/// its PEM certificate chain and key.
pub fn identities(config: &DaemonConfig) -> anyhow::Result<Identities> {
    let provider = provider();
    if config.card_tls_keys.is_empty() {
        let chain = certs_from_pem(&config.server_cert_chain_pem).context("server certificate chain")?;
        let key =
            PrivateKeyDer::from_pem_slice(&config.server_key_pem).map_err(|e| anyhow!("server private key: {e}"))?;
        let key = provider.key_provider.load_private_key(key).map_err(|e| anyhow!("server private key: {e}"))?;
        let certified = CertifiedKey::new(chain, key);
        certified
            .keys_match()
            .or_else(|e| match e {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown) => Ok(()),
                e => Err(e),
            })
            .map_err(|e| anyhow!("server certificate and key do not form a pair: {e}"))?;
        return Ok(Identities { resolver: Arc::new(Single(Arc::new(certified))), card_keys: Vec::new() });
    }
    let timeout = sign_timeout(config);
    let (mut sm, mut standard) = (None, None);
    let mut card_keys = Vec::new();
    for (n, k) in config.card_tls_keys.iter().enumerate() {
        let chain =
            certs_from_pem(&k.cert_chain_pem).with_context(|| format!("certificate of card TLS key `{}`", k.label))?;
        let key = CardSigningKey::new(&k.label, k.scheme, config.card_socket.clone(), card_key_session(n), timeout)?;
        let key = Arc::new(key);
        card_keys.push(Arc::clone(&key));
        let certified = Arc::new(CertifiedKey::new(chain, key));
        let slot = match k.scheme {
            CardKeyScheme::Sm2Sm3 => &mut sm,
            CardKeyScheme::EcdsaP256Sha256 => &mut standard,
        };
        if slot.replace(certified).is_some() {
            bail!("card TLS keys: at most one SM2 key and one standard key (`{}` is a second {:?})", k.label, k.scheme);
        }
    }
    let resolver: Arc<dyn ResolvesServerCert> = match (sm, standard) {
        (Some(sm), Some(standard)) => Arc::new(
            SmOrStandardResolver::new(sm, standard)
                .ok_or_else(|| anyhow!("the SM2 card key does not sign sm2sig_sm3"))?,
        ),
        (Some(one), None) | (None, Some(one)) => Arc::new(Single(one)),
        (None, None) => bail!("no card TLS key"),
    };
    Ok(Identities { resolver, card_keys })
}

/// How long a card signature may take: a signature later than the handshake deadline is of
/// no use, and the card link's own deadline applies too.
fn sign_timeout(config: &DaemonConfig) -> Duration {
    config.handshake_timeout.min(config.card_timeout)
}

/// Build the server configuration for `identities` and the client CA(s) in PEM.
pub fn server_config(identities: &Identities, client_ca_pem: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    for ca in certs_from_pem(client_ca_pem).context("client CA")? {
        roots.add(ca).context("client CA certificate rejected")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client certificate verifier")?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the SM provider")?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(&identities.resolver));
    Ok(Arc::new(config))
}

/// Every certificate in a PEM bundle; an empty bundle is an error.
fn certs_from_pem(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs =
        CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow!("bad PEM: {e}"))?;
    if certs.is_empty() {
        bail!("no CERTIFICATE found in PEM");
    }
    Ok(certs)
}

/// The principal of an authenticated peer: SHA-256 of its end-entity certificate DER.
/// `None` when the session carries no peer certificate (never after a completed handshake
/// with this module's configuration).
pub fn principal_of(peer_certs: Option<&[CertificateDer<'static>]>) -> Option<Principal> {
    let ee = peer_certs?.first()?;
    let cert_sha256: [u8; 32] = Sha256::digest(ee.as_ref()).into();
    Some(Principal::Application { cert_sha256 })
}

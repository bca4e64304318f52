//! The private link's TLS configuration: TLS 1.3 only, ring, client certificates required.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use gmhsm_proto::Principal;

/// Build the server configuration from PEM bytes.
pub fn server_config(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
    client_ca_pem: &[u8],
) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());

    let chain = certs_from_pem(cert_chain_pem).context("server certificate chain")?;
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| anyhow!("server private key: {e}"))?;

    let mut roots = rustls::RootCertStore::empty();
    for ca in certs_from_pem(client_ca_pem).context("client CA")? {
        roots.add(ca).context("client CA certificate rejected")?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("client certificate verifier")?;

    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .context("TLS 1.3 with the ring provider")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("server certificate and key do not form a usable pair")?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM bundle; an empty bundle is an error.
fn certs_from_pem(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("bad PEM: {e}"))?;
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

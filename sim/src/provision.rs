//! The demo PKI as the issuer of the appliance's card-held TLS keys: the keys are generated
//! in the card and provisioned by `gmhsm_provisioning::tls` (the production path, where the
//! operator's CA certifies them); here the simulator's CA certifies them at once.

use std::time::{Duration, SystemTime};

use anyhow::bail;
use gmhsm_proto::KeyAlg;
use gmhsm_provisioning::tls::{self, Issuer};
use gmhsm_tls_sm::certs;

pub use gmhsm_provisioning::tls::{TlsKey, card_error};

use crate::pki::{Pki, SERVER_NAME};

/// rcgen's view of a P-256 public key known only by its SPKI.
struct P256Public(Vec<u8>);

impl rcgen::PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &rcgen::SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

fn p256_cert(pki: &Pki, spki: &[u8]) -> anyhow::Result<String> {
    if spki.len() < 65 {
        bail!("P-256 SPKI too short");
    }
    let point = P256Public(spki[spki.len() - 65..].to_vec());
    let (ca_cert, ca_key) = pki.ca()?;
    let mut sp = rcgen::CertificateParams::new(vec![SERVER_NAME.to_string(), "localhost".into(), "127.0.0.1".into()])?;
    sp.distinguished_name.push(rcgen::DnType::CommonName, SERVER_NAME);
    sp.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    Ok(sp.signed_by(&point, &ca_cert, &ca_key)?.pem())
}

fn sm2_cert(pki: &Pki, spki: &[u8]) -> anyhow::Result<String> {
    let (ca, ca_key) = pki.sm_ca()?;
    let now = SystemTime::now();
    let params = certs::CertParams {
        subject: format!("CN={SERVER_NAME},O=gmhsm"),
        dns_names: vec![SERVER_NAME.into(), "localhost".into()],
        ip_addresses: vec!["127.0.0.1".parse()?],
        not_before: now - Duration::from_secs(3600),
        not_after: now + Duration::from_secs(10 * 365 * 86_400),
        role: certs::Role::Server,
    };
    let cert = certs::issue_for_public_key(&params, spki, &ca, &ca_key).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    cert.pem().map_err(|e| anyhow::anyhow!("{e:?}"))
}

/// The demo PKI certifying the card's public keys.
struct DemoIssuer<'a>(&'a Pki);

impl Issuer for DemoIssuer<'_> {
    fn issue(&self, alg: KeyAlg, spki_der: &[u8]) -> Result<String, String> {
        let pem = match alg {
            KeyAlg::Sm2 => sm2_cert(self.0, spki_der),
            _ => p256_cert(self.0, spki_der),
        };
        pem.map_err(|e| format!("demo CA: {e:#}"))
    }
}

/// The certificates issued at an earlier boot, when the card cannot be asked now.
pub fn cached(pki: &Pki) -> Option<Vec<TlsKey>> {
    tls::cached(&pki.dir)
}

/// Make sure the card holds both TLS keys and the demo PKI certifies them.
pub fn tls_keys(card_socket: &std::path::Path, pki: &Pki) -> anyhow::Result<Vec<TlsKey>> {
    tls::provision(card_socket, &pki.dir, &DemoIssuer(pki))
}

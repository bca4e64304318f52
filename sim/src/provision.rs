//! Provisioning the appliance's own TLS identity in the crypto card at boot: the server key
//! pairs (ECDSA P-256 for the standard suite, SM2 for RFC 8998) are generated inside the card
//! under `tls:p256` and `tls:sm2`, owned by the appliance (local principal); only their public
//! keys come out, and the simulator's CA certifies them. The daemon signs handshakes through
//! the card link and never holds either private key.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{
    Capabilities, CardFrame, Deframer, KeyAlg, Label, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame,
    Status,
};
use gmhsm_tls_sm::certs;

use crate::pki::{Pki, SERVER_NAME, write_atomic};

/// The session id the simulator uses on the card link for provisioning.
const SESSION: u64 = u64::MAX - 16;

/// A blocking card-link connection speaking as the appliance itself.
pub struct CardLink {
    stream: UnixStream,
    deframer: Deframer,
    next: u64,
}

impl CardLink {
    pub fn connect(socket: &Path) -> anyhow::Result<Self> {
        let stream = UnixStream::connect(socket).with_context(|| format!("card link {}", socket.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self { stream, deframer: Deframer::new(), next: 1 })
    }

    pub fn call(&mut self, request: Request) -> anyhow::Result<Result<Response, Status>> {
        let id = self.next;
        self.next += 1;
        let frame = CardFrame {
            header: FrameHeader { version: PROTOCOL_VERSION, id },
            principal: Principal::Local,
            session: SESSION,
            request,
        };
        self.stream.write_all(&frame::encode(&frame).map_err(|e| anyhow::anyhow!("{e:?}"))?)?;
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(body) = self.deframer.next_frame().map_err(|e| anyhow::anyhow!("{e:?}"))? {
                let answer: ServerFrame = frame::decode(&body).map_err(|e| anyhow::anyhow!("{e:?}"))?;
                if answer.header.id != id {
                    bail!("card answered request {} while {id} was pending", answer.header.id);
                }
                return Ok(answer.result);
            }
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                bail!("the card closed the link");
            }
            self.deframer.push(&buf[..n]);
        }
    }
}

/// One card-held TLS key and its certificate chain (PEM).
pub struct TlsKey {
    pub label: String,
    pub alg: KeyAlg,
    pub cert_chain_pem: Vec<u8>,
}

/// The public key (SPKI DER) of the card key `label`, generated first if it does not exist.
fn card_key(link: &mut CardLink, label: &str, alg: KeyAlg) -> anyhow::Result<Vec<u8>> {
    let l = Label::try_from(label).map_err(|_| anyhow::anyhow!("label {label}"))?;
    match link.call(Request::ExportPublicKey { label: l.clone() })? {
        Ok(Response::PublicKey { spki_der, .. }) => return Ok(spki_der),
        Err(Status::UnknownKey) => {}
        other => bail!("card: export {label}: {other:?}"),
    }
    let caps = Capabilities::SIGN | Capabilities::VERIFY;
    match link.call(Request::GenerateKey { label: l, alg, caps, domains: 0 })? {
        Ok(Response::KeyGenerated { spki_der, .. }) => Ok(spki_der),
        other => bail!("card: generate {label}: {other:?}"),
    }
}

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

const KEYS: [(&str, KeyAlg, &str); 2] =
    [("tls:sm2", KeyAlg::Sm2, "tls-sm2"), ("tls:p256", KeyAlg::EcdsaP256, "tls-p256")];

/// The certificates issued at an earlier boot, when the card cannot be asked now (it is in
/// its error state): the daemon serves them, and handshakes succeed again once the card can
/// sign.
pub fn cached(pki: &Pki) -> Option<Vec<TlsKey>> {
    KEYS.iter()
        .map(|(label, alg, file)| {
            let pem = std::fs::read(pki.dir.join(format!("{file}.pem"))).ok()?;
            Some(TlsKey { label: label.to_string(), alg: *alg, cert_chain_pem: pem })
        })
        .collect()
}

/// Why the card cannot serve, from its status (for error messages).
pub fn card_error(card_socket: &Path) -> Option<String> {
    let mut link = CardLink::connect(card_socket).ok()?;
    match link.call(Request::GetStatus).ok()? {
        Ok(Response::Status(st)) => st.error.map(|e| e.to_string()),
        _ => None,
    }
}

/// Make sure the card holds both TLS keys and the PKI certifies them; returns them for the
/// daemon. A certificate is reissued when the card's key changed (e.g. after a zeroize).
pub fn tls_keys(card_socket: &Path, pki: &Pki) -> anyhow::Result<Vec<TlsKey>> {
    let mut link = CardLink::connect(card_socket)?;
    let mut out = Vec::new();
    for (label, alg, file) in KEYS {
        let spki = card_key(&mut link, label, alg)?;
        let (cert_path, spki_path) = (pki.dir.join(format!("{file}.pem")), pki.dir.join(format!("{file}.spki")));
        let current = std::fs::read(&spki_path).ok().filter(|s| *s == spki).is_some() && cert_path.exists();
        if !current {
            let pem = match alg {
                KeyAlg::Sm2 => sm2_cert(pki, &spki)?,
                _ => p256_cert(pki, &spki)?,
            };
            write_atomic(&cert_path, pem.as_bytes(), 0o644)?;
            write_atomic(&spki_path, &spki, 0o644)?;
        }
        out.push(TlsKey { label: label.into(), alg, cert_chain_pem: std::fs::read(&cert_path)? });
    }
    Ok(out)
}

//! The appliance's own TLS identity, held by the crypto card: the server key pairs (ECDSA
//! P-256 for the standard suites, SM2 for RFC 8998) are generated inside the card under
//! `tls:p256` and `tls:sm2`, owned by the appliance (`Principal::Local`); only their public
//! keys come out. Whoever certifies them — the operator's own CA on an appliance, the demo PKI
//! in the simulator — is the caller's [`Issuer`]; a certificate is reissued when the card's
//! key changed (after a zeroize). `gmhsmd` then signs handshakes through the card link.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gmhsm_proto::link::BlockingLink;
use gmhsm_proto::{Capabilities, KeyAlg, Label, Request, Response, Status, sessions};

use crate::CeremonyError;

/// The card-held TLS keys: label, algorithm, file stem of its certificate and public key.
pub const KEYS: [(&str, KeyAlg, &str); 2] =
    [("tls:sm2", KeyAlg::Sm2, "tls-sm2"), ("tls:p256", KeyAlg::EcdsaP256, "tls-p256")];

/// How long one provisioning request may take.
const ANSWER: Duration = Duration::from_secs(60);

/// One card-held TLS key and its certificate chain (PEM).
pub struct TlsKey {
    pub label: String,
    pub alg: KeyAlg,
    pub cert_chain_pem: Vec<u8>,
}

/// Certifies a card key's public key (SPKI DER): returns the certificate chain in PEM.
pub trait Issuer {
    fn issue(&self, alg: KeyAlg, spki_der: &[u8]) -> Result<String, String>;
}

/// Who certifies the appliance's keys when no CA is at hand: nobody. The public key is left
/// in `DIR/NAME.spki` for the operator's CA, and provisioning stops with a message saying
/// where to put the certificate (`DIR/NAME.pem`).
pub struct OperatorCa;

impl Issuer for OperatorCa {
    fn issue(&self, alg: KeyAlg, _spki_der: &[u8]) -> Result<String, String> {
        Err(format!("no certificate for the card's {alg:?} key yet: have your CA certify the public key"))
    }
}

fn call(link: &mut BlockingLink, request: Request) -> Result<Result<Response, Status>, CeremonyError> {
    link.call(sessions::PROVISIONING, request, ANSWER).map_err(|e| CeremonyError::Link(e.to_string()))
}

fn odd(what: &str, got: Result<Response, Status>) -> CeremonyError {
    CeremonyError::Link(format!("card: {what}: {}", got.map_or_else(|s| s.to_string(), |_| "odd answer".into())))
}

/// The public key (SPKI DER) of the card key `label`, generated first if it does not exist.
pub fn card_key(link: &mut BlockingLink, label: &str, alg: KeyAlg) -> Result<Vec<u8>, CeremonyError> {
    let l = Label::try_from(label).map_err(|_| CeremonyError::Link(format!("label {label} too long")))?;
    match call(link, Request::ExportPublicKey { label: l.clone() })? {
        Ok(Response::PublicKey { spki_der, .. }) => return Ok(spki_der),
        Err(Status::UnknownKey) => {}
        other => return Err(odd(&format!("export {label}"), other)),
    }
    let caps = Capabilities::SIGN | Capabilities::VERIFY;
    match call(link, Request::GenerateKey { label: l, alg, caps, domains: 0 })? {
        Ok(Response::KeyGenerated { spki_der, .. }) => Ok(spki_der),
        other => Err(odd(&format!("generate {label}"), other)),
    }
}

/// Why the card cannot serve, from its status (for error messages).
pub fn card_error(card_socket: &Path) -> Option<String> {
    let mut link = BlockingLink::connect(card_socket).ok()?;
    match call(&mut link, Request::GetStatus).ok()? {
        Ok(Response::Status(st)) => st.error.map(|e| e.to_string()),
        _ => None,
    }
}

/// Where the certificate and the public key of `stem` live in `dir`.
pub fn files(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{stem}.pem")), dir.join(format!("{stem}.spki")))
}

/// The certificates kept from an earlier boot, when the card cannot be asked now (it is in
/// its error state): the daemon serves them, and handshakes succeed again once it can sign.
pub fn cached(dir: &Path) -> Option<Vec<TlsKey>> {
    KEYS.iter()
        .map(|(label, alg, stem)| {
            let pem = std::fs::read(files(dir, stem).0).ok()?;
            Some(TlsKey { label: label.to_string(), alg: *alg, cert_chain_pem: pem })
        })
        .collect()
}

/// Make sure the card holds both TLS keys and `dir` holds a certificate for each: a key whose
/// public key differs from `NAME.spki` (or has no certificate) is certified by `issuer`, and
/// its certificate and public key written (atomically, synced) into `dir`.
pub fn provision(card_socket: &Path, dir: &Path, issuer: &dyn Issuer) -> anyhow::Result<Vec<TlsKey>> {
    let mut link =
        BlockingLink::connect(card_socket).map_err(|e| anyhow::anyhow!("card link {}: {e}", card_socket.display()))?;
    let mut out = Vec::new();
    for (label, alg, stem) in KEYS {
        let spki = card_key(&mut link, label, alg)?;
        let (cert_path, spki_path) = files(dir, stem);
        let current = std::fs::read(&spki_path).ok().is_some_and(|s| s == spki) && cert_path.exists();
        if !current {
            write_atomic(&spki_path, &spki, 0o644)?;
            let pem = issuer.issue(alg, &spki).map_err(|e| {
                anyhow::anyhow!(
                    "{label}: {e} (public key in {}, certificate to {})",
                    spki_path.display(),
                    cert_path.display()
                )
            })?;
            write_atomic(&cert_path, pem.as_bytes(), 0o644)?;
        }
        out.push(TlsKey { label: label.into(), alg, cert_chain_pem: std::fs::read(&cert_path)? });
    }
    Ok(out)
}

/// Write `bytes` to `path` through a synced temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

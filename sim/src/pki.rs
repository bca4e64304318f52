//! The demo PKI of a simulated appliance: a CA, the daemon's TLS server certificate and one
//! demo application's client certificate, kept in `STATE/pki/` so they survive restarts.
//!
//! This is the simulator's stand-in for the enrolment done at the init ceremony; on hardware
//! the server key is born in the crypto card (a later issue moves it there in the simulator too).

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use gmhsm_tls_sm::certs;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

/// DNS name in the server certificate; the client profile verifies it.
pub const SERVER_NAME: &str = "gmhsm.local";

/// Paths of the PKI files.
pub struct Pki {
    pub dir: PathBuf,
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "gmhsm appliance CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(ca)
}

fn client_params(name: &str) -> anyhow::Result<CertificateParams> {
    let mut cp = CertificateParams::new(Vec::<String>::new())?;
    cp.distinguished_name.push(DnType::CommonName, name);
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(cp)
}

impl Pki {
    pub fn new(state: &Path) -> Self {
        Self { dir: state.join("pki") }
    }

    /// A PKI kept in `dir` (several appliances of one security domain can share one).
    pub fn at(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }

    /// The standard CA, to issue under. Re-creating the CA's parameters with its key yields
    /// the same subject and key identifier, so certificates issued now chain to the CA
    /// certificate on disk.
    pub fn ca(&self) -> anyhow::Result<(rcgen::Certificate, KeyPair)> {
        let ca_key = KeyPair::from_pem(&fs::read_to_string(self.dir.join("ca.key"))?)?;
        Ok((ca_params()?.self_signed(&ca_key)?, ca_key))
    }

    /// The SM2 CA certificate and key.
    pub fn sm_ca(&self) -> anyhow::Result<(certs::Sm2Certificate, certs::Sm2KeyPair)> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_file(self.dir.join("sm-ca.pem"))
            .map_err(|e| anyhow::anyhow!("sm-ca.pem: {e}"))?;
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_file(self.dir.join("sm-ca.key"))
            .map_err(|e| anyhow::anyhow!("sm-ca.key: {e}"))?;
        Ok((
            certs::Sm2Certificate::from_der(&der).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            certs::Sm2KeyPair::from_pkcs8_der(key.secret_pkcs8_der()).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        ))
    }

    /// Issue another application's client certificate from the CA: `dir/NAME.pem` and
    /// `dir/NAME.key`. Refuses names that are not plain file names, and existing names.
    pub fn issue_client(&self, name: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            anyhow::bail!("client name {name:?}: use letters, digits, '-' and '_'");
        }
        let (cert, key) = (self.dir.join(format!("{name}.pem")), self.dir.join(format!("{name}.key")));
        if cert.exists() || ["ca", "server", "client"].contains(&name) {
            anyhow::bail!("a certificate named {name} exists already");
        }
        let (ca_cert, ca_key) = self.ca()?;
        let client_key = KeyPair::generate()?;
        let client_cert = client_params(name)?.signed_by(&client_key, &ca_cert, &ca_key)?;
        write_private(&key, client_key.serialize_pem().as_bytes())?;
        write_file(&cert, client_cert.pem().as_bytes())?;
        Ok((cert, key))
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    pub fn exists(&self) -> bool {
        [self.ca_cert(), self.dir.join("ca.key"), self.dir.join("sm-ca.key"), self.client_cert(), self.client_key()]
            .iter()
            .all(|p| p.exists())
    }

    /// Create the CA, the server certificate and the demo client certificate.
    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;

        // The SM2 CA for RFC 8998 certificates (OpenSSL 3.0 checks them with
        // `-vfyopt distid:1234567812345678`).
        let sm_key = certs::Sm2KeyPair::generate().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let now = std::time::SystemTime::now();
        let sm_params = certs::CertParams {
            subject: "CN=gmhsm appliance SM2 CA,O=gmhsm".into(),
            dns_names: vec![],
            ip_addresses: vec![],
            not_before: now - std::time::Duration::from_secs(3600),
            not_after: now + std::time::Duration::from_secs(20 * 365 * 86_400),
            role: certs::Role::Ca,
        };
        let sm_ca = certs::self_signed(&sm_params, &sm_key).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let sm_ca_pem = sm_ca.pem().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let sm_key_pem = sm_key.expose_secret_pkcs8_pem().map_err(|e| anyhow::anyhow!("{e:?}"))?;

        let client_key = KeyPair::generate()?;
        let client_cert = client_params("demo-app")?.signed_by(&client_key, &ca_cert, &ca_key)?;

        write_private(&self.dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
        write_private(&self.dir.join("sm-ca.key"), sm_key_pem.as_bytes())?;
        write_private(&self.client_key(), client_key.serialize_pem().as_bytes())?;
        write_file(&self.dir.join("sm-ca.pem"), sm_ca_pem.as_bytes())?;
        // ca.pem: every CA a client or the daemon trusts (standard and SM2).
        write_file(&self.ca_cert(), format!("{}{sm_ca_pem}", ca_cert.pem()).as_bytes())?;
        write_file(&self.client_cert(), client_cert.pem().as_bytes())?;
        Ok(())
    }
}

/// SHA-256 of the certificate in the PEM file `cert` (the principal the daemon derives).
pub fn fingerprint(cert: &Path) -> anyhow::Result<[u8; 32]> {
    use rustls_pki_types::pem::PemObject;
    use sha2::Digest;
    let der = rustls_pki_types::CertificateDer::from_pem_file(cert)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    Ok(sha2::Sha256::digest(der.as_ref()).into())
}

/// List the certificate in `cert` in the daemon's applications file `applications` (one hex
/// fingerprint a line; created if absent, a listed certificate is not added twice).
pub fn admit(applications: &Path, cert: &Path) -> anyhow::Result<()> {
    let line: String = fingerprint(cert)?.iter().map(|b| format!("{b:02x}")).collect();
    let mut text = fs::read_to_string(applications).unwrap_or_default();
    if text.lines().any(|l| l.split('#').next().unwrap_or("").trim() == line) {
        return Ok(());
    }
    if text.is_empty() {
        text.push_str("# Applications the daemon admits (SHA-256 of their certificates), written by gmhsm-sim.\n");
    }
    text.push_str(&format!("{line}  # {}\n", cert.file_name().unwrap_or_default().to_string_lossy()));
    write_atomic(applications, text.as_bytes(), 0o644)
}

/// Write `data` to `path` atomically (temporary file, fsync, rename) with mode `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(d) = path.parent() {
        fs::File::open(d)?.sync_all()?;
    }
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, data, 0o600)
}

fn write_file(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    write_atomic(path, data, 0o644)
}

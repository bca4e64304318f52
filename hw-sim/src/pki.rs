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
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

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
        let ca_key = KeyPair::from_pem(&fs::read_to_string(self.dir.join("ca.key"))?)?;
        // Re-creating the CA's parameters with its key yields the same subject and key
        // identifier, so certificates issued now chain to the CA certificate on disk.
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        let client_key = KeyPair::generate()?;
        let client_cert = client_params(name)?.signed_by(&client_key, &ca_cert, &ca_key)?;
        write_private(&key, client_key.serialize_pem().as_bytes())?;
        write_file(&cert, client_cert.pem().as_bytes())?;
        Ok((cert, key))
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("client.key")
    }

    pub fn exists(&self) -> bool {
        [self.ca_cert(), self.server_cert(), self.server_key(), self.client_cert(), self.client_key()]
            .iter()
            .all(|p| p.exists())
    }

    /// Create the CA, the server certificate and the demo client certificate.
    pub fn create(&self) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut sp = CertificateParams::new(vec![SERVER_NAME.to_string(), "localhost".into(), "127.0.0.1".into()])?;
        sp.distinguished_name.push(DnType::CommonName, SERVER_NAME);
        sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = sp.signed_by(&server_key, &ca_cert, &ca_key)?;

        let client_key = KeyPair::generate()?;
        let client_cert = client_params("demo-app")?.signed_by(&client_key, &ca_cert, &ca_key)?;

        write_private(&self.dir.join("ca.key"), ca_key.serialize_pem().as_bytes())?;
        write_private(&self.server_key(), server_key.serialize_pem().as_bytes())?;
        write_private(&self.client_key(), client_key.serialize_pem().as_bytes())?;
        write_file(&self.ca_cert(), ca_cert.pem().as_bytes())?;
        write_file(&self.server_cert(), server_cert.pem().as_bytes())?;
        write_file(&self.client_cert(), client_cert.pem().as_bytes())?;
        Ok(())
    }
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

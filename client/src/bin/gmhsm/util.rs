//! Local input and output for `gmhsm`: files with the protocol's size bound, stdout, hex,
//! capability lists; and the failure type with its exit code.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use gmhsm_client::{Capabilities, ClientError};
use gmhsm_proto::frame::MAX_MESSAGE_LEN;

/// A failure, with the exit code it maps to.
pub enum Failure {
    Client(ClientError),
    Local(String),
    Usage(String),
    Invalid(&'static str),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

impl Failure {
    /// Print the failure on stderr and return the documented exit code.
    pub fn report(self) -> u8 {
        match self {
            Failure::Invalid(what) => {
                eprintln!("{what} INVALID");
                1
            }
            Failure::Usage(msg) => {
                eprintln!("gmhsm: {msg}");
                2
            }
            Failure::Local(msg) => {
                eprintln!("gmhsm: {msg}");
                5
            }
            Failure::Client(e) => {
                eprintln!("gmhsm: {e}");
                match e {
                    ClientError::Io(_) | ClientError::Tls(_) => 3,
                    ClientError::Status(_) => 4,
                    ClientError::Config(_) => 5,
                    ClientError::InvalidArgument(_) => 2,
                    _ => 6,
                }
            }
        }
    }
}

/// Read a whole input file, refusing anything over the protocol's message bound.
pub fn read_input(path: &Path) -> Result<Vec<u8>, Failure> {
    let file = File::open(path).map_err(|e| Failure::Local(format!("cannot open {}: {e}", path.display())))?;
    let mut data = Vec::new();
    file.take(MAX_MESSAGE_LEN as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| Failure::Local(format!("cannot read {}: {e}", path.display())))?;
    if data.len() > MAX_MESSAGE_LEN {
        return Err(Failure::Usage(format!(
            "{} is larger than {MAX_MESSAGE_LEN} bytes, the most the appliance accepts in one request",
            path.display()
        )));
    }
    Ok(data)
}

pub fn write_output(out: Option<&Path>, bytes: &[u8]) -> Result<(), Failure> {
    match out {
        Some(path) => {
            std::fs::write(path, bytes).map_err(|e| Failure::Local(format!("cannot write {}: {e}", path.display())))
        }
        None => {
            let mut stdout = io::stdout().lock();
            stdout
                .write_all(bytes)
                .and_then(|()| stdout.flush())
                .map_err(|e| Failure::Local(format!("cannot write to stdout: {e}")))
        }
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Exactly `N` bytes from hex.
pub fn hex_array<const N: usize>(what: &str, s: &str) -> Result<[u8; N], Failure> {
    let bad = || Failure::Usage(format!("{what} must be {} hex digits", N * 2));
    if s.len() != N * 2 {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2).ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `sign,verify,...` to a capability set.
pub fn parse_caps(s: &str) -> Result<Capabilities, Failure> {
    Capabilities::parse_list(s).map_err(|other| Failure::Usage(format!("unknown capability {other:?}")))
}

pub fn caps_text(caps: Capabilities) -> String {
    let names = Capabilities::NAMES.iter().filter(|(c, _)| caps.contains(*c));
    names.map(|(_, n)| *n).collect::<Vec<_>>().join(",")
}

/// The DER of the first `PUBLIC KEY` PEM block in `path`.
pub fn public_key_pem(path: &Path) -> Result<Vec<u8>, Failure> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_file(path)
        .map(|d| d.to_vec())
        .map_err(|e| Failure::Local(format!("{}: no usable PUBLIC KEY PEM block: {e}", path.display())))
}

/// The DER of the first `CERTIFICATE` PEM block in `path`.
pub fn certificate_pem(path: &Path) -> Result<Vec<u8>, Failure> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .map(|d| d.to_vec())
        .map_err(|e| Failure::Local(format!("{}: no usable CERTIFICATE PEM block: {e}", path.display())))
}

/// Write secret material to a new file readable by its owner only (mode 0600 on Unix).
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| Failure::Local(format!("cannot write {}: {e}", path.display())))
}

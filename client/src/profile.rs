//! Connection profiles: where an appliance is and which credentials reach it, from TOML.
//!
//! ```toml
//! address = "127.0.0.1:7443"
//! server_name = "gmhsm.local"   # name in the server certificate
//! ca_cert = "ca.pem"            # relative to the profile file's folder, or absolute
//! client_cert = "client.pem"
//! client_key = "client.key"
//! timeout_secs = 30             # optional: connect and per-answer timeout
//! failover = ["10.0.0.2:7443"]  # optional: appliances tried in order when `address` is down
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::ClientError;

/// The default connect and answer timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One appliance and the credentials to reach it. Paths are absolute after loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// `host:port` of the appliance.
    pub address: String,
    /// The DNS name (or IP) the server certificate must carry.
    pub server_name: String,
    /// PEM file with the CA certificate(s) that issued the appliance's certificate.
    pub ca_cert: PathBuf,
    /// PEM file with this client's certificate (and chain).
    pub client_cert: PathBuf,
    /// PEM file with this client's private key.
    pub client_key: PathBuf,
    /// Connect timeout, and how long to wait for each answer.
    pub timeout: Duration,
    /// Further appliances of the same security domain, tried in order after `address`.
    pub failover: Vec<String>,
}

impl Profile {
    /// `address`, then the failover addresses.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.address.as_str()).chain(self.failover.iter().map(String::as_str))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    address: String,
    server_name: String,
    ca_cert: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    timeout_secs: Option<u64>,
    #[serde(default)]
    failover: Vec<String>,
}

impl Profile {
    /// Read a profile file; relative paths in it are taken from the file's folder.
    pub fn load(path: impl AsRef<Path>) -> Result<Profile, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config(format!("cannot read profile {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        Profile::from_toml(&text, base).map_err(|e| ClientError::Config(format!("profile {}: {e}", path.display())))
    }

    /// Parse profile text; relative paths are resolved against `base_dir`.
    pub fn from_toml(text: &str, base_dir: &Path) -> Result<Profile, String> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| e.message().to_string())?;
        if raw.timeout_secs == Some(0) {
            return Err("timeout_secs must be at least 1".into());
        }
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };
        Ok(Profile {
            address: raw.address,
            server_name: raw.server_name,
            ca_cert: resolve(raw.ca_cert),
            client_cert: resolve(raw.client_cert),
            client_key: resolve(raw.client_key),
            timeout: raw.timeout_secs.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            failover: raw.failover,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        address = "127.0.0.1:7443"
        server_name = "gmhsm.local"
        ca_cert = "ca.pem"
        client_cert = "certs/client.pem"
        client_key = "/etc/gmhsm/client.key"
    "#;

    #[test]
    fn relative_paths_resolve_against_the_profile_folder() {
        let p = Profile::from_toml(FULL, Path::new("/srv/app")).expect("valid profile");
        assert_eq!(p.address, "127.0.0.1:7443");
        assert_eq!(p.server_name, "gmhsm.local");
        assert_eq!(p.ca_cert, PathBuf::from("/srv/app/ca.pem"));
        assert_eq!(p.client_cert, PathBuf::from("/srv/app/certs/client.pem"));
        assert_eq!(p.client_key, PathBuf::from("/etc/gmhsm/client.key"));
        assert_eq!(p.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn missing_field_is_named_in_the_error() {
        let text = FULL.replace("server_name = \"gmhsm.local\"", "");
        let err = Profile::from_toml(&text, Path::new("/")).expect_err("server_name is required");
        assert!(err.contains("server_name"), "{err}");
    }

    #[test]
    fn unknown_field_is_refused() {
        let text = format!("{FULL}\nadress = \"typo\"\n");
        assert!(Profile::from_toml(&text, Path::new("/")).is_err());
    }

    #[test]
    fn load_reads_the_file_and_uses_its_folder() {
        let dir = std::env::temp_dir().join(format!("gmhsm-profile-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("client.toml");
        std::fs::write(&file, format!("{FULL}\ntimeout_secs = 5\n")).expect("write profile");
        let p = Profile::load(&file).expect("load");
        assert_eq!(p.ca_cert, dir.join("ca.pem"));
        assert_eq!(p.timeout, Duration::from_secs(5));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(Profile::load(dir.join("absent.toml")), Err(ClientError::Config(_))));
    }
}

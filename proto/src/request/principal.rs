//! Who asks, and what an application may own in the card's store.

use serde::{Deserialize, Serialize};

/// Who is asking. The daemon sets this from the authenticated TLS client certificate; a
/// client can never choose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// An application server, named by the SHA-256 fingerprint of its client certificate.
    Application { cert_sha256: [u8; 32] },
    /// A tool on the appliance itself (local socket).
    Local,
}

/// What one application may own in the card's store: stored keys, and bytes of flash those
/// key records take (as the store counts them: key, value and record framing). Set at
/// registration; keys of the local principal (the appliance's own) are not counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppQuota {
    pub max_keys: u32,
    pub max_bytes: u32,
}

impl AppQuota {
    /// The quota of an application registered without one, and of an unregistered
    /// application: 1024 keys, 1 MiB of records.
    pub const DEFAULT: AppQuota = AppQuota { max_keys: 1024, max_bytes: 1 << 20 };

    /// The quota a tool's `--max-keys` / `--max-bytes` options ask for: `None` when neither
    /// is given (the card's default), else the default with what is given.
    pub fn from_options(max_keys: Option<u32>, max_bytes: Option<u32>) -> Option<AppQuota> {
        (max_keys.is_some() || max_bytes.is_some()).then(|| AppQuota {
            max_keys: max_keys.unwrap_or(Self::DEFAULT.max_keys),
            max_bytes: max_bytes.unwrap_or(Self::DEFAULT.max_bytes),
        })
    }
}

//! Requests: what a client (through the daemon) asks the crypto card to do.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A key label: 1 to 64 bytes of UTF-8, unique per device.
pub type Label = heapless::String<64>;

/// Who is asking. The daemon sets this from the authenticated TLS client certificate; a
/// client can never choose it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// An application server, named by the SHA-256 fingerprint of its client certificate.
    Application { cert_sha256: [u8; 32] },
    /// A tool on the appliance itself (local socket).
    Local,
}

/// Key algorithms the card can generate. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyAlg {
    /// SM2 key pair on the GB/T 32918 curve.
    Sm2,
    /// RSA with a 2048-bit modulus, e = 65537.
    Rsa2048,
}

/// Signature mechanisms. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Mechanism {
    /// SM2 signature over SM3(Z ‖ M), Z from the distinguishing ID; DER signature
    /// (`SEQUENCE { r, s }`).
    Sm2Sm3 { distid: heapless::Vec<u8, 128> },
    /// RSASSA-PKCS1-v1_5 with SHA-256 over the message.
    RsaPkcs1v15Sha256,
}

impl Mechanism {
    /// SM2 with SM3 and the default distinguishing ID `1234567812345678`.
    pub fn sm2_default() -> Self {
        let mut distid = heapless::Vec::new();
        // The default ID is 16 bytes, far below the bound of 128.
        let _ = distid.extend_from_slice(crate::SM2_DEFAULT_ID);
        Mechanism::Sm2Sm3 { distid }
    }
}

/// One request. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Request {
    /// Liveness check; answered with [`crate::Response::Pong`].
    Ping,
    /// The card's state and counters.
    GetStatus,
    /// Generate a key pair inside the card and store it under `label`.
    GenerateKey { label: Label, alg: KeyAlg },
    /// The public key of `label` as DER SubjectPublicKeyInfo.
    ExportPublicKey { label: Label },
    /// Sign `message` with the private key of `label`.
    Sign { label: Label, mechanism: Mechanism, message: Vec<u8> },
    /// Verify `signature` over `message` with the public key of `label`.
    Verify { label: Label, mechanism: Mechanism, message: Vec<u8>, signature: Vec<u8> },
    /// Delete the key `label`.
    DeleteKey { label: Label },
    /// List the labels visible to the caller.
    ListKeys,
    /// Read up to `max` audit records starting at `from_seq` (auditors and local tools only).
    ReadAudit { from_seq: u64, max: u16 },
}

//! Key algorithms, signing mechanisms, key references and multi-part operations named by requests.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::Label;
#[cfg(doc)]
use super::Request;
use crate::mech::{CipherMech, HashAlg, MacMech};

/// Key algorithms the card can generate. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyAlg {
    /// SM2 key pair on the GB/T 32918 curve.
    Sm2,
    /// RSA with a 2048-bit modulus, e = 65537.
    Rsa2048,
    Rsa3072,
    Rsa4096,
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// A 128-bit SM4 key (KEK, data key).
    Sm4,
    /// A 256-bit HMAC-SM3 key.
    HmacSm3,
}

impl KeyAlg {
    /// `true` for key pairs (which have a public key to export).
    pub fn is_asymmetric(self) -> bool {
        matches!(self, KeyAlg::Sm2 | KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 | KeyAlg::EcdsaP256)
    }
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
    /// SM2 signature over a precomputed 32-byte digest e = SM3(Z ‖ M).
    Sm2Digest,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    RsaPssSha256,
    /// ECDSA P-256 with SHA-256 over the message; DER signature.
    EcdsaP256Sha256,
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

/// A key a symmetric operation uses: stored under a label, or a session key handle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyRef {
    Label(Label),
    Session(u32),
}

/// Where a new session key goes, wrapped. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WrapWith {
    /// Under a stored key (public-key encryption or SM4) that has the WRAP capability.
    Key { label: Label, mechanism: CipherMech },
    /// Under an external public key (DER SubjectPublicKeyInfo), e.g. a client's certificate.
    External {
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
        mechanism: CipherMech,
    },
}

/// How the private key of a pair made by [`Request::GenerateKeyPair`] leaves the card.
/// Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyPairProtection {
    /// Wrapped under the stored SM4 key `kek`, which the caller may use with the WRAP
    /// capability: SM4-GCM over the PKCS#8 DER private key, the SPKI as associated data
    /// (layout in `docs/protocol.md`, §Generated key pairs).
    Wrapped { kek: Label },
    /// In the clear (PKCS#8 DER). Refused with `AccessDenied` unless the card's key-export
    /// policy allows it ([`Request::KeyExportPolicy`]; off by default).
    Plaintext,
}

/// A multi-part operation started with [`Request::OpInit`]. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MultiOp {
    Hash {
        alg: HashAlg,
    },
    /// SM3 prefixed with Z computed from the public key (DER SPKI) and ID (SDF_HashInit with
    /// a public key): the result is the e an SM2 signature over the data signs.
    HashSm2 {
        #[serde(with = "serde_bytes")]
        spki_der: Vec<u8>,
        distid: heapless::Vec<u8, 128>,
    },
    Encrypt {
        key: KeyRef,
        mechanism: CipherMech,
    },
    Decrypt {
        key: KeyRef,
        mechanism: CipherMech,
    },
    Mac {
        key: KeyRef,
        mechanism: MacMech,
    },
}

//! Mechanisms and key attributes: which algorithm, mode and parameters a request uses.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Digest algorithms. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HashAlg {
    /// SM3 (GB/T 32905).
    Sm3,
    /// SHA-256 (FIPS 180-4).
    Sha256,
}

/// How an SM2 ciphertext is laid out. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Sm2Layout {
    /// 04 ‖ x1 ‖ y1 ‖ C3 ‖ C2 (GB/T 32918.4-2016).
    #[default]
    C1C3C2,
    /// 04 ‖ x1 ‖ y1 ‖ C2 ‖ C3 (the 2010 order).
    C1C2C3,
    /// GM/T 0009 DER `SM2Cipher` (what OpenSSL reads and writes).
    Der,
}

/// SM4 confidentiality modes (16-byte IV; for CTR the initial counter block). Append-only.
///
/// The first five carry the caller's IV (GM/T 0018 SDF and PKCS#11 need them): encrypting
/// with one, or in ECB, needs [`Capabilities::CALLER_IV`]. The `…CardIv` modes leave the IV
/// to the card: encryption draws a fresh one from the card's DRBG and answers
/// `iv (16) ‖ ciphertext`; decryption reads the IV from the front of the data, so what
/// encryption answered decrypts as it is. Which capability each mode needs in which
/// direction is in `docs/protocol.md`, §Capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Sm4Mode {
    Ecb,
    Cbc { iv: [u8; 16] },
    Cfb { iv: [u8; 16] },
    Ofb { iv: [u8; 16] },
    Ctr { iv: [u8; 16] },
    CbcCardIv,
    CfbCardIv,
    OfbCardIv,
    CtrCardIv,
}

impl Sm4Mode {
    /// The caller's IV, if the mode carries one.
    pub fn caller_iv(&self) -> Option<[u8; 16]> {
        match *self {
            Sm4Mode::Cbc { iv } | Sm4Mode::Cfb { iv } | Sm4Mode::Ofb { iv } | Sm4Mode::Ctr { iv } => Some(iv),
            _ => None,
        }
    }
}

/// Encryption / decryption mechanisms. Append-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CipherMech {
    /// SM2 public-key encryption (GB/T 32918.4).
    Sm2 { layout: Sm2Layout },
    /// RSAES-PKCS1-v1_5.
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label.
    RsaOaepSha256,
    /// Raw RSA: `m^e mod n` (encrypt) / `c^d mod n` with blinding (decrypt), modulus-sized
    /// input, as GM/T 0018 SDF needs.
    RsaRaw,
    /// SM4 in a confidentiality mode; `pkcs7` pads (ECB, CBC only).
    Sm4 { mode: Sm4Mode, pkcs7: bool },
    /// SM4-GCM with the caller's 12-byte nonce and a 16-byte tag appended to the ciphertext
    /// (encrypting needs [`Capabilities::CALLER_IV`]).
    Sm4Gcm {
        nonce: [u8; 12],
        #[serde(with = "serde_bytes")]
        aad: Vec<u8>,
    },
    /// SM4-GCM with a nonce the card draws: encryption answers `nonce (12) ‖ ciphertext ‖
    /// tag (16)`; decryption takes the same bytes. The form of every wrapped key the card
    /// hands out (`Response::KeyPair`).
    Sm4GcmCardNonce {
        #[serde(with = "serde_bytes")]
        aad: Vec<u8>,
    },
}

/// MAC mechanisms. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MacMech {
    /// HMAC-SM3 (32-byte tag).
    HmacSm3,
    /// CMAC with SM4 (16-byte tag).
    Sm4Cmac,
    /// CBC-MAC with SM4 (SDF_CalculateMAC); input in whole blocks. `iv` must be zero (the
    /// standard form; `InvalidArgument` otherwise): a caller with another IV XORs it into
    /// the first block, which gives the same MAC.
    Sm4CbcMac { iv: [u8; 16] },
}

/// What a stored key may be used for, checked by the card on every use. A bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities(pub u32);

impl Capabilities {
    pub const SIGN: Self = Self(1 << 0);
    pub const VERIFY: Self = Self(1 << 1);
    pub const ENCRYPT: Self = Self(1 << 2);
    pub const DECRYPT: Self = Self(1 << 3);
    /// Wrap other keys (envelopes, key export under wrap).
    pub const WRAP: Self = Self(1 << 4);
    /// Unwrap keys into the card (envelopes, imports).
    pub const UNWRAP: Self = Self(1 << 5);
    /// Key agreement (SM2 key exchange).
    pub const DERIVE: Self = Self(1 << 6);
    /// Compute or verify MACs.
    pub const MAC: Self = Self(1 << 7);
    /// The key itself may leave the card, wrapped under another key.
    pub const EXPORT_WRAPPED: Self = Self(1 << 8);
    /// Raw RSA with the private key (`CipherMech::RsaRaw` decryption or unwrapping): `c^d mod
    /// n` on any input is a signing oracle too. Never in a key's natural set.
    pub const RAW_RSA: Self = Self(1 << 9);
    /// SM4 with the caller's IVs and nonces and in the modes that compute the block cipher on
    /// blocks the caller chooses (ECB; CFB, OFB and CTR decryption; multi-part CBC
    /// encryption), as SDF and PKCS#11 need: whoever holds it can compute the raw cipher under
    /// the key. Never in a key's natural set; the key's owner grants it at generation.
    pub const CALLER_IV: Self = Self(1 << 10);
    /// Every capability.
    pub const ALL: Self = Self(0x7ff);
    /// "Whatever suits the algorithm" when generating a key.
    pub const DEFAULT: Self = Self(0);

    /// Each capability with the name the CLI, the panel and the docs give it.
    pub const NAMES: [(Self, &'static str); 11] = [
        (Self::SIGN, "sign"),
        (Self::VERIFY, "verify"),
        (Self::ENCRYPT, "encrypt"),
        (Self::DECRYPT, "decrypt"),
        (Self::WRAP, "wrap"),
        (Self::UNWRAP, "unwrap"),
        (Self::DERIVE, "derive"),
        (Self::MAC, "mac"),
        (Self::EXPORT_WRAPPED, "export-wrapped"),
        (Self::RAW_RSA, "raw-rsa"),
        (Self::CALLER_IV, "caller-iv"),
    ];

    /// A comma-separated list of [`NAMES`](Self::NAMES) (`sign,verify`; blanks around names
    /// ignored) to a set; the first unknown name is the error.
    pub fn parse_list(s: &str) -> Result<Self, &str> {
        let mut caps = Self(0);
        for word in s.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match Self::NAMES.iter().find(|(_, name)| *name == word) {
                Some((c, _)) => caps = caps | *c,
                None => return Err(word),
            }
        }
        Ok(caps)
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl core::ops::BitOr for Capabilities {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::Capabilities;

    #[test]
    fn capability_lists_parse_by_name_and_refuse_unknown_names() {
        assert_eq!(Capabilities::parse_list(" sign, verify ,"), Ok(Capabilities::SIGN | Capabilities::VERIFY));
        assert_eq!(Capabilities::parse_list(""), Ok(Capabilities(0)));
        assert_eq!(Capabilities::parse_list("sign,fly"), Err("fly"));
        let every = Capabilities::NAMES.iter().map(|(_, n)| *n).collect::<alloc::vec::Vec<_>>().join(",");
        assert_eq!(Capabilities::parse_list(&every), Ok(Capabilities::ALL));
    }
}

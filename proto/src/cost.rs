//! The card's cost table: what each request costs in rate-limit tokens, published with the
//! wire types so the daemon's per-application rate limit (`gmhsmd`'s token buckets) charges
//! what the card spends. A token is about a millisecond of the card's time, at least one for
//! anything the card computes; the table is in `docs/protocol.md` ("Request costs").

use crate::mech::CipherMech;
use crate::request::{KeyAlg, Mechanism, Request};

/// Bytes of data that cost one more token (hashing, SM4, MAC at well over 64 MiB/s).
const BYTES_PER_TOKEN: usize = 64 * 1024;
/// One RSA private-key operation (RSA-2048 about 1 ms, RSA-4096 about 5 ms on the card).
const RSA_PRIVATE: u32 = 4;

/// Generating a key of `alg`: RSA's prime search dominates everything else the card does.
pub const fn keygen_cost(alg: KeyAlg) -> u32 {
    match alg {
        KeyAlg::Rsa2048 => 250,
        KeyAlg::Rsa3072 => 700,
        KeyAlg::Rsa4096 => 2000,
        _ => 1,
    }
}

fn data(len: usize) -> u32 {
    u32::try_from(len / BYTES_PER_TOKEN).unwrap_or(u32::MAX).saturating_add(1)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX).max(1)
}

fn sign(mechanism: &Mechanism) -> u32 {
    match mechanism {
        Mechanism::RsaPkcs1v15Sha256 | Mechanism::RsaPssSha256 => RSA_PRIVATE,
        _ => 1,
    }
}

/// A decryption: an RSA private operation, an SM2 scalar multiplication, or symmetric work
/// in proportion to the data.
fn decrypt(mechanism: &CipherMech, len: usize) -> u32 {
    match mechanism {
        CipherMech::RsaPkcs1v15 | CipherMech::RsaOaepSha256 | CipherMech::RsaRaw => RSA_PRIVATE,
        CipherMech::Sm2 { .. } => 2,
        _ => data(len),
    }
}

impl Request {
    /// Rate-limit tokens this request costs. `Ping`, `GetStatus` and `CloseSession` are
    /// free; an SM2 or ECDSA signature costs 1, a batch 1 per message; an RSA-4096 key 2000.
    pub fn cost(&self) -> u32 {
        match self {
            Request::Ping | Request::GetStatus | Request::CloseSession => 0,
            Request::GenerateKey { alg, .. } | Request::GenerateKeyPair { alg, .. } => keygen_cost(*alg),
            Request::Sign { mechanism, .. } => sign(mechanism),
            Request::SignBatch { messages, mechanism, .. } => count(messages.len()).saturating_mul(sign(mechanism)),
            Request::Verify { mechanism: Mechanism::Sm2Sm3 { .. } | Mechanism::Sm2Digest, .. } => 2,
            Request::Decrypt { mechanism, data: d, .. } => decrypt(mechanism, d.len()),
            Request::DecryptBatch { ciphertexts, mechanism, .. } => {
                count(ciphertexts.len()).saturating_mul(decrypt(mechanism, 0))
            }
            Request::Encrypt { mechanism: CipherMech::Sm2 { .. }, .. } => 2,
            Request::Encrypt { data: d, .. }
            | Request::Hash { data: d, .. }
            | Request::Mac { data: d, .. }
            | Request::VerifyMac { data: d, .. }
            | Request::OpUpdate { data: d, .. }
            | Request::OpFinal { data: d, .. } => data(d.len()),
            Request::GenerateRandom { len } => data(*len as usize),
            Request::SelfTest => 50,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::KeyPairProtection;
    use crate::{Capabilities, Label};

    fn keygen(alg: KeyAlg) -> Request {
        Request::GenerateKey { label: Label::try_from("k").unwrap(), alg, caps: Capabilities::DEFAULT, domains: 0 }
    }

    /// Guards finding 7: every request cost one token, so an RSA-4096 key generation (seconds
    /// of the card) was charged like a `Ping`.
    #[test]
    fn expensive_requests_cost_more_than_cheap_ones() {
        assert_eq!(Request::Ping.cost(), 0);
        let sm2 = Request::Sign {
            label: Label::try_from("k").unwrap(),
            mechanism: Mechanism::Sm2Digest,
            message: [0; 32].into(),
        };
        assert_eq!(sm2.cost(), 1);
        assert!(keygen(KeyAlg::Rsa4096).cost() > keygen(KeyAlg::Rsa2048).cost());
        assert!(keygen(KeyAlg::Rsa2048).cost() > 100 * sm2.cost());
        assert_eq!(keygen(KeyAlg::Sm2).cost(), 1);
        let pair = Request::GenerateKeyPair { alg: KeyAlg::Rsa4096, protection: KeyPairProtection::Plaintext };
        assert_eq!(pair.cost(), keygen(KeyAlg::Rsa4096).cost());
        let big = Request::Hash { alg: crate::HashAlg::Sm3, data: alloc::vec![0; 1 << 20] };
        assert_eq!(big.cost(), 17, "1 MiB of hashing: one token and one per 64 KiB");
    }
}

//! Key wrapping under the device master key: SM4-GCM with the key's attributes as associated
//! data, so a stored key cannot be moved to another label, owner or algorithm.

use aes_gcm::AesGcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use alloc::vec::Vec;
use gmhsm_sm4::Sm4;
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

type Sm4Gcm = AesGcm<Sm4, aes_gcm::aead::consts::U12>;

/// Bytes of nonce in front of every wrapped blob.
pub const NONCE_LEN: usize = 12;

/// Why a blob did not unwrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WrapError {
    /// The blob is malformed, was altered, or belongs to other attributes or another DMK.
    Invalid,
}

/// The device master key's wrapping role.
pub struct Wrapper {
    cipher: Sm4Gcm,
}

impl Wrapper {
    /// Derive the SM4 wrapping key from the 32-byte device master key.
    pub fn new(dmk: &[u8; 32]) -> Self {
        let k = Zeroizing::new(Sm3::new().chain_update(dmk).chain_update(b"gmhsm/v1/key-wrap").finalize());
        // A 16-byte slice always has the SM4 key length.
        let cipher = match Sm4Gcm::new_from_slice(&k[..16]) {
            Ok(c) => c,
            Err(_) => unreachable!("SM4 keys are 16 bytes"),
        };
        Self { cipher }
    }

    /// Encrypt `plaintext` bound to `aad`; `nonce` must never repeat under one DMK (the caller
    /// draws it from the DRBG).
    pub fn wrap(&self, nonce: [u8; NONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let n = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::from(nonce);
        let ct = match self.cipher.encrypt(&n, Payload { msg: plaintext, aad }) {
            Ok(ct) => ct,
            // GCM encryption fails only for inputs beyond 2^36 bytes.
            Err(_) => unreachable!("key material is small"),
        };
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn unwrap(&self, aad: &[u8], blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
        if blob.len() < NONCE_LEN + 16 {
            return Err(WrapError::Invalid);
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        let n = aes_gcm::Nonce::<aes_gcm::aead::consts::U12>::from(n);
        self.cipher.decrypt(&n, Payload { msg: ct, aad }).map(Zeroizing::new).map_err(|_| WrapError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_attributes_and_key() {
        let w = Wrapper::new(&[1; 32]);
        let blob = w.wrap([9; 12], b"label=a", b"secret");
        assert_eq!(&w.unwrap(b"label=a", &blob).unwrap()[..], b"secret");
        assert_eq!(w.unwrap(b"label=b", &blob), Err(WrapError::Invalid));
        assert_eq!(Wrapper::new(&[2; 32]).unwrap(b"label=a", &blob), Err(WrapError::Invalid));
        let mut bad = blob.clone();
        bad[20] ^= 1;
        assert_eq!(w.unwrap(b"label=a", &bad), Err(WrapError::Invalid));
        assert_eq!(w.unwrap(b"label=a", &blob[..10]), Err(WrapError::Invalid));
    }
}

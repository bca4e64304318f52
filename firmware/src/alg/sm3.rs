//! SM3 (GB/T 32905) hashing and HMAC-SM3, one-shot and multi-part, and the SM3 KDF.
//!
//! Hashing and HMAC are the `sm3` and `hmac` crates; the KDF of GB/T 32918.4 §5.4.3
//! (counter-mode SM3) is written here, since no crate exports it.

use ::sm3::{Digest, Sm3};
use hmac::{KeyInit, Mac};
use zeroize::Zeroizing;

use super::AlgError;

/// Length of an SM3 digest and of an HMAC-SM3 tag, in bytes.
pub const DIGEST_LEN: usize = 32;

/// SM3 of `data`.
pub fn sm3(data: &[u8]) -> [u8; DIGEST_LEN] {
    Sm3::digest(data).into()
}

/// A multi-part SM3 computation that a session can keep between requests.
#[derive(Clone, Default)]
pub struct Sm3Ctx(Sm3);

impl Sm3Ctx {
    pub fn new() -> Self {
        Self(Sm3::new())
    }

    pub fn update(&mut self, data: &[u8]) {
        Digest::update(&mut self.0, data);
    }

    pub fn finalize(self) -> [u8; DIGEST_LEN] {
        self.0.finalize().into()
    }
}

/// A multi-part HMAC-SM3 computation (RFC 2104 over SM3). The key schedule is zeroized on drop.
#[derive(Clone)]
pub struct HmacSm3Ctx(hmac::Hmac<Sm3>);

impl HmacSm3Ctx {
    /// Any key length is accepted (keys longer than 64 bytes are hashed, per RFC 2104).
    pub fn new(key: &[u8]) -> Result<Self, AlgError> {
        <hmac::Hmac<Sm3> as KeyInit>::new_from_slice(key).map(Self).map_err(|_| AlgError::InvalidKey)
    }

    pub fn update(&mut self, data: &[u8]) {
        Mac::update(&mut self.0, data);
    }

    pub fn finalize(self) -> [u8; DIGEST_LEN] {
        self.0.finalize().into_bytes().into()
    }

    /// Compare against `tag` in constant time; truncated tags (at least 16 bytes) are allowed.
    pub fn verify(self, tag: &[u8]) -> Result<(), AlgError> {
        if tag.len() < 16 || tag.len() > DIGEST_LEN {
            return Err(AlgError::VerifyFailed);
        }
        self.0.verify_truncated_left(tag).map_err(|_| AlgError::VerifyFailed)
    }
}

/// HMAC-SM3 of `data` under `key`.
pub fn hmac_sm3(key: &[u8], data: &[u8]) -> Result<[u8; DIGEST_LEN], AlgError> {
    let mut ctx = HmacSm3Ctx::new(key)?;
    ctx.update(data);
    Ok(ctx.finalize())
}

/// The SM3 key derivation function of GB/T 32918.4 §5.4.3: `out` is filled with
/// SM3(z ‖ 1) ‖ SM3(z ‖ 2) ‖ … (32-bit big-endian counter), truncated.
pub fn kdf(z: &[&[u8]], out: &mut [u8]) -> Result<(), AlgError> {
    // The counter is 32 bits and may not wrap: klen ≤ (2^32 − 1) · 256 bits.
    if out.len().div_ceil(DIGEST_LEN) as u64 > u32::MAX as u64 {
        return Err(AlgError::InvalidInput);
    }
    for (i, chunk) in out.chunks_mut(DIGEST_LEN).enumerate() {
        let mut h = Sm3::new();
        for part in z {
            Digest::update(&mut h, part);
        }
        Digest::update(&mut h, (i as u32 + 1).to_be_bytes());
        let block = Zeroizing::new(<[u8; DIGEST_LEN]>::from(h.finalize()));
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::h;

    // GB/T 32905-2016 Appendix A, example 1: "abc".
    #[test]
    fn sm3_abc() {
        assert_eq!(sm3(b"abc").to_vec(), h("66c7f0f4 62eeedd9 d1f2d46b dc10e4e2 4167c487 5cf2f7a2 297da02b 8f4ba8e0"));
    }

    // GB/T 32905-2016 Appendix A, example 2: "abcd" × 16 (512 bits), also fed in pieces.
    #[test]
    fn sm3_abcd_x16_multipart() {
        let want = h("debe9ff9 2275b8a1 38604889 c18e5a4d 6fdb70e5 387e5765 293dcba3 9c0c5732");
        let msg = b"abcd".repeat(16);
        assert_eq!(sm3(&msg).to_vec(), want);
        let mut ctx = Sm3Ctx::new();
        for piece in msg.chunks(7) {
            ctx.update(piece);
        }
        assert_eq!(ctx.finalize().to_vec(), want);
    }

    // Checked with `openssl mac -digest SM3 -macopt hexkey:000102…1f HMAC` over
    // "The quick brown fox jumps over the lazy dog" (OpenSSL 3.0); the interop test re-runs it.
    #[test]
    fn hmac_sm3_vector_and_verify() {
        let key: alloc::vec::Vec<u8> = (0u8..32).collect();
        let msg = b"The quick brown fox jumps over the lazy dog";
        let tag = hmac_sm3(&key, msg).unwrap();
        assert_eq!(tag.to_vec(), h(HMAC_VECTOR));
        let mut ctx = HmacSm3Ctx::new(&key).unwrap();
        ctx.update(&msg[..10]);
        ctx.update(&msg[10..]);
        assert!(ctx.clone().verify(&tag).is_ok());
        assert!(ctx.clone().verify(&tag[..16]).is_ok());
        let mut bad = tag;
        bad[31] ^= 1;
        assert_eq!(ctx.verify(&bad), Err(AlgError::VerifyFailed));
    }

    const HMAC_VECTOR: &str = "be1c9ca286f325f95cf8d9020e4242747d60faa7069d1e9758a28597c712eb46";

    #[test]
    fn kdf_prefix_property() {
        let mut a = [0u8; 70];
        let mut b = [0u8; 16];
        kdf(&[b"shared", b"secret"], &mut a).unwrap();
        kdf(&[b"sharedsecret"], &mut b).unwrap();
        assert_eq!(&a[..16], &b[..]);
        let mut first = sm3(&[b"sharedsecret".as_slice(), &1u32.to_be_bytes()].concat());
        assert_eq!(&a[..32], &first[..]);
        first = sm3(&[b"sharedsecret".as_slice(), &3u32.to_be_bytes()].concat());
        assert_eq!(&a[64..], &first[..6]);
    }
}

//! GM/T 0016 `ENVELOPEDKEYBLOB`: an SM2 key pair delivered by a key-management (escrow)
//! centre, its private key encrypted under a fresh SM4 key that is itself SM2-encrypted to
//! the receiving device's encryption key — the encryption half of the dual-certificate flow.
//!
//! Layout (all `ULONG`s little endian, coordinates 64-byte fields with the 32-byte value in
//! the last 32 bytes):
//!
//! ```text
//! Version u32 (1) | ulSymmAlgID u32 (SGD_SM4_ECB = 0x401) | ulBits u32 (256)
//! cbEncryptedPriKey [64]  -- SM4-ECB(private key d), ciphertext in the last 32 bytes
//! PubKey: BitLen u32 (256) | X [64] | Y [64]
//! ECCCipherBlob: X [64] | Y [64] | HASH [32] | CipherLen u32 | Cipher [CipherLen]
//! ```
//!
//! Hand-written: no crate parses this structure. Every length is checked before use; the
//! unwrapped private key must match `PubKey`, or nothing is imported.

use crate::error::Error;
use alloc::vec::Vec;

/// SGD_SM4_ECB.
pub const SGD_SM4_ECB: u32 = 0x0000_0401;
const FIXED: usize = 12 + 64 + 4 + 128 + 64 + 64 + 32 + 4;

/// A parsed blob.
pub struct EnvelopedKey<'a> {
    /// Encrypted private key (32 bytes, SM4-ECB).
    pub encrypted_private: &'a [u8],
    /// The key pair's public key, SEC1 uncompressed (65 bytes).
    pub public_sec1: [u8; 65],
    /// The SM4 key's SM2 ciphertext in C1C3C2 order.
    pub wrapped_key_c1c3c2: Vec<u8>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// The 32-byte value of a 64-byte coordinate field; the leading 32 bytes must be zero.
fn coord(field: &[u8]) -> Result<&[u8], Error> {
    if field[..32].iter().any(|&b| b != 0) {
        return Err(Error::Invalid("envelope coordinate"));
    }
    Ok(&field[32..])
}

pub fn parse(blob: &[u8]) -> Result<EnvelopedKey<'_>, Error> {
    let bad = Error::Invalid("envelope");
    if blob.len() < FIXED {
        return Err(bad);
    }
    if u32_at(blob, 0) != 1 || u32_at(blob, 4) != SGD_SM4_ECB || u32_at(blob, 8) != 256 {
        return Err(bad);
    }
    let encrypted_private = coord(&blob[12..76])?;
    let mut off = 76;
    if u32_at(blob, off) != 256 {
        return Err(bad);
    }
    off += 4;
    let mut public_sec1 = [4u8; 65];
    public_sec1[1..33].copy_from_slice(coord(&blob[off..off + 64])?);
    public_sec1[33..].copy_from_slice(coord(&blob[off + 64..off + 128])?);
    off += 128;
    let (cx, cy) = (coord(&blob[off..off + 64])?, coord(&blob[off + 64..off + 128])?);
    off += 128;
    let hash = &blob[off..off + 32];
    off += 32;
    let len = u32_at(blob, off) as usize;
    off += 4;
    if len == 0 || blob.len() != off + len {
        return Err(bad);
    }
    let mut wrapped = Vec::with_capacity(97 + len);
    wrapped.push(4);
    wrapped.extend_from_slice(cx);
    wrapped.extend_from_slice(cy);
    wrapped.extend_from_slice(hash);
    wrapped.extend_from_slice(&blob[off..]);
    Ok(EnvelopedKey { encrypted_private, public_sec1, wrapped_key_c1c3c2: wrapped })
}

/// Build a blob (for tests and for tools that play the escrow centre).
pub fn build(encrypted_private: &[u8; 32], public_sec1: &[u8; 65], wrapped_c1c3c2: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let field = |out: &mut Vec<u8>, v: &[u8]| {
        out.extend_from_slice(&[0u8; 32]);
        out.extend_from_slice(v);
    };
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&SGD_SM4_ECB.to_le_bytes());
    out.extend_from_slice(&256u32.to_le_bytes());
    field(&mut out, encrypted_private);
    out.extend_from_slice(&256u32.to_le_bytes());
    field(&mut out, &public_sec1[1..33]);
    field(&mut out, &public_sec1[33..]);
    field(&mut out, &wrapped_c1c3c2[1..33]);
    field(&mut out, &wrapped_c1c3c2[33..65]);
    out.extend_from_slice(&wrapped_c1c3c2[65..97]);
    let c = &wrapped_c1c3c2[97..];
    out.extend_from_slice(&(c.len() as u32).to_le_bytes());
    out.extend_from_slice(c);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_input() {
        let wrapped: Vec<u8> = core::iter::once(4u8).chain((1..=96).map(|i| i as u8)).chain([7u8; 16]).collect();
        let mut public = [9u8; 65];
        public[0] = 4;
        let blob = build(&[5; 32], &public, &wrapped);
        let p = parse(&blob).unwrap();
        assert_eq!(p.encrypted_private, &[5; 32]);
        assert_eq!(p.public_sec1, public);
        assert_eq!(p.wrapped_key_c1c3c2, wrapped);
        // Every truncation and a wrong length field are refused, never a panic.
        for n in 0..blob.len() {
            assert!(parse(&blob[..n]).is_err());
        }
        let mut long = blob.clone();
        long.push(0);
        assert!(parse(&long).is_err());
        let mut bad_alg = blob.clone();
        bad_alg[4] = 2;
        assert!(parse(&bad_alg).is_err());
        let mut high = blob;
        high[12] = 1;
        assert!(parse(&high).is_err(), "non-zero padding of a coordinate field");
    }
}

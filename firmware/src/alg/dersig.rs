//! DER `SEQUENCE { r INTEGER, s INTEGER }` for a signature whose r and s are 32-byte
//! big-endian integers (SM2, ECDSA P-256), written directly into one allocation.
//!
//! Why by hand: the `sm2` and `p256` crates' `to_der` builds the encoding and then parses it
//! back to check it, which cost the card about as much as the signature's scalar arithmetic
//! (profiled under `SignBatch` load: ~8 % of the link thread). The encoding of two
//! non-negative integers below 2^256 is short and fixed: each INTEGER is its big-endian bytes
//! without leading zeros (one byte left for zero), with a 0x00 in front when the top bit is set;
//! every length is below 128, so one length byte each. Tested against the crates' encoders.
//! r and s are a signature's public output: the data-dependent lengths leak nothing.

use alloc::vec::Vec;

/// Most bytes of the encoding: 2 + 2 × (2 + 33).
pub const MAX_LEN: usize = 72;

/// DER of (r, s).
pub fn encode(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    let (r, s) = (minimal(r), minimal(s));
    let body = integer_len(r) + integer_len(s);
    let mut out = Vec::with_capacity(MAX_LEN);
    out.push(0x30);
    out.push(body as u8);
    push_integer(&mut out, r);
    push_integer(&mut out, s);
    out
}

/// The bytes without leading zeros; one zero byte for zero.
fn minimal(x: &[u8; 32]) -> &[u8] {
    let first = x.iter().position(|&b| b != 0).unwrap_or(31);
    &x[first..]
}

fn integer_len(v: &[u8]) -> usize {
    2 + v.len() + usize::from(v[0] & 0x80 != 0)
}

fn push_integer(out: &mut Vec<u8>, v: &[u8]) {
    let pad = v[0] & 0x80 != 0;
    out.push(0x02);
    out.push((v.len() + usize::from(pad)) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> Vec<[u8; 32]> {
        let mut v = Vec::new();
        // Leading zero bytes 0–31 (every encoded length from 33 down to 1), then a first
        // non-zero byte with and without its top bit.
        for zeros in 0usize..32 {
            for lead in [0x01u8, 0x7f, 0x80, 0xff] {
                let mut x = [0x5au8; 32];
                x[..zeros].fill(0);
                x[zeros] = lead;
                v.push(x);
            }
        }
        let mut one = [0u8; 32];
        one[31] = 1;
        v.push(one);
        let mut top = [0u8; 32];
        top[31] = 0x80;
        v.push(top);
        v
    }

    /// Zero (which no signature has, but the encoder must not mangle): one 0x00 byte.
    #[test]
    fn zero_is_one_byte() {
        assert_eq!(encode(&[0; 32], &[0; 32]), [0x30, 6, 2, 1, 0, 2, 1, 0]);
        let mut one = [0u8; 32];
        one[31] = 0x80;
        assert_eq!(encode(&one, &[0; 32]), [0x30, 7, 2, 2, 0, 0x80, 2, 1, 0]);
    }

    /// `encode` equals `crate_der` (a crate's encoder; `None` for a pair it rejects as out of
    /// range) on every pair of patterns it accepts, and most pairs are compared.
    fn agrees_with(crate_der: impl Fn([u8; 32], [u8; 32]) -> Option<Vec<u8>>) {
        let mut compared = 0;
        for r in patterns() {
            for s in patterns() {
                let Some(theirs) = crate_der(r, s) else { continue };
                let ours = encode(&r, &s);
                assert_eq!(ours, theirs, "r {r:02x?} s {s:02x?}");
                assert!(ours.len() <= MAX_LEN);
                compared += 1;
            }
        }
        assert!(compared > patterns().len() * patterns().len() / 2, "only {compared} pairs compared");
    }

    /// Byte for byte what the `sm2` crate encodes, for lengths 1 to 33 and both top bits.
    #[test]
    fn matches_the_sm2_crate() {
        agrees_with(|r, s| Some(sm2::dsa::Signature::from_scalars(r, s).ok()?.to_der().as_bytes().to_vec()));
    }

    /// And what the `p256` crate encodes.
    #[test]
    fn matches_the_p256_crate() {
        agrees_with(|r, s| Some(p256::ecdsa::Signature::from_scalars(r, s).ok()?.to_der().as_bytes().to_vec()));
    }
}

//! PKCS#1 (RFC 8017) encodings around the private operation, written here because the `rsa`
//! crate keeps its own private (`pub(crate)`): EMSA-PKCS1-v1_5 and EMSA-PSS encoding for
//! signatures, EME-OAEP decoding, and EME-PKCS1-v1_5 decoding with implicit rejection
//! (draft-irtf-cfrg-rsa-guidance-10 §7, the algorithm the crate and OpenSSL 3.2+ use, so a
//! malformed ciphertext decrypts to the same pseudo-random message with all three).
//!
//! The DigestInfo prefix for SHA-256 is the crate's (`Pkcs1v15Sign::new::<Sha256>()`).
//! Decoding is constant time in the decrypted block: every byte is read, validity and lengths
//! are accumulated in `subtle` masks, and only the final verdict (OAEP) or the final length
//! (PKCS#1 v1.5, as the draft allows) is branched on.

use alloc::vec::Vec;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};
use zeroize::Zeroizing;

use crate::alg::AlgError;

/// MGF1 with digest D: out ← out ⊕ MGF1(seed, out.len()).
pub fn mgf1_xor<D: Digest>(out: &mut [u8], seed: &[u8]) {
    for (i, chunk) in out.chunks_mut(<D as Digest>::output_size()).enumerate() {
        let mut h = D::new();
        h.update(seed);
        h.update((i as u32).to_be_bytes());
        let block = h.finalize();
        for (o, b) in chunk.iter_mut().zip(block.iter()) {
            *o ^= b;
        }
    }
}

/// EMSA-PKCS1-v1_5: 00 01 FF…FF 00 ‖ DigestInfo(prefix ‖ digest), k bytes.
pub fn pkcs1v15_sign(prefix: &[u8], digest: &[u8], k: usize) -> Result<Vec<u8>, AlgError> {
    let t_len = prefix.len() + digest.len();
    if k < t_len + 11 {
        return Err(AlgError::InvalidKey);
    }
    let mut em = alloc::vec![0xff; k];
    em[0] = 0;
    em[1] = 1;
    em[k - t_len - 1] = 0;
    em[k - t_len..k - digest.len()].copy_from_slice(prefix);
    em[k - digest.len()..].copy_from_slice(digest);
    Ok(em)
}

/// EMSA-PSS (RFC 8017 §9.1.1) of the digest `m_hash` with `salt`, for a modulus of `mod_bits`
/// bits, right-aligned in `k` bytes (emBits = modBits − 1).
pub fn pss<D: Digest>(m_hash: &[u8], salt: &[u8], mod_bits: usize, k: usize) -> Result<Vec<u8>, AlgError> {
    let h_len = <D as Digest>::output_size();
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    if m_hash.len() != h_len || em_len < h_len + salt.len() + 2 || em_len > k {
        return Err(AlgError::InvalidKey);
    }
    let mut out = alloc::vec![0u8; k];
    let em = &mut out[k - em_len..];
    let h = D::new().chain_update([0u8; 8]).chain_update(m_hash).chain_update(salt).finalize();
    let (db, rest) = em.split_at_mut(em_len - h_len - 1);
    let ps = db.len() - salt.len() - 1;
    db[ps] = 1;
    db[ps + 1..].copy_from_slice(salt);
    mgf1_xor::<D>(db, &h);
    db[0] &= 0xff >> (8 * em_len - em_bits);
    rest[..h_len].copy_from_slice(&h);
    rest[h_len] = 0xbc;
    Ok(out)
}

/// EME-OAEP decoding with SHA-256 and MGF1-SHA-256, empty label (RFC 8017 §7.1.2 step 3).
/// `em` is the k-byte decrypted block; it is unmasked in place.
pub fn oaep_sha256(em: &mut [u8]) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    const H: usize = 32;
    if em.len() < 2 * H + 2 {
        return Err(AlgError::DecryptFailed);
    }
    let l_hash = Sha256::digest(b"");
    let (y, payload) = em.split_at_mut(1);
    let (seed, db) = payload.split_at_mut(H);
    mgf1_xor::<Sha256>(seed, db);
    mgf1_xor::<Sha256>(db, seed);
    let mut valid = y[0].ct_eq(&0) & db[..H].ct_eq(&l_hash[..]);
    // DB = lHash' ‖ 00…00 ‖ 01 ‖ M: find the first 01 without branching on where it is.
    let mut looking = Choice::from(1);
    let mut index = 0u32;
    let mut bad = Choice::from(0);
    for (i, b) in db[H..].iter().enumerate() {
        let is_one = b.ct_eq(&1);
        let is_zero = b.ct_eq(&0);
        index.conditional_assign(&(i as u32), looking & is_one);
        bad |= looking & !is_one & !is_zero;
        looking &= !is_one;
    }
    valid &= !bad & !looking;
    if !bool::from(valid) {
        return Err(AlgError::DecryptFailed);
    }
    Ok(Zeroizing::new(db[H + index as usize + 1..].to_vec()))
}

/// EME-PKCS1-v1_5 decoding with implicit rejection (draft-irtf-cfrg-rsa-guidance-10 §7.2
/// steps 3–5): the message if `em` is well formed, else a pseudo-random message derived from
/// the key (`dh` = SHA-256(I2OSP(d, k)), cached per key) and the ciphertext, with a
/// pseudo-random length. `em` is the k-byte decrypted block of `ciphertext`.
pub fn pkcs1v15_implicit(em: &mut [u8], dh: &[u8; 32], ciphertext: &[u8]) -> Zeroizing<Vec<u8>> {
    let k = em.len();
    debug_assert!((11..8192).contains(&k) && ciphertext.len() == k);
    // Step 3: KDK = HMAC-SHA256(DH, C); CL, AM from the IRPRF; AL.
    let kdk = Zeroizing::new(hmac_sha256(&dh[..], &[ciphertext]));
    let cl = irprf(&kdk, b"length", 256);
    let am = irprf(&kdk, b"message", k);
    let al = select_al(&cl, (k - 11) as u16);
    // Step 4: check and L.
    let mut check = !em[0].ct_eq(&0) | !em[1].ct_eq(&2);
    let mut looking = Choice::from(1);
    let mut separator = 0u32;
    for (i, b) in em.iter().enumerate().skip(2) {
        let is_zero = b.ct_eq(&0);
        separator.conditional_assign(&(i as u32), looking & is_zero);
        looking &= !is_zero;
    }
    check |= looking | !separator.ct_gt(&9);
    let l = u32::conditional_select(&(k as u32).wrapping_sub(separator + 1), &0, looking);
    // Step 5: pick EM or AM whole, then reveal only the final length.
    let len = u32::conditional_select(&l, &u32::from(al), check) as usize;
    for (e, a) in em.iter_mut().zip(am.iter()) {
        e.conditional_assign(a, check);
    }
    Zeroizing::new(em[k - len..].to_vec())
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// IRPRF(KDK, label, length) of the draft's §7.1.
fn irprf(kdk: &[u8; 32], label: &[u8], length: usize) -> Zeroizing<Vec<u8>> {
    let bits = ((length * 8) as u16).to_be_bytes();
    let mut out = Zeroizing::new(alloc::vec![0u8; length]);
    for (i, chunk) in out.chunks_mut(32).enumerate() {
        let block = Zeroizing::new(hmac_sha256(kdk, &[&(i as u16).to_be_bytes(), label, &bits]));
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    out
}

/// AL: the last of the 128 big-endian 16-bit candidates in `cl` (masked to the bit length of
/// `max`) that is at most `max`, or 0; constant time.
fn select_al(cl: &[u8], max: u16) -> u16 {
    let mut mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    cl.chunks_exact(2).fold(0u16, |al, b| {
        let candidate = u16::from_be_bytes([b[0], b[1]]) & mask;
        u16::conditional_select(&al, &candidate, !candidate.ct_gt(&max))
    })
}

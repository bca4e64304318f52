//! RSA 2048 / 3072 / 4096: generation, PKCS#1 v1.5 and PSS signatures, PKCS#1 v1.5 and OAEP
//! encryption, and the raw public / private operations of GM/T 0018
//! (SDF_ExternalPublicKeyOperation_RSA, SDF_InternalPrivateKeyOperation_RSA).
//!
//! All of it is the `rsa` crate (constant-time crypto-bigint arithmetic; the private
//! operation is always blinded with the card's RNG and checked by re-encryption). Written
//! here: only the fixed-width (k-byte) big-endian coding of raw-operation operands.
//!
//! PSS uses salt length = digest length and MGF1 with the same digest; OAEP uses SHA-256 for
//! both, empty label. PKCS#1 v1.5 decryption uses implicit rejection: a malformed ciphertext
//! yields a pseudo-random message rather than an error, so the protocol around it must
//! authenticate what it decrypts (as TLS and CMS do).

use ::rsa::BoxedUint;
use ::rsa::hazmat::{rsa_decrypt_and_check, rsa_encrypt};
use ::rsa::traits::PublicKeyParts;
use ::sm3::Sm3;
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::AlgError;

pub use ::rsa::{PrivateKey, PublicKey};

/// The modulus sizes the card generates and accepts.
pub const SIZES: [usize; 3] = [2048, 3072, 4096];

/// The digest under a PSS signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PssHash {
    Sha256,
    Sm3,
}

/// Generate a key of `bits` (one of [`SIZES`]) with e = 65537.
pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R, bits: usize) -> Result<PrivateKey, AlgError> {
    if !SIZES.contains(&bits) {
        return Err(AlgError::InvalidInput);
    }
    PrivateKey::new(rng, bits).map_err(|_| AlgError::Rng)
}

/// Check that a parsed key has a supported size.
pub fn check_size(key: &PublicKey) -> Result<(), AlgError> {
    if SIZES.contains(&(key.size() * 8)) { Ok(()) } else { Err(AlgError::InvalidKey) }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `msg` (deterministic; the RNG blinds).
pub fn sign_pkcs1v15_sha256<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    key.pkcs1v15_sign_with_rng::<Sha256, R>(rng, msg).map_err(|_| AlgError::Rng)
}

pub fn verify_pkcs1v15_sha256(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), AlgError> {
    key.pkcs1v15_verify::<Sha256>(msg, sig).map_err(|_| AlgError::VerifyFailed)
}

/// RSASSA-PSS over `msg` with `hash`, salt of the digest's length from the RNG.
pub fn sign_pss<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    hash: PssHash,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    match hash {
        PssHash::Sha256 => key.pss_sign_with_rng::<Sha256, R>(rng, msg),
        PssHash::Sm3 => key.pss_sign_with_rng::<Sm3, R>(rng, msg),
    }
    .map_err(|_| AlgError::Rng)
}

pub fn verify_pss(key: &PublicKey, hash: PssHash, msg: &[u8], sig: &[u8]) -> Result<(), AlgError> {
    match hash {
        PssHash::Sha256 => key.pss_verify::<Sha256>(msg, sig),
        PssHash::Sm3 => key.pss_verify::<Sm3>(msg, sig),
    }
    .map_err(|_| AlgError::VerifyFailed)
}

/// RSAES-PKCS1-v1_5 encryption (message at most k − 11 bytes).
pub fn encrypt_pkcs1v15<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PublicKey,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    if msg.len() + 11 > key.size() {
        return Err(AlgError::InvalidInput);
    }
    key.pkcs1v15_encrypt_with_rng(rng, msg).map_err(|_| AlgError::Rng)
}

/// RSAES-PKCS1-v1_5 decryption with implicit rejection (see the module docs).
pub fn decrypt_pkcs1v15<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    key.pkcs1v15_decrypt_with_rng(rng, ct).map(Zeroizing::new).map_err(|_| AlgError::DecryptFailed)
}

/// RSAES-OAEP with SHA-256 (and MGF1-SHA-256), empty label; message at most k − 66 bytes.
pub fn encrypt_oaep_sha256<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PublicKey,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    if msg.len() + 66 > key.size() {
        return Err(AlgError::InvalidInput);
    }
    key.oaep_encrypt_with_rng::<Sha256, R>(rng, msg).map_err(|_| AlgError::Rng)
}

pub fn decrypt_oaep_sha256<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    key.oaep_decrypt_with_rng::<Sha256, R>(rng, ct).map(Zeroizing::new).map_err(|_| AlgError::DecryptFailed)
}

/// Raw public operation m^e mod n. `input` is k bytes big-endian (k = modulus length) and
/// must be below n; the output is k bytes.
pub fn public_op(key: &PublicKey, input: &[u8]) -> Result<Vec<u8>, AlgError> {
    let m = operand(key, input)?;
    let c = rsa_encrypt(key, &m).map_err(|_| AlgError::InvalidInput)?;
    Ok(fixed_width(&c, key.size()).to_vec())
}

/// Raw private operation c^d mod n, blinded with the RNG and verified by re-encryption.
/// `input` is k bytes big-endian and must be below n; the output is k bytes.
pub fn private_op<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &PrivateKey,
    input: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    let c = operand(key.as_public_key(), input)?;
    let m = Zeroizing::new(rsa_decrypt_and_check(key, Some(rng), &c).map_err(|_| AlgError::DecryptFailed)?);
    Ok(fixed_width(&m, key.size()))
}

fn operand(key: &PublicKey, input: &[u8]) -> Result<BoxedUint, AlgError> {
    if input.len() != key.size() {
        return Err(AlgError::InvalidInput);
    }
    let v = BoxedUint::from_be_slice(input, key.n_bits_precision()).map_err(|_| AlgError::InvalidInput)?;
    if v >= *key.n().as_ref() {
        return Err(AlgError::InvalidInput);
    }
    Ok(v)
}

/// The low `k` bytes of `v`'s big-endian encoding (its precision may be a few limbs wider).
fn fixed_width(v: &BoxedUint, k: usize) -> Zeroizing<Vec<u8>> {
    let bytes = Zeroizing::new(v.to_be_bytes());
    let mut out = Zeroizing::new(alloc::vec![0u8; k]);
    let take = bytes.len().min(k);
    out[k - take..].copy_from_slice(&bytes[bytes.len() - take..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::{CounterRng, FailingRng};

    fn key() -> PrivateKey {
        generate(&mut CounterRng::new(b"rsa 2048"), 2048).unwrap()
    }

    #[test]
    fn signatures_round_trip_and_reject_tampering() {
        let mut rng = CounterRng::new(b"rsa sig");
        let k = key();
        let pk = k.to_public_key();
        check_size(&pk).unwrap();
        let sig = sign_pkcs1v15_sha256(&mut rng, &k, b"msg").unwrap();
        assert_eq!(sig.len(), 256);
        // PKCS#1 v1.5 is deterministic: the RNG only blinds.
        assert_eq!(sign_pkcs1v15_sha256(&mut rng, &k, b"msg").unwrap(), sig);
        verify_pkcs1v15_sha256(&pk, b"msg", &sig).unwrap();
        assert_eq!(verify_pkcs1v15_sha256(&pk, b"msh", &sig), Err(AlgError::VerifyFailed));
        for hash in [PssHash::Sha256, PssHash::Sm3] {
            let sig = sign_pss(&mut rng, &k, hash, b"msg").unwrap();
            verify_pss(&pk, hash, b"msg", &sig).unwrap();
            let mut bad = sig.clone();
            bad[10] ^= 1;
            assert_eq!(verify_pss(&pk, hash, b"msg", &bad), Err(AlgError::VerifyFailed));
        }
        let sig = sign_pss(&mut rng, &k, PssHash::Sha256, b"msg").unwrap();
        assert_eq!(verify_pss(&pk, PssHash::Sm3, b"msg", &sig), Err(AlgError::VerifyFailed));
    }

    #[test]
    fn encryption_round_trips() {
        let mut rng = CounterRng::new(b"rsa enc");
        let k = key();
        let pk = k.to_public_key();
        let ct = encrypt_oaep_sha256(&mut rng, &pk, b"secret").unwrap();
        assert_eq!(&decrypt_oaep_sha256(&mut rng, &k, &ct).unwrap()[..], b"secret");
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(decrypt_oaep_sha256(&mut rng, &k, &bad).err(), Some(AlgError::DecryptFailed));
        assert_eq!(encrypt_oaep_sha256(&mut rng, &pk, &[0; 191]).err(), Some(AlgError::InvalidInput));
        let ct = encrypt_pkcs1v15(&mut rng, &pk, b"secret").unwrap();
        assert_eq!(&decrypt_pkcs1v15(&mut rng, &k, &ct).unwrap()[..], b"secret");
        let mut bad = ct.clone();
        bad[5] ^= 1;
        // Implicit rejection: no error, but not the message either.
        assert_ne!(decrypt_pkcs1v15(&mut rng, &k, &bad).map(|m| m.to_vec()).ok(), Some(b"secret".to_vec()));
        assert_eq!(encrypt_pkcs1v15(&mut FailingRng, &pk, b"x").err(), Some(AlgError::Rng));
    }

    #[test]
    fn raw_operations_invert_each_other() {
        let mut rng = CounterRng::new(b"rsa raw");
        let k = key();
        let pk = k.to_public_key();
        let mut m = alloc::vec![0u8; 256];
        m[1..].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        let c = public_op(&pk, &m).unwrap();
        assert_eq!(c.len(), 256);
        assert_eq!(&private_op(&mut rng, &k, &c).unwrap()[..], &m[..]);
        // Small values keep their leading zeros.
        let mut one = alloc::vec![0u8; 256];
        one[255] = 1;
        assert_eq!(public_op(&pk, &one).unwrap(), one);
        // Wrong length, value ≥ n.
        assert_eq!(public_op(&pk, &m[1..]).err(), Some(AlgError::InvalidInput));
        assert_eq!(public_op(&pk, &[0xff; 256]).err(), Some(AlgError::InvalidInput));
        assert_eq!(private_op(&mut rng, &k, &[0xff; 256]).err(), Some(AlgError::InvalidInput));
        // Raw private op of a PKCS#1 v1.5 encoded digest is the PKCS#1 v1.5 signature.
        let sig = sign_pkcs1v15_sha256(&mut rng, &k, b"raw").unwrap();
        let em = public_op(&pk, &sig).unwrap();
        assert_eq!(&private_op(&mut rng, &k, &em).unwrap()[..], &sig[..]);
    }

    #[test]
    fn sizes() {
        assert_eq!(generate(&mut CounterRng::new(b"x"), 1024).err(), Some(AlgError::InvalidInput));
        assert_eq!(generate(&mut FailingRng, 2048).err(), Some(AlgError::Rng));
    }

    // 3072- and 4096-bit generation: slow in a debug build (prime search), so run on demand.
    #[test]
    #[ignore = "slow: RSA-3072/4096 prime generation"]
    fn generates_3072_and_4096() {
        for bits in [3072, 4096] {
            let k = generate(&mut CounterRng::new(b"rsa big"), bits).unwrap();
            assert_eq!(k.size() * 8, bits);
        }
    }
}

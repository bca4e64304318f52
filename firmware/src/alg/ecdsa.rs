//! ECDSA over NIST P-256 with SHA-256 (FIPS 186-5), for clients outside China: sign and
//! verify, signatures as DER (what X.509, TLS and OpenSSL use) or raw r ‖ s.
//!
//! All of it is the `p256` crate (hedged RFC 6979 nonces mixing 32 bytes from the card's
//! RNG); nothing is written by hand. The card signs with its stored keys through
//! [`super::ecdsa_fast`] instead (a pool of precomputed nonces); these functions remain for
//! digests, self-tests and callers without a pool.

use alloc::vec::Vec;
use p256::ecdsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use p256::ecdsa::signature::{RandomizedSigner, Verifier};
use p256::ecdsa::{DerSignature, Signature, VerifyingKey};
use p256::elliptic_curve::Generate;
use rand_core::TryCryptoRng;

use super::AlgError;

pub use p256::ecdsa::SigningKey;
pub use p256::{PublicKey, SecretKey};

pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<SecretKey, AlgError> {
    SecretKey::try_generate_from_rng(rng).map_err(|_| AlgError::Rng)
}

pub fn secret_from_bytes(bytes: &[u8]) -> Result<SecretKey, AlgError> {
    SecretKey::from_slice(bytes).map_err(|_| AlgError::InvalidKey)
}

pub fn public_from_sec1(bytes: &[u8]) -> Result<PublicKey, AlgError> {
    PublicKey::from_sec1_bytes(bytes).map_err(|_| AlgError::InvalidKey)
}

/// Sign SHA-256(`msg`); the signature is DER.
pub fn sign<R: TryCryptoRng + ?Sized>(rng: &mut R, secret: &SecretKey, msg: &[u8]) -> Result<Vec<u8>, AlgError> {
    sign_with(rng, &SigningKey::from(secret), msg)
}

/// [`sign`] with a key prepared once ([`SigningKey`] holds the public point, which costs a
/// fixed-base multiplication to derive: the card keeps this form of a loaded key).
pub fn sign_with<R: TryCryptoRng + ?Sized>(rng: &mut R, key: &SigningKey, msg: &[u8]) -> Result<Vec<u8>, AlgError> {
    let sig: Signature = key.try_sign_with_rng(rng, msg).map_err(|_| AlgError::Rng)?;
    Ok(sig.to_der().as_bytes().to_vec())
}

/// Sign a precomputed 32-byte SHA-256 digest; DER signature.
pub fn sign_digest<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    secret: &SecretKey,
    digest: &[u8; 32],
) -> Result<Vec<u8>, AlgError> {
    let key = SigningKey::from(secret);
    let sig: Signature = key.sign_prehash_with_rng(rng, digest).map_err(|_| AlgError::Rng)?;
    Ok(sig.to_der().as_bytes().to_vec())
}

/// Verify a DER or raw (64-byte r ‖ s) signature over SHA-256(`msg`).
pub fn verify(public: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), AlgError> {
    VerifyingKey::from(public).verify(msg, &parse(sig)?).map_err(|_| AlgError::VerifyFailed)
}

/// Verify over a precomputed SHA-256 digest.
pub fn verify_digest(public: &PublicKey, digest: &[u8; 32], sig: &[u8]) -> Result<(), AlgError> {
    VerifyingKey::from(public).verify_prehash(digest, &parse(sig)?).map_err(|_| AlgError::VerifyFailed)
}

fn parse(sig: &[u8]) -> Result<Signature, AlgError> {
    let parsed = if sig.len() == 64 {
        Signature::from_slice(sig)
    } else {
        DerSignature::try_from(sig).and_then(Signature::try_from)
    };
    parsed.map_err(|_| AlgError::VerifyFailed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::{CounterRng, FailingRng, h};
    use sha2::{Digest, Sha256};

    // RFC 6979 Appendix A.2.5 (P-256, SHA-256, message "sample"): the published signature
    // verifies with the published key.
    #[test]
    fn rfc6979_sample_signature_verifies() {
        let x = secret_from_bytes(&h("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")).unwrap();
        let pk = x.public_key();
        let ux = h("60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6");
        let uy = h("7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299");
        assert_eq!(pk, public_from_sec1(&[h("04"), ux, uy].concat()).unwrap());
        let r = h("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716");
        let s = h("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8");
        let sig = [r, s].concat();
        verify(&pk, b"sample", &sig).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"sample").into();
        verify_digest(&pk, &digest, &sig).unwrap();
        assert_eq!(verify(&pk, b"samplf", &sig), Err(AlgError::VerifyFailed));
    }

    #[test]
    fn round_trip_der_and_prehash() {
        let mut rng = CounterRng::new(b"p256");
        let sk = generate(&mut rng).unwrap();
        let pk = sk.public_key();
        let sig = sign(&mut rng, &sk, b"hello").unwrap();
        assert_eq!(sig[0], 0x30);
        verify(&pk, b"hello", &sig).unwrap();
        let digest: [u8; 32] = Sha256::digest(b"hello").into();
        verify_digest(&pk, &digest, &sig).unwrap();
        let sig2 = sign_digest(&mut rng, &sk, &digest).unwrap();
        verify(&pk, b"hello", &sig2).unwrap();
        assert_eq!(verify(&pk, b"hello", &sig[..sig.len() - 1]), Err(AlgError::VerifyFailed));
        assert_eq!(sign(&mut FailingRng, &sk, b"x").err(), Some(AlgError::Rng));
    }
}

//! The virtual card's cryptography: its SM2 key (born from the host's OS randomness, which
//! the simulator accepts in place of a card's TRNG), challenge signatures, domain
//! authorization checks and the salted PIN hash.

use getrandom::SysRng;
use gmhsm_icc::spec::{self, PIN_BLOCK_LEN};
use sm2::dsa::signature::{RandomizedSigner, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use sm3::{Digest, Sm3};
use zeroize::Zeroizing;

/// The OS failed to give randomness or a key could not be built; the command fails, nothing
/// changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CryptoFailure;

pub(crate) fn random<const N: usize>() -> Result<[u8; N], CryptoFailure> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|_| CryptoFailure)?;
    Ok(b)
}

pub(crate) fn generate_secret() -> Result<Zeroizing<[u8; 32]>, CryptoFailure> {
    let sk = sm2::SecretKey::try_generate_from_rng(&mut SysRng).map_err(|_| CryptoFailure)?;
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&sk.to_bytes());
    Ok(out)
}

pub(crate) fn public_point(secret: &[u8; 32]) -> Result<[u8; spec::SM2_POINT_LEN], CryptoFailure> {
    let sk = sm2::SecretKey::from_slice(secret).map_err(|_| CryptoFailure)?;
    let vk = VerifyingKey::new(spec::CARD_DISTID, sk.public_key()).map_err(|_| CryptoFailure)?;
    vk.to_sec1_bytes().as_ref().try_into().map_err(|_| CryptoFailure)
}

/// SM2 with SM3 and [`spec::CARD_DISTID`] over `msg`, as `r ‖ s`.
pub(crate) fn sign(secret: &[u8; 32], msg: &[u8]) -> Result<[u8; spec::SM2_SIGNATURE_LEN], CryptoFailure> {
    let sk = sm2::SecretKey::from_slice(secret).map_err(|_| CryptoFailure)?;
    let signer = SigningKey::new(spec::CARD_DISTID, &sk).map_err(|_| CryptoFailure)?;
    let sig: Signature = signer.try_sign_with_rng(&mut SysRng, msg).map_err(|_| CryptoFailure)?;
    sig.to_bytes().as_slice().try_into().map_err(|_| CryptoFailure)
}

/// Whether `point` is a valid SM2 public key.
pub(crate) fn valid_point(point: &[u8]) -> bool {
    VerifyingKey::from_sec1_bytes(spec::DOMAIN_DISTID, point).is_ok()
}

/// Whether `sig` (`r ‖ s`) is the domain key's signature over `msg`.
pub(crate) fn verify_domain(domain_key: &[u8; spec::SM2_POINT_LEN], msg: &[u8], sig: &[u8]) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(spec::DOMAIN_DISTID, domain_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(msg, &sig).is_ok()
}

/// The stored form of a PIN: SM3(label ‖ salt ‖ PIN block).
pub(crate) fn pin_hash(salt: &[u8; 16], block: &[u8; PIN_BLOCK_LEN]) -> Zeroizing<[u8; 32]> {
    let mut h = Sm3::new();
    h.update(b"gmhsm-sim/admin-card/pin/v1");
    h.update(salt);
    h.update(block);
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(&h.finalize());
    out
}

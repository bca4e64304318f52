//! A stand-in for the crypto card's side of the admin-card protocol, for tests and the
//! simulator's scripted ceremonies: a domain SM2 key pair that authorizes commands
//! (`domain_message` signatures) and to which shares are encrypted.
//!
//! The real crypto card does this in firmware with keys from its own DRBG; this type uses the
//! host's OS randomness and must never be used outside simulation.

use getrandom::SysRng;
use gmhsm_icc::spec;
use gmhsm_icc::{CardChallenge, Sm2Point, Sm2Signature};
use sm2::dsa::signature::{RandomizedSigner, Verifier};
use sm2::dsa::{Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::Generate;
use sm2::pke::{DecryptingKey, EncryptingKey};
use zeroize::Zeroizing;

/// A simulated domain key (the crypto card's signing and share-encryption key).
pub struct SimDomainKey {
    secret: sm2::SecretKey,
}

impl std::fmt::Debug for SimDomainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SimDomainKey(..)")
    }
}

/// A simulated crypto operation failed (OS randomness, malformed input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCryptoError;

impl SimDomainKey {
    pub fn generate() -> Result<SimDomainKey, SimCryptoError> {
        let secret = sm2::SecretKey::try_generate_from_rng(&mut SysRng).map_err(|_| SimCryptoError)?;
        Ok(SimDomainKey { secret })
    }

    /// The public key as bound on cards (PUT DATA `C8`).
    pub fn public_point(&self) -> Sm2Point {
        let mut p = [0u8; spec::SM2_POINT_LEN];
        let enc = EncryptingKey::new(self.secret.public_key()).to_sec1_bytes();
        p.copy_from_slice(&enc[..spec::SM2_POINT_LEN.min(enc.len())]);
        p
    }

    /// Sign `domain_message(purpose, serial, challenge, payload)`.
    pub fn authorize(
        &self,
        purpose: &[u8],
        serial: &[u8],
        challenge: &CardChallenge,
        payload: &[u8],
    ) -> Result<Sm2Signature, SimCryptoError> {
        let signer = SigningKey::new(spec::DOMAIN_DISTID, &self.secret).map_err(|_| SimCryptoError)?;
        let msg = spec::domain_message(purpose, serial, &challenge.0, payload);
        let sig: Signature = signer.try_sign_with_rng(&mut SysRng, &msg).map_err(|_| SimCryptoError)?;
        sig.to_bytes().as_slice().try_into().map_err(|_| SimCryptoError)
    }

    /// Encrypt a share to this key (SM2 encryption, C1C3C2), as the crypto card does before
    /// PUT DATA `D0`.
    pub fn encrypt_share(&self, share: &[u8]) -> Result<Vec<u8>, SimCryptoError> {
        EncryptingKey::new(self.secret.public_key()).encrypt(&mut SysRng, share).map_err(|_| SimCryptoError)
    }

    pub fn decrypt_share(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SimCryptoError> {
        DecryptingKey::new(self.secret.clone()).decrypt(blob).map(Zeroizing::new).map_err(|_| SimCryptoError)
    }
}

/// Verify a card's INTERNAL AUTHENTICATE answer: SM2-SM3 with [`spec::CARD_DISTID`] over
/// `auth_message(serial, challenge)`.
pub fn verify_card_signature(card_key: &Sm2Point, serial: &[u8], challenge: &[u8], sig: &Sm2Signature) -> bool {
    let Ok(vk) = VerifyingKey::from_sec1_bytes(spec::CARD_DISTID, card_key) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(sig) else {
        return false;
    };
    vk.verify(&spec::auth_message(serial, challenge), &sig).is_ok()
}

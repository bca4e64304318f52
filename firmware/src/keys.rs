//! Key material inside the card: generation, the stored record, and the signing operations
//! of each algorithm.
//!
//! A [`KeyRecord`] is what the store holds: public attributes in the clear, the private key
//! wrapped under the DMK with the attributes as associated data. A [`LoadedKey`] is the
//! unwrapped, parsed key, kept only in card RAM (zeroized on drop).

use alloc::vec::Vec;
use gmhsm_proto::{KeyAlg, Label, Mechanism, Principal, Status};
use rand_core::TryCryptoRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The stored form of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub alg: KeyAlg,
    pub owner: Principal,
    /// DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// Nonce ‖ SM4-GCM(private key) under the DMK, AAD = [`KeyRecord::aad`].
    pub wrapped: Vec<u8>,
}

impl KeyRecord {
    /// Associated data binding the wrapped key to its label and attributes.
    pub fn aad(label: &Label, alg: KeyAlg, owner: &Principal, spki_der: &[u8]) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(&(b"gmhsm/v1/key", label, alg, owner, spki_der)).unwrap_or_default()
    }
}

/// A usable private key.
pub enum LoadedKey {
    Sm2 { secret: sm2::SecretKey, public: sm2::PublicKey },
    Rsa { key: rsa::PrivateKey, public: rsa::PublicKey },
}

/// A freshly generated key: its private encoding (to be wrapped) and public SPKI.
pub struct Generated {
    pub private_der: Zeroizing<Vec<u8>>,
    pub spki_der: Vec<u8>,
    pub key: LoadedKey,
}

fn internal<E>(_: E) -> Status {
    Status::Internal
}

/// Generate a key pair of `alg` from the card's RNG.
pub fn generate<R: TryCryptoRng + ?Sized>(alg: KeyAlg, rng: &mut R) -> Result<Generated, Status> {
    match alg {
        KeyAlg::Sm2 => {
            let secret = <sm2::SecretKey as sm2::elliptic_curve::Generate>::try_generate_from_rng(rng).map_err(|_| Status::DeviceError)?;
            let public = secret.public_key();
            let spki_der = public.to_public_key_der().map_err(internal)?.into_vec();
            let private_der = Zeroizing::new(secret.to_bytes().to_vec());
            Ok(Generated { private_der, spki_der, key: LoadedKey::Sm2 { secret, public } })
        }
        KeyAlg::Rsa2048 => {
            let key = rsa::PrivateKey::new(rng, 2048).map_err(|_| Status::DeviceError)?;
            let public = key.to_public_key();
            let spki_der = public.to_public_key_der().map_err(internal)?.into_vec();
            let private_der = Zeroizing::new(key.to_pkcs8_der().map_err(internal)?.as_bytes().to_vec());
            Ok(Generated { private_der, spki_der, key: LoadedKey::Rsa { key, public } })
        }
        _ => Err(Status::InvalidArgument),
    }
}

/// Parse an unwrapped private key.
pub fn load(alg: KeyAlg, private_der: &[u8]) -> Result<LoadedKey, Status> {
    match alg {
        KeyAlg::Sm2 => {
            let secret = sm2::SecretKey::from_slice(private_der).map_err(|_| Status::Internal)?;
            let public = secret.public_key();
            Ok(LoadedKey::Sm2 { secret, public })
        }
        KeyAlg::Rsa2048 => {
            let key = rsa::PrivateKey::from_pkcs8_der(private_der).map_err(|_| Status::Internal)?;
            let public = key.to_public_key();
            Ok(LoadedKey::Rsa { key, public })
        }
        _ => Err(Status::Internal),
    }
}

fn distid(id: &[u8]) -> Result<&str, Status> {
    // The sm2 crate takes the ID as text; binary IDs are refused rather than mangled.
    core::str::from_utf8(id).map_err(|_| Status::InvalidArgument)
}

impl LoadedKey {
    pub fn sign<R: TryCryptoRng + ?Sized>(
        &self,
        mechanism: &Mechanism,
        message: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, Status> {
        match (self, mechanism) {
            (LoadedKey::Sm2 { secret, .. }, Mechanism::Sm2Sm3 { distid: id }) => {
                let sk = sm2::dsa::SigningKey::new(distid(id)?, secret).map_err(internal)?;
                let sig: sm2::dsa::Signature =
                    sk.try_sign_with_rng(rng, message).map_err(|_| Status::DeviceError)?;
                Ok(sig.to_der().to_vec())
            }
            (LoadedKey::Rsa { key, .. }, Mechanism::RsaPkcs1v15Sha256) => {
                let sk = rsa::pkcs1v15::SigningKey::<Sha256>::new(key.clone());
                let sig = sk.try_sign_with_rng(rng, message).map_err(|_| Status::DeviceError)?;
                Ok(sig.to_vec())
            }
            _ => Err(Status::WrongKeyType),
        }
    }
}

/// Verify with a stored public key (SPKI DER).
pub fn verify(
    alg: KeyAlg,
    spki_der: &[u8],
    mechanism: &Mechanism,
    message: &[u8],
    signature: &[u8],
) -> Result<(), Status> {
    use rsa::pkcs8::DecodePublicKey;
    match (alg, mechanism) {
        (KeyAlg::Sm2, Mechanism::Sm2Sm3 { distid: id }) => {
            let pk = sm2::PublicKey::from_public_key_der(spki_der).map_err(internal)?;
            let vk = sm2::dsa::VerifyingKey::new(distid(id)?, pk).map_err(internal)?;
            let sig = sm2::dsa::Signature::from_der(signature).map_err(|_| Status::SignatureInvalid)?;
            vk.verify(message, &sig).map_err(|_| Status::SignatureInvalid)
        }
        (KeyAlg::Rsa2048, Mechanism::RsaPkcs1v15Sha256) => {
            let pk = rsa::PublicKey::from_public_key_der(spki_der).map_err(internal)?;
            let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk);
            let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| Status::SignatureInvalid)?;
            vk.verify(message, &sig).map_err(|_| Status::SignatureInvalid)
        }
        _ => Err(Status::WrongKeyType),
    }
}

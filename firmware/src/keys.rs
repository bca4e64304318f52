//! Key material inside the card: generation of every key type, the stored record, and the
//! unwrapped form kept in card RAM.
//!
//! A [`KeyRecord`] is what the store holds: public attributes in the clear, the private or
//! secret key wrapped under the DMK with the attributes as associated data (so a blob cannot
//! be moved to another label, owner, algorithm or capability set). A [`LoadedKey`] is the
//! unwrapped, parsed key, kept only in card RAM and zeroized on drop.

use alloc::vec::Vec;
use gmhsm_proto::{Capabilities, KeyAlg, Label, Principal};
use rand_core::TryCryptoRng;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::alg::{self, AlgError};
use crate::error::Error;

/// A private-key access password (SDF): PBKDF2-HMAC-SM3 of the password with a random salt,
/// and the count of consecutive failures (the key locks at [`MAX_PASSWORD_FAILURES`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordRecord {
    pub salt: [u8; 16],
    pub hash: [u8; 32],
    pub failures: u8,
}

/// Failed password attempts after which the key refuses every attempt until an
/// administrator sets a new password.
pub const MAX_PASSWORD_FAILURES: u8 = 5;
/// PBKDF2 iterations.
pub const PBKDF2_ITERATIONS: u32 = 10_000;

/// The stored form of one key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyRecord {
    pub alg: KeyAlg,
    pub owner: Principal,
    pub caps: Capabilities,
    pub domains: u32,
    /// DER SubjectPublicKeyInfo (empty for symmetric keys).
    pub spki_der: Vec<u8>,
    /// Nonce ‖ SM4-GCM(private key) under the DMK, AAD = [`KeyRecord::aad`].
    pub wrapped: Vec<u8>,
    pub password: Option<PasswordRecord>,
}

impl KeyRecord {
    /// Associated data binding the wrapped key to its label and attributes.
    pub fn aad(&self, label: &Label) -> Vec<u8> {
        let fields = (b"gmhsm/v2/key", label, self.alg, &self.owner, self.caps, self.domains, &self.spki_der);
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(&fields).unwrap_or_default()
    }
}

/// A usable key.
pub enum LoadedKey {
    /// Kept with its public key (derived once at load).
    Sm2(alg::sm2::Sm2Key),
    /// RSA with its cached CRT constants (built by [`alg::rsa::RsaKey::new`]).
    Rsa(alg::rsa::RsaKey),
    /// Kept with its public point (derived once at load).
    P256(alg::ecdsa::SigningKey),
    Sm4(Zeroizing<[u8; 16]>),
    Hmac(Zeroizing<Vec<u8>>),
}

/// A freshly generated key: its private encoding (to be wrapped) and public SPKI.
pub struct Generated {
    pub private_der: Zeroizing<Vec<u8>>,
    pub spki_der: Vec<u8>,
    pub key: LoadedKey,
}

/// The capabilities a key of `alg` gets when the request asks for the default. An SM4 key is
/// a cipher key by default; a MAC key is asked for (`hsm::usage`: never both).
pub fn default_caps(alg: KeyAlg) -> Capabilities {
    use Capabilities as C;
    match alg {
        KeyAlg::Sm2 => C::SIGN | C::VERIFY | C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP | C::DERIVE,
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => {
            C::SIGN | C::VERIFY | C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP
        }
        KeyAlg::EcdsaP256 => C::SIGN | C::VERIFY,
        KeyAlg::Sm4 => C::ENCRYPT | C::DECRYPT | C::WRAP | C::UNWRAP,
        KeyAlg::HmacSm3 => C::MAC,
        _ => C::DEFAULT,
    }
}

fn der<E>(r: Result<impl AsRef<[u8]>, E>) -> Result<Vec<u8>, Error> {
    r.map(|d| d.as_ref().to_vec()).map_err(|_| Error::Internal("DER encoding"))
}

/// Generate a key of `alg` from the card's RNG.
pub fn generate<R: TryCryptoRng + ?Sized>(alg: KeyAlg, rng: &mut R) -> Result<Generated, Error> {
    let rng_err = |_| Error::Alg(AlgError::Rng);
    match alg {
        KeyAlg::Sm2 => {
            let key = alg::sm2::Sm2Key::new(alg::sm2::generate(rng).map_err(Error::Alg)?);
            let spki_der = der(key.public().to_public_key_der())?;
            let private_der = Zeroizing::new(key.to_bytes().to_vec());
            Ok(Generated { private_der, spki_der, key: LoadedKey::Sm2(key) })
        }
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => {
            let bits = match alg {
                KeyAlg::Rsa2048 => 2048,
                KeyAlg::Rsa3072 => 3072,
                _ => 4096,
            };
            let key = alg::rsa::generate(rng, bits).map_err(Error::Alg)?;
            let spki_der = der(key.to_public_key().to_public_key_der())?;
            let private_der = Zeroizing::new(der(key.to_pkcs8_der().map(|d| d.as_bytes().to_vec()))?);
            Ok(Generated { private_der, spki_der, key: LoadedKey::Rsa(key) })
        }
        KeyAlg::EcdsaP256 => {
            let secret = alg::ecdsa::generate(rng).map_err(Error::Alg)?;
            let spki_der = der(secret.public_key().to_public_key_der())?;
            let private_der = Zeroizing::new(secret.to_bytes().to_vec());
            Ok(Generated { private_der, spki_der, key: LoadedKey::P256(alg::ecdsa::SigningKey::from(&secret)) })
        }
        KeyAlg::Sm4 => {
            let mut k = Zeroizing::new([0u8; 16]);
            rng.try_fill_bytes(&mut k[..]).map_err(rng_err)?;
            Ok(Generated { private_der: Zeroizing::new(k.to_vec()), spki_der: Vec::new(), key: LoadedKey::Sm4(k) })
        }
        KeyAlg::HmacSm3 => {
            let mut k = Zeroizing::new(alloc::vec![0u8; 32]);
            rng.try_fill_bytes(&mut k[..]).map_err(rng_err)?;
            Ok(Generated { private_der: k.clone(), spki_der: Vec::new(), key: LoadedKey::Hmac(k) })
        }
        _ => Err(Error::Invalid("key algorithm")),
    }
}

/// Parse an unwrapped private or secret key.
pub fn load(alg: KeyAlg, private_der: &[u8]) -> Result<LoadedKey, Error> {
    Ok(match alg {
        KeyAlg::Sm2 => LoadedKey::Sm2(alg::sm2::Sm2Key::new(
            alg::sm2::secret_from_bytes(private_der).map_err(|_| Error::Internal("stored SM2 key"))?,
        )),
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => {
            let key = rsa::PrivateKey::from_pkcs8_der(private_der).map_err(|_| Error::Internal("stored RSA key"))?;
            LoadedKey::Rsa(alg::rsa::RsaKey::new(key))
        }
        KeyAlg::EcdsaP256 => LoadedKey::P256(alg::ecdsa::SigningKey::from(
            &alg::ecdsa::secret_from_bytes(private_der).map_err(|_| Error::Internal("stored P-256 key"))?,
        )),
        KeyAlg::Sm4 => {
            let k: [u8; 16] = private_der.try_into().map_err(|_| Error::Internal("stored SM4 key"))?;
            LoadedKey::Sm4(Zeroizing::new(k))
        }
        KeyAlg::HmacSm3 => LoadedKey::Hmac(Zeroizing::new(private_der.to_vec())),
        _ => return Err(Error::Internal("stored key algorithm")),
    })
}

/// PBKDF2-HMAC-SM3, one 32-byte block (RFC 8018 §5.2).
pub fn pbkdf2_sm3(password: &[u8], salt: &[u8], iterations: u32) -> Result<[u8; 32], Error> {
    let mut first = Vec::with_capacity(salt.len() + 4);
    first.extend_from_slice(salt);
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = alg::sm3::hmac_sm3(password, &first).map_err(Error::Alg)?;
    let mut t = u;
    for _ in 1..iterations {
        u = alg::sm3::hmac_sm3(password, &u).map_err(Error::Alg)?;
        for (a, b) in t.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    zeroize::Zeroize::zeroize(&mut u);
    Ok(t)
}

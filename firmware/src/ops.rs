//! Mechanisms applied to keys: the bridge from the wire's mechanism enums to the algorithm
//! layer ([`crate::alg`]). No access control here; the caller has checked capabilities.

use alloc::vec::Vec;
use gmhsm_proto::{CipherMech, KeyAlg, MacMech, Mechanism, Sm2Layout, Sm4Mode};
use rand_core::TryCryptoRng;
use rsa::pkcs8::DecodePublicKey;
use zeroize::Zeroizing;

use crate::alg::AlgError;
use crate::alg::sm2_fast::BaseTable;
use crate::alg::{self, sm4};
use crate::error::Error;
use crate::keys::LoadedKey;

/// A public key parsed from its SPKI.
pub enum Public {
    Sm2(sm2::PublicKey),
    Rsa(rsa::PublicKey),
    P256(p256::PublicKey),
}

impl Public {
    pub fn from_spki(spki_der: &[u8]) -> Result<Public, Error> {
        if let Ok(k) = sm2::PublicKey::from_public_key_der(spki_der) {
            return Ok(Public::Sm2(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_der(spki_der) {
            return Ok(Public::P256(k));
        }
        if let Ok(k) = rsa::PublicKey::from_public_key_der(spki_der) {
            alg::rsa::check_size(&k).map_err(Error::Alg)?;
            return Ok(Public::Rsa(k));
        }
        Err(Error::Invalid("public key"))
    }

    pub fn of(key: &LoadedKey) -> Option<Public> {
        match key {
            LoadedKey::Sm2(s) => Some(Public::Sm2(*s.public())),
            LoadedKey::Rsa(k) => Some(Public::Rsa(k.to_public_key())),
            LoadedKey::P256(s) => Some(Public::P256(p256::PublicKey::from(s.verifying_key()))),
            _ => None,
        }
    }
}

/// The algorithm layer's name for a wire SM2 ciphertext layout.
pub fn sm2_layout(l: Sm2Layout) -> alg::sm2_pke::Layout {
    match l {
        Sm2Layout::C1C3C2 => alg::sm2_pke::Layout::C1C3C2,
        Sm2Layout::C1C2C3 => alg::sm2_pke::Layout::C1C2C3,
        Sm2Layout::Der => alg::sm2_pke::Layout::Der,
    }
}

fn digest32(msg: &[u8]) -> Result<&[u8; 32], Error> {
    msg.try_into().map_err(|_| Error::Invalid("digest length"))
}

/// The signing mechanisms a key algorithm supports.
pub fn mechanism_fits(alg: KeyAlg, mechanism: &Mechanism) -> bool {
    matches!(
        (alg, mechanism),
        (KeyAlg::Sm2, Mechanism::Sm2Sm3 { .. } | Mechanism::Sm2Digest)
            | (
                KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096,
                Mechanism::RsaPkcs1v15Sha256 | Mechanism::RsaPssSha256
            )
            | (KeyAlg::EcdsaP256, Mechanism::EcdsaP256Sha256)
    )
}

pub fn sign<R: TryCryptoRng + ?Sized>(
    key: &LoadedKey,
    mechanism: &Mechanism,
    msg: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, Error> {
    let e = Error::Alg;
    match (key, mechanism) {
        (LoadedKey::Sm2(s), Mechanism::Sm2Sm3 { distid }) => {
            Ok(alg::sm2::sign(rng, s, distid, msg).map_err(e)?.to_der().to_vec())
        }
        (LoadedKey::Sm2(s), Mechanism::Sm2Digest) => {
            Ok(alg::sm2::sign_digest(rng, s, digest32(msg)?).map_err(e)?.to_der().to_vec())
        }
        (LoadedKey::Rsa(k), Mechanism::RsaPkcs1v15Sha256) => alg::rsa::sign_pkcs1v15_sha256(rng, k, msg).map_err(e),
        (LoadedKey::Rsa(k), Mechanism::RsaPssSha256) => {
            alg::rsa::sign_pss(rng, k, alg::rsa::PssHash::Sha256, msg).map_err(e)
        }
        (LoadedKey::P256(s), Mechanism::EcdsaP256Sha256) => alg::ecdsa::sign_with(rng, s, msg).map_err(e),
        _ => Err(Error::WrongKeyType),
    }
}

pub fn verify(public: &Public, mechanism: &Mechanism, msg: &[u8], sig: &[u8]) -> Result<(), Error> {
    let bad = |_| Error::SignatureInvalid;
    match (public, mechanism) {
        (Public::Sm2(p), Mechanism::Sm2Sm3 { distid }) => {
            let s = alg::sm2::signature_from_bytes(sig).map_err(bad)?;
            alg::sm2::verify(p, distid, msg, &s).map_err(Error::Alg)
        }
        (Public::Sm2(p), Mechanism::Sm2Digest) => {
            let s = alg::sm2::signature_from_bytes(sig).map_err(bad)?;
            alg::sm2::verify_digest(p, digest32(msg)?, &s).map_err(Error::Alg)
        }
        (Public::Rsa(k), Mechanism::RsaPkcs1v15Sha256) => alg::rsa::verify_pkcs1v15_sha256(k, msg, sig).map_err(bad),
        (Public::Rsa(k), Mechanism::RsaPssSha256) => {
            alg::rsa::verify_pss(k, alg::rsa::PssHash::Sha256, msg, sig).map_err(bad)
        }
        (Public::P256(p), Mechanism::EcdsaP256Sha256) => alg::ecdsa::verify(p, msg, sig).map_err(bad),
        _ => Err(Error::WrongKeyType),
    }
}

/// Public-key encryption (SM2, RSA). SM2's C1 = \[k\]G goes through `table` (the card's
/// fixed-base table) when given.
pub fn encrypt_public<R: TryCryptoRng + ?Sized>(
    public: &Public,
    mechanism: &CipherMech,
    data: &[u8],
    rng: &mut R,
    table: Option<&BaseTable>,
) -> Result<Vec<u8>, Error> {
    let e = Error::Alg;
    match (public, mechanism) {
        (Public::Sm2(p), CipherMech::Sm2 { layout: l }) => {
            alg::sm2_fast::pke::encrypt(table, rng, p, data, sm2_layout(*l)).map_err(e)
        }
        (Public::Rsa(k), CipherMech::RsaPkcs1v15) => alg::rsa::encrypt_pkcs1v15(rng, k, data).map_err(e),
        (Public::Rsa(k), CipherMech::RsaOaepSha256) => alg::rsa::encrypt_oaep_sha256(rng, k, data).map_err(e),
        (Public::Rsa(k), CipherMech::RsaRaw) => alg::rsa::public_op(k, data).map_err(e),
        _ => Err(Error::WrongKeyType),
    }
}

/// Decryption with a stored key: private-key decryption or SM4.
pub fn decrypt<R: TryCryptoRng + ?Sized>(
    key: &LoadedKey,
    mechanism: &CipherMech,
    data: &[u8],
    rng: &mut R,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let e = Error::Alg;
    match (key, mechanism) {
        (LoadedKey::Sm2(s), CipherMech::Sm2 { layout: l }) => alg::sm2_pke::decrypt(s, data, sm2_layout(*l)).map_err(e),
        (LoadedKey::Rsa(k), CipherMech::RsaPkcs1v15) => alg::rsa::decrypt_pkcs1v15(rng, k, data).map_err(e),
        (LoadedKey::Rsa(k), CipherMech::RsaOaepSha256) => alg::rsa::decrypt_oaep_sha256(rng, k, data).map_err(e),
        (LoadedKey::Rsa(k), CipherMech::RsaRaw) => alg::rsa::private_op(rng, k, data).map_err(e),
        (LoadedKey::Sm4(k), m) => sym(&k[..], m, sm4::Direction::Decrypt, data, rng),
        _ => Err(Error::WrongKeyType),
    }
}

/// Encryption with a stored key: public-key encryption with its public half, or SM4.
pub fn encrypt<R: TryCryptoRng + ?Sized>(
    key: &LoadedKey,
    mechanism: &CipherMech,
    data: &[u8],
    rng: &mut R,
    table: Option<&BaseTable>,
) -> Result<Vec<u8>, Error> {
    match key {
        LoadedKey::Sm4(k) => Ok(sym(&k[..], mechanism, sm4::Direction::Encrypt, data, rng)?.to_vec()),
        other => {
            let public = Public::of(other).ok_or(Error::WrongKeyType)?;
            encrypt_public(&public, mechanism, data, rng, table)
        }
    }
}

/// An SM4 context ready to run: a confidentiality mode or GCM.
pub enum SymCtx {
    Sm4(sm4::Sm4Ctx),
    Gcm(sm4::Sm4GcmCtx),
}

/// Fresh bytes from the card's DRBG (an IV or nonce the card chooses).
fn fresh<const N: usize, R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    rng.try_fill_bytes(&mut out).map_err(|_| Error::Alg(AlgError::Rng))?;
    Ok(out)
}

/// The SM4 context `mechanism` asks for in `dir`. A card-IV mode or card-nonce GCM draws a
/// fresh IV / nonce from `rng` when encrypting (written before the ciphertext) and reads it
/// from the front of the data when decrypting. No access control: the caller checked the
/// capabilities the mechanism needs (`hsm::usage`).
pub fn sym_ctx<R: TryCryptoRng + ?Sized>(
    key: &[u8],
    mechanism: &CipherMech,
    dir: sm4::Direction,
    rng: &mut R,
) -> Result<SymCtx, Error> {
    use sm4::IvPlace::{Given, InData};
    let card = |rng: &mut R| if dir == sm4::Direction::Encrypt { fresh::<16, R>(rng) } else { Ok([0; 16]) };
    let e = Error::Alg;
    let (mode, pkcs7, place) = match mechanism {
        CipherMech::Sm4Gcm { nonce, aad } => {
            return Ok(SymCtx::Gcm(sm4::Sm4GcmCtx::placed(key, nonce, aad, dir, Given).map_err(e)?));
        }
        CipherMech::Sm4GcmCardNonce { aad } => {
            let nonce = if dir == sm4::Direction::Encrypt { fresh::<12, R>(rng)? } else { [0; 12] };
            return Ok(SymCtx::Gcm(sm4::Sm4GcmCtx::placed(key, &nonce, aad, dir, InData).map_err(e)?));
        }
        CipherMech::Sm4 { mode, pkcs7 } => match *mode {
            Sm4Mode::Ecb => (sm4::Mode::Ecb, *pkcs7, Given),
            Sm4Mode::Cbc { iv } => (sm4::Mode::Cbc(iv), *pkcs7, Given),
            Sm4Mode::Cfb { iv } => (sm4::Mode::Cfb(iv), *pkcs7, Given),
            Sm4Mode::Ofb { iv } => (sm4::Mode::Ofb(iv), *pkcs7, Given),
            Sm4Mode::Ctr { iv } => (sm4::Mode::Ctr(iv), *pkcs7, Given),
            Sm4Mode::CbcCardIv => (sm4::Mode::Cbc(card(rng)?), *pkcs7, InData),
            Sm4Mode::CfbCardIv => (sm4::Mode::Cfb(card(rng)?), *pkcs7, InData),
            Sm4Mode::OfbCardIv => (sm4::Mode::Ofb(card(rng)?), *pkcs7, InData),
            Sm4Mode::CtrCardIv => (sm4::Mode::Ctr(card(rng)?), *pkcs7, InData),
            _ => return Err(Error::Invalid("mechanism")),
        },
        _ => return Err(Error::WrongKeyType),
    };
    let padding = if pkcs7 { sm4::Padding::Pkcs7 } else { sm4::Padding::None };
    Ok(SymCtx::Sm4(sm4::Sm4Ctx::placed(key, mode, dir, padding, place).map_err(e)?))
}

/// One-shot SM4 with a raw 16-byte key (see [`sym_ctx`]).
pub fn sym<R: TryCryptoRng + ?Sized>(
    key: &[u8],
    mechanism: &CipherMech,
    dir: sm4::Direction,
    data: &[u8],
    rng: &mut R,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    match sym_ctx(key, mechanism, dir, rng)? {
        SymCtx::Sm4(mut c) => {
            let mut out = c.update(data);
            out.extend_from_slice(&c.finalize().map_err(Error::Alg)?);
            Ok(out)
        }
        SymCtx::Gcm(mut c) => {
            c.update(data).map_err(Error::Alg)?;
            c.finalize().map_err(Error::Alg)
        }
    }
}

/// One-shot MAC with a stored or session key (CBC-MAC: the zero IV only).
pub fn mac(key: &[u8], mechanism: MacMech, data: &[u8]) -> Result<Vec<u8>, Error> {
    let e = Error::Alg;
    Ok(match mechanism {
        MacMech::HmacSm3 => alg::sm3::hmac_sm3(key, data).map_err(e)?.to_vec(),
        MacMech::Sm4Cmac => {
            let mut c = sm4::Sm4CmacCtx::new(key).map_err(e)?;
            c.update(data);
            c.finalize().to_vec()
        }
        MacMech::Sm4CbcMac { iv } if iv == [0; 16] => {
            let mut c = sm4::Sm4CbcMacCtx::new(key).map_err(e)?;
            c.update(data);
            c.finalize().map_err(e)?.to_vec()
        }
        _ => return Err(Error::Invalid("MAC mechanism")),
    })
}

/// The raw secret of a symmetric key, for SM4 and MAC operations.
pub fn secret_bytes(key: &LoadedKey) -> Option<&[u8]> {
    match key {
        LoadedKey::Sm4(k) => Some(&k[..]),
        LoadedKey::Hmac(k) => Some(&k[..]),
        _ => None,
    }
}

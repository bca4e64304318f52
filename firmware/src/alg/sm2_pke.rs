//! SM2 public-key encryption (GB/T 32918.4) in the three ciphertext layouts in use:
//! C1 ‖ C3 ‖ C2 (the current standard's order, the default), C1 ‖ C2 ‖ C3 (the 2010 draft's
//! order, still sent by older devices) and the GM/T 0009 DER `SM2Cipher`
//! `SEQUENCE { x INTEGER, y INTEGER, hash OCTET STRING, ciphertext OCTET STRING }`.
//!
//! The arithmetic is the card's own ([`super::sm2_fast::pke`]: constant-time windowed
//! multiplications, about four times the `sm2` crate's speed); the layouts, their conversion
//! and the reference implementation ([`crate_encrypt`], [`crate_decrypt`], which the tests
//! and benches compare against) are the `sm2` crate (`pke` feature). C1 is the uncompressed
//! point 04 ‖ x ‖ y.

use ::sm2::pke::{Cipher, DecryptingKey, EncryptingKey, Mode};
use ::sm2::{PublicKey, SecretKey};
use rand_core::TryCryptoRng;
use zeroize::Zeroizing;

use super::AlgError;

/// Longest plaintext accepted (the SDF interface caps ECC encryption far lower; this bounds
/// the KDF's work and the ciphertext's size).
pub const MAX_PLAINTEXT: usize = 1 << 20;

/// How a ciphertext is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// 04 ‖ x1 ‖ y1 ‖ C3 (32) ‖ C2: GB/T 32918.4-2016, the default.
    #[default]
    C1C3C2,
    /// 04 ‖ x1 ‖ y1 ‖ C2 ‖ C3: the 2010 order.
    C1C2C3,
    /// GM/T 0009 DER `SM2Cipher`, as OpenSSL writes it.
    Der,
}

/// Encrypt `msg` (1 to [`MAX_PLAINTEXT`] bytes) to `public`.
pub fn encrypt<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    public: &PublicKey,
    msg: &[u8],
    layout: Layout,
) -> Result<alloc::vec::Vec<u8>, AlgError> {
    super::sm2_fast::pke::encrypt(None, rng, public, msg, layout)
}

/// Decrypt `ciphertext` in `layout` with `secret`. Any failure (bad point, bad C3, wrong key,
/// truncated input) is [`AlgError::DecryptFailed`].
pub fn decrypt(
    secret: &SecretKey,
    ciphertext: &[u8],
    layout: Layout,
) -> Result<Zeroizing<alloc::vec::Vec<u8>>, AlgError> {
    super::sm2_fast::pke::decrypt(secret, ciphertext, layout)
}

/// [`encrypt`] through the `sm2` crate: the reference.
pub fn crate_encrypt<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    public: &PublicKey,
    msg: &[u8],
    layout: Layout,
) -> Result<alloc::vec::Vec<u8>, AlgError> {
    if msg.is_empty() || msg.len() > MAX_PLAINTEXT {
        return Err(AlgError::InvalidInput);
    }
    let mut rng = rng;
    let res = match layout {
        Layout::C1C3C2 => EncryptingKey::new_with_mode(*public, Mode::C1C3C2).encrypt(&mut rng, msg),
        Layout::C1C2C3 => EncryptingKey::new_with_mode(*public, Mode::C1C2C3).encrypt(&mut rng, msg),
        Layout::Der => EncryptingKey::new(*public).encrypt_der(&mut rng, msg),
    };
    // The crate's only failure with a valid public key and a non-empty message is the RNG.
    res.map_err(|_| AlgError::Rng)
}

/// [`decrypt`] through the `sm2` crate: the reference.
pub fn crate_decrypt(
    secret: &SecretKey,
    ciphertext: &[u8],
    layout: Layout,
) -> Result<Zeroizing<alloc::vec::Vec<u8>>, AlgError> {
    let scalar = secret.to_nonzero_scalar();
    let res = match layout {
        Layout::C1C3C2 => DecryptingKey::new_with_mode(scalar, Mode::C1C3C2).decrypt(ciphertext),
        Layout::C1C2C3 => DecryptingKey::new_with_mode(scalar, Mode::C1C2C3).decrypt(ciphertext),
        Layout::Der => DecryptingKey::new_with_mode(scalar, Mode::C1C3C2).decrypt_der(ciphertext),
    };
    res.map(Zeroizing::new).map_err(|_| AlgError::DecryptFailed)
}

/// Re-encode a ciphertext from one layout to another (no key needed: the parts are public).
pub fn convert(ciphertext: &[u8], from: Layout, to: Layout) -> Result<alloc::vec::Vec<u8>, AlgError> {
    let cipher: Cipher<'_> = match from {
        Layout::C1C3C2 => Cipher::from_slice(ciphertext, Mode::C1C3C2),
        Layout::C1C2C3 => Cipher::from_slice(ciphertext, Mode::C1C2C3),
        Layout::Der => {
            <Cipher<'_> as ::sm2::pkcs8::der::Decode>::from_der(ciphertext).map_err(|_| ::sm2::elliptic_curve::Error)
        }
    }
    .map_err(|_| AlgError::InvalidInput)?;
    match to {
        Layout::C1C3C2 => cipher.to_vec(Mode::C1C3C2, false),
        Layout::C1C2C3 => cipher.to_vec(Mode::C1C2C3, false),
        Layout::Der => ::sm2::pkcs8::der::Encode::to_der(&cipher).map_err(|_| ::sm2::elliptic_curve::Error),
    }
    .map_err(|_| AlgError::InvalidInput)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::sm2::secret_from_bytes;
    use crate::alg::testrng::{CounterRng, FailingRng, FixedRng, h};

    // GB/T 32918.5-2017 / GM/T 0003.5-2012 encryption example on the recommended curve
    // (key 3945208F…, k = 59276E27…, M = "encryption standard"), in the DER form of
    // GM/T 0009 §7.2 as OpenSSL's sm2_internal_test carries it.
    const D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";
    const X1: &str = "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73";
    const Y1: &str = "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0";
    const C3: &str = "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766";
    const C2: &str = "21886CA989CA9C7D58087307CA93092D651EFA";

    #[test]
    fn gbt32918_5_encryption_example_all_layouts() {
        let sk = secret_from_bytes(&h(D)).unwrap();
        let pk = sk.public_key();
        let msg = b"encryption standard";
        let c1 = [h("04"), h(X1), h(Y1)].concat();
        let want_c1c3c2 = [c1.clone(), h(C3), h(C2)].concat();
        let want_c1c2c3 = [c1, h(C2), h(C3)].concat();
        let want_der = h(&["307C0220", X1, "022100", Y1, "0420", C3, "0413", C2].concat());
        for (layout, want) in [(Layout::C1C3C2, &want_c1c3c2), (Layout::C1C2C3, &want_c1c2c3), (Layout::Der, &want_der)]
        {
            let ct = encrypt(&mut FixedRng(alloc::vec![h(K)]), &pk, msg, layout).unwrap();
            assert_eq!(&ct, want, "{layout:?}");
            assert_eq!(&decrypt(&sk, &ct, layout).unwrap()[..], msg);
        }
        assert_eq!(convert(&want_der, Layout::Der, Layout::C1C2C3).unwrap(), want_c1c2c3);
        assert_eq!(convert(&want_c1c2c3, Layout::C1C2C3, Layout::C1C3C2).unwrap(), want_c1c3c2);
        assert_eq!(convert(&want_c1c3c2, Layout::C1C3C2, Layout::Der).unwrap(), want_der);
    }

    #[test]
    fn tampering_and_wrong_key_fail_opaquely() {
        let mut rng = CounterRng::new(b"sm2 pke");
        let sk = crate::alg::sm2::generate(&mut rng).unwrap();
        let other = crate::alg::sm2::generate(&mut rng).unwrap();
        let msg = [0x5au8; 100];
        for layout in [Layout::C1C3C2, Layout::C1C2C3, Layout::Der] {
            let ct = encrypt(&mut rng, &sk.public_key(), &msg, layout).unwrap();
            assert_eq!(&decrypt(&sk, &ct, layout).unwrap()[..], &msg[..]);
            assert_eq!(decrypt(&other, &ct, layout).err(), Some(AlgError::DecryptFailed));
            let mut bad = ct.clone();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(decrypt(&sk, &bad, layout).err(), Some(AlgError::DecryptFailed));
            assert_eq!(decrypt(&sk, &ct[..50], layout).err(), Some(AlgError::DecryptFailed));
        }
        assert_eq!(encrypt(&mut rng, &sk.public_key(), b"", Layout::C1C3C2).err(), Some(AlgError::InvalidInput));
        assert_eq!(encrypt(&mut FailingRng, &sk.public_key(), b"x", Layout::Der).err(), Some(AlgError::Rng));
    }
}

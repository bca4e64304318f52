//! SM2 digital signature (GB/T 32918.2) over a message with a distinguishing ID, or over a
//! precomputed digest e; key generation and parsing.
//!
//! Signing and verification are the `sm2` crate's prehash signer and verifier (hedged
//! RFC 6979 nonces: SM3-HMAC-DRBG over key, digest and 32 fresh bytes from the card's RNG).
//! Written here: the user hash Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) for any ID,
//! binary ones included (the crate takes only `&str`), and a bounded retry for the
//! rare nonce rejection (r = 0, r + k = n or s = 0).

use ::sm2::dsa::signature::hazmat::{PrehashVerifier, RandomizedPrehashSigner};
use ::sm2::dsa::{SigningKey, VerifyingKey};
use ::sm2::elliptic_curve::Generate;
use ::sm2::elliptic_curve::sec1::ToSec1Point;
use ::sm2::{PublicKey, SecretKey};
use ::sm3::{Digest, Sm3};
use rand_core::{TryCryptoRng, TryRng};

use super::AlgError;

pub use ::sm2::dsa::Signature;

/// The default distinguishing ID of GM/T 0009 §10 (used by certificates and by OpenSSL).
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// Longest ID whose bit length fits ENTL's 16 bits.
pub const MAX_ID_LEN: usize = 8191;

const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");

const fn hex32(s: &str) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("bad hex"),
        }
    }
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Generate a key pair from the card's RNG.
/// An SM2 private key kept with its public key. The crate's `SecretKey::public_key()` derives
/// the point anew on every call (a generic scalar multiplication, ~0.2 ms): the card keeps a
/// loaded key in this form so that encryption to it and its SPKI cost nothing extra.
/// Dereferences to the `SecretKey` (which zeroizes itself on drop).
#[derive(Clone)]
pub struct Sm2Key {
    secret: SecretKey,
    public: PublicKey,
}

impl Sm2Key {
    pub fn new(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Sm2Key { secret, public }
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }
}

impl core::ops::Deref for Sm2Key {
    type Target = SecretKey;
    fn deref(&self) -> &SecretKey {
        &self.secret
    }
}

pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<SecretKey, AlgError> {
    SecretKey::try_generate_from_rng(rng).map_err(|_| AlgError::Rng)
}

/// Parse a 32-byte big-endian private scalar in [1, n−1].
pub fn secret_from_bytes(bytes: &[u8]) -> Result<SecretKey, AlgError> {
    SecretKey::from_slice(bytes).map_err(|_| AlgError::InvalidKey)
}

/// Parse a SEC1 point (04 ‖ x ‖ y, or compressed); rejects points not on the curve.
pub fn public_from_sec1(bytes: &[u8]) -> Result<PublicKey, AlgError> {
    PublicKey::from_sec1_bytes(bytes).map_err(|_| AlgError::InvalidKey)
}

/// The public key as x ‖ y (64 bytes), the form GM/T 0018 `ECCrefPublicKey` carries.
pub fn public_xy(public: &PublicKey) -> [u8; 64] {
    let point = public.as_affine().to_sec1_point(false);
    let mut out = [0u8; 64];
    // An uncompressed SEC1 point of a valid public key is 04 ‖ x ‖ y, 65 bytes.
    out.copy_from_slice(&point.as_bytes()[1..65]);
    out
}

/// Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) (GB/T 32918.2 §5.5), for any byte-string ID.
pub fn z_hash(id: &[u8], public: &PublicKey) -> Result<[u8; 32], AlgError> {
    if id.len() > MAX_ID_LEN {
        return Err(AlgError::InvalidInput);
    }
    let entl = (id.len() as u16 * 8).to_be_bytes();
    let mut h = Sm3::new();
    for part in [&entl[..], id, &A, &B, &GX, &GY, &public_xy(public)] {
        h.update(part);
    }
    Ok(h.finalize().into())
}

/// e = SM3(Z ‖ M): the digest that is signed, for `id` and `public`.
pub fn message_digest(id: &[u8], public: &PublicKey, msg: &[u8]) -> Result<[u8; 32], AlgError> {
    let mut h = Sm3::new();
    h.update(z_hash(id, public)?);
    h.update(msg);
    Ok(h.finalize().into())
}

/// Sign `msg` as the owner of `secret` with distinguishing ID `id`.
pub fn sign<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    secret: &SecretKey,
    id: &[u8],
    msg: &[u8],
) -> Result<Signature, AlgError> {
    let e = message_digest(id, &secret.public_key(), msg)?;
    sign_digest(rng, secret, &e)
}

/// Sign a precomputed digest e (as SDF_InternalSign_ECC does: the caller hashed Z ‖ M).
pub fn sign_digest<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    secret: &SecretKey,
    e: &[u8; 32],
) -> Result<Signature, AlgError> {
    // The ID only feeds Z, which prehash signing does not use.
    let key = SigningKey::new("", secret).map_err(|_| AlgError::InvalidKey)?;
    // A nonce is rejected with probability ~2^-254; a fresh draw then gives a new one.
    for _ in 0..4 {
        let mut watch = Watch { rng: &mut *rng, failed: false };
        let res = key.sign_prehash_with_rng(&mut watch, e);
        if watch.failed {
            return Err(AlgError::Rng);
        }
        if let Ok(sig) = res {
            return Ok(sig);
        }
    }
    Err(AlgError::Rng)
}

/// Verify `sig` over `msg` for `public` with distinguishing ID `id`.
pub fn verify(public: &PublicKey, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), AlgError> {
    let e = message_digest(id, public, msg)?;
    verify_digest(public, &e, sig)
}

/// Verify `sig` over a precomputed digest e.
pub fn verify_digest(public: &PublicKey, e: &[u8; 32], sig: &Signature) -> Result<(), AlgError> {
    let key = VerifyingKey::new("", *public).map_err(|_| AlgError::InvalidKey)?;
    key.verify_prehash(e, sig).map_err(|_| AlgError::VerifyFailed)
}

/// Parse a signature: DER `SEQUENCE { r INTEGER, s INTEGER }` or raw r ‖ s (64 bytes).
pub fn signature_from_bytes(bytes: &[u8]) -> Result<Signature, AlgError> {
    let parsed = if bytes.len() == 64 { Signature::from_slice(bytes) } else { Signature::from_der(bytes) };
    parsed.map_err(|_| AlgError::VerifyFailed)
}

/// Passes an RNG through and remembers whether it failed, so that an RNG failure is told
/// apart from the signer's (opaque) nonce rejection.
struct Watch<'a, R: ?Sized> {
    rng: &'a mut R,
    failed: bool,
}

impl<R: TryRng + ?Sized> TryRng for Watch<'_, R> {
    type Error = R::Error;
    fn try_next_u32(&mut self) -> Result<u32, R::Error> {
        self.rng.try_next_u32().inspect_err(|_| self.failed = true)
    }
    fn try_next_u64(&mut self) -> Result<u64, R::Error> {
        self.rng.try_next_u64().inspect_err(|_| self.failed = true)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), R::Error> {
        self.rng.try_fill_bytes(dst).inspect_err(|_| self.failed = true)
    }
}

impl<R: TryCryptoRng + ?Sized> TryCryptoRng for Watch<'_, R> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::{CounterRng, FailingRng, h};
    use ::sm2::dsa::signature::{RandomizedSigner, Verifier};

    // GB/T 32918.5-2017 Appendix A (= GM/T 0003.5-2012): signature example on the
    // recommended curve.
    const D: &str = "3945208F 7B2144B1 3F36E38A C6D39F95 88939369 2860B51A 42FB81EF 4DF7C5B8";
    const PX: &str = "09F9DF31 1E5421A1 50DD7D16 1E4BC5C6 72179FAD 1833FC07 6BB08FF3 56F35020";
    const PY: &str = "CCEA490C E26775A5 2DC6EA71 8CC1AA60 0AED05FB F35E084A 6632F607 2DA9AD13";
    const E: &str = "F0B43E94 BA45ACCA ACE692ED 534382EB 17E6AB5A 19CE7B31 F4486FDF C0D28640";
    const R: &str = "F5A03B06 48D2C463 0EEAC513 E1BB81A1 5944DA38 27D5B741 43AC7EAC EEE720B3";
    const S: &str = "B1B6AA29 DF212FD8 763182BC 0D421CA1 BB9038FD 1F7F42D4 840B69C4 85BBC1AA";

    fn std_key() -> SecretKey {
        secret_from_bytes(&h(D)).unwrap()
    }

    #[test]
    fn gbt32918_5_public_key_digest_and_signature() {
        let sk = std_key();
        let pk = sk.public_key();
        assert_eq!(public_xy(&pk).to_vec(), [h(PX), h(PY)].concat());
        let e = message_digest(DEFAULT_ID, &pk, b"message digest").unwrap();
        assert_eq!(e.to_vec(), h(E));
        let sig =
            Signature::from_scalars(<[u8; 32]>::try_from(h(R)).unwrap(), <[u8; 32]>::try_from(h(S)).unwrap()).unwrap();
        verify(&pk, DEFAULT_ID, b"message digest", &sig).unwrap();
        verify_digest(&pk, &e, &sig).unwrap();
        assert_eq!(verify(&pk, DEFAULT_ID, b"message digesT", &sig), Err(AlgError::VerifyFailed));
        assert_eq!(verify(&pk, b"1234567812345679", b"message digest", &sig), Err(AlgError::VerifyFailed));
        // Same signature through both encodings.
        assert_eq!(signature_from_bytes(&sig.to_der().to_vec()).unwrap(), sig);
        assert_eq!(signature_from_bytes(&sig.to_bytes()).unwrap(), sig);
    }

    #[test]
    fn curve_constants_match_the_crate_generator() {
        let g = ::sm2::ProjectivePoint::GENERATOR;
        let pk = PublicKey::from_affine(g.into()).unwrap();
        assert_eq!(public_xy(&pk).to_vec(), [GX, GY].concat());
    }

    #[test]
    fn sign_verify_round_trip_with_binary_id() {
        let mut rng = CounterRng::new(b"sm2 sign");
        let sk = generate(&mut rng).unwrap();
        let pk = sk.public_key();
        let id = [0xff, 0x00, 0x80, 0x7f];
        let sig = sign(&mut rng, &sk, &id, b"hello").unwrap();
        verify(&pk, &id, b"hello", &sig).unwrap();
        assert!(verify(&pk, DEFAULT_ID, b"hello", &sig).is_err());
        let e = [7u8; 32];
        let sig = sign_digest(&mut rng, &sk, &e).unwrap();
        verify_digest(&pk, &e, &sig).unwrap();
    }

    // Our Z for UTF-8 IDs is the crate's: signatures cross-verify both ways.
    #[test]
    fn agrees_with_crate_signer_for_text_ids() {
        let mut rng = CounterRng::new(b"sm2 crate");
        let sk = generate(&mut rng).unwrap();
        let crate_sk = SigningKey::new("ALICE123@YAHOO.COM", &sk).unwrap();
        let sig: Signature = crate_sk.try_sign_with_rng(&mut rng, b"msg").unwrap();
        verify(&sk.public_key(), b"ALICE123@YAHOO.COM", b"msg", &sig).unwrap();
        let ours = sign(&mut rng, &sk, b"ALICE123@YAHOO.COM", b"msg").unwrap();
        crate_sk.verifying_key().verify(b"msg", &ours).unwrap();
    }

    #[test]
    fn rng_failure_is_reported() {
        assert_eq!(generate(&mut FailingRng).err(), Some(AlgError::Rng));
        assert_eq!(sign(&mut FailingRng, &std_key(), DEFAULT_ID, b"m").err(), Some(AlgError::Rng));
    }

    #[test]
    fn rejects_oversized_id_and_bad_keys() {
        let pk = std_key().public_key();
        assert_eq!(z_hash(&[0u8; MAX_ID_LEN + 1], &pk).err(), Some(AlgError::InvalidInput));
        assert!(z_hash(&[0u8; MAX_ID_LEN], &pk).is_ok());
        assert_eq!(secret_from_bytes(&[0u8; 32]).err(), Some(AlgError::InvalidKey));
        let mut bad = [h("04"), h(PX), h(PY)].concat();
        bad[64] ^= 1;
        assert_eq!(public_from_sec1(&bad).err(), Some(AlgError::InvalidKey));
    }
}

//! RSA 2048 / 3072 / 4096: generation, PKCS#1 v1.5 and PSS signatures, PKCS#1 v1.5 and OAEP
//! encryption, and the raw public / private operations of GM/T 0018
//! (SDF_ExternalPublicKeyOperation_RSA, SDF_InternalPrivateKeyOperation_RSA).
//!
//! The `rsa` crate does everything with public keys (encryption, verification, the raw public
//! operation), generates keys and parses / encodes them (PKCS#8, SPKI). The private operation
//! is ours, on a [`RsaKey`] built once when a key is loaded:
//! * why by hand: the crate's arithmetic is crypto-bigint's `BoxedUint`, heap-allocated and
//!   generic over the width, and it re-derives the Montgomery parameters of p and q on every
//!   operation; ours ([`monty`]) is fixed-size (`[u64; L]` with L = 16, 24, 32 limbs for
//!   1024-, 1536- and 2048-bit primes), with a dedicated squaring, and everything that depends
//!   only on the key is cached;
//! * what is cached per key ([`crt`]): for p and q, −m^−1 mod 2^64, R mod m, R² mod m and
//!   R³ mod m; dp, dq, qinv = q^−1 mod p; the Montgomery constants of n and e; and
//!   SHA-256(I2OSP(d, k)) for the implicit rejection of PKCS#1 v1.5 decryption. All of it is
//!   zeroized on drop; `Debug` shows only the modulus size;
//! * constant time: the exponentiations mod p and q use a fixed 5-bit window over all the
//!   bits of the prime's width (not the bit length of dp or dq), read every table entry for
//!   every window and keep one with a mask; multiplication, squaring and reduction have no
//!   data-dependent branch or index (the final subtraction is masked); c mod p, the Garner
//!   recombination and the fixed-width byte coding are straight-line code too;
//! * blinding: each operation still multiplies the input by r^e and the result by r^−1 mod n.
//!   The exponentiation does not need it to be constant time; what it still buys is that the
//!   steps working on the caller's value with the secret primes (c mod p, c mod q, the Garner
//!   recombination) see a value the caller neither knows nor chooses, against power / EM
//!   analysis and attacks that correlate on known or chosen inputs. A fresh pair (a random
//!   r, crypto-bigint's constant-time inversion mod n) cost about a fifth of an RSA-2048
//!   operation, so, as OpenSSL does, a pair serves 32 operations, squared after each use
//!   ((r²)^e, r^−2); that costs about 1% (measured with `crt_tests::timing`);
//! * fault check: the result is re-encrypted with e and compared with the input before it
//!   leaves (a wrong CRT half would otherwise reveal a factor of n);
//! * padding ([`pad`]): PKCS#1 v1.5 and PSS encoding, OAEP and PKCS#1 v1.5 decoding are
//!   written here because the crate keeps its own private; the DigestInfo prefix is the
//!   crate's.
//!
//! A key whose shape the fixed-size code does not cover (more than two primes, primes of
//! unequal width, another modulus size) is kept and served by the crate's blinded
//! `rsa_decrypt_and_check` instead.
//!
//! PSS uses salt length = digest length and MGF1 with the same digest; OAEP uses SHA-256 for
//! both, empty label. PKCS#1 v1.5 decryption uses implicit rejection: a malformed ciphertext
//! yields a pseudo-random message rather than an error, so the protocol around it must
//! authenticate what it decrypts (as TLS and CMS do).

mod crt;
#[cfg(test)]
mod crt_tests;
mod monty;
mod pad;

use ::rsa::BoxedUint;
use ::rsa::hazmat::{rsa_decrypt_and_check, rsa_encrypt};
use ::rsa::pkcs8::{EncodePrivateKey, SecretDocument};
use ::rsa::traits::{PrivateKeyParts, PublicKeyParts};
use ::sm3::Sm3;
use alloc::boxed::Box;
use alloc::vec::Vec;
use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::AlgError;
use crt::{Crt, CrtError};

pub use ::rsa::{PrivateKey, PublicKey};

/// The modulus sizes the card generates and accepts.
pub const SIZES: [usize; 3] = [2048, 3072, 4096];

/// Whether the private operation is blinded (see the module docs for what it buys and costs).
const BLINDING: bool = true;

/// The digest under a PSS signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PssHash {
    Sha256,
    Sm3,
}

/// A private key ready for fast private operations: the crate's key (for encoding and the
/// public half) and the cached CRT constants. Built once when the key is loaded.
pub struct RsaKey {
    key: Box<PrivateKey>,
    engine: Engine,
    /// SHA-256(I2OSP(d, k)), the key of PKCS#1 v1.5 implicit rejection.
    rejection_key: Zeroizing<[u8; 32]>,
}

enum Engine {
    Crt2048(Box<Crt<16, 32>>),
    Crt3072(Box<Crt<24, 48>>),
    Crt4096(Box<Crt<32, 64>>),
    /// A key of another shape: the crate's private operation.
    Crate,
}

impl core::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let engine = match self.engine {
            Engine::Crate => "crate",
            _ => "crt",
        };
        f.debug_struct("RsaKey").field("bits", &(self.key.size() * 8)).field("engine", &engine).finish_non_exhaustive()
    }
}

impl From<PrivateKey> for RsaKey {
    fn from(key: PrivateKey) -> Self {
        RsaKey::new(key)
    }
}

impl RsaKey {
    /// Precompute everything the private operation needs (a few hundred microseconds).
    pub fn new(key: PrivateKey) -> Self {
        let engine = match key.size() * 8 {
            2048 => Crt::new(&key).map(|c| Engine::Crt2048(Box::new(c))),
            3072 => Crt::new(&key).map(|c| Engine::Crt3072(Box::new(c))),
            4096 => Crt::new(&key).map(|c| Engine::Crt4096(Box::new(c))),
            _ => None,
        }
        .unwrap_or(Engine::Crate);
        let d = fixed_width(key.d(), key.size());
        let rejection_key = Zeroizing::new(Sha256::digest(&d[..]).into());
        RsaKey { key: Box::new(key), engine, rejection_key }
    }

    /// The crate's key (PKCS#8 encoding, public parts).
    pub fn private_key(&self) -> &PrivateKey {
        &self.key
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.as_public_key()
    }

    pub fn to_public_key(&self) -> PublicKey {
        self.key.to_public_key()
    }

    /// The modulus length k in bytes.
    pub fn size(&self) -> usize {
        self.key.size()
    }

    /// Whether the fixed-size CRT code serves this key (else the crate's private operation).
    pub fn is_fast(&self) -> bool {
        !matches!(self.engine, Engine::Crate)
    }

    /// RSADP / RSASP1 on k big-endian bytes, into a k-byte result.
    fn private<R: TryCryptoRng + ?Sized>(&self, rng: &mut R, input: &[u8]) -> Result<Zeroizing<Vec<u8>>, CrtError> {
        let mut out = Zeroizing::new(alloc::vec![0u8; self.size()]);
        let rng = if BLINDING { Some(rng) } else { None };
        let pk = self.key.as_public_key();
        match &self.engine {
            Engine::Crt2048(c) => c.private_op(rng, pk, input, &mut out)?,
            Engine::Crt3072(c) => c.private_op(rng, pk, input, &mut out)?,
            Engine::Crt4096(c) => c.private_op(rng, pk, input, &mut out)?,
            Engine::Crate => {
                let c = operand(pk, input).map_err(|_| CrtError::Input)?;
                let m = Zeroizing::new(rsa_decrypt_and_check(&*self.key, rng, &c).map_err(|_| CrtError::Fault)?);
                out.copy_from_slice(&fixed_width(&m, self.size()));
            }
        }
        Ok(out)
    }

    /// Sign an encoded message (k bytes, below n by construction).
    fn sign_encoded<R: TryCryptoRng + ?Sized>(&self, rng: &mut R, em: &[u8]) -> Result<Vec<u8>, AlgError> {
        self.private(rng, em).map(|s| s.to_vec()).map_err(|e| match e {
            CrtError::Input => AlgError::InvalidInput,
            // A fault keeps the mapping of the crate path: the card's error state.
            CrtError::Rng | CrtError::Fault => AlgError::Rng,
        })
    }

    /// Decrypt a ciphertext of k bytes into its k-byte block.
    fn decrypt_block<R: TryCryptoRng + ?Sized>(&self, rng: &mut R, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>, AlgError> {
        self.private(rng, ct).map_err(|e| match e {
            CrtError::Rng => AlgError::Rng,
            CrtError::Input | CrtError::Fault => AlgError::DecryptFailed,
        })
    }
}

impl EncodePrivateKey for RsaKey {
    fn to_pkcs8_der(&self) -> ::rsa::pkcs8::Result<SecretDocument> {
        self.key.to_pkcs8_der()
    }
}

/// Generate a key of `bits` (one of [`SIZES`]) with e = 65537.
pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R, bits: usize) -> Result<RsaKey, AlgError> {
    if !SIZES.contains(&bits) {
        return Err(AlgError::InvalidInput);
    }
    PrivateKey::new(rng, bits).map(RsaKey::new).map_err(|_| AlgError::Rng)
}

/// Check that a parsed key has a supported size.
pub fn check_size(key: &PublicKey) -> Result<(), AlgError> {
    if SIZES.contains(&(key.size() * 8)) { Ok(()) } else { Err(AlgError::InvalidKey) }
}

/// RSASSA-PKCS1-v1_5 with SHA-256 over `msg` (deterministic; the RNG blinds).
pub fn sign_pkcs1v15_sha256<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &RsaKey,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    let prefix = ::rsa::Pkcs1v15Sign::new::<Sha256>().prefix;
    let em = pad::pkcs1v15_sign(&prefix, &Sha256::digest(msg), key.size())?;
    key.sign_encoded(rng, &em)
}

pub fn verify_pkcs1v15_sha256(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), AlgError> {
    key.pkcs1v15_verify::<Sha256>(msg, sig).map_err(|_| AlgError::VerifyFailed)
}

/// RSASSA-PSS over `msg` with `hash`, salt of the digest's length from the RNG.
pub fn sign_pss<R: TryCryptoRng + ?Sized>(
    rng: &mut R,
    key: &RsaKey,
    hash: PssHash,
    msg: &[u8],
) -> Result<Vec<u8>, AlgError> {
    let mut salt = [0u8; 32];
    rng.try_fill_bytes(&mut salt).map_err(|_| AlgError::Rng)?;
    let bits = key.public_key().n().as_ref().bit_width() as usize;
    let em = match hash {
        PssHash::Sha256 => pad::pss::<Sha256>(&Sha256::digest(msg), &salt, bits, key.size()),
        PssHash::Sm3 => pad::pss::<Sm3>(&Sm3::digest(msg), &salt, bits, key.size()),
    }?;
    key.sign_encoded(rng, &em)
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
    key: &RsaKey,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    if ct.len() != key.size() || key.size() < 11 {
        return Err(AlgError::DecryptFailed);
    }
    let mut em = key.decrypt_block(rng, ct)?;
    Ok(pad::pkcs1v15_implicit(&mut em, &key.rejection_key, ct))
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
    key: &RsaKey,
    ct: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    if ct.len() != key.size() {
        return Err(AlgError::DecryptFailed);
    }
    let mut em = key.decrypt_block(rng, ct)?;
    pad::oaep_sha256(&mut em)
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
    key: &RsaKey,
    input: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AlgError> {
    key.private(rng, input).map_err(|e| match e {
        CrtError::Input => AlgError::InvalidInput,
        CrtError::Rng => AlgError::Rng,
        CrtError::Fault => AlgError::DecryptFailed,
    })
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

    fn key() -> RsaKey {
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

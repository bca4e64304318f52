//! The crypto card's algorithm layer: pure functions and streaming contexts, no I/O.
//!
//! Every algorithm the card offers is reached from here: SM2 (signature, public-key
//! encryption, key exchange), SM3 and HMAC-SM3, SM4 in ECB / CBC / CFB / OFB / CTR / GCM and
//! as CBC-MAC / CMAC, RSA 2048 / 3072 / 4096 and ECDSA P-256.
//!
//! Invariants:
//! * randomness only ever comes in as a `rand_core::TryCryptoRng` argument (the card passes
//!   its SM3 Hash_DRBG); nothing here can reach `getrandom` (`sm2`, `rsa` and `p256` are built
//!   without it);
//! * secrets (private scalars, derived keys, decrypted plaintext) are held in zeroizing types;
//! * failures are an [`AlgError`]; cryptographic failures are deliberately opaque (a bad tag,
//!   a bad padding and a wrong key all read [`AlgError::DecryptFailed`]).
//!
//! What is built on the RustCrypto crates and what is written here by hand (each hand-written
//! part says why in its module docs; the short answer is speed with constant time, which the
//! crates' generic paths do not give):
//! * by crate: SM2 key and signature types, parsing and the reference SM2 paths (`sm2`), SM3
//!   (`sm3`), HMAC (`hmac`), the SM4 modes (`ecb`, `cbc`, `cfb-mode`, `ofb`, `ctr`, `aes-gcm`,
//!   `cmac`) over our block cipher, RSA keys, generation, encodings and public operations
//!   (`rsa`), ECDSA P-256 (`p256`, with its fixed-base table when built with `std`);
//! * by our own crates: the SM4 block cipher (`gmhsm-sm4`: constant time, GFNI / AES-NI /
//!   bitsliced) and, on CPUs with AVX-512 IFMA, the RSA-2048 CRT exponentiations
//!   (`gmhsm-ifma`);
//! * by hand: the DER encoding of (r, s) signatures ([`dersig`]: the crates' `to_der` parses
//!   its own output back), the fast SM2 arithmetic ([`sm2_fast`]: field, points, fixed-base table, nonce
//!   pool, windowed constant-time multiplication, encryption and decryption), RSA private
//!   operations ([`rsa`]: Montgomery arithmetic, CRT, blinding, padding), the SM2 user hash Z
//!   for binary distinguishing IDs ([`sm2::z_hash`]), the SM3 KDF ([`sm3::kdf`]), SM2 key
//!   exchange ([`sm2_kex`], GB/T 32918.3), the multi-part buffering of the SM4 block modes,
//!   PKCS#7 padding and CBC-MAC with an IV ([`sm4`]).

pub mod dersig;
pub mod ecdsa;
pub mod ecdsa_fast;
pub mod once;
pub mod rsa;
pub mod sm2;
pub mod sm2_fast;
pub mod sm2_kex;
pub mod sm2_pke;
pub mod sm3;
pub mod sm4;

/// Why an algorithm call failed. Each variant leaves no state behind: the caller may retry
/// with other input; streaming contexts that failed are consumed.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlgError {
    /// The key is malformed, of an unsupported size, or not a valid point / scalar.
    /// Fix the key; nothing was computed.
    InvalidKey,
    /// The input has the wrong length or encoding (IV size, digest size, partial block
    /// without padding, oversized message). Fix the request.
    InvalidInput,
    /// Decryption or unwrapping failed: wrong key, corrupt ciphertext, bad tag or padding.
    /// Deliberately says nothing more.
    DecryptFailed,
    /// A signature, MAC or key-confirmation value did not verify.
    VerifyFailed,
    /// The random number generator failed; the card should enter its error state.
    Rng,
}

impl core::fmt::Debug for AlgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AlgError::InvalidKey => "InvalidKey",
            AlgError::InvalidInput => "InvalidInput",
            AlgError::DecryptFailed => "DecryptFailed",
            AlgError::VerifyFailed => "VerifyFailed",
            AlgError::Rng => "Rng",
        })
    }
}

impl core::fmt::Display for AlgError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            AlgError::InvalidKey => "invalid key",
            AlgError::InvalidInput => "invalid input",
            AlgError::DecryptFailed => "decryption failed",
            AlgError::VerifyFailed => "verification failed",
            AlgError::Rng => "random number generator failed",
        })
    }
}

impl core::error::Error for AlgError {}

/// Deterministic RNGs for the known-answer tests; never compiled into the card.
#[cfg(test)]
pub(crate) mod testrng {
    use ::sm3::{Digest, Sm3};
    use core::convert::Infallible;

    /// Counter-mode SM3 over a fixed seed: block i = SM3(seed ‖ i as u64 BE).
    pub struct CounterRng {
        seed: [u8; 32],
        counter: u64,
        buf: [u8; 32],
        pos: usize,
    }

    impl CounterRng {
        pub fn new(seed: &[u8]) -> Self {
            let seed = Sm3::digest(seed).into();
            Self { seed, counter: 0, buf: [0; 32], pos: 32 }
        }
    }

    impl rand_core::TryRng for CounterRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            let mut b = [0u8; 4];
            self.try_fill_bytes(&mut b)?;
            Ok(u32::from_le_bytes(b))
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            let mut b = [0u8; 8];
            self.try_fill_bytes(&mut b)?;
            Ok(u64::from_le_bytes(b))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            for byte in dst {
                if self.pos == 32 {
                    let mut h = Sm3::new();
                    h.update(self.seed);
                    h.update(self.counter.to_be_bytes());
                    self.buf = h.finalize().into();
                    self.counter += 1;
                    self.pos = 0;
                }
                *byte = self.buf[self.pos];
                self.pos += 1;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for CounterRng {}

    /// Replays fixed byte strings (a standard's "random" k), one per fill request.
    pub struct FixedRng(pub alloc::vec::Vec<alloc::vec::Vec<u8>>);

    impl rand_core::TryRng for FixedRng {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            panic!("FixedRng only fills byte strings")
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            panic!("FixedRng only fills byte strings")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            let next = self.0.remove(0);
            assert_eq!(next.len(), dst.len(), "FixedRng: unexpected request size");
            dst.copy_from_slice(&next);
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for FixedRng {}

    /// An RNG that always fails, to check that failures surface as `AlgError::Rng`.
    pub struct FailingRng;

    #[derive(Debug)]
    pub struct Broken;
    impl core::fmt::Display for Broken {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("broken")
        }
    }
    impl core::error::Error for Broken {}

    impl rand_core::TryRng for FailingRng {
        type Error = Broken;
        fn try_next_u32(&mut self) -> Result<u32, Broken> {
            Err(Broken)
        }
        fn try_next_u64(&mut self) -> Result<u64, Broken> {
            Err(Broken)
        }
        fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Broken> {
            Err(Broken)
        }
    }
    impl rand_core::TryCryptoRng for FailingRng {}

    pub fn h(s: &str) -> alloc::vec::Vec<u8> {
        let s: alloc::string::String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}

//! The card's random number generator: health-tested noise → SM3 conditioning → SM3
//! Hash_DRBG, reseeded every 2^20 requests or 600 s (whichever comes first).
//!
//! It implements rand_core's `TryCryptoRng`, the only RNG the algorithm crates get: sm2 and
//! rsa are built without `getrandom`, so no key can come from the host.

use gmhsm_platform::NoiseSource;
use sm3::Sm3;

use crate::drbg::{DrbgError, HashDrbg, MAX_REQUEST};
use crate::entropy::{EntropyError, EntropySource};

/// Reseed at least this often (ms).
pub const RESEED_PERIOD_MS: u64 = 600_000;

/// Why no random bytes were produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RngError {
    Entropy(EntropyError),
    /// The DRBG is not instantiated (start-up failed).
    NotReady,
}

impl core::fmt::Display for RngError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RngError::Entropy(e) => f.write_str(e.describe()),
            RngError::NotReady => f.write_str("rng not instantiated"),
        }
    }
}

impl core::error::Error for RngError {}

pub struct CardRng<N: NoiseSource> {
    source: EntropySource<N>,
    drbg: Option<HashDrbg<Sm3>>,
    last_reseed_ms: u64,
    now_ms: u64,
}

impl<N: NoiseSource> CardRng<N> {
    /// Run the source's start-up test and instantiate the DRBG with 48 bytes of conditioned
    /// entropy and a 16-byte nonce from the source (SP 800-90A: entropy + nonce ≥ 1.5 × 256 bits).
    pub fn new(noise: N, now_ms: u64, personalization: &[u8]) -> (Self, Result<(), RngError>) {
        let mut r = Self { source: EntropySource::new(noise), drbg: None, last_reseed_ms: now_ms, now_ms };
        let res = r.instantiate(personalization);
        (r, res)
    }

    fn instantiate(&mut self, personalization: &[u8]) -> Result<(), RngError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 64]);
        self.source.seed(&mut seed[..]).map_err(RngError::Entropy)?;
        self.drbg = Some(HashDrbg::new(&seed[..48], &seed[48..], personalization));
        Ok(())
    }

    /// Tell the RNG the time; reseeds when the period has passed.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = now_ms;
    }

    fn reseed(&mut self) -> Result<(), RngError> {
        let drbg = self.drbg.as_mut().ok_or(RngError::NotReady)?;
        self.source.periodic_test().map_err(RngError::Entropy)?;
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        self.source.seed(&mut seed[..]).map_err(RngError::Entropy)?;
        drbg.reseed(&seed[..], &[]);
        self.last_reseed_ms = self.now_ms;
        Ok(())
    }

    /// Fill `out`; reseeds first when due. Nothing is produced when the source has failed.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), RngError> {
        if let Some(e) = self.source.failure() {
            return Err(RngError::Entropy(e));
        }
        let due = self.now_ms.saturating_sub(self.last_reseed_ms) >= RESEED_PERIOD_MS
            || self.drbg.as_ref().is_some_and(|d| d.needs_reseed());
        if due {
            self.reseed()?;
        }
        let drbg = self.drbg.as_mut().ok_or(RngError::NotReady)?;
        for chunk in out.chunks_mut(MAX_REQUEST) {
            match drbg.generate(chunk, &[]) {
                Ok(()) => {}
                // Unreachable given the checks above; fail closed rather than panic.
                Err(DrbgError::ReseedRequired) | Err(DrbgError::RequestTooLarge) => {
                    return Err(RngError::NotReady);
                }
            }
        }
        Ok(())
    }

    /// Why the RNG cannot produce output, if it cannot.
    pub fn failure(&self) -> Option<RngError> {
        if let Some(e) = self.source.failure() {
            return Some(RngError::Entropy(e));
        }
        if self.drbg.is_none() {
            return Some(RngError::NotReady);
        }
        None
    }
}

impl<N: NoiseSource> rand_core::TryRng for CardRng<N> {
    type Error = RngError;

    fn try_next_u32(&mut self) -> Result<u32, RngError> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, RngError> {
        let mut b = [0u8; 8];
        self.fill(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), RngError> {
        self.fill(dst)
    }
}

impl<N: NoiseSource> rand_core::TryCryptoRng for CardRng<N> {}

//! Simulated physical noise source, with the faults a real one develops: stuck, biased,
//! repeating.
//!
//! Healthy samples come from the host's getrandom, standing in for the analog source; the card
//! still health-tests and conditions them exactly as it would real samples.

use gmhsm_platform::{NoiseError, NoiseSource};

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseFault {
    /// Every sample has this value.
    Stuck(u8),
    /// Every other sample is 0x5a (half the samples one value).
    Biased,
    /// A short pattern repeating (0, 1, 2, 3, 0, 1, ...): defeats neither test alone by
    /// repetition, but a quarter of each window is one value.
    Repeating,
}

impl std::str::FromStr for NoiseFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stuck" => Ok(NoiseFault::Stuck(0)),
            "biased" => Ok(NoiseFault::Biased),
            "repeating" => Ok(NoiseFault::Repeating),
            _ => Err(format!("unknown noise fault {s:?} (stuck, biased, repeating)")),
        }
    }
}

pub struct SimNoise {
    fault: Option<NoiseFault>,
    counter: u64,
}

impl SimNoise {
    pub fn new(fault: Option<NoiseFault>) -> Self {
        Self { fault, counter: 0 }
    }
}

impl NoiseSource for SimNoise {
    /// The simulated source claims 4 bits per 8-bit sample, as a conservative assessment of a
    /// real ring-oscillator source would.
    fn min_entropy_bits(&self) -> u8 {
        4
    }

    fn fill_raw(&mut self, out: &mut [u8]) -> Result<(), NoiseError> {
        getrandom::fill(out).map_err(|_| NoiseError::Unavailable)?;
        for b in out.iter_mut() {
            self.counter += 1;
            match self.fault {
                None => {}
                Some(NoiseFault::Stuck(v)) => *b = v,
                Some(NoiseFault::Biased) if self.counter.is_multiple_of(2) => *b = 0x5a,
                Some(NoiseFault::Biased) => {}
                Some(NoiseFault::Repeating) => *b = (self.counter % 4) as u8,
            }
        }
        Ok(())
    }
}

//! The noise source: the kernel's hardware RNG character device (`/dev/hwrng`), read raw.
//!
//! `/dev/hwrng` hands out what the selected hardware RNG driver delivers, without the kernel's
//! CRNG in between (unlike `/dev/random`); the card health-tests and conditions every byte
//! itself. Each byte is one sample.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use gmhsm_platform::{NoiseError, NoiseSource};

use crate::BoardError;

/// `/dev/hwrng` (or another raw RNG character device).
pub struct HwRng {
    file: File,
    path: PathBuf,
    min_entropy_bits: u8,
}

impl HwRng {
    /// Open the device; fails if it cannot be opened or gives no byte now.
    pub fn open(path: &Path, min_entropy_bits: u8) -> Result<Self, BoardError> {
        let file = File::open(path).map_err(|e| BoardError::device("noise source", path, e))?;
        let mut rng = Self { file, path: path.to_owned(), min_entropy_bits };
        let mut probe = [0u8; 1];
        rng.fill_raw(&mut probe)
            .map_err(|_| BoardError::device("noise source", path, std::io::Error::other("delivers no samples")))?;
        Ok(rng)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl NoiseSource for HwRng {
    fn min_entropy_bits(&self) -> u8 {
        self.min_entropy_bits
    }

    /// Reads until `out` is full: the driver may return fewer bytes than asked per read.
    fn fill_raw(&mut self, out: &mut [u8]) -> Result<(), NoiseError> {
        let mut done = 0;
        while done < out.len() {
            match self.file.read(&mut out[done..]) {
                Ok(0) => return Err(NoiseError::Unavailable),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("noise source {}: {e}", self.path.display());
                    return Err(NoiseError::Unavailable);
                }
            }
        }
        Ok(())
    }
}

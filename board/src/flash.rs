//! Secure flash backends: a file or partition with `O_DIRECT` ([`DirectFlash`]) or an MTD
//! device ([`MtdFlash`]), chosen by `[flash] backend`.

pub mod direct;
pub mod mtd;

use gmhsm_platform::{Flash, FlashError, FlashGeometry};

pub use direct::DirectFlash;
pub use mtd::MtdFlash;

use crate::BoardError;
use crate::config::FlashConfig;

/// A read from the RAM mirror both backends keep of the whole device.
pub(crate) fn read_mirror(image: &[u8], addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
    let end = addr.checked_add(out.len()).ok_or(FlashError::OutOfBounds)?;
    out.copy_from_slice(image.get(addr..end).ok_or(FlashError::OutOfBounds)?);
    Ok(())
}

/// Check a write against the mirror before anything reaches the device: word-aligned, in
/// range, and only clearing bits. Returns the end address.
pub(crate) fn check_write(image: &[u8], word: usize, addr: usize, data: &[u8]) -> Result<usize, FlashError> {
    let end = addr.checked_add(data.len()).ok_or(FlashError::OutOfBounds)?;
    if !addr.is_multiple_of(word) || !data.len().is_multiple_of(word) || end > image.len() {
        return Err(FlashError::OutOfBounds);
    }
    if image[addr..end].iter().zip(data).any(|(old, new)| old & new != *new) {
        return Err(FlashError::NotErased);
    }
    Ok(end)
}

/// The configured flash.
pub enum BoardFlash {
    Direct(DirectFlash),
    Mtd(MtdFlash),
}

impl BoardFlash {
    pub fn open(cfg: &FlashConfig) -> Result<Self, BoardError> {
        Ok(match cfg {
            FlashConfig::File { path, page_size, page_count, word_size, create } => {
                let g = FlashGeometry { page_size: *page_size, page_count: *page_count, word_size: *word_size };
                BoardFlash::Direct(DirectFlash::open(path, g, *create)?)
            }
            FlashConfig::Mtd { path, word_size } => BoardFlash::Mtd(MtdFlash::open(path, *word_size)?),
        })
    }
}

impl Flash for BoardFlash {
    fn geometry(&self) -> FlashGeometry {
        match self {
            BoardFlash::Direct(f) => f.geometry(),
            BoardFlash::Mtd(f) => f.geometry(),
        }
    }
    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        match self {
            BoardFlash::Direct(f) => f.read(addr, out),
            BoardFlash::Mtd(f) => f.read(addr, out),
        }
    }
    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        match self {
            BoardFlash::Direct(f) => f.write(addr, data),
            BoardFlash::Mtd(f) => f.write(addr, data),
        }
    }
    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        match self {
            BoardFlash::Direct(f) => f.erase(page),
            BoardFlash::Mtd(f) => f.erase(page),
        }
    }
}

//! Secure flash with NOR semantics: page erase to all ones, word writes that only clear bits.

/// Shape of a flash device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashGeometry {
    /// Bytes per erasable page.
    pub page_size: usize,
    /// Number of pages.
    pub page_count: usize,
    /// Bytes per atomic write unit; writes are aligned to it and a multiple of it long.
    pub word_size: usize,
}

impl FlashGeometry {
    pub fn capacity(&self) -> usize {
        self.page_size * self.page_count
    }
}

/// Why a flash operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashError {
    /// Address or length out of range or not word-aligned; nothing was changed.
    OutOfBounds,
    /// A write tried to set a bit from 0 to 1 (needs an erase first); nothing was changed.
    NotErased,
    /// Power was lost during the operation: any word of it may or may not have been written
    /// (the simulator's power cut). The caller must stop and reboot.
    PowerLoss,
    /// The device failed.
    Io,
}

/// A NOR-like flash.
///
/// Preconditions the store relies on: a word write is atomic (a power cut leaves a word either
/// untouched or fully written); an erase interrupted by a power cut leaves the page in an
/// arbitrary state; a write only clears bits (`new = old & data`) and it is an error to ask
/// for a 0→1 transition.
pub trait Flash {
    fn geometry(&self) -> FlashGeometry;
    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError>;
    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError>;
    fn erase(&mut self, page: usize) -> Result<(), FlashError>;
}

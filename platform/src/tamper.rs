//! Tamper-protected battery-backed RAM holding the device master key, and the tamper switch.

/// Why tamper RAM could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TamperError {
    /// The device failed; the contents are unknown.
    Io,
}

/// A small battery-backed RAM that the tamper circuit zeroizes when the enclosure is opened.
pub trait TamperRam {
    /// Size in bytes.
    const SIZE: usize;

    /// Read the whole RAM into `out` (`out.len() == SIZE`). Zeroized RAM reads as all zeros.
    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError>;

    /// Write the whole RAM (`data.len() == SIZE`); durable when this returns `Ok`.
    fn write(&mut self, data: &[u8]) -> Result<(), TamperError>;

    /// `true` once the tamper switch has fired (latched until the RAM is rewritten).
    fn tamper_event(&mut self) -> bool;
}

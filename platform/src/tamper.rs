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

    /// Size in bytes of the rollback register: a second small area inside the tamper
    /// boundary, apart from the RAM above so that the key in the RAM is never rewritten when
    /// the register is. The card keeps there what lets it tell its flash's current state from
    /// an older copy (a digest of its authenticated records), and writes it once or twice per
    /// change of that state.
    const REGISTER_SIZE: usize;

    /// Read the whole register into `out` (`out.len() == REGISTER_SIZE`). A register never
    /// written, or zeroized by the tamper circuit, reads as all zeros.
    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError>;

    /// Write the whole register (`data.len() == REGISTER_SIZE`): durable when this returns
    /// `Ok`, and atomic: after a power cut at any point a read returns the old contents or
    /// the new, never a mix (a board whose RAM can tear keeps two banks and a sequence).
    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError>;
}

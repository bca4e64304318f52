//! Tamper RAM in a battery-backed nvmem cell (sysfs `/sys/bus/nvmem/devices/*/nvmem`), which
//! the board's tamper circuit clears when the enclosure opens.
//!
//! Layout from the configured offset: the RAM ([`RAM_SIZE`] bytes), then the rollback register
//! as two banks `seq: u32 LE ‖ data (REGISTER_SIZE) ‖ crc32(seq ‖ data) LE`. A register write
//! goes to the bank not holding the current value, with the next sequence number, so a write
//! torn by a power cut leaves the other bank, the old value, intact. A bank whose CRC fails is
//! ignored; an area all zeros (never written, or cleared by the tamper circuit) reads as zeros.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use gmhsm_platform::TamperError;
use zeroize::Zeroizing;

use crate::BoardError;

pub const RAM_SIZE: usize = 64;
pub const REGISTER_SIZE: usize = 96;
const BANK: usize = 4 + REGISTER_SIZE + 4;
/// Bytes of the cell gmhsm uses from its offset.
pub const AREA: usize = RAM_SIZE + 2 * BANK;

pub struct NvmemCell {
    file: File,
    path: PathBuf,
    offset: u64,
}

impl NvmemCell {
    /// Open the cell; it must hold [`AREA`] bytes from `offset`.
    pub fn open(path: &Path, offset: u64) -> Result<Self, BoardError> {
        let file =
            OpenOptions::new().read(true).write(true).open(path).map_err(|e| BoardError::device("nvmem", path, e))?;
        let cell = Self { file, path: path.to_owned(), offset };
        let mut probe = Zeroizing::new([0u8; AREA]);
        cell.file.read_exact_at(&mut probe[..], offset).map_err(|e| {
            BoardError::device(
                "nvmem",
                path,
                std::io::Error::other(format!("cannot read {AREA} bytes at offset {offset}: {e}")),
            )
        })?;
        Ok(cell)
    }

    fn read_at(&self, at: usize, out: &mut [u8]) -> Result<(), TamperError> {
        self.file.read_exact_at(out, self.offset + at as u64).map_err(|e| self.io("read", e))
    }

    fn write_at(&self, at: usize, data: &[u8]) -> Result<(), TamperError> {
        self.file.write_all_at(data, self.offset + at as u64).map_err(|e| self.io("write", e))?;
        self.file.sync_data().map_err(|e| self.io("sync", e))
    }

    fn io(&self, what: &str, e: std::io::Error) -> TamperError {
        log::error!("nvmem {}: {what}: {e}", self.path.display());
        TamperError::Io
    }

    pub fn read_ram(&self, out: &mut [u8]) -> Result<(), TamperError> {
        if out.len() != RAM_SIZE {
            return Err(TamperError::Io);
        }
        self.read_at(0, out)
    }

    pub fn write_ram(&self, data: &[u8]) -> Result<(), TamperError> {
        if data.len() != RAM_SIZE {
            return Err(TamperError::Io);
        }
        self.write_at(0, data)
    }

    /// The valid bank with the highest sequence number: (bank index, seq).
    fn current(&self) -> Result<Option<(usize, u32, [u8; BANK])>, TamperError> {
        let mut best: Option<(usize, u32, [u8; BANK])> = None;
        let mut all_zero = true;
        for i in 0..2 {
            let mut b = [0u8; BANK];
            self.read_at(RAM_SIZE + i * BANK, &mut b)?;
            all_zero &= b.iter().all(|&x| x == 0);
            let seq = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let crc = u32::from_le_bytes([b[BANK - 4], b[BANK - 3], b[BANK - 2], b[BANK - 1]]);
            if crc32fast::hash(&b[..BANK - 4]) == crc && best.is_none_or(|(_, s, _)| seq > s) {
                best = Some((i, seq, b));
            }
        }
        if best.is_none() && !all_zero {
            log::error!("nvmem {}: both register banks are corrupt", self.path.display());
            return Err(TamperError::Io);
        }
        Ok(best)
    }

    pub fn read_register(&self, out: &mut [u8]) -> Result<(), TamperError> {
        if out.len() != REGISTER_SIZE {
            return Err(TamperError::Io);
        }
        match self.current()? {
            Some((_, _, b)) => out.copy_from_slice(&b[4..4 + REGISTER_SIZE]),
            None => out.fill(0),
        }
        Ok(())
    }

    pub fn write_register(&self, data: &[u8]) -> Result<(), TamperError> {
        if data.len() != REGISTER_SIZE {
            return Err(TamperError::Io);
        }
        let (bank, seq) = match self.current()? {
            Some((i, seq, _)) => (1 - i, seq.wrapping_add(1)),
            None => (0, 1),
        };
        let mut b = [0u8; BANK];
        b[..4].copy_from_slice(&seq.to_le_bytes());
        b[4..4 + REGISTER_SIZE].copy_from_slice(data);
        let crc = crc32fast::hash(&b[..BANK - 4]);
        b[BANK - 4..].copy_from_slice(&crc.to_le_bytes());
        self.write_at(RAM_SIZE + bank * BANK, &b)
    }

    /// Clear the RAM and both banks (what the tamper circuit does in hardware).
    pub fn zeroize(&self) -> Result<(), TamperError> {
        self.write_at(0, &[0u8; AREA])
    }
}

//! Flash on an MTD character device (`/dev/mtdN`): geometry from `MEMGETINFO`, erase through
//! `MEMERASE`, reads and writes with `pread` / `pwrite` (the MTD char driver writes through to
//! the chip before returning; there is no page cache to sync).
//!
//! Only NOR and RAM devices are accepted: their writes clear bits like the store expects. NAND
//! pages cannot be partially rewritten and need ECC, which this backend does not do. A mirror
//! in RAM checks that no write asks for a 0→1 transition before anything reaches the chip.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use gmhsm_platform::{Flash, FlashError, FlashGeometry};
use nix::fcntl::{Flock, FlockArg};

use crate::BoardError;

/// `MTD_RAM` and `MTD_NORFLASH` from `<mtd/mtd-abi.h>`.
pub const MTD_RAM: u8 = 1;
pub const MTD_NORFLASH: u8 = 3;
/// `MTD_WRITEABLE` flag.
pub const MTD_WRITEABLE: u32 = 0x400;

/// `struct mtd_info_user` (`<mtd/mtd-abi.h>`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct MtdInfoUser {
    pub kind: u8,
    pub flags: u32,
    pub size: u32,
    pub erasesize: u32,
    pub writesize: u32,
    pub oobsize: u32,
    pub padding: u64,
}

/// `struct erase_info_user`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct EraseInfoUser {
    pub start: u32,
    pub length: u32,
}

/// The two ioctls, the only `unsafe` of this crate.
#[allow(unsafe_code)]
pub mod ioctl {
    use std::os::fd::RawFd;

    use super::{EraseInfoUser, MtdInfoUser};

    nix::ioctl_read!(mem_get_info_raw, b'M', 1, MtdInfoUser);
    nix::ioctl_write_ptr!(mem_erase_raw, b'M', 2, EraseInfoUser);

    /// The request numbers, as `<mtd/mtd-abi.h>` computes them (checked by a test).
    pub const MEMGETINFO: u64 = nix::request_code_read!(b'M', 1, size_of::<MtdInfoUser>()) as u64;
    pub const MEMERASE: u64 = nix::request_code_write!(b'M', 2, size_of::<EraseInfoUser>()) as u64;

    /// `MEMGETINFO` on `fd`.
    pub fn mem_get_info(fd: RawFd) -> nix::Result<MtdInfoUser> {
        let mut info = MtdInfoUser::default();
        // SAFETY: `info` is a live, writable `mtd_info_user` (repr(C), same layout as the
        // kernel's) that the kernel fills; a bad `fd` makes the call fail, nothing else.
        unsafe { mem_get_info_raw(fd, &mut info) }?;
        Ok(info)
    }

    /// `MEMERASE` of `length` bytes at `start` on `fd`; returns when the erase is done.
    pub fn mem_erase(fd: RawFd, start: u32, length: u32) -> nix::Result<()> {
        let req = EraseInfoUser { start, length };
        // SAFETY: `req` is a live `erase_info_user` the kernel only reads during the call.
        unsafe { mem_erase_raw(fd, &req) }?;
        Ok(())
    }
}

pub struct MtdFlash {
    file: Flock<File>,
    path: PathBuf,
    image: Vec<u8>,
    geometry: FlashGeometry,
}

fn mtd_err(path: &Path, e: impl Into<std::io::Error>) -> BoardError {
    BoardError::device("MTD flash", path, e.into())
}

/// Check an MTD's info against what the store needs and derive the geometry.
pub fn geometry_of(info: &MtdInfoUser, word_size: usize) -> Result<FlashGeometry, String> {
    if info.kind != MTD_NORFLASH && info.kind != MTD_RAM {
        return Err(format!("MTD type {} is not NOR flash or RAM (NAND is not supported)", info.kind));
    }
    if info.flags & MTD_WRITEABLE == 0 {
        return Err("the MTD is read-only".into());
    }
    let (erase, write) = (info.erasesize as usize, info.writesize.max(1) as usize);
    if erase == 0 || !(info.size as usize).is_multiple_of(erase) || info.size as usize / erase < 4 {
        return Err(format!("size {} is not at least 4 erase blocks of {erase}", info.size));
    }
    if !word_size.is_multiple_of(write) || !erase.is_multiple_of(word_size) {
        return Err(format!("word size {word_size} does not fit write size {write} and erase size {erase}"));
    }
    Ok(FlashGeometry { page_size: erase, page_count: info.size as usize / erase, word_size })
}

impl MtdFlash {
    pub fn open(path: &Path, word_size: usize) -> Result<Self, BoardError> {
        let file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| mtd_err(path, e))?;
        let file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| mtd_err(path, std::io::Error::other(format!("locked by another process ({e})"))))?;
        let info = ioctl::mem_get_info(file.as_raw_fd()).map_err(|e| mtd_err(path, e))?;
        let geometry = geometry_of(&info, word_size).map_err(|e| mtd_err(path, std::io::Error::other(e)))?;
        let mut image = vec![0u8; geometry.capacity()];
        file.read_exact_at(&mut image, 0).map_err(|e| mtd_err(path, e))?;
        Ok(Self { file, path: path.to_owned(), image, geometry })
    }

    fn io(&self, what: &str, e: impl std::fmt::Display) -> FlashError {
        log::error!("MTD flash {}: {what}: {e}", self.path.display());
        FlashError::Io
    }
}

impl Flash for MtdFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        super::read_mirror(&self.image, addr, out)
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        let end = super::check_write(&self.image, self.geometry.word_size, addr, data)?;
        self.file.write_all_at(data, addr as u64).map_err(|e| self.io("write", e))?;
        self.image[addr..end].copy_from_slice(data);
        Ok(())
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if page >= self.geometry.page_count {
            return Err(FlashError::OutOfBounds);
        }
        let ps = self.geometry.page_size;
        ioctl::mem_erase(self.file.as_raw_fd(), (page * ps) as u32, ps as u32).map_err(|e| self.io("MEMERASE", e))?;
        self.image[page * ps..(page + 1) * ps].fill(0xff);
        Ok(())
    }
}

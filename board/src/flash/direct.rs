//! Flash on a file or a block partition opened with `O_DIRECT`, NOR semantics emulated over it.
//!
//! The whole device is mirrored in RAM for reads (as the simulator's flash is). A write or an
//! erase goes to the device first — every touched [`BLOCK`] rewritten from an aligned buffer,
//! past the page cache — then `fdatasync`, and only then changes the mirror: what a read
//! returns is on the medium. The store's atomic unit is a word (4..=64 bytes, aligned), which
//! never spans a 512-byte sector, and drives write sectors whole: a power cut leaves each word
//! old or new.
//!
//! The device is locked (`flock`, exclusive) while open: two card processes on one flash
//! would corrupt it.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use gmhsm_platform::{Flash, FlashError, FlashGeometry};
use nix::fcntl::{Flock, FlockArg, OFlag};

use crate::BoardError;

/// The `O_DIRECT` transfer unit: buffers, offsets and lengths are multiples of it (4 KiB
/// covers 512-byte and 4 KiB logical sectors).
pub const BLOCK: usize = 4096;

/// One aligned transfer buffer.
#[repr(C, align(4096))]
struct Aligned([u8; BLOCK]);

pub struct DirectFlash {
    file: Flock<File>,
    path: PathBuf,
    image: Vec<u8>,
    geometry: FlashGeometry,
    scratch: Box<Aligned>,
}

fn flash_err(path: &Path, e: impl Into<std::io::Error>) -> BoardError {
    BoardError::device("flash", path, e.into())
}

impl DirectFlash {
    /// Open the file or partition at `path` with `geometry` (page size a multiple of
    /// [`BLOCK`]). A missing file is created erased when `create` is set; an existing file
    /// must have exactly the capacity, a block device at least it.
    pub fn open(path: &Path, geometry: FlashGeometry, create: bool) -> Result<Self, BoardError> {
        let cap = geometry.capacity();
        if geometry.page_size == 0 || !geometry.page_size.is_multiple_of(BLOCK) || geometry.page_count == 0 {
            return Err(BoardError::Config(format!(
                "flash {}: page size {} is not a multiple of {BLOCK}",
                path.display(),
                geometry.page_size
            )));
        }
        let fresh = match std::fs::symlink_metadata(path) {
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => true,
            Err(e) => return Err(flash_err(path, e)),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(fresh)
            .truncate(false)
            .custom_flags(OFlag::O_DIRECT.bits())
            .open(path)
            .map_err(|e| flash_err(path, e))?;
        let mut file = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, e)| flash_err(path, std::io::Error::other(format!("locked by another process ({e})"))))?;
        let meta = file.metadata().map_err(|e| flash_err(path, e))?;
        let size = if meta.file_type().is_block_device() {
            file.seek(SeekFrom::End(0)).map_err(|e| flash_err(path, e))?
        } else if meta.file_type().is_file() {
            meta.len()
        } else {
            return Err(flash_err(path, std::io::Error::other("neither a regular file nor a block device")));
        };
        let mut flash = Self {
            file,
            path: path.to_owned(),
            image: vec![0xff; cap],
            geometry,
            scratch: Box::new(Aligned([0xff; BLOCK])),
        };
        let ok_size = if meta.file_type().is_file() { size == cap as u64 } else { size >= cap as u64 };
        if fresh || (size == 0 && meta.file_type().is_file()) {
            for page in 0..geometry.page_count {
                flash.put(page * geometry.page_size, None).map_err(|e| flash_err(path, e))?;
            }
            flash.file.sync_all().map_err(|e| flash_err(path, e))?;
            sync_parent(path);
        } else if !ok_size {
            return Err(flash_err(
                path,
                std::io::Error::other(format!("has {size} bytes, the configured geometry needs {cap}")),
            ));
        } else {
            flash.load().map_err(|e| flash_err(path, e))?;
        }
        Ok(flash)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the whole device into the mirror.
    fn load(&mut self) -> std::io::Result<()> {
        for (i, chunk) in self.image.chunks_mut(BLOCK).enumerate() {
            self.file.read_exact_at(&mut self.scratch.0, (i * BLOCK) as u64)?;
            chunk.copy_from_slice(&self.scratch.0[..chunk.len()]);
        }
        Ok(())
    }

    /// Write the pages' blocks from `start` (block-aligned) covering one page: erased (`None`)
    /// or the mirror with `data` laid over at `addr`. Not synced.
    fn put(&mut self, start: usize, data: Option<(usize, &[u8])>) -> std::io::Result<()> {
        let end = match data {
            Some((addr, d)) => (addr + d.len()).next_multiple_of(BLOCK),
            None => start + self.geometry.page_size,
        };
        for block in (start..end).step_by(BLOCK) {
            let buf = &mut self.scratch.0;
            match data {
                None => buf.fill(0xff),
                Some((addr, d)) => {
                    buf.copy_from_slice(&self.image[block..block + BLOCK]);
                    let lo = addr.max(block);
                    let hi = (addr + d.len()).min(block + BLOCK);
                    buf[lo - block..hi - block].copy_from_slice(&d[lo - addr..hi - addr]);
                }
            }
            self.file.write_all_at(buf, block as u64)?;
        }
        Ok(())
    }

    fn io(&self, what: &str, e: std::io::Error) -> FlashError {
        log::error!("flash {}: {what}: {e}", self.path.display());
        FlashError::Io
    }
}

/// Make a new file's directory entry durable (best effort: the file itself is synced).
fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() { Path::new(".") } else { dir })
    {
        let _ = d.sync_all();
    }
}

impl Flash for DirectFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        super::read_mirror(&self.image, addr, out)
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        let end = super::check_write(&self.image, self.geometry.word_size, addr, data)?;
        if data.is_empty() {
            return Ok(());
        }
        let start = addr - addr % BLOCK;
        self.put(start, Some((addr, data))).map_err(|e| self.io("write", e))?;
        self.file.sync_data().map_err(|e| self.io("fdatasync", e))?;
        self.image[addr..end].copy_from_slice(data);
        Ok(())
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if page >= self.geometry.page_count {
            return Err(FlashError::OutOfBounds);
        }
        let ps = self.geometry.page_size;
        self.put(page * ps, None).map_err(|e| self.io("erase", e))?;
        self.file.sync_data().map_err(|e| self.io("fdatasync", e))?;
        self.image[page * ps..(page + 1) * ps].fill(0xff);
        Ok(())
    }
}

//! Simulated secure flash: a file with NOR semantics, every write and erase made durable
//! (fdatasync) before it returns, and optional power cuts for tests.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use gmhsm_platform::{Flash, FlashError, FlashGeometry};

/// Default geometry: 2048 pages of 4 KiB (8 MiB), 4-byte words.
pub const DEFAULT_GEOMETRY: FlashGeometry = FlashGeometry { page_size: 4096, page_count: 2048, word_size: 4 };

/// Flash backed by a file. The whole image is mirrored in memory for reads; writes go to the
/// file first and are synced before the mirror changes, so what a read returns is on disk.
pub struct FileFlash {
    file: File,
    image: Vec<u8>,
    geometry: FlashGeometry,
    /// Word writes and erases left before a simulated power cut (`None`: never).
    cut_after: Option<u64>,
}

impl FileFlash {
    /// Open (or create, erased) the flash image at `path`.
    pub fn open(path: &Path, geometry: FlashGeometry) -> std::io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        let cap = geometry.capacity();
        let mut image = Vec::new();
        file.read_to_end(&mut image)?;
        if image.len() != cap {
            if !image.is_empty() {
                return Err(std::io::Error::other(format!(
                    "flash image {} has {} bytes, expected {cap}",
                    path.display(),
                    image.len()
                )));
            }
            image = vec![0xff; cap];
            file.write_all(&image)?;
            file.sync_all()?;
        }
        Ok(Self { file, image, geometry, cut_after: None })
    }

    /// Cut power after `n` more word writes / page erases (tests).
    pub fn cut_power_after(&mut self, n: u64) {
        self.cut_after = Some(n);
    }

    fn persist(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        self.file.seek(SeekFrom::Start(addr as u64)).map_err(|_| FlashError::Io)?;
        self.file.write_all(data).map_err(|_| FlashError::Io)?;
        self.file.sync_data().map_err(|_| FlashError::Io)?;
        self.image[addr..addr + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn tick(&mut self) -> bool {
        match &mut self.cut_after {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

impl Flash for FileFlash {
    fn geometry(&self) -> FlashGeometry {
        self.geometry
    }

    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        let end = addr.checked_add(out.len()).ok_or(FlashError::OutOfBounds)?;
        out.copy_from_slice(self.image.get(addr..end).ok_or(FlashError::OutOfBounds)?);
        Ok(())
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        let w = self.geometry.word_size;
        let end = addr.checked_add(data.len()).ok_or(FlashError::OutOfBounds)?;
        if !addr.is_multiple_of(w) || !data.len().is_multiple_of(w) || end > self.image.len() {
            return Err(FlashError::OutOfBounds);
        }
        if self.image[addr..end].iter().zip(data).any(|(old, new)| old & new != *new) {
            return Err(FlashError::NotErased);
        }
        if self.cut_after.is_none() {
            // One write and one sync for the whole range: a record costs one fdatasync, not
            // one per word. A process killed meanwhile leaves a prefix of it on disk, which the
            // store treats as the power cut it is.
            return self.persist(addr, data);
        }
        for (i, word) in data.chunks(w).enumerate() {
            if self.tick() {
                return Err(FlashError::PowerLoss);
            }
            self.persist(addr + i * w, word)?;
        }
        Ok(())
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        if page >= self.geometry.page_count {
            return Err(FlashError::OutOfBounds);
        }
        if self.tick() {
            return Err(FlashError::PowerLoss);
        }
        let ps = self.geometry.page_size;
        self.persist(page * ps, &vec![0xff; ps])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nor_semantics_and_persistence() {
        let dir = std::env::temp_dir().join(format!("gmhsm-flash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("flash.img");
        let g = FlashGeometry { page_size: 256, page_count: 4, word_size: 4 };
        let mut f = FileFlash::open(&path, g).unwrap();
        f.write(8, &[0x0f, 0xf0, 0x00, 0xff]).unwrap();
        assert_eq!(f.write(8, &[0xff, 0xff, 0xff, 0xff]), Err(FlashError::NotErased));
        assert_eq!(f.write(9, &[0; 4]), Err(FlashError::OutOfBounds));
        assert_eq!(f.write(1024, &[0; 4]), Err(FlashError::OutOfBounds));
        drop(f);
        let mut f = FileFlash::open(&path, g).unwrap();
        let mut b = [0u8; 4];
        f.read(8, &mut b).unwrap();
        assert_eq!(b, [0x0f, 0xf0, 0x00, 0xff]);
        f.erase(0).unwrap();
        f.read(8, &mut b).unwrap();
        assert_eq!(b, [0xff; 4]);
        f.cut_power_after(1);
        assert_eq!(f.write(16, &[0; 8]), Err(FlashError::PowerLoss));
        f.read(16, &mut b).unwrap();
        assert_eq!(b, [0; 4], "first word written before the cut");
        f.read(20, &mut b).unwrap();
        assert_eq!(b, [0xff; 4], "second word not written");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

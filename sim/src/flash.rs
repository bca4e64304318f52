//! Simulated secure flash: a file with NOR semantics, every write and erase made durable
//! (fdatasync) before it returns, and optional power cuts for tests (the model's).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use std::ops::Range;

use gmhsm_platform::sim::RamFlash;
use gmhsm_platform::{Flash, FlashError, FlashGeometry};

/// Default geometry: 2048 pages of 4 KiB (8 MiB), 4-byte words.
pub const DEFAULT_GEOMETRY: FlashGeometry = FlashGeometry { page_size: 4096, page_count: 2048, word_size: 4 };

/// Flash backed by a file: the power-cut NOR model of `gmhsm-platform` ([`RamFlash`]) holds
/// the image and decides what each operation (and each simulated power cut) leaves; this keeps
/// the file in step, syncing every change before it returns. If the file cannot be written,
/// the flash loses power (every later operation fails until it is opened again), so a read
/// never returns what is not on disk.
pub struct FileFlash {
    file: File,
    model: RamFlash,
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
        Ok(Self { file, model: RamFlash::from_image(image, geometry, 1) })
    }

    /// Cut power after `n` more word writes / page erases (tests).
    pub fn cut_power_after(&mut self, n: u64) {
        self.model.cut_after(n);
    }

    /// Power back after a cut (tests): the image as the cut left it, on disk too.
    pub fn reboot(&mut self) {
        self.model.reboot();
    }

    /// Write what the model holds at `range` to the file and sync it: one write and one
    /// fdatasync per operation (a record costs one sync, not one per word). A process killed
    /// meanwhile leaves a prefix of it on disk, which the store treats as the power cut it is.
    fn persist(&mut self, range: Range<usize>, result: Result<(), FlashError>) -> Result<(), FlashError> {
        let synced = self
            .file
            .seek(SeekFrom::Start(range.start as u64))
            .and_then(|_| self.file.write_all(&self.model.image()[range]))
            .and_then(|()| self.file.sync_data());
        if synced.is_err() {
            self.model.power_off();
            return Err(FlashError::Io);
        }
        result
    }
}

impl Flash for FileFlash {
    fn geometry(&self) -> FlashGeometry {
        self.model.geometry()
    }

    fn read(&self, addr: usize, out: &mut [u8]) -> Result<(), FlashError> {
        self.model.read(addr, out)
    }

    fn write(&mut self, addr: usize, data: &[u8]) -> Result<(), FlashError> {
        match self.model.write(addr, data) {
            // Written, or cut part-way: what the model now holds goes to disk.
            r @ (Ok(()) | Err(FlashError::PowerLoss)) => self.persist(addr..addr + data.len(), r),
            // Refused: nothing changed.
            Err(e) => Err(e),
        }
    }

    fn erase(&mut self, page: usize) -> Result<(), FlashError> {
        let ps = self.model.geometry().page_size;
        match self.model.erase(page) {
            r @ (Ok(()) | Err(FlashError::PowerLoss)) if page < self.model.geometry().page_count => {
                self.persist(page * ps..(page + 1) * ps, r)
            }
            r => r,
        }
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
        assert_eq!(f.write(16, &[0; 12]), Err(FlashError::PowerLoss));
        assert_eq!(f.read(16, &mut b), Err(FlashError::PowerLoss), "no power after the cut");
        f.reboot();
        let before = std::fs::read(&path).unwrap();
        assert_eq!(&before[16..20], &[0; 4], "first word written before the cut, on disk");
        assert_eq!(&before[24..28], &[0xff; 4], "third word never written");
        drop(f);
        // What the cut left is what a reopened flash reads.
        let f = FileFlash::open(&path, g).unwrap();
        let mut word = [0u8; 8];
        f.read(16, &mut word).unwrap();
        assert_eq!(&word[..], &before[16..24]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

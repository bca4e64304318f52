//! Simulated tamper RAM (a small file, synced on every write) and tamper switch (a trip file
//! whose presence is the enclosure-open signal).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use gmhsm_platform::{TamperError, TamperRam};

pub struct FileTamperRam {
    path: PathBuf,
    trip: PathBuf,
}

impl FileTamperRam {
    /// RAM contents in `dir/tamper.ram`; the switch trips when `dir/tamper.trip` exists.
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("tamper.ram"), trip: dir.join("tamper.trip") }
    }
}

impl TamperRam for FileTamperRam {
    const SIZE: usize = 64;

    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        out.fill(0);
        match fs::read(&self.path) {
            Ok(data) if data.len() == out.len() => out.copy_from_slice(&data),
            Ok(_) => return Err(TamperError::Io),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => return Err(TamperError::Io),
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(|_| TamperError::Io)?;
        f.write_all(data).map_err(|_| TamperError::Io)?;
        f.sync_all().map_err(|_| TamperError::Io)?;
        fs::rename(&tmp, &self.path).map_err(|_| TamperError::Io)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn tamper_event(&mut self) -> bool {
        if self.trip.exists() {
            // The latch is consumed: the firmware zeroizes right after seeing it.
            let _ = fs::remove_file(&self.trip);
            return true;
        }
        false
    }
}

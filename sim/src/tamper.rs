//! Simulated tamper RAM and rollback register (small files, each replaced atomically and
//! synced on every write) and tamper switch (a trip file whose presence is the enclosure-open
//! signal).
//!
//! The switch is a latch, like the hardware line: a watcher thread looks for the trip file
//! every [`POLL`], consumes it and sets a flag, which the card reads (an atomic load) on every
//! request. Looking for the file on the request path itself cost a `stat` of a path per request
//! inside the card's lock (1–2 µs, the largest non-crypto cost of a signature).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gmhsm_platform::{TamperError, TamperRam};

/// How often the watcher looks for the trip file.
const POLL: Duration = Duration::from_millis(1);

pub struct FileTamperRam {
    path: PathBuf,
    /// The rollback register's file.
    register: PathBuf,
    /// Set once per trip by the watcher (or at construction), taken by `tamper_event`.
    tripped: Arc<AtomicBool>,
    /// The trip file, checked on every event only if the watcher could not be started.
    unwatched: Option<PathBuf>,
}

impl FileTamperRam {
    /// RAM contents in `dir/tamper.ram`; the switch trips when `dir/tamper.trip` exists (checked
    /// now, then by a watcher thread that ends with this value).
    pub fn new(dir: &Path) -> Self {
        let trip = dir.join("tamper.trip");
        let tripped = Arc::new(AtomicBool::new(consume(&trip)));
        let weak: Weak<AtomicBool> = Arc::downgrade(&tripped);
        let watched = trip.clone();
        let spawned = std::thread::Builder::new().name("tamper-switch".into()).spawn(move || {
            let trip = watched;
            while let Some(flag) = weak.upgrade() {
                if consume(&trip) {
                    flag.store(true, Ordering::SeqCst);
                }
                drop(flag);
                std::thread::sleep(POLL);
            }
        });
        let unwatched = match spawned {
            Ok(_) => None,
            Err(e) => {
                log::error!("tamper switch: cannot start its watcher ({e}); checking on every request");
                Some(trip)
            }
        };
        Self { path: dir.join("tamper.ram"), register: dir.join("tamper.reg"), tripped, unwatched }
    }
}

/// Whether the trip file was there; it is removed (the latch is consumed once).
fn consume(trip: &Path) -> bool {
    if trip.exists() {
        let _ = fs::remove_file(trip);
        return true;
    }
    false
}

/// Read a whole area from `path` (absent: all zeros).
fn read_area(path: &Path, out: &mut [u8]) -> Result<(), TamperError> {
    out.fill(0);
    match fs::read(path) {
        Ok(data) if data.len() == out.len() => out.copy_from_slice(&data),
        Ok(_) => return Err(TamperError::Io),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return Err(TamperError::Io),
    }
    Ok(())
}

/// Replace `path` with `data` atomically (a synced temporary file renamed over it).
fn write_area(path: &Path, data: &[u8]) -> Result<(), TamperError> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp).map_err(|_| TamperError::Io)?;
    f.write_all(data).map_err(|_| TamperError::Io)?;
    f.sync_all().map_err(|_| TamperError::Io)?;
    fs::rename(&tmp, path).map_err(|_| TamperError::Io)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

impl TamperRam for FileTamperRam {
    const SIZE: usize = 64;
    const REGISTER_SIZE: usize = 96;

    fn read(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        read_area(&self.path, out)
    }

    fn write(&mut self, data: &[u8]) -> Result<(), TamperError> {
        write_area(&self.path, data)
    }

    fn read_register(&mut self, out: &mut [u8]) -> Result<(), TamperError> {
        read_area(&self.register, out)
    }

    fn write_register(&mut self, data: &[u8]) -> Result<(), TamperError> {
        write_area(&self.register, data)
    }

    fn tamper_event(&mut self) -> bool {
        // Taken once: the firmware zeroizes right after seeing it.
        self.tripped.swap(false, Ordering::SeqCst) || self.unwatched.as_deref().is_some_and(consume)
    }
}

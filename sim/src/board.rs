//! The simulated board: which simulated device stands behind each platform trait.

use std::path::Path;

use gmhsm_platform::{Devices, Platform};

use crate::clock::SimClock;
use crate::flash::{DEFAULT_GEOMETRY, FileFlash};
use crate::noise::{NoiseFault, SimNoise};
use crate::tamper::FileTamperRam;

pub struct SimPlatform;

impl Platform for SimPlatform {
    type Noise = SimNoise;
    type Flash = FileFlash;
    type Tamper = FileTamperRam;
    type Clock = SimClock;

    /// Both on `rayon`'s pool (one thread per core, started at the first call and asleep
    /// when idle): no thread is created per call (a scoped thread per call cost as much as it
    /// saved); a panic in either is raised again in the caller.
    fn join<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        rayon::join(a, b)
    }
}

/// The devices of a card whose state lives in `dir` (flash image, tamper RAM).
pub fn devices(dir: &Path, fault: Option<NoiseFault>) -> std::io::Result<Devices<SimPlatform>> {
    Ok(Devices {
        noise: SimNoise::new(fault),
        flash: FileFlash::open(&dir.join("flash.img"), DEFAULT_GEOMETRY)?,
        tamper: FileTamperRam::new(dir),
        clock: SimClock::default(),
    })
}

//! Time: `CLOCK_MONOTONIC` for the card (what [`Clock`] asks for: never backwards), and the
//! battery-backed RTC for wall time (the audit trail's dates, certificate checks).

use std::path::{Path, PathBuf};

use gmhsm_platform::Clock;
use nix::time::{ClockId, clock_gettime};

use crate::BoardError;

/// The board's clocks.
pub struct LinuxClock {
    origin_ms: u64,
    rtc: PathBuf,
}

fn monotonic_ms() -> u64 {
    // CLOCK_MONOTONIC cannot fail on Linux for a valid clock id; 0 is never returned twice in
    // a row as a regression since `now_ms` keeps the origin it started from.
    match clock_gettime(ClockId::CLOCK_MONOTONIC) {
        Ok(t) => (t.tv_sec() as u64).saturating_mul(1000) + (t.tv_nsec() as u64) / 1_000_000,
        Err(_) => 0,
    }
}

impl LinuxClock {
    /// Monotonic time from now on; wall time from the RTC whose sysfs directory is `rtc`
    /// (checked to be readable now).
    pub fn open(rtc: &Path) -> Result<Self, BoardError> {
        let clock = Self::monotonic_only(rtc);
        clock.wall_secs()?;
        Ok(clock)
    }

    /// Monotonic time only; [`LinuxClock::wall_secs`] fails until the RTC appears.
    pub fn monotonic_only(rtc: &Path) -> Self {
        Self { origin_ms: monotonic_ms(), rtc: rtc.to_owned() }
    }

    /// Seconds since the Unix epoch from the RTC (`since_epoch`, UTC).
    pub fn wall_secs(&self) -> Result<u64, BoardError> {
        let path = self.rtc.join("since_epoch");
        let text = std::fs::read_to_string(&path).map_err(|e| BoardError::device("RTC", &path, e))?;
        text.trim().parse().map_err(|_| {
            BoardError::device(
                "RTC",
                &path,
                std::io::Error::other(format!("not a number of seconds: {:?}", text.trim())),
            )
        })
    }
}

impl Clock for LinuxClock {
    fn now_ms(&self) -> u64 {
        monotonic_ms().saturating_sub(self.origin_ms)
    }
}

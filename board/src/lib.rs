//! gmhsm-board: the Linux device backends of a real gmhsm appliance, one per trait of
//! `gmhsm-platform`, chosen in `/etc/gmhsm/appliance.toml` ([`config`]).
//!
//! | trait | backend |
//! |---|---|
//! | [`NoiseSource`](gmhsm_platform::NoiseSource) | [`noise::HwRng`]: `/dev/hwrng`, raw samples |
//! | [`Flash`](gmhsm_platform::Flash) | [`flash::DirectFlash`] (file or partition, `O_DIRECT` + `fdatasync`) or [`flash::MtdFlash`] (MTD ioctls) |
//! | [`TamperRam`](gmhsm_platform::TamperRam) | [`tamper::NvmemCell`] (battery-backed nvmem) or [`tamper::TpmStore`] (key sealed to the TPM 2.0), with a GPIO tamper switch |
//! | [`Clock`](gmhsm_platform::Clock) | [`clock::LinuxClock`]: `CLOCK_MONOTONIC`, wall time from the RTC |
//! | [`TextDisplay`](gmhsm_platform::TextDisplay) | [`lcd::I2cLcd`]: `gmhsm-lcd`'s HD44780 driver on `/dev/i2c-N` |
//! | [`Keypad`](gmhsm_platform::Keypad) | [`keypad::EvdevKeypad`]: an evdev input device |
//!
//! The card runtime takes [`LinuxBoard::open`]'s devices; the daemon's front panel takes
//! [`LinuxPanel::open`]'s (least privilege: neither opens the other's devices).
//!
//! `unsafe` exists only in the two MTD ioctl wrappers (`flash::mtd::ioctl`).
#![deny(unsafe_code)]

pub mod clock;
pub mod config;
pub mod flash;
pub mod keypad;
pub mod lcd;
pub mod noise;
pub mod tamper;

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use gmhsm_platform::{Devices, Platform};

pub use config::ApplianceConfig;

use crate::clock::LinuxClock;
use crate::flash::BoardFlash;
use crate::keypad::EvdevKeypad;
use crate::lcd::I2cLcd;
use crate::noise::HwRng;
use crate::tamper::BoardTamper;

/// Why the board could not be assembled. Messages name the device and path; nothing secret.
#[derive(Debug)]
pub enum BoardError {
    /// The configuration is unreadable or invalid.
    Config(String),
    /// A device is missing or refused.
    Device { what: &'static str, path: PathBuf, source: std::io::Error },
    /// The TPM refused or is unreachable.
    Tpm(String),
}

impl BoardError {
    pub(crate) fn device(what: &'static str, path: &Path, source: std::io::Error) -> Self {
        BoardError::Device { what, path: path.to_owned(), source }
    }
}

impl fmt::Display for BoardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BoardError::Config(m) => write!(f, "appliance configuration: {m}"),
            BoardError::Device { what, path, source } => write!(f, "{what} {}: {source}", path.display()),
            BoardError::Tpm(m) => write!(f, "TPM: {m}"),
        }
    }
}

impl std::error::Error for BoardError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BoardError::Device { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The appliance's board as the card sees it.
pub struct LinuxPlatform;

impl Platform for LinuxPlatform {
    type Noise = HwRng;
    type Flash = BoardFlash;
    type Tamper = BoardTamper;
    type Clock = LinuxClock;

    /// On `rayon`'s pool, as the simulator's board: no thread per call.
    fn join<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        rayon::join(a, b)
    }
}

/// The card's devices, opened from the configuration.
pub struct LinuxBoard {
    pub devices: Devices<LinuxPlatform>,
}

impl LinuxBoard {
    /// Open noise source, flash, tamper RAM (with its switch) and clock. The RTC is not
    /// required here (the card needs only monotonic time); a missing one is logged.
    pub fn open(cfg: &ApplianceConfig) -> Result<Self, BoardError> {
        let noise = HwRng::open(&cfg.noise.path, cfg.noise.min_entropy_bits)?;
        let flash = BoardFlash::open(&cfg.flash)?;
        let tamper = BoardTamper::open(&cfg.tamper)?;
        if let config::TamperConfig::Tpm { switch: None, .. } = &cfg.tamper {
            log::warn!("tamper: no [tamper.switch]: opening the enclosure does not zeroize the TPM-sealed key");
        }
        let clock = LinuxClock::monotonic_only(&cfg.clock.rtc);
        if let Err(e) = clock.wall_secs() {
            log::warn!("no wall time: {e}");
        }
        Ok(Self { devices: Devices { noise, flash, tamper, clock } })
    }

    /// Read `path` (normally [`config::DEFAULT_PATH`]) and open the board it describes.
    pub fn open_path(path: &Path) -> Result<Self, BoardError> {
        Self::open(&ApplianceConfig::load(path)?)
    }

    pub fn into_devices(self) -> Devices<LinuxPlatform> {
        self.devices
    }
}

/// The front panel's devices (the daemon's, never the card's).
pub struct LinuxPanel {
    pub display: I2cLcd,
    pub keypad: EvdevKeypad<File>,
    pub clock: LinuxClock,
}

impl LinuxPanel {
    /// Open and initialize the LCD, open the keypad; the RTC must answer.
    pub fn open(cfg: &ApplianceConfig) -> Result<Self, BoardError> {
        let display = lcd::open(&cfg.lcd)?;
        let keypad = EvdevKeypad::open(&cfg.keypad.path)?;
        let clock = LinuxClock::open(&cfg.clock.rtc)?;
        Ok(Self { display, keypad, clock })
    }
}

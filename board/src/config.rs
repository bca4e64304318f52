//! `/etc/gmhsm/appliance.toml`: which Linux device stands behind each platform trait.
//!
//! Every table and field has a default (`board/appliance.example.toml` spells them all out and a
//! test checks that it equals [`ApplianceConfig::default`]); unknown fields are refused, so a
//! misspelt key is an error rather than a silently ignored setting.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::BoardError;

/// Where the configuration lives on an appliance.
pub const DEFAULT_PATH: &str = "/etc/gmhsm/appliance.toml";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ApplianceConfig {
    pub noise: NoiseConfig,
    pub flash: FlashConfig,
    pub tamper: TamperConfig,
    pub clock: ClockConfig,
    pub lcd: LcdConfig,
    pub keypad: KeypadConfig,
}

impl ApplianceConfig {
    /// Parse TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, BoardError> {
        let cfg: ApplianceConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(String::new(), |s| {
                format!("line {}: ", text.get(..s.start).map_or(0, |t| t.matches('\n').count()) + 1)
            });
            BoardError::Config(format!("{origin}: {line}{}", e.message().trim().replace('\n', "; ")))
        })?;
        cfg.check().map_err(|e| BoardError::Config(format!("{origin}: {e}")))?;
        Ok(cfg)
    }

    /// Read and parse the file at `path`.
    pub fn load(path: &Path) -> Result<Self, BoardError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| BoardError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Checks serde cannot express: ranges and shapes.
    fn check(&self) -> Result<(), String> {
        if !(1..=8).contains(&self.noise.min_entropy_bits) {
            return Err(format!("noise.min_entropy_bits = {} is not in 1..=8", self.noise.min_entropy_bits));
        }
        let (page_size, word_size) = match &self.flash {
            FlashConfig::File { page_size, word_size, page_count, .. } => {
                if *page_count < 4 {
                    return Err(format!("flash.page_count = {page_count}: at least 4 pages"));
                }
                if !page_size.is_multiple_of(crate::flash::direct::BLOCK) {
                    return Err(format!(
                        "flash.page_size = {page_size}: a file or partition opened with O_DIRECT needs a multiple of {}",
                        crate::flash::direct::BLOCK
                    ));
                }
                (*page_size, *word_size)
            }
            FlashConfig::Mtd { word_size, .. } => (4096, *word_size),
        };
        if !word_size.is_power_of_two() || !(4..=64).contains(&word_size) || !page_size.is_multiple_of(word_size) {
            return Err(format!("flash.word_size = {word_size}: a power of two in 4..=64 dividing the page size"));
        }
        if let TamperConfig::Tpm { ram_handle, register_index, .. } = &self.tamper {
            if !(0x8100_0000..=0x81FF_FFFF).contains(ram_handle) {
                return Err(format!("tamper.ram_handle = {ram_handle:#x} is not a persistent handle (0x81xxxxxx)"));
            }
            if !(0x0100_0000..=0x01FF_FFFF).contains(register_index) {
                return Err(format!("tamper.register_index = {register_index:#x} is not an NV index (0x01xxxxxx)"));
            }
        }
        if self.lcd.address > 0x7f {
            return Err(format!("lcd.address = {:#x} is not a 7-bit I2C address", self.lcd.address));
        }
        Ok(())
    }
}

/// The noise source: the kernel's hardware RNG character device, read raw.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    pub path: PathBuf,
    /// Claimed min-entropy per 8-bit sample (1..=8), from the source's entropy assessment; the
    /// card's health-test cutoffs are derived from it.
    pub min_entropy_bits: u8,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("/dev/hwrng"), min_entropy_bits: 4 }
    }
}

/// Secure flash.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum FlashConfig {
    /// A file or a block partition, opened with `O_DIRECT` and synced with `fdatasync`; NOR
    /// semantics are emulated over it.
    File {
        path: PathBuf,
        #[serde(default = "default_page_size")]
        page_size: usize,
        #[serde(default = "default_page_count")]
        page_count: usize,
        #[serde(default = "default_word_size")]
        word_size: usize,
        /// Create the file (erased, all ones) if it does not exist. Never for a partition.
        #[serde(default = "default_true")]
        create: bool,
    },
    /// An MTD character device (`/dev/mtdN`), NOR or RAM type: geometry from `MEMGETINFO`.
    Mtd {
        path: PathBuf,
        #[serde(default = "default_word_size")]
        word_size: usize,
    },
}

fn default_page_size() -> usize {
    4096
}
fn default_page_count() -> usize {
    2048
}
fn default_word_size() -> usize {
    4
}
fn default_true() -> bool {
    true
}

impl Default for FlashConfig {
    fn default() -> Self {
        FlashConfig::File {
            path: PathBuf::from("/var/lib/gmhsm/flash.img"),
            page_size: default_page_size(),
            page_count: default_page_count(),
            word_size: default_word_size(),
            create: true,
        }
    }
}

/// Tamper RAM (the device master key) and the rollback register.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum TamperConfig {
    /// A battery-backed nvmem cell (sysfs `.../nvmem`), which the board's tamper circuit clears.
    Nvmem {
        path: PathBuf,
        /// Byte offset of gmhsm's area inside the cell.
        #[serde(default)]
        offset: u64,
        switch: Option<SwitchConfig>,
    },
    /// The key sealed to the board's TPM 2.0, the register in a TPM NV index.
    Tpm {
        /// TCTI string as tpm2-tss takes it (`device:/dev/tpmrm0`, `swtpm:host=…,port=…`).
        #[serde(default = "default_tcti")]
        tcti: String,
        /// Persistent handle of the sealed key object.
        #[serde(default = "default_ram_handle")]
        ram_handle: u32,
        /// NV index of the rollback register.
        #[serde(default = "default_register_index")]
        register_index: u32,
        switch: Option<SwitchConfig>,
    },
}

fn default_tcti() -> String {
    "device:/dev/tpmrm0".into()
}
fn default_ram_handle() -> u32 {
    0x8101_0047
}
fn default_register_index() -> u32 {
    0x0150_0047
}

impl Default for TamperConfig {
    fn default() -> Self {
        TamperConfig::Tpm {
            tcti: default_tcti(),
            ram_handle: default_ram_handle(),
            register_index: default_register_index(),
            switch: Some(SwitchConfig::default()),
        }
    }
}

/// The enclosure's tamper switch on a GPIO line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchConfig {
    /// GPIO character device.
    pub chip: PathBuf,
    /// Line offset on the chip.
    pub line: u32,
    /// Which edge means "enclosure opened".
    pub edge: Edge,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self { chip: PathBuf::from("/dev/gpiochip0"), line: 17, edge: Edge::Rising }
    }
}

/// A signal edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Edge {
    Rising,
    Falling,
    Both,
}

/// The clock: monotonic time for the card, the RTC for wall time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClockConfig {
    /// The RTC's sysfs directory (`since_epoch` is read from it).
    pub rtc: PathBuf,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self { rtc: PathBuf::from("/sys/class/rtc/rtc0") }
    }
}

/// The front-panel LCD: an HD44780 behind a PCF8574 I2C backpack.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LcdConfig {
    pub bus: PathBuf,
    pub address: u8,
    pub geometry: LcdGeometry,
}

impl Default for LcdConfig {
    fn default() -> Self {
        Self {
            bus: PathBuf::from("/dev/i2c-1"),
            address: gmhsm_lcd::hd44780::DEFAULT_ADDRESS,
            geometry: LcdGeometry::Lcd20x4,
        }
    }
}

/// Panel size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum LcdGeometry {
    #[serde(rename = "16x2")]
    Lcd16x2,
    #[serde(rename = "20x4")]
    Lcd20x4,
}

/// The front-panel keypad: an evdev input device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeypadConfig {
    pub path: PathBuf,
}

impl Default for KeypadConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("/dev/input/by-id/gmhsm-keypad-event-kbd") }
    }
}

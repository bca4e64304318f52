//! The front-panel LCD: the HD44780 / PCF8574 driver of `gmhsm-lcd` on a Linux I2C bus
//! (`/dev/i2c-N` through `linux-embedded-hal`).

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use gmhsm_lcd::{Geometry, Hd44780, LcdError};
use linux_embedded_hal::{Delay, I2cdev};

use crate::BoardError;
use crate::config::{LcdConfig, LcdGeometry};

/// The LCD on a Linux I2C bus.
pub type I2cLcd = Hd44780<I2cdev, Delay>;

pub fn geometry(g: LcdGeometry) -> Geometry {
    match g {
        LcdGeometry::Lcd16x2 => Geometry::Lcd16x2,
        LcdGeometry::Lcd20x4 => Geometry::Lcd20x4,
    }
}

/// Open the bus and initialize the display (cleared, on, backlight on).
pub fn open(cfg: &LcdConfig) -> Result<I2cLcd, BoardError> {
    let i2c = I2cdev::new(&cfg.bus).map_err(|e| BoardError::device("LCD", &cfg.bus, std::io::Error::other(e)))?;
    attach(i2c, Delay, cfg)
}

/// Initialize the display on any I2C bus (the board's, or a test double).
pub fn attach<I: I2c, D: DelayNs>(i2c: I, delay: D, cfg: &LcdConfig) -> Result<Hd44780<I, D>, BoardError> {
    Hd44780::new(i2c, delay, cfg.address, geometry(cfg.geometry)).map_err(|e| {
        let why = match e {
            LcdError::I2c(e) => format!("no answer at address {:#04x}: {e:?}", cfg.address),
            LcdError::BadRow => "bad row".into(),
        };
        BoardError::device("LCD", &cfg.bus, std::io::Error::other(why))
    })
}

//! gmhsm-lcd: the front-panel character LCD — an HD44780 controller behind a PCF8574 I2C
//! backpack ([`Hd44780`]) — and the pages the appliance shows on it ([`screens`]).
//!
//! `no_std`, no allocation, generic over `embedded_hal::i2c::I2c` and
//! `embedded_hal::delay::DelayNs` (embedded-hal 1.0).
//!
//! Invariants:
//! * every line written is exactly `columns` cells: shorter text is padded with spaces,
//!   longer text cut, and anything but printable ASCII shown as `?` — the panel never shows
//!   leftovers of an earlier page, and no byte outside the ROM's ASCII range reaches it;
//! * the driver only ever writes to the controller (R/W is held low), so it cannot hang on a
//!   busy flag: it waits the datasheet's worst-case execution times instead;
//! * nothing secret is ever rendered: PIN entry shows one `*` per digit, never the digits.
#![no_std]
#![forbid(unsafe_code)]

pub mod hd44780;
pub mod screens;

pub use hd44780::{Geometry, Hd44780, LcdError};
pub use screens::{DeviceState, Frame, Page, Prompt};

//! HD44780 driver over a PCF8574 I2C port expander, in the controller's 4-bit mode.
//!
//! Backpack pin map: P0 RS, P1 RW, P2 EN, P3 backlight, P4–P7 D4–D7. The controller latches
//! D4–D7 on the falling edge of EN, so every nibble is two expander writes: EN high, EN low.

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;
use gmhsm_platform::{DisplayError, TextDisplay};

/// PCF8574 bits.
pub const RS: u8 = 0x01;
pub const RW: u8 = 0x02;
pub const EN: u8 = 0x04;
pub const BACKLIGHT: u8 = 0x08;

/// The usual backpack address (PCF8574 with A0–A2 high; PCF8574A is 0x3F).
pub const DEFAULT_ADDRESS: u8 = 0x27;

/// HD44780 instructions used here.
pub mod cmd {
    pub const CLEAR: u8 = 0x01;
    pub const HOME: u8 = 0x02;
    /// Entry mode: increment, no display shift.
    pub const ENTRY_INCREMENT: u8 = 0x06;
    /// Display control: display on, cursor off, blink off.
    pub const DISPLAY_ON: u8 = 0x0C;
    pub const DISPLAY_OFF: u8 = 0x08;
    /// Function set: 4-bit interface, two display lines (also for 4-row modules), 5x8 font.
    pub const FUNCTION_4BIT_2LINE: u8 = 0x28;
    pub const SET_DDRAM: u8 = 0x80;
}

/// Module shapes and where their rows start in DDRAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    Lcd16x2,
    Lcd20x4,
}

/// DDRAM address of the first cell of rows 0..4.
pub const ROW_BASES: [u8; 4] = [0x00, 0x40, 0x14, 0x54];

impl Geometry {
    pub fn columns(self) -> u8 {
        match self {
            Geometry::Lcd16x2 => 16,
            Geometry::Lcd20x4 => 20,
        }
    }

    pub fn rows(self) -> u8 {
        match self {
            Geometry::Lcd16x2 => 2,
            Geometry::Lcd20x4 => 4,
        }
    }
}

/// Why a display operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcdError<E> {
    /// The I2C write failed; the screen may be partly updated. Redraw the page.
    I2c(E),
    /// Row out of range; nothing was written.
    BadRow,
}

/// An HD44780 behind a PCF8574.
pub struct Hd44780<I, D> {
    i2c: I,
    delay: D,
    address: u8,
    geometry: Geometry,
    backlight: u8,
}

impl<I: I2c, D: DelayNs> Hd44780<I, D> {
    /// Take the bus and run the 4-bit initialization sequence (HD44780 datasheet, figure 24),
    /// leaving the display cleared, on, cursor off, backlight on.
    pub fn new(i2c: I, delay: D, address: u8, geometry: Geometry) -> Result<Self, LcdError<I::Error>> {
        let mut lcd = Hd44780 { i2c, delay, address, geometry, backlight: BACKLIGHT };
        lcd.init()?;
        Ok(lcd)
    }

    /// Give the bus and delay back.
    pub fn release(self) -> (I, D) {
        (self.i2c, self.delay)
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn init(&mut self) -> Result<(), LcdError<I::Error>> {
        self.delay.delay_ms(50); // > 40 ms after Vcc rises to 2.7 V
        self.expander(self.backlight)?;
        // Three times "function set, 8-bit" (only the high nibble reaches the bus), then 4-bit.
        self.nibble(0x3, 0)?;
        self.delay.delay_us(4_500);
        self.nibble(0x3, 0)?;
        self.delay.delay_us(150);
        self.nibble(0x3, 0)?;
        self.delay.delay_us(150);
        self.nibble(0x2, 0)?;
        self.delay.delay_us(150);
        self.command(cmd::FUNCTION_4BIT_2LINE)?;
        self.command(cmd::DISPLAY_OFF)?;
        self.command(cmd::CLEAR)?;
        self.command(cmd::ENTRY_INCREMENT)?;
        self.command(cmd::DISPLAY_ON)
    }

    fn expander(&mut self, byte: u8) -> Result<(), LcdError<I::Error>> {
        self.i2c.write(self.address, &[byte]).map_err(LcdError::I2c)
    }

    /// Put `nibble` on D4–D7 with `rs`, and pulse EN (high, then low: the falling edge latches).
    fn nibble(&mut self, nibble: u8, rs: u8) -> Result<(), LcdError<I::Error>> {
        let b = (nibble << 4) | rs | self.backlight;
        self.i2c.write(self.address, &[b | EN, b]).map_err(LcdError::I2c)
    }

    fn byte(&mut self, value: u8, rs: u8) -> Result<(), LcdError<I::Error>> {
        self.nibble(value >> 4, rs)?;
        self.nibble(value & 0x0F, rs)?;
        self.delay.delay_us(50); // 37 µs typical execution time
        Ok(())
    }

    fn command(&mut self, c: u8) -> Result<(), LcdError<I::Error>> {
        self.byte(c, 0)?;
        if c == cmd::CLEAR || c == cmd::HOME {
            self.delay.delay_us(2_000); // 1.52 ms
        }
        Ok(())
    }

    /// Replace row `row` with `text` (padded / cut to the width; non-ASCII shown as `?`).
    pub fn write_line(&mut self, row: u8, text: &str) -> Result<(), LcdError<I::Error>> {
        if row >= self.geometry.rows() {
            return Err(LcdError::BadRow);
        }
        self.command(cmd::SET_DDRAM | ROW_BASES[usize::from(row)])?;
        let mut chars = text.chars();
        for _ in 0..self.geometry.columns() {
            let c = match chars.next() {
                None => b' ',
                Some(c) if (' '..='~').contains(&c) => c as u8,
                Some(_) => b'?',
            };
            self.byte(c, RS)?;
        }
        Ok(())
    }

    /// Blank the display and home the cursor.
    pub fn clear(&mut self) -> Result<(), LcdError<I::Error>> {
        self.command(cmd::CLEAR)
    }

    pub fn set_backlight(&mut self, on: bool) -> Result<(), LcdError<I::Error>> {
        self.backlight = if on { BACKLIGHT } else { 0 };
        self.expander(self.backlight)
    }
}

fn display_err<E>(e: LcdError<E>) -> DisplayError {
    match e {
        LcdError::I2c(_) => DisplayError::Bus,
        LcdError::BadRow => DisplayError::BadRow,
    }
}

impl<I: I2c, D: DelayNs> TextDisplay for Hd44780<I, D> {
    fn columns(&self) -> u8 {
        self.geometry.columns()
    }

    fn rows(&self) -> u8 {
        self.geometry.rows()
    }

    fn write_line(&mut self, row: u8, text: &str) -> Result<(), DisplayError> {
        Hd44780::write_line(self, row, text).map_err(display_err)
    }

    fn clear(&mut self) -> Result<(), DisplayError> {
        Hd44780::clear(self).map_err(display_err)
    }

    fn set_backlight(&mut self, on: bool) -> Result<(), DisplayError> {
        Hd44780::set_backlight(self, on).map_err(display_err)
    }
}

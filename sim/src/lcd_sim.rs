//! A simulated HD44780 + PCF8574 backpack on I2C: it decodes the real byte stream the driver
//! writes (nibbles latched on the falling edge of EN, RS selecting command or data, the 8-bit
//! → 4-bit switch of the init sequence, set-DDRAM, clear and home) into the text a person
//! would read on the panel.

use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

const RS: u8 = 0x01;
const EN: u8 = 0x04;
const BACKLIGHT: u8 = 0x08;
const ROW_BASES: [u8; 4] = [0x00, 0x40, 0x14, 0x54];

/// The simulated panel.
#[derive(Debug)]
pub struct SimLcd {
    address: u8,
    cols: u8,
    rows: u8,
    /// Last byte on the expander's pins.
    pins: u8,
    /// Interface width: after power-up the controller is in 8-bit mode.
    four_bit: bool,
    /// First nibble of a 4-bit transfer, waiting for its second half.
    high: Option<u8>,
    ddram: [u8; 0x80],
    addr: u8,
    display_on: bool,
    /// Every byte ever written to the expander, for byte-level assertions.
    pub trace: Vec<u8>,
    /// Instructions executed (commands, not data), in order.
    pub commands: Vec<u8>,
}

impl SimLcd {
    /// A powered-up panel at I2C `address` of `cols` x `rows` (16x2 or 20x4).
    pub fn new(address: u8, cols: u8, rows: u8) -> SimLcd {
        SimLcd {
            address,
            cols: cols.min(20),
            rows: rows.min(4),
            pins: 0,
            four_bit: false,
            high: None,
            ddram: [b' '; 0x80],
            addr: 0,
            display_on: false,
            trace: Vec::new(),
            commands: Vec::new(),
        }
    }

    pub fn backlight(&self) -> bool {
        self.pins & BACKLIGHT != 0
    }

    pub fn display_on(&self) -> bool {
        self.display_on
    }

    /// Row `row` as shown (empty if the display is off).
    pub fn line(&self, row: u8) -> String {
        if !self.display_on || row >= self.rows {
            return String::new();
        }
        let base = usize::from(ROW_BASES[usize::from(row)]);
        self.ddram[base..base + usize::from(self.cols)].iter().map(|&b| b as char).collect()
    }

    pub fn lines(&self) -> Vec<String> {
        (0..self.rows).map(|r| self.line(r)).collect()
    }

    fn pins(&mut self, b: u8) {
        self.trace.push(b);
        let falling = self.pins & EN != 0 && b & EN == 0;
        let latched = self.pins;
        self.pins = b;
        if falling {
            self.latch(latched >> 4, latched & RS != 0);
        }
    }

    fn latch(&mut self, nibble: u8, rs: bool) {
        if !self.four_bit {
            // 8-bit mode with D0–D3 unconnected (read as 0): one nibble = one instruction.
            self.execute(nibble << 4, rs);
            return;
        }
        match self.high.take() {
            None => self.high = Some(nibble),
            Some(h) => self.execute((h << 4) | nibble, rs),
        }
    }

    fn execute(&mut self, v: u8, rs: bool) {
        if rs {
            self.ddram[usize::from(self.addr)] = v;
            self.addr = match self.addr {
                0x27 => 0x40,
                0x67 => 0x00,
                a => (a + 1) & 0x7F,
            };
            return;
        }
        self.commands.push(v);
        match v {
            0x80..=0xFF => self.addr = v & 0x7F,
            0x40..=0x7F => {} // CGRAM address: custom glyphs are not used
            0x20..=0x3F => {
                self.four_bit = v & 0x10 == 0;
                self.high = None;
            }
            0x10..=0x1F => {} // cursor / display shift: not used
            0x08..=0x0F => self.display_on = v & 0x04 != 0,
            0x04..=0x07 => {} // entry mode: the driver always uses increment
            0x02..=0x03 => self.addr = 0,
            0x01 => {
                self.ddram = [b' '; 0x80];
                self.addr = 0;
            }
            0x00 => {}
        }
    }
}

/// The only I2C error the simulator produces: a write to an address nobody answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimI2cError(ErrorKind);

impl embedded_hal::i2c::Error for SimI2cError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl ErrorType for SimLcd {
    type Error = SimI2cError;
}

impl I2c for SimLcd {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        if address != self.address {
            return Err(SimI2cError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address)));
        }
        for op in operations {
            match op {
                Operation::Write(bytes) => bytes.iter().for_each(|&b| self.pins(b)),
                // Reading the PCF8574 returns its pin levels.
                Operation::Read(buf) => buf.fill(self.pins),
            }
        }
        Ok(())
    }
}

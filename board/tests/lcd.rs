//! The LCD backend drives gmhsm-lcd's HD44780 driver: the exact I2C byte stream of a screen,
//! checked against embedded-hal-mock (the board's `/dev/i2c-N` carries these bytes).

use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};
use gmhsm_board::config::{LcdConfig, LcdGeometry};
use gmhsm_board::lcd;
use gmhsm_lcd::screens::{self, Page, Prompt};
use gmhsm_platform::TextDisplay;

/// The transactions of one byte to the controller: two nibbles, each EN high then low.
fn byte(a: u8, b: u8, rs: u8) -> [I2cT; 2] {
    let nib = |n: u8| I2cT::write(a, vec![(n << 4) | 0x0C | rs, (n << 4) | 0x08 | rs]);
    [nib(b >> 4), nib(b & 0x0F)]
}

#[test]
fn a_screen_is_the_exact_byte_stream() {
    let cfg = LcdConfig { address: 0x3f, geometry: LcdGeometry::Lcd20x4, ..LcdConfig::default() };
    let a = cfg.address;
    let nib = |n: u8| I2cT::write(a, vec![(n << 4) | 0x0C, (n << 4) | 0x08]);
    // Init: backlight byte, 0x3 three times, 0x2, then function set, display off, clear,
    // entry mode, display on.
    let mut expect = vec![I2cT::write(a, vec![0x08]), nib(0x3), nib(0x3), nib(0x3), nib(0x2)];
    for c in [0x28u8, 0x08, 0x01, 0x06, 0x0C] {
        expect.extend(byte(a, c, 0));
    }
    // The "Insert admin card 2 of 3" prompt on a 20x4: every row set and written in full.
    let page = screens::render(&Page::Prompt(Prompt::InsertCard { n: 2, of: 3 }), 20, 4);
    let mut rows = Vec::new();
    for (row, base) in [0x00u8, 0x40, 0x14, 0x54].into_iter().enumerate() {
        let text = page.line(row as u8).to_string();
        expect.extend(byte(a, 0x80 | base, 0));
        for ch in format!("{text:20}").bytes() {
            expect.extend(byte(a, ch, 1));
        }
        rows.push(text);
    }
    assert_eq!(rows, ["Insert admin", "card 2 of 3", "", "CANCEL to abort"].map(|r| format!("{r:20}")));
    let mut i2c = I2cMock::new(&expect);
    let mut display = lcd::attach(&mut i2c, NoopDelay::new(), &cfg).unwrap();
    page.show(&mut display).unwrap();
    assert_eq!((display.columns(), display.rows()), (20, 4));
    let _ = display.release();
    i2c.done();
}

#[test]
fn a_dead_bus_is_a_clear_error() {
    let cfg = LcdConfig::default();
    let mut i2c = I2cMock::new(&[I2cT::write(0x27, vec![0x08])
        .with_error(embedded_hal::i2c::ErrorKind::NoAcknowledge(embedded_hal::i2c::NoAcknowledgeSource::Address))]);
    let e = lcd::attach(&mut i2c, NoopDelay::new(), &cfg).err().expect("no device");
    assert!(e.to_string().starts_with("LCD /dev/i2c-1: no answer at address 0x27"), "{e}");
    i2c.done();
    let e = lcd::open(&LcdConfig { bus: "/dev/i2c-gmhsm-absent".into(), ..cfg }).err().expect("no bus");
    assert!(e.to_string().starts_with("LCD /dev/i2c-gmhsm-absent: "), "{e}");
    if !std::path::Path::new("/dev/i2c-1").exists() {
        eprintln!("NOT TESTED: an LCD on a real I2C bus (no /dev/i2c-* here)");
    }
}

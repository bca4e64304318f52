//! The real HD44780 driver driving the simulated PCF8574 backpack: the decoded panel text is
//! what the pages say, and the init sequence is byte-exact (checked with embedded-hal-mock).

use embedded_hal_mock::eh1::delay::NoopDelay;
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cT};
use gmhsm_lcd::hd44780::DEFAULT_ADDRESS;
use gmhsm_lcd::screens::{self, DeviceState, Page, Prompt};
use gmhsm_lcd::{Geometry, Hd44780, LcdError};
use gmhsm_platform::TextDisplay;
use gmhsm_sim::lcd_sim::SimLcd;

#[test]
fn init_sequence_is_byte_exact() {
    const A: u8 = DEFAULT_ADDRESS;
    // Each nibble: EN high then EN low (bit 2), backlight on (bit 3), RS = 0.
    let nib = |n: u8| I2cT::write(A, vec![(n << 4) | 0x0C, (n << 4) | 0x08]);
    let mut expect = vec![I2cT::write(A, vec![0x08]), nib(0x3), nib(0x3), nib(0x3), nib(0x2)];
    for cmd in [0x28u8, 0x08, 0x01, 0x06, 0x0C] {
        expect.push(nib(cmd >> 4));
        expect.push(nib(cmd & 0x0F));
    }
    // Then one data byte: 'A' (0x41) with RS = 1 at row 1, column 0 (set DDRAM 0xC0).
    expect.push(nib(0xC));
    expect.push(nib(0x0));
    let dat = |n: u8| I2cT::write(A, vec![(n << 4) | 0x0D, (n << 4) | 0x09]);
    expect.push(dat(0x4));
    expect.push(dat(0x1));
    for _ in 1..16 {
        expect.push(dat(0x2));
        expect.push(dat(0x0));
    }
    let mut i2c = I2cMock::new(&expect);
    let mut lcd = Hd44780::new(&mut i2c, NoopDelay::new(), A, Geometry::Lcd16x2).unwrap();
    lcd.write_line(1, "A").unwrap();
    let _ = lcd.release();
    i2c.done();
}

#[test]
fn decoded_text_matches_on_20x4() {
    let mut sim = SimLcd::new(DEFAULT_ADDRESS, 20, 4);
    {
        let mut lcd = Hd44780::new(&mut sim, NoopDelay::new(), DEFAULT_ADDRESS, Geometry::Lcd20x4).unwrap();
        lcd.write_line(0, "gmhsm").unwrap();
        lcd.write_line(1, "192.168.100.200:7443 and more").unwrap();
        lcd.write_line(2, "PIN \u{2713} ok").unwrap();
        lcd.write_line(3, "row four").unwrap();
        assert_eq!(lcd.write_line(4, "x"), Err(LcdError::BadRow));
    }
    assert_eq!(
        sim.lines(),
        ["gmhsm               ", "192.168.100.200:7443", "PIN ? ok            ", "row four            "]
    );
    assert_eq!(&sim.commands[..9], &[0x30, 0x30, 0x30, 0x20, 0x28, 0x08, 0x01, 0x06, 0x0C]);
    assert!(sim.display_on() && sim.backlight());

    let mut lcd = Hd44780::new(&mut sim, NoopDelay::new(), DEFAULT_ADDRESS, Geometry::Lcd20x4).unwrap();
    lcd.write_line(2, "third").unwrap();
    lcd.set_backlight(false).unwrap();
    let _ = lcd.release();
    // A re-init clears the panel: only the new row shows.
    assert_eq!(sim.lines(), ["", "", "third", ""].map(|s| format!("{s:20}")));
    assert!(!sim.backlight());
}

#[test]
fn front_panel_pages_through_the_trait_on_16x2() {
    let mut sim = SimLcd::new(DEFAULT_ADDRESS, 16, 2);
    let mut lcd = Hd44780::new(&mut sim, NoopDelay::new(), DEFAULT_ADDRESS, Geometry::Lcd16x2).unwrap();
    let show = |lcd: &mut dyn TextDisplay, page: Page<'_>| {
        screens::render(&page, lcd.columns(), lcd.rows()).show(lcd).unwrap();
    };
    show(&mut lcd, Page::Prompt(Prompt::InsertCard { n: 2, of: 3 }));
    let _ = lcd.release();
    assert_eq!(sim.lines(), ["Insert admin    ", "card 2 of 3     "]);

    let mut lcd = Hd44780::new(&mut sim, NoopDelay::new(), DEFAULT_ADDRESS, Geometry::Lcd16x2).unwrap();
    for (page, want) in [
        (Page::Prompt(Prompt::EnterPin { entered: 6 }), ["Enter PIN       ", "PIN: ******     "]),
        (Page::Prompt(Prompt::CardLocked), ["Card locked     ", "Needs unblock   "]),
        (Page::Prompt(Prompt::WrongPin { retries_left: 1 }), ["Wrong PIN       ", "1 tries left    "]),
        (Page::Status { state: DeviceState::Ready, link: "10.0.0.5:7443" }, ["READY           ", "10.0.0.5:7443   "]),
        (Page::Load { sessions: 12, load_percent: 37 }, ["Sessions 12     ", "Load 37%        "]),
        (Page::Boot { step: "SM3 KAT", done: 2, total: 6 }, ["Self-test 2/6   ", "SM3 KAT         "]),
        (Page::Alarm { text: "Tamper switch" }, ["!! ALARM !!     ", "Tamper switch   "]),
    ] {
        show(&mut lcd, page);
        let (i2c, _) = lcd.release();
        assert_eq!(i2c.lines(), want, "{page:?}");
        lcd = Hd44780::new(i2c, NoopDelay::new(), DEFAULT_ADDRESS, Geometry::Lcd16x2).unwrap();
    }
}

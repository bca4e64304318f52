//! The front panel as ceremonies use it: pages from `gmhsm_lcd::screens`, PIN entry with
//! stars, and confirmations.

use gmhsm_icc::Pin;
use gmhsm_lcd::screens::{Frame, Page, Prompt, render};
use gmhsm_platform::{Key, Keypad, TextDisplay};
use zeroize::Zeroizing;

use crate::CeremonyError;

/// Most PIN digits (the card's PIN block holds 8).
const MAX_DIGITS: usize = 8;
const MIN_DIGITS: usize = gmhsm_icc::spec::PIN_MIN_DIGITS;

/// The LCD and the keypad.
pub struct Panel<D, K> {
    pub display: D,
    pub keypad: K,
    /// How long to wait for each key press.
    pub key_timeout_ms: u32,
}

impl<D: TextDisplay, K: Keypad> Panel<D, K> {
    pub fn new(display: D, keypad: K, key_timeout_ms: u32) -> Self {
        Panel { display, keypad, key_timeout_ms }
    }

    fn frame(&self) -> Frame {
        Frame::new(self.display.columns(), self.display.rows())
    }

    fn put(&mut self, f: &Frame) -> Result<(), CeremonyError> {
        f.show(&mut self.display).map_err(|_| CeremonyError::Panel)
    }

    /// Show a page of `gmhsm_lcd::screens`.
    pub fn show(&mut self, page: Page<'_>) -> Result<(), CeremonyError> {
        let f = render(&page, self.display.columns(), self.display.rows());
        self.put(&f)
    }

    pub fn prompt(&mut self, p: Prompt) -> Result<(), CeremonyError> {
        self.show(Page::Prompt(p))
    }

    /// A page of free text (one line per row), for prompts `screens` has no page for.
    pub fn text(&mut self, lines: &[&str]) -> Result<(), CeremonyError> {
        let mut f = self.frame();
        for (r, l) in lines.iter().enumerate() {
            f.set(r as u8, format_args!("{l}"));
        }
        self.put(&f)
    }

    /// A page of `screens` with its first row replaced by `title`.
    fn titled(&mut self, p: Prompt, title: Option<&str>) -> Result<(), CeremonyError> {
        let mut f = render(&Page::Prompt(p), self.display.columns(), self.display.rows());
        if let Some(t) = title {
            f.set(0, format_args!("{t}"));
        }
        self.put(&f)
    }

    fn key(&mut self) -> Result<Key, CeremonyError> {
        match self.keypad.read_key(self.key_timeout_ms) {
            Ok(Some(k)) => Ok(k),
            Ok(None) => Err(CeremonyError::Timeout),
            Err(_) => Err(CeremonyError::Panel),
        }
    }

    /// `true` if CANCEL is pressed now (other keys pressed while nothing asks are dropped).
    pub fn cancel_pressed(&mut self) -> bool {
        matches!(self.keypad.read_key(0), Ok(Some(Key::Cancel)))
    }

    /// Wait for OK (`Ok`) or CANCEL (`Cancelled`).
    pub fn confirm(&mut self) -> Result<(), CeremonyError> {
        loop {
            match self.key()? {
                Key::Ok => return Ok(()),
                Key::Cancel => return Err(CeremonyError::Cancelled),
                _ => {}
            }
        }
    }

    /// Read a PIN: digits shown as stars, OK to finish (6 to 8 digits), CANCEL to stop;
    /// `Down` erases the last digit. `title` replaces "Enter PIN".
    pub fn read_pin(&mut self, title: Option<&str>) -> Result<Pin, CeremonyError> {
        let mut digits = Zeroizing::new(Vec::with_capacity(MAX_DIGITS));
        loop {
            self.titled(Prompt::EnterPin { entered: digits.len() as u8 }, title)?;
            match self.key()? {
                Key::Digit(d) if digits.len() < MAX_DIGITS => digits.push(b'0' + d),
                Key::Digit(_) => {}
                Key::Down => {
                    digits.pop();
                }
                Key::Cancel => return Err(CeremonyError::Cancelled),
                Key::Ok if digits.len() >= MIN_DIGITS => {
                    return Pin::new(&digits).map_err(|_| CeremonyError::Panel);
                }
                Key::Ok => {
                    self.text(&["PIN too short", "6 to 8 digits", "", "OK to retry"])?;
                    self.confirm()?;
                    digits.clear();
                }
                _ => {}
            }
        }
    }

    /// A new PIN chosen by its holder: typed twice, 6 to 8 digits, no default.
    pub fn choose_pin(&mut self) -> Result<Pin, CeremonyError> {
        for _ in 0..3 {
            let first = self.read_pin(Some("New PIN"))?;
            let second = self.read_pin(Some("Confirm PIN"))?;
            if same(first.expose_block(), second.expose_block()) {
                return Ok(first);
            }
            self.text(&["PINs differ", "Try again", "", "OK to retry"])?;
            self.confirm()?;
        }
        Err(CeremonyError::Cancelled)
    }
}

/// Constant-time equality of two PIN blocks.
fn same(a: &[u8; 8], b: &[u8; 8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use gmhsm_platform::{DisplayError, KeypadError};

    use super::*;

    #[derive(Default)]
    struct Screen {
        rows: [String; 4],
        shown: Vec<String>,
    }
    impl TextDisplay for Screen {
        fn columns(&self) -> u8 {
            20
        }
        fn rows(&self) -> u8 {
            4
        }
        fn write_line(&mut self, row: u8, text: &str) -> Result<(), DisplayError> {
            self.rows[usize::from(row)] = text.trim_end().to_string();
            if row == 0 {
                self.shown.push(self.rows[0].clone());
            }
            Ok(())
        }
        fn clear(&mut self) -> Result<(), DisplayError> {
            Ok(())
        }
        fn set_backlight(&mut self, _: bool) -> Result<(), DisplayError> {
            Ok(())
        }
    }
    struct Keys(VecDeque<Key>);
    impl Keypad for Keys {
        fn read_key(&mut self, _: u32) -> Result<Option<Key>, KeypadError> {
            Ok(self.0.pop_front())
        }
    }
    fn keys(s: &str) -> Keys {
        Keys(
            s.chars()
                .map(|c| {
                    if c == '#' {
                        Key::Ok
                    } else if c == '*' {
                        Key::Cancel
                    } else {
                        Key::Digit(c as u8 - b'0')
                    }
                })
                .collect(),
        )
    }

    #[test]
    fn a_pin_is_chosen_twice_and_never_shown() {
        // Too short, then a mismatch, then agreement.
        let mut p = Panel::new(Screen::default(), keys("12345##123456#654321##246810#246810#"), 10);
        let pin = p.choose_pin().unwrap();
        assert_eq!(pin.expose_block(), b"246810\xFF\xFF");
        let shown = p.display.shown.join("|");
        assert!(shown.contains("PIN too short") && shown.contains("PINs differ") && shown.contains("Confirm PIN"));
        assert!(!shown.contains("2468"), "digits never reach the panel");
        assert_eq!(p.display.rows[1], "PIN: ******");
        // Nothing typed: a timeout, never a default PIN.
        let mut p = Panel::new(Screen::default(), keys(""), 10);
        assert_eq!(p.choose_pin().unwrap_err(), CeremonyError::Timeout);
        let mut p = Panel::new(Screen::default(), keys("12*"), 10);
        assert_eq!(p.read_pin(None).unwrap_err(), CeremonyError::Cancelled);
    }
}

//! The front-panel keypad: digits, OK, Cancel and menu navigation keys.

/// One key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// `0..=9`.
    Digit(u8),
    Ok,
    Cancel,
    Menu,
    Up,
    Down,
}

impl Key {
    /// The digit key for `d`, if `d` is `0..=9`.
    pub fn digit(d: u8) -> Option<Key> {
        (d <= 9).then_some(Key::Digit(d))
    }
}

/// Why no key could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeypadError {
    /// The keypad is gone (unplugged, bus error); show an alarm and stop any ceremony input.
    Unavailable,
}

/// A keypad delivering key presses in order. Key presses are not secret by themselves, but a
/// PIN typed on it is: callers collect digits into a zeroizing buffer.
pub trait Keypad {
    /// The next key press, waiting up to `timeout_ms`; `Ok(None)` = no key before the timeout.
    fn read_key(&mut self, timeout_ms: u32) -> Result<Option<Key>, KeypadError>;
}

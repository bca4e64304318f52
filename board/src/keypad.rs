//! The front-panel keypad as a Linux evdev input device (`/dev/input/eventN`), read as raw
//! `struct input_event` records: key presses (value 1) of the codes below become panel keys;
//! releases, autorepeats, other event types and unmapped codes are ignored.
//!
//! | panel key | evdev codes |
//! |---|---|
//! | `0`–`9` | `KEY_0`–`KEY_9`, `KEY_KP0`–`KEY_KP9`, `KEY_NUMERIC_0`–`KEY_NUMERIC_9` |
//! | OK | `KEY_ENTER`, `KEY_KPENTER`, `KEY_OK`, `KEY_NUMERIC_POUND` |
//! | Cancel | `KEY_ESC`, `KEY_BACKSPACE`, `KEY_KPASTERISK`, `KEY_CANCEL`, `KEY_NUMERIC_STAR` |
//! | Menu | `KEY_MENU`, `KEY_COMPOSE`, `KEY_KPSLASH` |
//! | Up | `KEY_UP`, `KEY_KPMINUS` |
//! | Down | `KEY_DOWN`, `KEY_KPPLUS` |

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use gmhsm_platform::{Key, Keypad, KeypadError};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::BoardError;

/// `sizeof(struct input_event)`: a `struct timeval` then type u16, code u16, value i32.
pub const EVENT_SIZE: usize = 2 * size_of::<std::ffi::c_long>() + 8;
/// `EV_KEY`.
pub const EV_KEY: u16 = 0x01;

/// The panel key for an evdev key code, if any.
pub fn key_of(code: u16) -> Option<Key> {
    Some(match code {
        2..=10 => Key::Digit((code - 1) as u8),
        11 => Key::Digit(0),
        71..=73 => Key::Digit((code - 64) as u8),
        75..=77 => Key::Digit((code - 71) as u8),
        79..=81 => Key::Digit((code - 78) as u8),
        82 => Key::Digit(0),
        0x200..=0x209 => Key::Digit((code - 0x200) as u8),
        28 | 96 | 0x160 | 0x20b => Key::Ok,
        1 | 14 | 55 | 223 | 0x20a => Key::Cancel,
        139 | 127 | 98 => Key::Menu,
        103 | 74 => Key::Up,
        108 | 78 => Key::Down,
        _ => return None,
    })
}

/// Decode one `struct input_event` (native endianness): a key press, if it is one we map.
pub fn decode(event: &[u8; EVENT_SIZE]) -> Option<Key> {
    let t = EVENT_SIZE - 8;
    let kind = u16::from_ne_bytes([event[t], event[t + 1]]);
    let code = u16::from_ne_bytes([event[t + 2], event[t + 3]]);
    let value = i32::from_ne_bytes([event[t + 4], event[t + 5], event[t + 6], event[t + 7]]);
    (kind == EV_KEY && value == 1).then(|| key_of(code)).flatten()
}

/// A keypad reading events from `R` (the device file; a pipe in tests).
pub struct EvdevKeypad<R> {
    src: R,
    partial: Vec<u8>,
    keys: VecDeque<Key>,
}

impl EvdevKeypad<File> {
    pub fn open(path: &Path) -> Result<Self, BoardError> {
        let file = File::open(path).map_err(|e| BoardError::device("keypad", path, e))?;
        Ok(Self::new(file))
    }
}

impl<R: Read + AsFd> EvdevKeypad<R> {
    pub fn new(src: R) -> Self {
        Self { src, partial: Vec::with_capacity(EVENT_SIZE), keys: VecDeque::new() }
    }

    /// Wait up to `timeout` for bytes and decode what came. `Ok(false)`: nothing came.
    fn fill(&mut self, timeout: Duration) -> Result<bool, KeypadError> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.src.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(false),
            Err(e) => return Err(gone(e)),
        }
        let mut buf = [0u8; EVENT_SIZE * 16];
        let n = loop {
            match self.src.read(&mut buf) {
                Ok(0) => return Err(gone("end of file")),
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(gone(e)),
            }
        };
        for &b in &buf[..n] {
            self.partial.push(b);
            if let Ok(event) = <&[u8; EVENT_SIZE]>::try_from(self.partial.as_slice()) {
                if let Some(k) = decode(event) {
                    self.keys.push_back(k);
                }
                self.partial.clear();
            }
        }
        Ok(true)
    }
}

fn gone(e: impl std::fmt::Display) -> KeypadError {
    log::error!("keypad: {e}");
    KeypadError::Unavailable
}

impl<R: Read + AsFd> Keypad for EvdevKeypad<R> {
    fn read_key(&mut self, timeout_ms: u32) -> Result<Option<Key>, KeypadError> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        loop {
            if let Some(k) = self.keys.pop_front() {
                return Ok(Some(k));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !self.fill(left)? && left.is_zero() {
                return Ok(None);
            }
        }
    }
}

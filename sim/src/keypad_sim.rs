//! A simulated front-panel keypad fed from a script or a queue, possibly from another thread
//! (the scripted ceremonies of `gmhsm-sim`).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use gmhsm_platform::{Key, Keypad, KeypadError};

#[derive(Default)]
struct Queue {
    keys: Mutex<VecDeque<Key>>,
    ready: Condvar,
}

/// The keypad end, given to the daemon.
#[derive(Clone, Default)]
pub struct SimKeypad {
    q: Arc<Queue>,
}

/// The finger end: presses keys.
#[derive(Clone)]
pub struct KeyFeeder {
    q: Arc<Queue>,
}

/// A script character that names no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadScript(pub char);

/// Parse a key script: `0`–`9` digits, `O` or `#` OK, `C` or `*` Cancel, `M` Menu, `U` Up,
/// `D` Down; spaces are ignored. `"123456#"` types a PIN and confirms it.
pub fn parse_script(script: &str) -> Result<Vec<Key>, BadScript> {
    script
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            '0'..='9' => Ok(Key::Digit(c as u8 - b'0')),
            'O' | '#' => Ok(Key::Ok),
            'C' | '*' => Ok(Key::Cancel),
            'M' => Ok(Key::Menu),
            'U' => Ok(Key::Up),
            'D' => Ok(Key::Down),
            other => Err(BadScript(other)),
        })
        .collect()
}

impl SimKeypad {
    pub fn new() -> SimKeypad {
        SimKeypad::default()
    }

    pub fn feeder(&self) -> KeyFeeder {
        KeyFeeder { q: self.q.clone() }
    }
}

impl KeyFeeder {
    pub fn press(&self, key: Key) {
        if let Ok(mut keys) = self.q.keys.lock() {
            keys.push_back(key);
            self.q.ready.notify_all();
        }
    }

    /// Press every key of a script (see [`parse_script`]); nothing is pressed if it is bad.
    pub fn type_script(&self, script: &str) -> Result<(), BadScript> {
        for k in parse_script(script)? {
            self.press(k);
        }
        Ok(())
    }
}

impl Keypad for SimKeypad {
    fn read_key(&mut self, timeout_ms: u32) -> Result<Option<Key>, KeypadError> {
        let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        let mut keys = self.q.keys.lock().map_err(|_| KeypadError::Unavailable)?;
        loop {
            if let Some(k) = keys.pop_front() {
                return Ok(Some(k));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            keys = self.q.ready.wait_timeout(keys, left).map_err(|_| KeypadError::Unavailable)?.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripted_keys_in_order() {
        let mut pad = SimKeypad::new();
        let feeder = pad.feeder();
        assert_eq!(pad.read_key(0).unwrap(), None);
        feeder.type_script("12 #C").unwrap();
        let got: Vec<_> = std::iter::from_fn(|| pad.read_key(0).unwrap()).collect();
        assert_eq!(got, [Key::Digit(1), Key::Digit(2), Key::Ok, Key::Cancel]);
        assert_eq!(parse_script("1x"), Err(BadScript('x')));
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            feeder.press(Key::Menu);
        });
        assert_eq!(pad.read_key(5_000).unwrap(), Some(Key::Menu));
        t.join().unwrap();
    }
}

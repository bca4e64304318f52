//! Ceremonies on the simulator: the front panel's HD44780 (driven by the real driver, decoded
//! by [`SimLcd`], every screen kept for assertions), the scripted keypad, and the crypto card
//! process serving its card link — the pieces `gmhsm-provisioning` needs besides the reader
//! (vpcd through pcscd: [`crate::vpcd`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{ErrorType, I2c, Operation};
use gmhsm_lcd::hd44780::DEFAULT_ADDRESS;
use gmhsm_lcd::{Geometry, Hd44780};

use crate::lcd_sim::{SimI2cError, SimLcd};

/// The panel's screens: the current one and every distinct one shown so far.
struct Screens {
    lcd: SimLcd,
    history: Vec<Vec<String>>,
}

/// The I2C bus end of the simulated panel (give it to [`Hd44780`]).
#[derive(Clone)]
pub struct SharedLcd(Arc<Mutex<Screens>>);

/// The eyes end: what the panel shows and showed.
#[derive(Clone)]
pub struct LcdView {
    screens: Arc<Mutex<Screens>>,
    /// History index from which [`LcdView::wait_for`] looks.
    cursor: usize,
}

/// An HD44780 panel on the simulated bus.
pub type SimPanelLcd = Hd44780<SharedLcd, NoDelay>;

/// The simulator does not need the datasheet's waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

impl ErrorType for SharedLcd {
    type Error = SimI2cError;
}

impl I2c for SharedLcd {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
        s.lcd.transaction(address, operations)?;
        let now = s.lcd.lines();
        if s.history.last() != Some(&now) {
            s.history.push(now);
        }
        Ok(())
    }
}

/// A 20x4 (or 16x2) panel driven by the real HD44780 driver, and its view.
pub fn panel(geometry: Geometry) -> (SimPanelLcd, LcdView) {
    let screens = Arc::new(Mutex::new(Screens {
        lcd: SimLcd::new(DEFAULT_ADDRESS, geometry.columns(), geometry.rows()),
        history: Vec::new(),
    }));
    let lcd = Hd44780::new(SharedLcd(screens.clone()), NoDelay, DEFAULT_ADDRESS, geometry)
        // The simulated bus always acknowledges its own address.
        .unwrap_or_else(|_| unreachable!("simulated LCD refused its init sequence"));
    (lcd, LcdView { screens, cursor: usize::MAX })
}

impl LcdView {
    /// The lines shown now, right-trimmed.
    pub fn screen(&self) -> Vec<String> {
        let s = self.screens.lock().unwrap_or_else(|p| p.into_inner());
        s.lcd.lines().into_iter().map(|l| l.trim_end().to_string()).collect()
    }

    /// Wait until a screen shown after the last match satisfies `pred` (rows right-trimmed);
    /// returns it. The first call looks only at screens from now on.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let s = self.screens.lock().unwrap_or_else(|p| p.into_inner());
                if self.cursor == usize::MAX {
                    self.cursor = s.history.len().saturating_sub(1);
                }
                for (i, screen) in s.history.iter().enumerate().skip(self.cursor) {
                    let trimmed: Vec<String> = screen.iter().map(|l| l.trim_end().to_string()).collect();
                    if pred(&trimmed) {
                        self.cursor = i + 1;
                        return Ok(trimmed);
                    }
                }
                if Instant::now() > deadline {
                    let tail: Vec<_> = s.history.iter().rev().take(6).rev().collect();
                    return Err(format!("the panel never showed {what}; last screens: {tail:#?}"));
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for a screen whose first rows are `rows` (each compared trimmed).
    pub fn expect(&mut self, rows: &[&str], timeout: Duration) -> Result<Vec<String>, String> {
        let want: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
        self.wait_for(&format!("{want:?}"), timeout, |l| want.iter().zip(l).all(|(w, got)| got == w))
    }
}

/// Boot a crypto card whose state lives in `dir` and serve its card link on `dir/card.sock`
/// from a thread (the simulator's card process, in-process). Returns the socket path.
pub fn start_card(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let devices = crate::board::devices(dir, None)?;
    let hsm = gmhsm_firmware::Hsm::boot(devices);
    let socket = dir.join("card.sock");
    let _ = std::fs::remove_file(&socket);
    let s = socket.clone();
    std::thread::Builder::new().name("sim-card".into()).spawn(move || {
        if let Err(e) = crate::card::serve(hsm, &s, Duration::ZERO) {
            log::error!("card: {e}");
        }
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        if Instant::now() > deadline {
            anyhow::bail!("the card did not open {}", socket.display());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(socket)
}

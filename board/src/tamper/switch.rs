//! The enclosure's tamper switch: a GPIO line watched by a thread that zeroizes the secret
//! store on the first edge and latches the event for the card.
//!
//! The watcher zeroizes first and raises the latch after, so when the card sees the event the
//! key is already gone. An error reading the line (the chip vanished, the line was taken) is
//! treated as a tamper: the switch can no longer be trusted to report one.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use gpiocdev::line::EdgeDetection;

use crate::BoardError;
use crate::config::{Edge, SwitchConfig};

/// How long the watcher waits for an edge before looking whether it should stop.
const POLL: Duration = Duration::from_millis(100);

/// A source of tamper-switch edges: the GPIO line, or a test source behind the same trait.
pub trait EdgeSource: Send + 'static {
    /// Wait up to `timeout` for the next edge: `Ok(true)` one came (and was consumed),
    /// `Ok(false)` none did.
    fn wait_edge(&mut self, timeout: Duration) -> std::io::Result<bool>;

    /// Whether the line is at its "enclosure open" level now (checked once at start: a
    /// latching tamper circuit that fired while the board was off holds that level).
    fn open_now(&mut self) -> std::io::Result<bool>;
}

/// A line requested from a GPIO character device with edge detection.
pub struct GpioLine {
    req: gpiocdev::Request,
    line: u32,
    edge: Edge,
}

impl GpioLine {
    pub fn open(cfg: &SwitchConfig) -> Result<Self, BoardError> {
        Self::open_at(&cfg.chip, cfg.line, cfg.edge)
    }

    pub fn open_at(chip: &Path, line: u32, edge: Edge) -> Result<Self, BoardError> {
        let detect = match edge {
            Edge::Rising => EdgeDetection::RisingEdge,
            Edge::Falling => EdgeDetection::FallingEdge,
            Edge::Both => EdgeDetection::BothEdges,
        };
        let req = gpiocdev::Request::builder()
            .on_chip(chip)
            .with_consumer("gmhsm-tamper")
            .with_line(line)
            .as_input()
            .with_edge_detection(detect)
            .request()
            .map_err(|e| {
                BoardError::device("tamper switch", chip, std::io::Error::other(format!("line {line}: {e}")))
            })?;
        Ok(Self { req, line, edge })
    }
}

impl EdgeSource for GpioLine {
    fn wait_edge(&mut self, timeout: Duration) -> std::io::Result<bool> {
        if !self.req.wait_edge_event(timeout).map_err(std::io::Error::other)? {
            return Ok(false);
        }
        self.req.read_edge_event().map_err(std::io::Error::other)?;
        Ok(true)
    }

    /// High for a rising-edge switch, low for a falling-edge one; a `both` switch has no
    /// "open" level.
    fn open_now(&mut self) -> std::io::Result<bool> {
        let active = self.req.value(self.line).map_err(std::io::Error::other)? == gpiocdev::line::Value::Active;
        Ok(match self.edge {
            Edge::Rising => active,
            Edge::Falling => !active,
            Edge::Both => false,
        })
    }
}

/// The watcher thread and its latch. Dropping it stops the thread.
pub struct TamperSwitch {
    tripped: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TamperSwitch {
    /// Watch `source`; on an edge, or at once if the line is already at its open level, run
    /// `zeroize` (retried until it succeeds, every [`POLL`]) and raise the latch.
    pub fn watch<S, Z>(mut source: S, mut zeroize: Z) -> Result<Self, BoardError>
    where
        S: EdgeSource,
        Z: FnMut() -> Result<(), String> + Send + 'static,
    {
        // Checked before the card can read the key: zeroized before `watch` returns.
        let open = source.open_now().unwrap_or_else(|e| {
            log::error!("tamper switch: cannot read the line ({e}); treating it as a tamper");
            true
        });
        if open {
            log::warn!("tamper switch: enclosure open at start; zeroizing");
            zeroize().map_err(|e| BoardError::Config(format!("tamper switch: enclosure open, zeroize failed: {e}")))?;
        }
        let tripped = Arc::new(AtomicBool::new(open));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tripped.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("tamper-switch".into())
            .spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    let edge = match source.wait_edge(POLL) {
                        Ok(edge) => edge,
                        Err(e) => {
                            log::error!("tamper switch: the line failed ({e}); treating it as a tamper");
                            std::thread::sleep(POLL);
                            true
                        }
                    };
                    if !edge {
                        continue;
                    }
                    log::warn!("tamper switch: enclosure open; zeroizing");
                    while let Err(e) = zeroize() {
                        log::error!("tamper switch: zeroize failed ({e}); retrying");
                        std::thread::sleep(POLL);
                    }
                    t.store(true, Ordering::SeqCst);
                }
            })
            .map_err(|e| BoardError::Config(format!("tamper switch: cannot start its watcher: {e}")))?;
        Ok(Self { tripped, stop, thread: Some(thread) })
    }

    /// Whether the switch fired since the last call (taken once, like the simulator's).
    pub fn take(&self) -> bool {
        self.tripped.swap(false, Ordering::SeqCst)
    }
}

impl Drop for TamperSwitch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

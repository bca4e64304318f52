//! The daemon's panel host on the board's backends: the keypad from a recorded `input_event`
//! stream through a FIFO at the configured path, the LCD's I2C byte stream through the host's
//! own path (an injected bus that records what the HD44780 driver sends), and a missing I2C
//! device refused at start with a clear message.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use embedded_hal::i2c::{ErrorType, I2c, Operation};
use gmhsm_board::ApplianceConfig;
use gmhsm_board::keypad::EVENT_SIZE;
use gmhsm_daemon::panel::{self, PanelSettings};
use gmhsm_platform::{CardError, CardSlot, CardTransport, SlotEvent, SlotState};

/// A reader with an empty slot (this test is about the LCD and the keypad).
struct EmptySlot;

impl CardTransport for EmptySlot {
    fn transmit(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<(), CardError> {
        Err(CardError::NoCard)
    }
}

impl CardSlot for EmptySlot {
    fn state(&mut self) -> Result<SlotState, CardError> {
        Ok(SlotState::Empty)
    }
    fn wait_event(&mut self, timeout_ms: u32) -> Result<Option<SlotEvent>, CardError> {
        std::thread::sleep(Duration::from_millis(u64::from(timeout_ms.min(50))));
        Ok(None)
    }
}

/// One I2C write: the address and the bytes.
type BusWrite = (u8, Vec<u8>);

/// An I2C bus recording every write.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<BusWrite>>>);

impl ErrorType for Recorder {
    type Error = core::convert::Infallible;
}

impl I2c for Recorder {
    fn transaction(&mut self, address: u8, ops: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        let mut log = self.0.lock().unwrap();
        for op in ops {
            if let Operation::Write(w) = op {
                log.push((address, w.to_vec()));
            }
        }
        Ok(())
    }
}

struct NoDelay;
impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _: u32) {}
}

/// Replay the PCF8574 writes into a 20x4 HD44780's character memory: each write of a nibble is
/// `[byte | EN, byte]`; the first four nibbles are the 4-bit initialisation.
fn screen(writes: &[BusWrite]) -> Vec<String> {
    let nibbles: Vec<(u8, bool)> = writes
        .iter()
        .filter(|(_, w)| w.len() == 2 && w[0] & 0x04 != 0 && w[1] == w[0] & !0x04)
        .map(|(_, w)| (w[0] >> 4, w[0] & 0x01 != 0))
        .collect();
    assert!(nibbles.len() >= 4, "the LCD was not initialised");
    let mut ram = [b' '; 0x80];
    let mut at = 0usize;
    for pair in nibbles[4..].chunks_exact(2) {
        let (value, data) = (pair[0].0 << 4 | pair[1].0, pair[0].1);
        match (data, value) {
            (true, c) => {
                ram[at % 0x80] = c;
                at += 1;
            }
            (false, 0x01) => (ram, at) = ([b' '; 0x80], 0),
            (false, c) if c & 0x80 != 0 => at = usize::from(c & 0x7f),
            _ => {}
        }
    }
    [0x00usize, 0x40, 0x14, 0x54].iter().map(|&b| String::from_utf8_lossy(&ram[b..b + 20]).into_owned()).collect()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn key_event(code: u16, value: i32) -> [u8; EVENT_SIZE] {
    let mut e = [0u8; EVENT_SIZE];
    let t = EVENT_SIZE - 8;
    e[t..t + 2].copy_from_slice(&1u16.to_ne_bytes());
    e[t + 2..t + 4].copy_from_slice(&code.to_ne_bytes());
    e[t + 4..].copy_from_slice(&value.to_ne_bytes());
    e
}

#[test]
fn the_host_drives_the_lcd_and_reads_the_keypad_at_the_configured_paths() {
    let dir = std::env::temp_dir().join(format!("gmhsmd-panel-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("keypad");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR).unwrap();
    let text = format!("[lcd]\naddress = 0x3f\n\n[keypad]\npath = {:?}\n", fifo.display().to_string());
    let board = ApplianceConfig::parse(&text, "test").unwrap();

    // The keypad's writer end, opened first (read-write: a FIFO's reader blocks in open(2)
    // until there is a writer). This end never reads: whatever drains the FIFO is the host.
    let mut w = std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(&fifo).unwrap();

    let bus = Recorder::default();
    let front = panel::host_board(&dir.join("no-card.sock"), EmptySlot, &board, bus.clone(), NoDelay).unwrap();
    front.boot("Opening card link", 1);
    wait_for("the boot page", Duration::from_secs(10), || {
        screen(&bus.0.lock().unwrap()).get(1).is_some_and(|l| l.starts_with("Opening card link"))
    });
    assert!(bus.0.lock().unwrap().iter().all(|(a, _)| *a == 0x3f), "every write goes to [lcd] address");
    assert!(screen(&bus.0.lock().unwrap())[0].starts_with("Self-test 1/"));

    // The panel thread drains the keypad: more than a pipe's capacity (64 KiB) of recorded
    // events, key presses and releases, gets through.
    let mut stream = Vec::new();
    for i in 0..4000u16 {
        stream.extend_from_slice(&key_event(2 + i % 10, 1));
        stream.extend_from_slice(&key_event(2 + i % 10, 0));
    }
    assert!(stream.len() > 128 * 1024);
    let mut sent = 0;
    let start = Instant::now();
    while sent < stream.len() {
        assert!(start.elapsed() < Duration::from_secs(20), "the panel stopped reading at {sent} bytes");
        match w.write(&stream[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("keypad FIFO: {e}"),
        }
    }
    drop(front);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_i2c_bus_stops_the_start_with_its_name() {
    let dir = std::env::temp_dir().join(format!("gmhsmd-panel-nobus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let appliance = dir.join("appliance.toml");
    std::fs::write(&appliance, "[lcd]\nbus = \"/dev/i2c-97\"\n").unwrap();
    let settings = PanelSettings { enabled: true, appliance, ..PanelSettings::default() };
    let e = format!("{:#}", panel::start(&settings, Path::new("/nonexistent.sock")).err().expect("refused"));
    assert!(e.contains("LCD /dev/i2c-97") && e.contains("i2c-dev"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

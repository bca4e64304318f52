//! The virtual admin card in the real PC/SC stack: a vpcd client that inserts a
//! [`VirtualCard`] into pcscd's "Virtual PCD" reader, and a helper that starts pcscd for tests.
//!
//! vpcd protocol (vsmartcard): the card is the TCP client of vpcd (127.0.0.1:35963 for
//! reader "Virtual PCD 00 00"); both directions frame messages as a 2-byte big-endian length
//! and the payload. One-byte payloads from vpcd are control: 0 power off, 1 power on, 2 reset,
//! 4 get ATR (the only one answered: with the ATR). Longer payloads are C-APDUs, answered with
//! R-APDUs. Closing the socket is card removal.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::admin_card::VirtualCard;

/// vpcd's port for reader "Virtual PCD 00 00".
pub const VPCD_PORT: u16 = 35963;
/// The PC/SC name prefix of that reader.
pub const VPCD_READER: &str = "Virtual PCD 00 00";
/// What pcscd (with `-d`) logs once vpcd listens.
pub const READY_LINE: &str = "Waiting for virtual ICC on port 35963";
/// Debian packages the real-stack tests need.
pub const PACKAGES: &str = "pcscd vsmartcard-vpcd pcsc-tools libpcsclite-dev";
/// Where Debian's vsmartcard-vpcd puts the driver.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";

const CTRL_OFF: u8 = 0;
const CTRL_ON: u8 = 1;
const CTRL_RESET: u8 = 2;
const CTRL_ATR: u8 = 4;

/// A virtual card inserted in vpcd's reader, served by a thread.
pub struct VpcdCard {
    stream: TcpStream,
    thread: Option<JoinHandle<VirtualCard>>,
}

fn send(stream: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(payload.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?;
    let mut frame = Vec::with_capacity(payload.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame)
}

fn serve(mut stream: TcpStream, mut card: VirtualCard) -> VirtualCard {
    let mut len = [0u8; 2];
    let mut buf = zeroize::Zeroizing::new(Vec::new());
    loop {
        if stream.read_exact(&mut len).is_err() {
            break;
        }
        buf.resize(usize::from(u16::from_be_bytes(len)), 0);
        if stream.read_exact(&mut buf).is_err() {
            break;
        }
        let sent = match buf[..] {
            [] => Ok(()),
            [CTRL_OFF] | [CTRL_ON] | [CTRL_RESET] => {
                card.reset();
                Ok(())
            }
            [CTRL_ATR] => send(&mut stream, card.atr()),
            [other] => {
                log::warn!("vpcd: unknown control byte {other}");
                Ok(())
            }
            _ => {
                let r = card.process(&buf);
                send(&mut stream, &r)
            }
        };
        if sent.is_err() {
            break;
        }
    }
    card.reset();
    card
}

impl VpcdCard {
    /// Insert `card`: connect to vpcd at `addr` (normally `127.0.0.1:35963`).
    pub fn insert(card: VirtualCard, addr: SocketAddr) -> std::io::Result<VpcdCard> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let served = stream.try_clone()?;
        let thread = std::thread::Builder::new().name("vpcd-card".into()).spawn(move || serve(served, card))?;
        Ok(VpcdCard { stream, thread: Some(thread) })
    }

    /// Insert into the default reader, "Virtual PCD 00 00".
    pub fn insert_default(card: VirtualCard) -> std::io::Result<VpcdCard> {
        VpcdCard::insert(card, SocketAddr::from(([127, 0, 0, 1], VPCD_PORT)))
    }

    /// Pull the card out (close the socket) and get it back, volatile state lost.
    pub fn remove(mut self) -> Option<VirtualCard> {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for VpcdCard {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Why pcscd with vpcd is not available.
#[derive(Debug)]
pub struct PcscdError(pub String);

impl std::fmt::Display for PcscdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PcscdError {}

/// A pcscd for tests: either one this process started (stopped on drop) or one that was
/// already running (left alone).
pub struct Pcscd {
    child: Option<Child>,
    log: Arc<Mutex<VecDeque<String>>>,
}

fn find_pcscd() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join("pcscd"))
        .find(|p| p.is_file())
}

fn running() -> bool {
    Path::new("/run/pcscd/pcscd.comm").exists() && gmhsm_icc::list_readers().is_ok()
}

impl Pcscd {
    /// Make sure pcscd runs with the vpcd driver loaded and listening: reuse a running one,
    /// or start `pcscd -f -d -a` and wait (up to `timeout`) for its log line
    /// [`READY_LINE`]. The port is never probed: the first connection to it becomes the card.
    pub fn ensure(timeout: Duration) -> Result<Pcscd, PcscdError> {
        let log = Arc::new(Mutex::new(VecDeque::new()));
        if running() {
            let me = Pcscd { child: None, log };
            me.wait_for_reader(VPCD_READER, timeout)?;
            return Ok(me);
        }
        let missing = || {
            PcscdError(format!(
                "pcscd with the vpcd driver is needed for this test and is not installed; \
                 install the Debian packages: apt-get install {PACKAGES} (scripts/test.sh does this)"
            ))
        };
        let pcscd = find_pcscd().ok_or_else(missing)?;
        if !Path::new(VPCD_DRIVER).exists() && !Path::new("/etc/reader.conf.d/vpcd").exists() {
            return Err(missing());
        }
        let mut child = Command::new(&pcscd)
            .args(["-f", "-d", "-a"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| PcscdError(format!("cannot start {}: {e}", pcscd.display())))?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let pipes: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for pipe in pipes.into_iter().flatten() {
            let log = log.clone();
            let ready = ready_tx.clone();
            // Drain the pipe for pcscd's whole life, or it blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(READY_LINE) {
                        let _ = ready.send(());
                    }
                    if let Ok(mut l) = log.lock() {
                        if l.len() >= 200 {
                            l.pop_front();
                        }
                        l.push_back(line);
                    }
                }
            });
        }
        let mut me = Pcscd { child: Some(child), log };
        let deadline = Instant::now() + timeout;
        loop {
            if ready_rx.recv_timeout(Duration::from_millis(100)).is_ok() {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                return Err(PcscdError(format!("pcscd exited ({status}) before vpcd was ready:\n{}", me.log_tail())));
            }
            if Instant::now() > deadline {
                return Err(PcscdError(format!("pcscd did not log {READY_LINE:?} in {timeout:?}:\n{}", me.log_tail())));
            }
        }
        me.wait_for_reader(VPCD_READER, timeout)?;
        Ok(me)
    }

    /// Whether this process started the pcscd (and will stop it).
    pub fn started_here(&self) -> bool {
        self.child.is_some()
    }

    /// Wait until pcscd lists a reader whose name contains `pattern`; returns its full name.
    pub fn wait_for_reader(&self, pattern: &str, timeout: Duration) -> Result<String, PcscdError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(names) = gmhsm_icc::list_readers()
                && let Some(n) = names.into_iter().find(|n| n.contains(pattern))
            {
                return Ok(n);
            }
            if Instant::now() > deadline {
                return Err(PcscdError(format!(
                    "pcscd lists no reader {pattern:?} (is vsmartcard-vpcd installed?):\n{}",
                    self.log_tail()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last lines pcscd logged (only for a pcscd started here).
    pub fn log_tail(&self) -> String {
        self.log.lock().map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n")).unwrap_or_default()
    }
}

impl Drop for Pcscd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

//! Tamper RAM backends: the TPM 2.0 (against swtpm, started here) and the nvmem cell (against
//! a regular file standing in for the sysfs cell), each zeroized by a tamper edge from a test
//! source behind the same trait as the GPIO line.

mod common;

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use gmhsm_board::config::Edge;
use gmhsm_board::tamper::{BoardTamper, EdgeSource, GpioLine, NvmemCell, SecretStore, TpmStore, nvmem};
use gmhsm_platform::TamperRam;

use common::{free_port, scratch, start_swtpm};

/// Edges pressed by the test.
struct TestEdges(mpsc::Receiver<()>);

/// A switch found already open at start (a latching tamper circuit that fired while off).
struct OpenAtStart;

impl EdgeSource for OpenAtStart {
    fn wait_edge(&mut self, timeout: Duration) -> std::io::Result<bool> {
        std::thread::sleep(timeout);
        Ok(false)
    }
    fn open_now(&mut self) -> std::io::Result<bool> {
        Ok(true)
    }
}

impl EdgeSource for TestEdges {
    fn open_now(&mut self) -> std::io::Result<bool> {
        Ok(false)
    }

    fn wait_edge(&mut self, timeout: Duration) -> std::io::Result<bool> {
        match self.0.recv_timeout(timeout) {
            Ok(()) => Ok(true),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(std::io::Error::other("test line gone")),
        }
    }
}

fn wait_for_event(t: &mut BoardTamper) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.tamper_event() {
        assert!(Instant::now() < deadline, "no tamper event after the edge");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn pattern(seed: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

const RAM_HANDLE: u32 = 0x8101_0047;
const NV_INDEX: u32 = 0x0150_0047;

#[test]
fn tpm_seal_unseal_after_reopen_and_zeroize_on_a_tamper_edge() {
    let dir = scratch("tpm");
    let Some(tpm) = start_swtpm(&dir) else { return };
    let tcti = tpm.tcti.clone();
    let (mut ram, mut reg) = ([0u8; nvmem::RAM_SIZE], [0u8; nvmem::REGISTER_SIZE]);

    let mut store = TpmStore::open(&tcti, RAM_HANDLE, NV_INDEX).unwrap();
    store.read_ram(&mut ram).unwrap();
    store.read_register(&mut reg).unwrap();
    assert_eq!((ram, reg), ([0; 64], [0; 96]), "a fresh TPM holds no key and a zero register");
    let (dmk, r1) = (pattern(1, 64), pattern(2, 96));
    store.write_ram(&dmk).unwrap();
    store.write_register(&r1).unwrap();
    drop(store);

    // Reopen: a new connection unseals what the old one sealed.
    let mut store = TpmStore::open(&tcti, RAM_HANDLE, NV_INDEX).unwrap();
    store.read_ram(&mut ram).unwrap();
    store.read_register(&mut reg).unwrap();
    assert_eq!((&ram[..], &reg[..]), (&dmk[..], &r1[..]));
    let (dmk2, r2) = (pattern(3, 64), pattern(4, 96));
    store.write_ram(&dmk2).unwrap();
    store.write_register(&r2).unwrap();
    assert!(store.write_ram(&[0u8; 63]).is_err(), "wrong length refused");
    store.read_ram(&mut ram).unwrap();
    assert_eq!(&ram[..], &dmk2[..], "resealed, and the refused write changed nothing");

    let (press, edges) = mpsc::channel();
    let mut t = BoardTamper::with_source(SecretStore::Tpm(store), Some(TestEdges(edges))).unwrap();
    assert!(!t.tamper_event());
    t.read(&mut ram).unwrap();
    t.read_register(&mut reg).unwrap();
    assert_eq!((&ram[..], &reg[..]), (&dmk2[..], &r2[..]));
    press.send(()).unwrap();
    wait_for_event(&mut t);
    assert!(!t.tamper_event(), "the event is taken once");
    t.read(&mut ram).unwrap();
    t.read_register(&mut reg).unwrap();
    assert_eq!((ram, reg), ([0; 64], [0; 96]), "zeroized by the edge");
    drop(t);
    drop(press);

    // The zeroization is in the TPM, not in this process.
    let mut store = TpmStore::open(&tcti, RAM_HANDLE, NV_INDEX).unwrap();
    store.read_ram(&mut ram).unwrap();
    store.read_register(&mut reg).unwrap();
    assert_eq!((ram, reg), ([0; 64], [0; 96]));
    assert!(!store.holds_key().unwrap(), "the tamper edge evicted the sealed object");
    // And the card can provision a new key afterwards, and zeroize it itself.
    store.write_ram(&dmk).unwrap();
    assert!(store.holds_key().unwrap());
    store.read_ram(&mut ram).unwrap();
    assert_eq!(&ram[..], &dmk[..]);
    store.write_ram(&[0u8; 64]).unwrap();
    assert!(!store.holds_key().unwrap(), "a RAM write of zeros leaves no sealed object");
    store.read_ram(&mut ram).unwrap();
    assert_eq!(ram, [0; 64]);
    drop(store);
    drop(tpm);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tpm_unreachable_is_a_clear_error() {
    let e = TpmStore::open(&format!("swtpm:host=127.0.0.1,port={}", free_port()), RAM_HANDLE, NV_INDEX)
        .err()
        .expect("no TPM there");
    assert!(e.to_string().contains("cannot connect to the TPM"), "{e}");
    let e = TpmStore::open("nonsense:", RAM_HANDLE, NV_INDEX).err().expect("bad TCTI");
    assert!(e.to_string().starts_with("TPM: "), "{e}");
}

#[test]
fn nvmem_cell_register_banks_and_zeroize_on_a_tamper_edge() {
    let dir = scratch("nvmem");
    let path = dir.join("nvmem");
    // The cell: 16 bytes of someone else's, then ours.
    std::fs::write(&path, vec![0u8; 16 + nvmem::AREA]).unwrap();
    assert!(NvmemCell::open(&path, 17).is_err(), "area past the end of the cell");
    let cell = NvmemCell::open(&path, 16).unwrap();
    let (mut ram, mut reg) = ([0u8; 64], [0u8; 96]);
    cell.read_ram(&mut ram).unwrap();
    cell.read_register(&mut reg).unwrap();
    assert_eq!((ram, reg), ([0; 64], [0; 96]));
    let dmk = pattern(5, 64);
    cell.write_ram(&dmk).unwrap();
    for seed in 10..15 {
        cell.write_register(&pattern(seed, 96)).unwrap();
        cell.read_register(&mut reg).unwrap();
        assert_eq!(&reg[..], &pattern(seed, 96)[..]);
    }
    drop(cell);

    // A write torn in the bank being written leaves the other, the previous value.
    let image = std::fs::read(&path).unwrap();
    let cell = NvmemCell::open(&path, 16).unwrap();
    cell.write_register(&pattern(20, 96)).unwrap();
    let after = std::fs::read(&path).unwrap();
    let changed: Vec<usize> = (0..image.len()).filter(|&i| image[i] != after[i]).collect();
    assert!(!changed.is_empty());
    let mut torn = after.clone();
    let mid = changed[changed.len() / 2];
    torn[mid..=*changed.last().unwrap()].copy_from_slice(&image[mid..=*changed.last().unwrap()]);
    std::fs::write(&path, &torn).unwrap();
    cell.read_register(&mut reg).unwrap();
    assert_eq!(&reg[..], &pattern(14, 96)[..], "torn write: the old value");
    cell.read_ram(&mut ram).unwrap();
    assert_eq!(&ram[..], &dmk[..], "the key is never rewritten by a register write");
    assert_eq!(&after[..16], &[0u8; 16], "bytes before the offset untouched");

    let (press, edges) = mpsc::channel();
    let mut t = BoardTamper::with_source(SecretStore::Nvmem(cell), Some(TestEdges(edges))).unwrap();
    assert!(!t.tamper_event());
    press.send(()).unwrap();
    wait_for_event(&mut t);
    t.read(&mut ram).unwrap();
    t.read_register(&mut reg).unwrap();
    assert_eq!((ram, reg), ([0; 64], [0; 96]));
    drop(t);
    assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 16 + nvmem::AREA], "all of it cleared on the medium");

    // A switch already open when the board starts zeroizes at once.
    let cell = NvmemCell::open(&path, 16).unwrap();
    cell.write_ram(&dmk).unwrap();
    let mut t = BoardTamper::with_source(SecretStore::Nvmem(cell), Some(OpenAtStart)).unwrap();
    t.read(&mut ram).unwrap();
    assert!(t.tamper_event(), "the event is latched before the store is handed out");
    assert_eq!(ram, [0; 64], "zeroized at start");
    drop(t);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gpio_line_missing_chip_is_a_clear_error() {
    let chips = std::fs::read_dir("/dev")
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("gpiochip")).count())
        .unwrap_or(0);
    if chips == 0 {
        eprintln!("NOT TESTED: edge events from a real GPIO line (no /dev/gpiochip*, and no gpio-sim module to load)");
    }
    let e = GpioLine::open_at(Path::new("/dev/gpiochip-gmhsm-absent"), 17, Edge::Rising).err().expect("no such chip");
    let msg = e.to_string();
    assert!(msg.starts_with("tamper switch /dev/gpiochip-gmhsm-absent: line 17"), "{msg}");
}

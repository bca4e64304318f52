//! The firmware's store on the O_DIRECT file flash in a process killed (SIGKILL) at a random
//! moment while it writes: after each kill the store reopens and every acknowledged insert is
//! there. (The power-cut model in flash_file.rs covers torn writes; this covers the real
//! process, lock and file.)

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gmhsm_board::flash::DirectFlash;
use gmhsm_firmware::store::Store;
use gmhsm_platform::FlashGeometry;

const G: FlashGeometry = FlashGeometry { page_size: 4096, page_count: 8, word_size: 4 };
const CHILD: &str = "GMHSM_BOARD_KILL_CHILD";
const KEYS: u64 = 6;

fn value(counter: u64) -> Vec<u8> {
    let mut v = counter.to_le_bytes().to_vec();
    v.resize(8 + (counter % 300) as usize, counter as u8);
    v
}

/// The writer: inserts counter `n` under key `n % KEYS`, printing `n` once acknowledged.
fn child(path: &Path, start: u64) -> ! {
    let mut store = Store::open_with_max_value(DirectFlash::open(path, G, false).unwrap(), 512).unwrap();
    let mut out = std::io::stdout().lock();
    for n in start.. {
        store.insert(&[(n % KEYS) as u8], &value(n)).unwrap();
        writeln!(out, "{n}").unwrap();
        out.flush().unwrap();
    }
    unreachable!()
}

#[test]
fn store_on_the_file_flash_survives_sigkill() {
    if let Some(spec) = std::env::var_os(CHILD) {
        let spec = spec.to_string_lossy().into_owned();
        let (start, path) = spec.split_once(':').unwrap();
        child(Path::new(path), start.parse().unwrap());
    }
    let dir = common::scratch("kill");
    let path = dir.join("flash.img");
    drop(DirectFlash::open(&path, G, true).unwrap());
    let mut acked: BTreeMap<u8, u64> = BTreeMap::new();
    let mut next = 0u64;
    for round in 0..6u64 {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store_on_the_file_flash_survives_sigkill", "--nocapture", "--test-threads=1"])
            .env(CHILD, format!("{next}:{}", path.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = c.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.trim().parse::<u64>().ok())
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(150 + 97 * round));
        c.kill().unwrap();
        c.wait().unwrap();
        let done = reader.join().unwrap();
        assert!(!done.is_empty(), "round {round}: the writer acknowledged nothing");
        for &n in &done {
            acked.insert((n % KEYS) as u8, n);
        }
        let last = *done.last().unwrap();
        let store =
            Store::open_with_max_value(DirectFlash::open(&path, G, false).unwrap(), 512).expect("reopen after SIGKILL");
        for (k, n) in acked.iter_mut() {
            let got = store.get(&[*k]).unwrap().expect("an acknowledged key is there");
            let c = u64::from_le_bytes(got[..8].try_into().unwrap());
            // The last acknowledged value, or the insert in flight when the kill came.
            assert!(c == *n || c == last + 1, "key {k}: acknowledged {n}, found {c}");
            assert_eq!(got, value(c), "key {k}: value intact");
            *n = c;
        }
        next = last + 2;
    }
    eprintln!("{next} inserts over 6 kills");
    std::fs::remove_dir_all(&dir).unwrap();
}

//! Helpers shared by the board's tests: scratch directories and a swtpm started per test.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fresh directory under the target's test scratch space.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("board-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Two free consecutive ports: the swtpm TCTI finds the control port at the server port + 1.
fn free_port_pair() -> (u16, u16) {
    loop {
        let a = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return (port, port + 1);
        }
    }
}

/// A software TPM 2.0 on loopback, its state in a directory of its own; killed on drop.
pub struct Swtpm {
    child: Child,
    /// The TCTI string that reaches it.
    pub tcti: String,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start swtpm with its state in `state`; `None` (after "NOT TESTED" on stderr) if it is not
/// installed, which fails when GMHSM_REQUIRE_SWTPM is set.
pub fn start_swtpm(state: &Path) -> Option<Swtpm> {
    std::fs::create_dir_all(state).unwrap();
    let (port, ctrl) = free_port_pair();
    let spawned = Command::new("swtpm")
        .args(["socket", "--tpm2", "--server", &format!("type=tcp,port={port},bindaddr=127.0.0.1")])
        .args(["--ctrl", &format!("type=tcp,port={ctrl},bindaddr=127.0.0.1")])
        .args(["--flags", "not-need-init,startup-clear", "--tpmstate"])
        .arg(format!("dir={}", state.display()))
        .stdout(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("NOT TESTED: no swtpm (apt-get install swtpm swtpm-tools)");
            assert!(
                std::env::var_os("GMHSM_REQUIRE_SWTPM").is_none(),
                "GMHSM_REQUIRE_SWTPM is set but swtpm is missing"
            );
            return None;
        }
        Err(e) => panic!("swtpm: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", ctrl)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("swtpm exited: {status}");
        }
        assert!(Instant::now() < deadline, "swtpm did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Swtpm { child, tcti: format!("swtpm:host=127.0.0.1,port={port}") })
}

/// Whether /dev/hwrng is there; if not, "NOT TESTED" (a failure with GMHSM_REQUIRE_HWRNG).
pub fn have_hwrng() -> bool {
    if Path::new("/dev/hwrng").exists() {
        return true;
    }
    eprintln!("NOT TESTED: no /dev/hwrng");
    assert!(std::env::var_os("GMHSM_REQUIRE_HWRNG").is_none(), "GMHSM_REQUIRE_HWRNG is set but there is no /dev/hwrng");
    false
}

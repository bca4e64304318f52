//! Helpers for gmhsm's end-to-end tests: boot a virtual appliance with `gmhsm-sim`, find the
//! workspace binaries, run the `gmhsm` CLI.
//!
//! The binaries are built by the test command (`scripts/test.sh` runs `cargo build
//! --workspace --bins` first); a test that cannot find them fails and says how to build them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The folder holding the workspace binaries (`target/<profile>`), found from the test
/// executable's own path (`target/<profile>/deps/<test>`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>").to_path_buf();
    for b in ["gmhsm-sim", "gmhsm"] {
        assert!(
            dir.join(b).exists(),
            "{} missing: build the binaries first (cargo build --workspace --bins), as scripts/test.sh does",
            dir.join(b).display()
        );
    }
    dir
}

pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// A fresh, empty folder under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("gmhsm-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `gmhsm-sim up`; stopped with SIGTERM on drop.
pub struct Appliance {
    pub child: Child,
    pub state: PathBuf,
}

impl Appliance {
    /// Start `gmhsm-sim up --state STATE --listen 127.0.0.1:0 [extra]` and wait until it writes
    /// its client profile.
    pub fn start(state: &Path, extra: &[&str]) -> Appliance {
        let child = Command::new(bin("gmhsm-sim"))
            .args(["up", "--state"])
            .arg(state)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn gmhsm-sim");
        let mut a = Appliance { child, state: state.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !a.profile().exists() {
            if let Ok(Some(st)) = a.child.try_wait() {
                panic!("gmhsm-sim exited before serving: {st}");
            }
            assert!(Instant::now() < deadline, "gmhsm-sim did not write client.toml within 120 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    }

    pub fn profile(&self) -> PathBuf {
        self.state.join("client.toml")
    }

    /// Run `gmhsm --profile PROFILE args...`.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(bin("gmhsm"))
            .arg("--profile")
            .arg(self.profile())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run gmhsm")
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(&mut self) -> bool {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Log the demo's quorum (admin-1 and admin-2, PINs from `STATE/cards/PINS.txt`) in at the
/// front panel of the simulator whose state is `state`, through `gmhsm-sim panel --script`
/// (the script is written into `dir`).
pub fn panel_quorum_login(state: &Path, dir: &Path) -> Output {
    let pins = std::fs::read_to_string(state.join("cards/PINS.txt")).unwrap();
    let pin = |card: &str| pins.lines().find_map(|l| l.strip_prefix(&format!("{card} "))).unwrap().to_string();
    let script = dir.join("quorum-login.txt");
    std::fs::write(
        &script,
        format!(
            "login\ninsert admin-1\nkeys {},OK\nwait-lcd Remove card\nremove\ninsert admin-2\nkeys {},OK\n\
             wait-lcd ADMIN LOGGED IN\n",
            pin("admin-1"),
            pin("admin-2")
        ),
    )
    .unwrap();
    Command::new(bin("gmhsm-sim")).arg("panel").arg("--state").arg(state).arg("--script").arg(&script).output().unwrap()
}

/// `gmhsm --socket STATE/local.sock args...` started with piped output, for a tool that will
/// wait for an approval at the panel.
pub fn spawn_local(state: &Path, args: &[&str]) -> std::process::Child {
    Command::new(bin("gmhsm"))
        .arg("--socket")
        .arg(state.join("local.sock"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `gmhsm --socket STATE/local.sock args...` as an administrative tool under the quorum
/// logged in at the panel: its card session asks for approval, the panel shows `Approve tool`,
/// OK is pressed there (`gmhsm-sim panel --keys OK`), and the tool's output is returned.
pub fn approved_local(state: &Path, args: &[&str]) -> Output {
    let child = spawn_local(state, args);
    let panel = |extra: &[&str]| {
        Command::new(bin("gmhsm-sim")).arg("panel").arg("--state").arg(state).args(extra).output().unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !String::from_utf8_lossy(&panel(&[]).stdout).contains("Approve tool") {
        assert!(std::time::Instant::now() < deadline, "the panel never asked to approve `gmhsm {args:?}`");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    ok(&panel(&["--keys", "OK"]), "OK at the panel");
    child.wait_with_output().unwrap()
}

/// Assert a command succeeded, showing its output if not.
pub fn ok(out: &Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed ({}): stdout={} stderr={}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

/// Run the OpenSSL CLI; panics if it is missing (CI installs it; a fresh machine has it).
pub fn openssl(args: &[&str]) -> Output {
    Command::new("openssl").args(args).output().expect("the openssl command is required for these tests")
}

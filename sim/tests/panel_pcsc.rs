//! The front panel with its admin cards on the REAL PC/SC stack: `gmhsm-sim up --demo
//! --reader pcsc` runs the demo's init ceremony with virtual cards inserted into pcscd's vpcd
//! reader (read through `PcscReader`, as a USB reader would be); a person (this test) then
//! does a quorum login with `gmhsm-sim panel` — insert a card, type its PIN, watch the LCD —
//! until the status page shows "ADMIN LOGGED IN", and logs out; then an operator logs in
//! with their card, runs the self-tests and stops and starts the service from the menu.
//!
//! Needs pcscd and vsmartcard-vpcd (scripts/test.sh installs and starts them; run alone, the
//! test starts `pcscd -f -d -a` itself), and the `gmhsm-sim` binary built with the `pcsc`
//! feature (cargo builds it so for this test, which requires that feature).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use gmhsm_sim::vpcd::Pcscd;

/// `target/<profile>/gmhsm-sim`, next to the folder of this test executable.
fn sim_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join("gmhsm-sim");
    assert!(bin.is_file(), "{} is missing: cargo test -p gmhsm-sim --features pcsc builds it", bin.display());
    bin
}

struct Up {
    child: Child,
    dir: PathBuf,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !matches!(self.child.try_wait(), Ok(Some(_))) {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn panel(state: &Path, args: &[&str]) -> Output {
    Command::new(sim_bin()).arg("panel").arg("--state").arg(state).args(args).output().unwrap()
}

/// The LCD after `args`, which must succeed.
#[track_caller]
fn lcd(state: &Path, args: &[&str]) -> String {
    let out = panel(state, args);
    assert!(
        out.status.success(),
        "panel {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[track_caller]
fn eventually(state: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = lcd(state, &[]);
        if s.contains(text) {
            return s;
        }
        assert!(Instant::now() < deadline, "the panel never showed {text:?}; it shows\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pin_of(state: &Path, card: &str) -> String {
    std::fs::read_to_string(state.join("cards/PINS.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("{card} ")).map(|p| p.trim().to_string()))
        .unwrap_or_else(|| panic!("no PIN for {card}"))
}

#[test]
fn quorum_login_at_the_panel_through_pcscd() {
    // pcscd with vpcd: fails (never skips) with the packages to install when missing.
    let pcscd = Pcscd::ensure(Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let dir = std::env::temp_dir().join(format!("gmhsm-panel-pcsc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state");
    let child = Command::new(sim_bin())
        .args(["up", "--demo", "--reader", "pcsc", "--listen", "127.0.0.1:0", "--state"])
        .arg(&state)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = Up { child, dir };
    // The demo's init ceremony and its quorum login ran through pcscd before the profile.
    let deadline = Instant::now() + Duration::from_secs(180);
    while !state.join("client.toml").exists() {
        if let Ok(Some(st)) = up.child.try_wait() {
            panic!("gmhsm-sim up --demo --reader pcsc exited ({st}){}", pcscd_log(&pcscd));
        }
        assert!(Instant::now() < deadline, "gmhsm-sim did not write client.toml{}", pcscd_log(&pcscd));
        std::thread::sleep(Duration::from_millis(100));
    }
    eventually(&state, "READY");

    // A quorum login (k = 2) with the cards in the vpcd reader.
    lcd(&state, &["--login"]);
    for (i, card) in ["admin-1", "admin-2"].into_iter().enumerate() {
        let s = eventually(&state, "Insert admin");
        assert!(s.contains(&format!("card {} of 2", i + 1)), "{s}");
        lcd(&state, &["--insert", card]);
        eventually(&state, "Enter PIN");
        // The reader holds one card: a second one is refused.
        let out = panel(&state, &["--insert", "admin-3"]);
        assert!(!out.status.success(), "a second card in the one vpcd reader must be refused");
        assert!(String::from_utf8_lossy(&out.stderr).contains("already holds"));
        lcd(&state, &["--keys", &format!("{},OK", pin_of(&state, card))]);
        if i == 0 {
            eventually(&state, "Remove card");
            lcd(&state, &["--remove"]);
        }
    }
    eventually(&state, "ADMIN LOGGED IN");
    // Then the status page: still logged in, the quorum's count shown.
    let s = eventually(&state, "Quorum 2 of");
    assert!(s.contains("ADMIN LOGGED IN"), "{s}");

    // Logout, then the last card leaves the reader.
    lcd(&state, &["--logout"]);
    eventually(&state, "Remove card");
    lcd(&state, &["--remove"]);
    eventually(&state, "READY");

    // An operator's card through the same reader: its menu, a self-test, and the service
    // stopped and started from the panel; removing the card logs the operator out.
    lcd(&state, &["--operator-login"]);
    eventually(&state, "Insert operator");
    lcd(&state, &["--insert", "operator-1"]);
    eventually(&state, "Enter PIN");
    lcd(&state, &["--keys", &format!("{},OK", pin_of(&state, "operator-1"))]);
    let s = eventually(&state, "OPERATOR LOGGED IN");
    assert!(s.contains("1 Stop  2 Self-test"), "{s}");
    lcd(&state, &["--keys", "2"]);
    eventually(&state, "Self-test passed");
    eventually(&state, "Service running");
    lcd(&state, &["--keys", "1"]);
    eventually(&state, "Stop service?");
    lcd(&state, &["--keys", "OK"]);
    eventually(&state, "SERVICE STOPPED");
    lcd(&state, &["--keys", "1"]);
    eventually(&state, "Start service?");
    lcd(&state, &["--keys", "OK"]);
    eventually(&state, "Service running");
    lcd(&state, &["--remove"]);
    eventually(&state, "operator logged out");
    eventually(&state, "READY");
    drop(up);
}

fn pcscd_log(p: &Pcscd) -> String {
    if p.started_here() { format!("\npcscd log:\n{}", p.log_tail()) } else { String::new() }
}

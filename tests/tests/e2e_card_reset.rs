//! A card process killed mid-work (power cut of the card) loses nothing it acknowledged: the
//! simulator restarts the card, the daemon reconnects, and every key whose generation was
//! answered is still there and still signs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gmhsm_tests::*;

/// The pid of the card process of the appliance in `state`.
fn card_pid(state: &std::path::Path) -> Option<u32> {
    let needle = format!("--state{}", state.join("card").display());
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmd: String = cmd.split(|&b| b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect();
        if cmd.contains("gmhsm-sim") && cmd.contains(&needle) && cmd.contains("card") {
            return Some(pid);
        }
    }
    None
}

#[test]
fn killed_card_keeps_every_acknowledged_key() {
    let tmp = TempDir::new("reset");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);

    // Generate keys in a background CLI loop while the card is killed underneath it.
    let profile = app.profile();
    let generator = std::thread::spawn(move || {
        let mut acked = Vec::new();
        for i in 0..40 {
            let label = format!("k{i}");
            let out = Command::new(bin("gmhsm"))
                .arg("--profile")
                .arg(&profile)
                .args(["key", "generate", "--alg", "sm2", "--label", &label])
                .stdin(Stdio::null())
                .output()
                .unwrap();
            if out.status.success() {
                acked.push(label);
            }
        }
        acked
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = card_pid(&state).expect("card process");
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();

    let acked = generator.join().unwrap();
    assert!(!acked.is_empty(), "some generations must have succeeded");

    // The card comes back (a new process) and serves again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = app.cli(&["status"]);
        if out.status.success() && card_pid(&state).is_some_and(|p| p != pid) {
            break;
        }
        assert!(Instant::now() < deadline, "card did not come back: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(Duration::from_millis(200));
    }
    let msg = tmp.path().join("m");
    std::fs::write(&msg, b"after the reset").unwrap();
    for label in &acked {
        let out = app.cli(&["sign", "--label", label, "--in", msg.to_str().unwrap()]);
        ok(&out, &format!("sign with acknowledged key {label}"));
    }
    let list = String::from_utf8(ok(&app.cli(&["key", "list"]), "list")).unwrap();
    for label in &acked {
        assert!(list.lines().any(|l| l.split_whitespace().next() == Some(label)), "{label} missing from:\n{list}");
    }
}

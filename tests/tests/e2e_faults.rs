//! Faults injected in the simulator reach the operator as a clear error state: a stuck noise
//! source at boot, and an opened enclosure (tamper) while serving.

use gmhsm_tests::*;

#[test]
fn stuck_noise_source_means_no_keys() {
    let tmp = TempDir::new("noise");
    let app = Appliance::start(&tmp.path().join("state"), &["--demo", "--noise-fault", "stuck"]);
    let out = app.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("repetition count"), "status must say why: {text}");
    let out = app.cli(&["key", "generate", "--alg", "sm2", "--label", "k"]);
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not initialized") || err.contains("error state"), "{err}");
}

#[test]
fn tamper_zeroizes_and_refuses() {
    let tmp = TempDir::new("tamper");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    ok(&app.cli(&["key", "generate", "--alg", "sm2", "--label", "k"]), "generate");
    let out = std::process::Command::new(bin("gmhsm-sim"))
        .args(["trip-tamper", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    ok(&out, "trip-tamper");
    let msg = tmp.path().join("m");
    std::fs::write(&msg, b"x").unwrap();
    let out = app.cli(&["sign", "--label", "k", "--in", msg.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "signing after tamper must be refused");
    let ram = std::fs::read(state.join("card/tamper.ram")).unwrap();
    assert!(ram.iter().all(|&b| b == 0), "device master key zeroized");
    let status = String::from_utf8_lossy(&ok(&app.cli(&["status"]), "status")).to_string();
    assert!(status.contains("tamper"), "{status}");
}

//! Faults injected in the simulator reach the operator as a clear error state: a stuck noise
//! source at boot, and an opened enclosure (tamper) while serving.

use gmhsm_tests::*;

/// A broken noise source at the first boot: the card cannot make its device master key nor
/// the appliance's TLS keys, so the appliance does not come up, and says why.
#[test]
fn faulty_noise_source_means_no_appliance_and_says_why() {
    // A biased source may be caught by the adaptive proportion test or, first, by the
    // power-up statistical test, depending on where its windows fall.
    for (fault, why) in [("stuck", "repetition count"), ("biased", "entropy: "), ("repeating", "entropy: ")] {
        let tmp = TempDir::new("noise");
        let out = std::process::Command::new(bin("gmhsm-sim"))
            .args(["up", "--demo", "--listen", "127.0.0.1:0", "--noise-fault", fault, "--state"])
            .arg(tmp.path().join("state"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{fault}: the appliance must not serve");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{fault}: must say why ({why}): {err}");
        assert!(!tmp.path().join("state/client.toml").exists());
    }
}

#[test]
fn tamper_zeroizes_and_refuses() {
    let tmp = TempDir::new("tamper");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    ok(&app.cli(&["key", "generate", "--alg", "sm2", "--label", "k"]), "generate");
    let out =
        std::process::Command::new(bin("gmhsm-sim")).args(["trip-tamper", "--state"]).arg(&state).output().unwrap();
    ok(&out, "trip-tamper");
    let msg = tmp.path().join("m");
    std::fs::write(&msg, b"x").unwrap();
    // The appliance's TLS key lived in the card too: no handshake, no signature.
    let out = app.cli(&["sign", "--label", "k", "--in", msg.to_str().unwrap()]);
    assert!(matches!(out.status.code(), Some(3) | Some(4)), "signing after tamper must fail: {out:?}");
    let ram = std::fs::read(state.join("card/tamper.ram")).unwrap();
    assert!(ram.iter().all(|&b| b == 0), "device master key zeroized");
    // The operator still reads why through the appliance's local socket.
    let out = std::process::Command::new(bin("gmhsm"))
        .arg("--socket")
        .arg(state.join("local.sock"))
        .arg("status")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&ok(&out, "status over the local socket")).to_string();
    assert!(status.contains("tamper"), "{status}");
}

//! Issue 2's walking skeleton, end to end: boot the simulator with --demo, generate SM2, RSA
//! and ECDSA P-256 keys through the `gmhsm` CLI, sign, verify with the appliance and with OpenSSL 3,
//! restart the appliance and find everything still there.

use gmhsm_tests::*;

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn sign_and_verify_sm2_and_rsa_then_restart() {
    let tmp = TempDir::new("e2e");
    let state = tmp.path().join("state");
    let mut app = Appliance::start(&state, &["--demo"]);

    let msg = tmp.path().join("msg.txt");
    std::fs::write(&msg, b"transfer 100 CNY to account 6222 0000 1234\n").unwrap();
    let tampered = tmp.path().join("msg2.txt");
    std::fs::write(&tampered, b"transfer 900 CNY to account 6222 0000 1234\n").unwrap();

    // ECDSA P-256 signatures come from the card's nonce pool (k⁻¹, r precomputed in batches).
    for (label, alg, dgst) in
        [("sm2-demo", "sm2", "-sm3"), ("rsa-demo", "rsa2048", "-sha256"), ("p256-demo", "ecdsa-p256", "-sha256")]
    {
        ok(&app.cli(&["key", "generate", "--alg", alg, "--label", label]), "key generate");
        let pem = ok(&app.cli(&["key", "export", "--label", label, "--pem"]), "key export");
        assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----"), "{}", String::from_utf8_lossy(&pem));
        let pub_pem = tmp.path().join(format!("{label}.pem"));
        std::fs::write(&pub_pem, &pem).unwrap();

        let sig = tmp.path().join(format!("{label}.sig"));
        ok(&app.cli(&["sign", "--label", label, "--in", path_str(&msg), "--out", path_str(&sig)]), "sign");
        ok(&app.cli(&["verify", "--label", label, "--in", path_str(&msg), "--sig", path_str(&sig)]), "verify");
        let bad = app.cli(&["verify", "--label", label, "--in", path_str(&tampered), "--sig", path_str(&sig)]);
        assert_eq!(bad.status.code(), Some(1), "a signature over other data must not verify");

        // OpenSSL 3 verifies the appliance's signature.
        let mut args = vec!["dgst", dgst];
        if alg == "sm2" {
            args.extend(["-sigopt", "distid:1234567812345678"]);
        }
        args.extend(["-verify", path_str(&pub_pem), "-signature", path_str(&sig), path_str(&msg)]);
        let out = openssl(&args);
        ok(&out, "openssl dgst -verify");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
        args.pop();
        args.push(path_str(&tampered));
        assert!(!openssl(&args).status.success(), "openssl must reject the tampered message");
    }

    // An unknown label is a clear error, and the appliance keeps serving.
    let out = app.cli(&["sign", "--label", "no-such-key", "--in", path_str(&msg)]);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such key"));
    ok(&app.cli(&["ping"]), "ping after an error");

    // Restart without --demo: the state folder carries the keys, certificates and DMK.
    let pem_before = ok(&app.cli(&["key", "export", "--label", "sm2-demo", "--pem"]), "export");
    assert!(app.stop(), "gmhsm-sim must exit cleanly on SIGTERM");
    assert!(!app.profile().exists(), "client.toml is removed when the appliance stops");
    let app = Appliance::start(&state, &[]);
    let pem_after = ok(&app.cli(&["key", "export", "--label", "sm2-demo", "--pem"]), "export after restart");
    assert_eq!(pem_before, pem_after);
    let sig = tmp.path().join("sm2-demo.sig");
    ok(&app.cli(&["verify", "--label", "sm2-demo", "--in", path_str(&msg), "--sig", path_str(&sig)]), "verify");
    let out = app.cli(&["key", "generate", "--alg", "sm2", "--label", "sm2-demo"]);
    assert_eq!(out.status.code(), Some(4), "an existing label is refused");
}

//! Key pairs generated for the caller (`GenerateKeyPair`, GM/T 0018 SDF_GenerateKeyPair_ECC)
//! end to end on the simulator: through the SDK and the `gmhsm` CLI, the private key wrapped
//! under a KEK and opened again in the card, or in the clear once the administrators allow
//! it; OpenSSL 3 parses the keys, derives the same public key from the private one, and
//! verifies an SM2 signature made with the returned private key against the returned public
//! key. Nothing is stored in the card.

use std::process::Command;

use gmhsm_client::*;
use gmhsm_tests::*;

fn connect(app: &Appliance) -> Client {
    Client::connect(&Profile::load(app.profile()).unwrap()).unwrap()
}

fn path_str(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// OpenSSL agrees that `key_pem` (PKCS#8) and `spki_der` are one SM2 pair: the public key it
/// derives from the private key is the SPKI, and a signature it makes with the private key
/// verifies with the public key (and not over other data).
fn openssl_checks_sm2_pair(dir: &std::path::Path, tag: &str, key_pem: &std::path::Path, spki_der: &[u8]) {
    let derived = dir.join(format!("{tag}-derived.der"));
    ok(
        &openssl(&["pkey", "-in", path_str(key_pem), "-pubout", "-outform", "DER", "-out", path_str(&derived)]),
        "openssl pkey -pubout",
    );
    assert_eq!(
        std::fs::read(&derived).unwrap(),
        spki_der,
        "OpenSSL derives the returned public key from the private key"
    );
    let pub_pem = dir.join(format!("{tag}-pub.pem"));
    std::fs::write(&pub_pem, pem::public_key(spki_der)).unwrap();
    let text = ok(&openssl(&["pkey", "-pubin", "-in", path_str(&pub_pem), "-noout", "-text"]), "openssl pkey -pubin");
    assert!(String::from_utf8_lossy(&text).contains("SM2"), "{}", String::from_utf8_lossy(&text));

    let msg = dir.join(format!("{tag}-msg.txt"));
    std::fs::write(&msg, b"signed with a key pair the appliance generated\n").unwrap();
    let other = dir.join(format!("{tag}-other.txt"));
    std::fs::write(&other, b"something else\n").unwrap();
    let sig = dir.join(format!("{tag}.sig"));
    let id = "distid:1234567812345678";
    ok(
        &openssl(&["dgst", "-sm3", "-sigopt", id, "-sign", path_str(key_pem), "-out", path_str(&sig), path_str(&msg)]),
        "openssl dgst -sign",
    );
    let verify = |data: &std::path::Path| {
        openssl(&[
            "dgst",
            "-sm3",
            "-sigopt",
            id,
            "-verify",
            path_str(&pub_pem),
            "-signature",
            path_str(&sig),
            path_str(data),
        ])
    };
    let out = verify(&msg);
    ok(&out, "openssl dgst -verify");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verified OK"));
    assert!(!verify(&other).status.success(), "a signature over other data must not verify");
}

#[test]
fn key_pairs_through_the_sdk_and_the_cli() {
    let tmp = TempDir::new("keypair");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    let mut c = connect(&app);
    c.generate_key_with("kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0).unwrap();
    let stored = c.status().unwrap().keys;

    // SDK: wrapped under the KEK, opened again in the card with the KEK.
    let pair = c.generate_key_pair_wrapped(KeyAlg::Sm2, "kek").unwrap();
    let PrivateKeyOut::Wrapped(blob) = &pair.private else { panic!("asked for a wrapped key: {pair:?}") };
    assert_eq!(blob.len(), 12 + 138 + 16, "nonce, PKCS#8 of an SM2 key, tag");
    let pkcs8 = c.unwrap_private_key("kek", &pair.spki_der, blob).unwrap();
    let key_pem = tmp.path().join("sdk-key.pem");
    std::fs::write(&key_pem, pem::private_key(pkcs8.expose_secret())).unwrap();
    openssl_checks_sm2_pair(tmp.path(), "sdk", &key_pem, &pair.spki_der);
    // Bound to its public key: another SPKI as associated data does not open it.
    let mut other = pair.spki_der.clone();
    other[90] ^= 1;
    assert!(matches!(c.unwrap_private_key("kek", &other, blob), Err(ClientError::Status(Status::DecryptFailed))));
    // Plaintext is refused while the policy is off (the default).
    assert!(!c.key_export_policy(None).unwrap());
    assert!(matches!(
        c.generate_key_pair(KeyAlg::Sm2, KeyPairProtection::Plaintext),
        Err(ClientError::Status(Status::AccessDenied))
    ));
    // Applications cannot change the policy.
    assert!(matches!(c.key_export_policy(Some(true)), Err(ClientError::Status(Status::AccessDenied))));

    // CLI: a wrapped pair, unwrapped with the KEK, checked by OpenSSL.
    let pub_pem = tmp.path().join("cli-pub.pem");
    let wrapped = tmp.path().join("cli-key.wrapped");
    ok(
        &app.cli(&[
            "key",
            "pair",
            "--alg",
            "sm2",
            "--kek",
            "kek",
            "--pub-out",
            path_str(&pub_pem),
            "--key-out",
            path_str(&wrapped),
        ]),
        "key pair --kek",
    );
    let cli_key = tmp.path().join("cli-key.pem");
    ok(
        &app.cli(&[
            "key",
            "unwrap",
            "--kek",
            "kek",
            "--pub",
            path_str(&pub_pem),
            "--in",
            path_str(&wrapped),
            "--out",
            path_str(&cli_key),
        ]),
        "key unwrap",
    );
    let spki = ok(&openssl(&["pkey", "-pubin", "-in", path_str(&pub_pem), "-outform", "DER"]), "openssl pkey");
    openssl_checks_sm2_pair(tmp.path(), "cli", &cli_key, &spki);

    // Plaintext through the CLI: refused (exit 4) until local administration allows it.
    let plain = tmp.path().join("plain.pem");
    let plain_args = ["key", "pair", "--alg", "sm2", "--plaintext", "--key-out", path_str(&plain)];
    let out = app.cli(&plain_args);
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("access denied"));
    // The demo appliance was initialized by the init ceremony: changing the policy needs the
    // policy-change quorum logged in at the front panel, even on the local socket, and the
    // tool's session approved there.
    let socket = state.join("local.sock");
    let local = |args: &[&str]| Command::new(bin("gmhsm")).arg("--socket").arg(&socket).args(args).output().unwrap();
    let refused = local(&["key", "export-policy", "--set", "on"]);
    assert_eq!(refused.status.code(), Some(4), "no quorum, no policy change: {refused:?}");
    ok(&panel_quorum_login(&state, tmp.path()), "quorum login at the panel");
    let state_s = state.to_str().unwrap();
    let sim = |args: &[&str]| Command::new(bin("gmhsm-sim")).args(args).output().unwrap();
    let on = ok(&approved_local(&state, &["key", "export-policy", "--set", "on"]), "export-policy --set on, approved");
    assert!(String::from_utf8_lossy(&on).contains("ALLOWED"));
    let shown = ok(&app.cli(&["key", "export-policy"]), "export-policy");
    assert!(String::from_utf8_lossy(&shown).contains("ALLOWED"));
    let spki_pem = ok(&app.cli(&plain_args), "key pair --plaintext");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let spki_file = tmp.path().join("plain-pub.pem");
    std::fs::write(&spki_file, &spki_pem).unwrap();
    let spki = ok(&openssl(&["pkey", "-pubin", "-in", path_str(&spki_file), "-outform", "DER"]), "openssl pkey");
    openssl_checks_sm2_pair(tmp.path(), "plain", &plain, &spki);
    // P-256 and RSA-2048 in the clear: OpenSSL reads them and derives the same public keys.
    for (alg, tag) in [(KeyAlg::EcdsaP256, "p256"), (KeyAlg::Rsa2048, "rsa")] {
        let pair = c.generate_key_pair(alg, KeyPairProtection::Plaintext).unwrap();
        let PrivateKeyOut::Plaintext(pkcs8) = &pair.private else { panic!("asked for plaintext") };
        let shown = format!("{pair:?}");
        assert!(
            shown.contains(&format!("Plaintext(SecretBytes({} bytes))", pkcs8.len())),
            "no secret in Debug: {shown}"
        );
        let key = tmp.path().join(format!("{tag}.pem"));
        std::fs::write(&key, pem::private_key(pkcs8.expose_secret())).unwrap();
        ok(&openssl(&["pkey", "-in", path_str(&key), "-check", "-noout"]), "openssl pkey -check");
        let derived = ok(&openssl(&["pkey", "-in", path_str(&key), "-pubout", "-outform", "DER"]), "openssl -pubout");
        assert_eq!(derived, pair.spki_der, "{tag}");
    }
    ok(&approved_local(&state, &["key", "export-policy", "--set", "off"]), "export-policy --set off, approved");
    ok(&sim(&["panel", "--state", state_s, "--remove"]), "the last card out: authority ends");
    assert_eq!(app.cli(&plain_args).status.code(), Some(4), "refused again once the policy is off");

    // Nothing was stored.
    assert_eq!(c.status().unwrap().keys, stored);
}

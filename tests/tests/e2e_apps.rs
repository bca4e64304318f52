//! Applications and administration across the real daemon: two applications that cannot touch
//! each other's keys, administration on a ceremony-initialized appliance (registering an
//! application needs a quorum of admin cards logged in at the front panel; the admin CLI on
//! the local socket is refused without it and acts under it while it lasts), the audit log read and checked over the
//! local socket, and client failover between two simulated appliances of one security domain.

use std::process::Command;

use gmhsm_client::*;
use gmhsm_tests::*;

/// Wait until the front panel asks to approve a tool, and press OK.
fn sim(args: &[&str]) -> std::process::Output {
    Command::new(bin("gmhsm-sim")).args(args).output().unwrap()
}

#[test]
fn two_applications_are_isolated_and_local_admin_shares_by_domain() {
    let tmp = TempDir::new("apps");
    let state = tmp.path().join("state");
    let app = Appliance::start(&state, &["--demo"]);
    let out = sim(&["client-cert", "--state", state.to_str().unwrap(), "--name", "payroll"]);
    let payroll_profile = std::path::PathBuf::from(String::from_utf8(ok(&out, "client-cert")).unwrap().trim());

    let mut demo = Client::connect(&Profile::load(app.profile()).unwrap()).unwrap();
    let mut payroll = Client::connect(&Profile::load(&payroll_profile).unwrap()).unwrap();
    demo.generate_key_with("shared-signer", KeyAlg::Sm2, Capabilities::DEFAULT, 0b100).unwrap();
    payroll.generate_key_with("payroll-key", KeyAlg::Sm2, Capabilities::DEFAULT, 0).unwrap();

    // Neither sees nor uses the other's keys (payroll is not registered in any domain).
    let unknown = |r: Result<Vec<u8>, ClientError>| matches!(r, Err(ClientError::Status(Status::UnknownKey)));
    assert!(unknown(payroll.sign("shared-signer", Mechanism::sm2_default(), b"x")));
    assert!(unknown(demo.sign("payroll-key", Mechanism::sm2_default(), b"x")));
    assert!(matches!(payroll.delete_key("shared-signer"), Err(ClientError::Status(Status::UnknownKey))));
    let names: Vec<String> = payroll.list_keys().unwrap().into_iter().map(|(l, _)| l).collect();
    assert_eq!(names, ["payroll-key"]);

    // Administration: payroll in domain 0b100 with sign only. The demo appliance was
    // initialized by the init ceremony, so this needs a quorum's authority: the local socket
    // alone is refused; with a quorum logged in at the front panel (the demo's cards and
    // PINs) the same command succeeds.
    let socket = state.join("local.sock");
    let admin = |args: &[&str]| Command::new(bin("gmhsm")).arg("--socket").arg(&socket).args(args).output().unwrap();
    let cert = state.join("pki/payroll.pem");
    let local = admin(&[
        "register-app",
        "--cert",
        cert.to_str().unwrap(),
        "--name",
        "payroll",
        "--domains",
        "4",
        "--caps",
        "sign",
    ]);
    assert!(!local.status.success(), "register-app over the local socket without a quorum must be refused");
    let state_s = state.to_str().unwrap();
    ok(&panel_quorum_login(&state, tmp.path()), "quorum login at the panel");
    // While the quorum is logged in at the panel, the admin CLI on the local socket acts
    // under its authority.
    let register = [
        "register-app",
        "--cert",
        cert.to_str().unwrap(),
        "--name",
        "payroll",
        "--domains",
        "4",
        "--caps",
        "sign",
        "--max-keys",
        "2",
    ];
    ok(
        &approved_local(&state, &register),
        "register-app over the local socket, approved at the panel under its quorum",
    );
    // The quota the CLI passed holds: payroll owns one key, may make one more.
    payroll.generate_key_with("payroll-2", KeyAlg::Sm4, Capabilities::DEFAULT, 0).unwrap();
    assert!(matches!(
        payroll.generate_key_with("payroll-3", KeyAlg::Sm4, Capabilities::DEFAULT, 0),
        Err(ClientError::Status(Status::QuotaExceeded))
    ));
    ok(&sim(&["panel", "--state", state_s, "--remove"]), "the last card out: authority ends");
    let revoke = admin(&["revoke-app", "--cert", cert.to_str().unwrap()]);
    assert_eq!(revoke.status.code(), Some(4), "revoking without the quorum is refused: {revoke:?}");
    payroll.sign("shared-signer", Mechanism::sm2_default(), b"x").unwrap();
    let enc = CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 };
    assert!(matches!(
        payroll.encrypt(KeyRef::Label(to_label("shared-signer").unwrap()), enc, b"x"),
        Err(ClientError::Status(Status::AccessDenied))
    ));
    // An application cannot register itself.
    assert!(matches!(
        payroll.register_application([7; 32], "me", u32::MAX, Capabilities::ALL),
        Err(ClientError::Status(Status::AccessDenied))
    ));

    // The auditor's view: every event, chained; denials name the application.
    let out = admin(&["audit"]);
    let text = String::from_utf8_lossy(&ok(&out, "audit")).to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("audit chain OK"));
    assert!(text.contains("KeyGenerated") && text.contains("payroll-key"), "{text}");
    assert!(text.contains("Denied"), "{text}");
}

#[test]
fn client_fails_over_to_the_second_appliance() {
    let tmp = TempDir::new("failover");
    let (a_state, b_state) = (tmp.path().join("a"), tmp.path().join("b"));
    let mut a = Appliance::start(&a_state, &["--demo"]);
    let pki = a_state.join("pki");
    let b = Appliance::start(&b_state, &["--demo", "--pki", pki.to_str().unwrap()]);

    // One profile: A first, B as failover (same domain PKI).
    let profile_a = std::fs::read_to_string(a.profile()).unwrap();
    let b_addr = std::fs::read_to_string(b.profile())
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("address = ").map(str::to_string))
        .unwrap();
    let both = tmp.path().join("both.toml");
    std::fs::write(&both, format!("{profile_a}failover = [{b_addr}]\n")).unwrap();

    let c = Client::connect(&Profile::load(&both).unwrap()).unwrap();
    assert_eq!(c.peer(), profile_a.lines().find_map(|l| l.strip_prefix("address = \"")?.strip_suffix('"')).unwrap());
    drop(c);
    assert!(a.stop());
    let mut c = Client::connect(&Profile::load(&both).unwrap()).unwrap();
    assert_eq!(format!("\"{}\"", c.peer()), b_addr, "the client moved to B");
    c.ping().unwrap();
    c.generate_key("on-b", KeyAlg::Sm2).unwrap();
    // The CLI fails over the same way.
    let out = Command::new(bin("gmhsm")).arg("--profile").arg(&both).args(["key", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&ok(&out, "list via failover")).contains("on-b"));
}

//! The `gmhsm` CLI end to end: real daemon, real TLS, and the real card (`gmhsm-card`'s
//! in-process card: the firmware on in-memory devices): its plumbing, exit codes, and real
//! keys and signatures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use gmhsm_card::testing::InProcessCard;
use gmhsm_daemon::{Daemon, DaemonConfig};
use gmhsm_proto::frame::MAX_MESSAGE_LEN;

/// Start the card and the daemon; return the folder holding `client.toml` (and the card, which
/// serves as long as it lives).
fn start() -> (PathBuf, InProcessCard) {
    let dir = std::env::temp_dir().join(format!("gmhsm-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let ca_key = KeyPair::generate().expect("key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "cli test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let server_key = KeyPair::generate().expect("key");
    let mut sp = CertificateParams::new(vec!["gmhsm.local".to_string()]).expect("params");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp.signed_by(&server_key, &ca, &ca_key).expect("server");
    let client_key = KeyPair::generate().expect("key");
    let mut cp = CertificateParams::new(Vec::<String>::new()).expect("params");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = cp.signed_by(&client_key, &ca, &ca_key).expect("client");

    let card = InProcessCard::start();
    let mut config = DaemonConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        server.pem().into_bytes(),
        server_key.serialize_pem().into_bytes(),
        ca.pem().into_bytes(),
        card.socket().to_path_buf(),
    );
    config.applications = gmhsm_daemon::Applications::AnyCertificate;
    let daemon = Daemon::bind(config).expect("daemon");
    let addr = daemon.local_addr();
    std::thread::spawn(move || daemon.run());

    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("client.pem"), client.pem()).expect("write");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write");
    let profile = format!(
        "address = \"{addr}\"\nserver_name = \"gmhsm.local\"\nca_cert = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"\n"
    );
    std::fs::write(dir.join("client.toml"), profile).expect("write");
    (dir, card)
}

fn gmhsm(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gmhsm"))
        .arg("--profile")
        .arg(dir.join("client.toml"))
        .args(args)
        .output()
        .expect("run gmhsm")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

#[test]
fn cli_end_to_end() {
    let (dir, _card) = start();
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();

    assert_eq!(code(&gmhsm(&dir, &["ping"])), 0);

    let out = gmhsm(&dir, &["key", "generate", "--alg", "sm2", "--label", "app-sign"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app-sign sm2");
    assert_eq!(code(&gmhsm(&dir, &["key", "generate", "--alg", "rsa2048", "--label", "app-rsa"])), 0);

    // A second generate under the same label: the appliance refuses, exit 4 with the status.
    let out = gmhsm(&dir, &["key", "generate", "--alg", "sm2", "--label", "app-sign"]);
    assert_eq!(code(&out), 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("status 4"));

    let out = gmhsm(&dir, &["key", "export", "--label", "app-sign", "--pem"]);
    assert_eq!(code(&out), 0);
    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let spki = gmhsm(&dir, &["key", "export", "--label", "app-sign"]).stdout;
    // The card's SM2 public key, as DER: the PEM form is the same key.
    let sm2_key = <sm2::PublicKey as sm2::pkcs8::DecodePublicKey>::from_public_key_der(&spki).expect("an SM2 key");
    assert_eq!(<sm2::PublicKey as sm2::pkcs8::DecodePublicKey>::from_public_key_pem(&pem).expect("pem"), sm2_key);
    assert_eq!(code(&gmhsm(&dir, &["key", "export", "--label", "app-sign", "--out", &p("pub.der")])), 0);
    assert_eq!(std::fs::read(dir.join("pub.der")).expect("pub.der"), spki);

    std::fs::write(dir.join("msg"), b"hello").expect("write");
    let out = gmhsm(&dir, &["sign", "--label", "app-sign", "--in", &p("msg"), "--out", &p("sig")]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(code(&gmhsm(&dir, &["verify", "--label", "app-sign", "--in", &p("msg"), "--sig", &p("sig")])), 0);
    std::fs::write(dir.join("msg"), b"hellO").expect("write");
    let out = gmhsm(&dir, &["verify", "--label", "app-sign", "--in", &p("msg"), "--sig", &p("sig")]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature INVALID"));

    let out = gmhsm(&dir, &["sign", "--label", "app-rsa", "--in", &p("msg"), "--out", &p("rsa-sig")]);
    assert_eq!(code(&out), 0);
    assert_eq!(std::fs::read(dir.join("rsa-sig")).expect("rsa-sig").len(), 256, "an RSA-2048 signature");
    assert_eq!(code(&gmhsm(&dir, &["verify", "--label", "app-rsa", "--in", &p("msg"), "--sig", &p("rsa-sig")])), 0);

    let out = gmhsm(&dir, &["key", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("app-rsa\trsa2048"));
    assert_eq!(code(&gmhsm(&dir, &["key", "delete", "--label", "app-rsa"])), 0);
    assert_eq!(code(&gmhsm(&dir, &["key", "delete", "--label", "app-rsa"])), 4);

    // Local problems.
    assert_eq!(code(&gmhsm(&dir, &["sign", "--label", "app-sign", "--in", &p("absent")])), 5);
    std::fs::write(dir.join("big"), vec![0u8; MAX_MESSAGE_LEN + 1]).expect("write");
    let out = gmhsm(&dir, &["sign", "--label", "app-sign", "--in", &p("big")]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than"));
    assert_eq!(code(&gmhsm(&dir, &["key", "delete", "--label", &"x".repeat(65)])), 2);
    assert_eq!(code(&gmhsm(&dir, &["key", "frobnicate"])), 2);
    let missing =
        Command::new(env!("CARGO_BIN_EXE_gmhsm")).args(["--profile", &p("absent.toml"), "ping"]).output().expect("run");
    assert_eq!(code(&missing), 5);

    // Cannot connect: a profile pointing at a closed port.
    let toml = std::fs::read_to_string(dir.join("client.toml")).expect("read");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_addr = closed.local_addr().expect("addr");
    drop(closed);
    let mut lines: Vec<String> = toml.lines().map(str::to_owned).collect();
    lines[0] = format!("address = \"{closed_addr}\"");
    std::fs::write(dir.join("closed.toml"), lines.join("\n")).expect("write");
    let out =
        Command::new(env!("CARGO_BIN_EXE_gmhsm")).args(["--profile", &p("closed.toml"), "ping"]).output().expect("run");
    assert_eq!(code(&out), 3);

    // GMHSM_PROFILE stands in for --profile.
    let out = Command::new(env!("CARGO_BIN_EXE_gmhsm"))
        .env("GMHSM_PROFILE", dir.join("client.toml"))
        .arg("ping")
        .output()
        .expect("run");
    assert_eq!(code(&out), 0);

    let _ = std::fs::remove_dir_all(&dir);
}

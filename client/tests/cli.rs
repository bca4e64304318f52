//! The `gmhsm` CLI end to end: real daemon, real TLS, a fake card with an in-memory key store.
//!
//! The fake card is a test double: its "signature" is SHA-256 of the message and its "public
//! key" is a fixed byte string; what is tested here is the CLI's plumbing and exit codes.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use sha2::{Digest, Sha256};

use gmhsm_daemon::{Daemon, DaemonConfig};
use gmhsm_proto::frame::{self, MAX_MESSAGE_LEN};
use gmhsm_proto::{CardFrame, Deframer, KeyAlg, Label, Request, Response, ServerFrame, Status};

const SPKI: &[u8] = b"\x30\x03fake-spki";

fn card(mut s: UnixStream) {
    let mut keys: HashMap<Label, KeyAlg> = HashMap::new();
    let mut d = Deframer::new();
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n @ 1..) = s.read(&mut buf) {
        d.push(&buf[..n]);
        while let Ok(Some(body)) = d.next_frame() {
            let f: CardFrame = frame::decode(&body).expect("card frame");
            let result = match f.request {
                Request::Ping => Ok(Response::Pong),
                Request::GenerateKey { label, alg, .. } if !keys.contains_key(&label) => {
                    keys.insert(label, alg);
                    Ok(Response::KeyGenerated { alg, spki_der: SPKI.to_vec() })
                }
                Request::GenerateKey { .. } => Err(Status::KeyExists),
                Request::ExportPublicKey { label } => match keys.get(&label) {
                    Some(&alg) => Ok(Response::PublicKey { alg, spki_der: SPKI.to_vec() }),
                    None => Err(Status::UnknownKey),
                },
                Request::GetKeyInfo { label } => match keys.get(&label) {
                    Some(&alg) => Ok(Response::KeyInfo(gmhsm_proto::KeyInfo {
                        alg,
                        caps: gmhsm_proto::Capabilities::ALL,
                        domains: 0,
                        owner: f.principal.clone(),
                        spki_der: SPKI.to_vec(),
                        password: false,
                    })),
                    None => Err(Status::UnknownKey),
                },
                Request::Sign { label, message, .. } if keys.contains_key(&label) => {
                    Ok(Response::Signature(Sha256::digest(&message).to_vec()))
                }
                Request::Verify { label, message, signature, .. } if keys.contains_key(&label) => {
                    if Sha256::digest(&message).as_slice() == signature.as_slice() {
                        Ok(Response::Verified)
                    } else {
                        Err(Status::SignatureInvalid)
                    }
                }
                Request::ListKeys => Ok(Response::Keys(keys.iter().map(|(l, a)| (l.clone(), *a)).collect())),
                Request::DeleteKey { label } => match keys.remove(&label) {
                    Some(_) => Ok(Response::Deleted),
                    None => Err(Status::UnknownKey),
                },
                _ => Err(Status::UnknownKey),
            };
            let out = frame::encode(&ServerFrame { header: f.header, result }).expect("encode");
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// Start the daemon and the fake card; return the folder holding `client.toml`.
fn start() -> PathBuf {
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

    let sock = dir.join("card.sock");
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).expect("card socket");
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || card(s));
        }
    });
    let mut config = DaemonConfig::new(
        "127.0.0.1:0".parse().expect("addr"),
        server.pem().into_bytes(),
        server_key.serialize_pem().into_bytes(),
        ca.pem().into_bytes(),
        sock,
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
    dir
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
    let dir = start();
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
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("-----BEGIN PUBLIC KEY-----\n"));
    let out = gmhsm(&dir, &["key", "export", "--label", "app-sign"]);
    assert_eq!(out.stdout, SPKI);
    assert_eq!(code(&gmhsm(&dir, &["key", "export", "--label", "app-sign", "--out", &p("pub.der")])), 0);
    assert_eq!(std::fs::read(dir.join("pub.der")).expect("pub.der"), SPKI);

    std::fs::write(dir.join("msg"), b"hello").expect("write");
    let out = gmhsm(&dir, &["sign", "--label", "app-sign", "--in", &p("msg"), "--out", &p("sig")]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(code(&gmhsm(&dir, &["verify", "--label", "app-sign", "--in", &p("msg"), "--sig", &p("sig")])), 0);
    std::fs::write(dir.join("msg"), b"hellO").expect("write");
    let out = gmhsm(&dir, &["verify", "--label", "app-sign", "--in", &p("msg"), "--sig", &p("sig")]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature INVALID"));

    let out = gmhsm(&dir, &["sign", "--label", "app-rsa", "--in", &p("msg")]);
    assert_eq!(code(&out), 0);
    assert_eq!(out.stdout, Sha256::digest(b"hellO").to_vec());

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

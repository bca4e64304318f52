//! Cross-checks against OpenSSL 3 (`openssl` on PATH; Debian's 3.0 is enough): it parses and
//! verifies our SM2 certificate chains and keys, computes the same HMAC-SM3 and HKDF-SM3, and
//! its SM2 signatures verify under our verifiers with the matching distinguishing ID.
//!
//! These tests need the `openssl` binary and fail, never skip, without it.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gmhsm_tls_sm::certs::{self, CertParams, Role, Sm2KeyPair};
use gmhsm_tls_sm::hash::{HKDF_SM3, HMAC_SM3};
use gmhsm_tls_sm::verify::{SM2_SM3_CERT, SM2_SM3_TLS13};
use gmhsm_tls_sm::{CERT_DISTID, TLS13_DISTID};
use rustls::crypto::hmac::Hmac;
use rustls::crypto::tls13::Hkdf;
use rustls::pki_types::SignatureVerificationAlgorithm;

fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("these tests need the `openssl` binary (OpenSSL 3) on PATH: {e}"));
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("openssl ran")
}

fn ok(out: &Output, what: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed: {}\n{}", text, String::from_utf8_lossy(&out.stderr));
    text
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos();
        let dir = std::env::temp_dir().join(format!("gmhsm-tls-sm-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn write(&self, name: &str, data: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, data).expect("write temp file");
        path.to_str().expect("utf-8 path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).expect("rng");
    v
}

fn params(subject: &str, role: Role) -> CertParams {
    let now = SystemTime::now();
    CertParams {
        subject: subject.into(),
        dns_names: vec!["gmhsm.local".into()],
        ip_addresses: vec!["10.0.0.7".parse().expect("ip")],
        not_before: now - Duration::from_secs(60),
        not_after: now + Duration::from_secs(365 * 86_400),
        role,
    }
}

#[test]
fn openssl_verifies_our_sm2_chain() {
    let dir = TempDir::new("chain");
    let ca_key = Sm2KeyPair::generate().expect("key");
    let ca = certs::self_signed(&params("CN=gmhsm root,O=gmhsm,C=CN", Role::Ca), &ca_key).expect("ca");
    let ee_key = Sm2KeyPair::generate().expect("key");
    let ee = certs::issue(&params("CN=gmhsm.local,O=gmhsm", Role::ServerAndClient), &ee_key, &ca, &ca_key).expect("ee");
    let ca_pem = dir.write("ca.pem", ca.pem().expect("pem").as_bytes());
    let ee_pem = dir.write("ee.pem", ee.pem().expect("pem").as_bytes());
    let key_pem = dir.write("ee.key", ee_key.expose_secret_pkcs8_pem().expect("pem").as_bytes());

    // OpenSSL before 4.0 verifies certificate signatures with an empty SM2 ID unless told
    // otherwise (openssl/openssl#22234, Tongsuo#559), so plain `openssl verify` fails on
    // Debian's 3.0 and the ID we sign with (GM/T 0009's default) has to be named.
    let distid = format!("distid:{CERT_DISTID}");
    let out = openssl(&["verify", "-vfyopt", &distid, "-CAfile", &ca_pem, &ee_pem], None);
    let out = ok(&out, "openssl verify -vfyopt distid:1234567812345678");
    assert!(out.contains(": OK"), "{out}");
    for purpose in ["sslserver", "sslclient"] {
        let args = ["verify", "-vfyopt", &distid, "-purpose", purpose, "-CAfile", &ca_pem, &ee_pem];
        ok(&openssl(&args, None), purpose);
    }
    let plain = openssl(&["verify", "-CAfile", &ca_pem, &ee_pem], None);
    let version = ok(&openssl(&["version"], None), "openssl version");
    eprintln!(
        "{}: plain `openssl verify` (no -vfyopt) {}",
        version.trim(),
        if plain.status.success() { "passes" } else { "fails (empty default SM2 ID)" }
    );
    // A different ID must make it fail: proof that the ID is really part of the check.
    let wrong = openssl(&["verify", "-vfyopt", "distid:TLSv1.3+GM+Cipher+Suite", "-CAfile", &ca_pem, &ee_pem], None);
    assert!(!wrong.status.success(), "verify with a wrong distid passed");

    let text = ok(&openssl(&["x509", "-in", &ee_pem, "-noout", "-text"], None), "x509 -text");
    for want in [
        "Version: 3",
        "Signature Algorithm: SM2-with-SM3",
        "ASN1 OID: SM2",
        "DNS:gmhsm.local, IP Address:10.0.0.7",
        "TLS Web Server Authentication, TLS Web Client Authentication",
        "Digital Signature",
        "CA:FALSE",
        "X509v3 Authority Key Identifier",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let ca_text = ok(&openssl(&["x509", "-in", &ca_pem, "-noout", "-text"], None), "x509 -text");
    assert!(ca_text.contains("CA:TRUE") && ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");

    // OpenSSL reads our PKCS#8 key, and it is the certificate's key.
    let from_key = ok(&openssl(&["pkey", "-in", &key_pem, "-pubout"], None), "pkey -pubout");
    let from_cert = ok(&openssl(&["x509", "-in", &ee_pem, "-noout", "-pubkey"], None), "x509 -pubkey");
    assert_eq!(from_key, from_cert);
}

/// OpenSSL signs with an explicit ID; our certificate verifier (ID 1234567812345678) and our
/// TLS 1.3 verifier (ID TLSv1.3+GM+Cipher+Suite) each accept exactly the matching one.
#[test]
fn openssl_sm2_signatures_verify_under_the_matching_distid() {
    let dir = TempDir::new("sig");
    let key = Sm2KeyPair::generate().expect("key");
    let key_pem = dir.write("k.pem", key.expose_secret_pkcs8_pem().expect("pem").as_bytes());
    let msg = random_bytes(100);
    let msg_path = dir.write("msg", &msg);
    let spki = key.public_key_der().expect("spki");
    let point = &spki[spki.len() - 65..];

    for (distid, ours, other) in
        [(CERT_DISTID, &SM2_SM3_CERT, &SM2_SM3_TLS13), (TLS13_DISTID, &SM2_SM3_TLS13, &SM2_SM3_CERT)]
    {
        let opt = format!("distid:{distid}");
        let out = openssl(
            &["pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", &key_pem, "-in", &msg_path, "-pkeyopt", &opt],
            None,
        );
        ok(&out, "pkeyutl -sign");
        let sig = out.stdout;
        assert!(ours.verify_signature(point, &msg, &sig).is_ok(), "{distid}");
        assert!(other.verify_signature(point, &msg, &sig).is_err(), "{distid}");
    }
}

#[test]
fn hmac_sm3_matches_openssl_mac() {
    for (key_len, msg_len) in [(16, 0), (32, 100), (64, 1000), (100, 77)] {
        let key = random_bytes(key_len);
        let msg = random_bytes(msg_len);
        let opt = format!("hexkey:{}", hex(&key));
        let out = openssl(&["mac", "-digest", "SM3", "-macopt", &opt, "HMAC"], Some(&msg));
        let want = ok(&out, "openssl mac").trim().to_lowercase();
        let got = hex(HMAC_SM3.with_key(&key).sign(&[&msg]).as_ref());
        assert_eq!(got, want, "key {key_len} bytes, message {msg_len} bytes");
    }
}

#[test]
fn hkdf_sm3_matches_openssl_kdf() {
    for out_len in [16, 32, 42, 100] {
        let (ikm, salt, info) = (random_bytes(32), random_bytes(13), random_bytes(10));
        let args = [
            "kdf".to_owned(),
            "-keylen".into(),
            out_len.to_string(),
            "-kdfopt".into(),
            "digest:SM3".into(),
            "-kdfopt".into(),
            format!("hexkey:{}", hex(&ikm)),
            "-kdfopt".into(),
            format!("hexsalt:{}", hex(&salt)),
            "-kdfopt".into(),
            format!("hexinfo:{}", hex(&info)),
            "HKDF".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = ok(&openssl(&args, None), "openssl kdf").trim().replace(':', "").to_lowercase();
        let mut got = vec![0u8; out_len];
        HKDF_SM3.extract_from_secret(Some(&salt), &ikm).expand_slice(&[&info], &mut got).expect("length");
        assert_eq!(hex(&got), want, "{out_len} bytes");
    }
}

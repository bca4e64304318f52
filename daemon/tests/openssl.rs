//! OpenSSL 3's `s_client` against a daemon whose P-256 TLS key is held by the (fake) card:
//! it connects with a standard TLS 1.3 suite and a client certificate, verifies the server's
//! chain, gets a Pong for a Ping frame, and the daemon logs the authenticated principal;
//! without a client certificate the handshake is refused with an alert. The daemon also has
//! an SM2 card key, which OpenSSL 3.0 (no `sm2sig_sm3` in TLS 1.3) must not be given.
//!
//! `openssl` must be on PATH: without it these tests fail (they do not skip).

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use common::keycard::*;
use common::*;
use gmhsm_daemon::CardKeyScheme;
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{Deframer, Mechanism, PROTOCOL_VERSION, Request, Response, ServerFrame};
use rustls_pki_types::pem::PemObject;
/// Every log line of this test binary (both tests share it; their principals differ).
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata<'_>) -> bool {
        m.level() <= log::Level::Info
    }
    fn log(&self, r: &log::Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES.lock().expect("lock").push(r.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("no other logger");
        log::set_max_level(log::LevelFilter::Info);
    });
}

fn require_openssl() {
    let out = Command::new("openssl")
        .arg("version")
        .output()
        .unwrap_or_else(|e| panic!("this test needs OpenSSL 3's `openssl` on PATH: {e}"));
    let version = String::from_utf8_lossy(&out.stdout);
    assert!(version.starts_with("OpenSSL 3"), "this test needs OpenSSL 3, found {version}");
}

fn start() -> KeyHarness {
    capture_logs();
    require_openssl();
    let pki = make_pki();
    let card = KeyCard::start();
    let cert_pem = card.p256_key(&pki.ca);
    let (sm2_pem, _) = card.sm2_key();
    // Both kinds of key: OpenSSL 3.0 does not offer sm2sig_sm3, so it must get the P-256 one.
    KeyHarness::start(
        pki,
        card,
        vec![("tls:p256", CardKeyScheme::EcdsaP256Sha256, cert_pem), ("tls:sm2", CardKeyScheme::Sm2Sm3, sm2_pem)],
    )
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                return;
            }
            b.lock().expect("lock").extend_from_slice(&chunk[..n]);
        }
    });
    buf
}

/// Run `s_client`, send one Ping frame (id 1) on its stdin, and return (stdout, stdout and
/// stderr as text) once the Pong arrived or s_client ended (10 s at most).
fn s_client(h: &KeyHarness, with_cert: bool, pong: &[u8]) -> (Vec<u8>, String) {
    let dir = &h.pki.dir;
    let mut cmd = Command::new("openssl");
    cmd.arg("s_client")
        .args(["-connect", &h.addr.to_string(), "-tls1_3"])
        .arg("-CAfile")
        .arg(dir.join("ca.pem"))
        .args(["-servername", "gmhsm.local"]);
    if with_cert {
        cmd.arg("-cert").arg(dir.join("client.pem")).arg("-key").arg(dir.join("client.key"));
    }
    let mut child: Child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl s_client starts");
    let out = collect(child.stdout.take().expect("stdout"));
    let err = collect(child.stderr.take().expect("stderr"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping)).expect("write to s_client");
    let give_up = Instant::now() + Duration::from_secs(10);
    while Instant::now() < give_up
        && !contains(&out.lock().expect("lock"), pong)
        && child.try_wait().expect("try_wait").is_none()
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stdin); // EOF: s_client closes the connection and exits
    let give_up = Instant::now() + Duration::from_secs(5);
    while child.try_wait().expect("try_wait").is_none() && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    std::thread::sleep(Duration::from_millis(100)); // let the readers drain
    let stdout = out.lock().expect("lock").clone();
    let text = format!("{}\n{}", String::from_utf8_lossy(&stdout), String::from_utf8_lossy(&err.lock().expect("lock")));
    (stdout, text)
}

fn pong_frame() -> Vec<u8> {
    frame::encode(&ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id: 1 }, result: Ok(Response::Pong) })
        .expect("encode")
}

#[test]
fn s_client_connects_with_the_standard_suite_and_a_client_certificate() {
    let h = start();
    let pong = pong_frame();
    let (stdout, text) = s_client(&h, true, &pong);
    assert!(text.contains("TLS_AES_256_GCM_SHA384") || text.contains("TLS_AES_128_GCM_SHA256"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert!(text.contains("Peer signature type: ECDSA"), "{text}");
    assert!(contains(&stdout, &pong), "no Pong for the Ping:\n{text}");

    let client = std::fs::read(h.pki.dir.join("client.pem")).expect("client.pem");
    let der = rustls_pki_types::CertificateDer::from_pem_slice(&client).expect("pem");
    let short: String = Sha256::digest(der.as_ref())[..4].iter().map(|b| format!("{b:02x}")).collect();
    let auth = eventually("the daemon logs the principal", || {
        LINES
            .lock()
            .expect("lock")
            .iter()
            .find(|l| l.starts_with("event=auth") && l.contains(&format!("principal={short}")))
            .cloned()
    });
    assert!(auth.contains("peer=127.0.0.1:"), "{auth}");
    let signs = h.card.signs();
    assert!(!signs.is_empty());
    assert!(signs.iter().all(|s| s.label == "tls:p256" && s.mechanism == Mechanism::EcdsaP256Sha256), "{signs:?}");
}

#[test]
fn s_client_without_a_client_certificate_is_refused() {
    let h = start();
    let pong = pong_frame();
    let (stdout, text) = s_client(&h, false, &pong);
    assert!(!contains(&stdout, &pong), "served without a certificate:\n{text}");
    assert!(text.contains("certificate required") && text.contains("alert"), "{text}");
    // A rustls client without a certificate gets no answer either.
    let mut s = h.connect(rustls::crypto::ring::default_provider(), &[h.ca_der()], false);
    let _ = s.write_all(&client_frame(PROTOCOL_VERSION, 2, Request::Ping));
    let mut d = Deframer::new();
    let mut buf = [0u8; 1024];
    let got = s.read(&mut buf);
    assert!(!matches!(got, Ok(n) if n > 0), "application data without a client certificate");
    assert!(d.next_frame().expect("deframe").is_none());
}

//! End-to-end tests of the daemon over real TLS, against a fake card on a Unix socket.
//!
//! The fake card is a test double: it answers `Ping` with `Pong`, closes the link on
//! `DeleteKey { label: "drop-link" }` (to test card-link failure) and answers every other
//! request with `Status::UnknownKey`. It records the principal of every frame it receives.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};

use gmhsm_client::{Client, ClientError, Profile};
use gmhsm_daemon::{Daemon, DaemonConfig, ShutdownHandle};
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{
    CardFrame, ClientFrame, Deframer, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame,
    Status,
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A CA, a server certificate for `gmhsm.local`, a client certificate; all as PEM files in
/// `dir`, plus `client.toml`.
struct Pki {
    dir: PathBuf,
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
    client_der: Vec<u8>,
}

fn make_pki() -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "gmhsmd-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "gmhsm test CA");
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");

    let server_key = KeyPair::generate().expect("server key");
    let mut sp = CertificateParams::new(vec!["gmhsm.local".to_string()]).expect("server params");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server cert");

    let client_key = KeyPair::generate().expect("client key");
    let mut cp = CertificateParams::new(Vec::<String>::new()).expect("client params");
    cp.distinguished_name.push(DnType::CommonName, "app1");
    cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = cp
        .signed_by(&client_key, &ca, &ca_key)
        .expect("client cert");

    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    std::fs::write(dir.join("client.pem"), client.pem()).expect("write");
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).expect("write");
    std::fs::write(
        dir.join("client.toml"),
        "address = \"ADDR\"\nserver_name = \"gmhsm.local\"\nca_cert = \"ca.pem\"\nclient_cert = \"client.pem\"\nclient_key = \"client.key\"\ntimeout_secs = 10\n",
    )
    .expect("write");
    Pki {
        dir,
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_der: client.der().to_vec(),
    }
}

type Seen = Arc<Mutex<Vec<Principal>>>;

fn start_fake_card(path: &PathBuf) -> Seen {
    let listener = UnixListener::bind(path).expect("bind card socket");
    let seen: Seen = Arc::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = seen2.clone();
            std::thread::spawn(move || serve_card(stream, seen));
        }
    });
    seen
}

fn serve_card(mut s: UnixStream, seen: Seen) {
    let mut d = Deframer::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        d.push(&buf[..n]);
        while let Ok(Some(body)) = d.next_frame() {
            let f: CardFrame = frame::decode(&body).expect("the daemon sends valid card frames");
            seen.lock().expect("lock").push(f.principal.clone());
            let result = match f.request {
                Request::Ping => Ok(Response::Pong),
                Request::DeleteKey { label } if label.as_str() == "drop-link" => return,
                _ => Err(Status::UnknownKey),
            };
            let out = frame::encode(&ServerFrame {
                header: f.header,
                result,
            })
            .expect("encode");
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

struct Harness {
    pki: Pki,
    addr: SocketAddr,
    seen: Seen,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    fn start(tune: impl FnOnce(&mut DaemonConfig)) -> Harness {
        let pki = make_pki();
        let card = pki.dir.join("card.sock");
        let seen = start_fake_card(&card);
        let mut config = DaemonConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            pki.server_pem.clone().into_bytes(),
            pki.server_key_pem.clone().into_bytes(),
            pki.ca_pem.clone().into_bytes(),
            card,
        );
        tune(&mut config);
        let daemon = Daemon::bind(config).expect("daemon binds");
        let addr = daemon.local_addr();
        let shutdown = daemon.shutdown_handle();
        let thread = Some(std::thread::spawn(move || daemon.run()));
        let toml = std::fs::read_to_string(pki.dir.join("client.toml")).expect("read");
        std::fs::write(
            pki.dir.join("client.toml"),
            toml.replace("ADDR", &addr.to_string()),
        )
        .expect("write");
        Harness {
            pki,
            addr,
            seen,
            shutdown,
            thread,
        }
    }

    fn profile(&self) -> Profile {
        Profile::load(self.pki.dir.join("client.toml")).expect("profile")
    }

    fn client(&self) -> Client {
        Client::connect(&self.profile()).expect("client connects")
    }

    /// A raw rustls connection, with or without the client certificate.
    fn raw(&self, with_cert: bool) -> StreamOwned<ClientConnection, TcpStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots);
        let config = if with_cert {
            let cert =
                CertificateDer::from_pem_file(self.pki.dir.join("client.pem")).expect("cert");
            let key = PrivateKeyDer::from_pem_file(self.pki.dir.join("client.key")).expect("key");
            builder
                .with_client_auth_cert(vec![cert], key)
                .expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        let name = ServerName::try_from("gmhsm.local").expect("name");
        let conn = ClientConnection::new(Arc::new(config), name).expect("conn");
        let tcp = TcpStream::connect(self.addr).expect("tcp");
        tcp.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        StreamOwned::new(conn, tcp)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(t) = self.thread.take() {
            let result = t.join().expect("daemon thread does not panic");
            if !std::thread::panicking() {
                result.expect("daemon run returns Ok");
            }
        }
        let _ = std::fs::remove_dir_all(&self.pki.dir);
    }
}

fn client_frame(version: u16, id: u64, request: Request) -> Vec<u8> {
    frame::encode(&ClientFrame {
        header: FrameHeader { version, id },
        request,
    })
    .expect("encode")
}

fn read_frame(s: &mut StreamOwned<ClientConnection, TcpStream>, d: &mut Deframer) -> ServerFrame {
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(body) = d.next_frame().expect("deframe") {
            return frame::decode(&body).expect("decode answer");
        }
        let n = s.read(&mut buf).expect("read answer");
        assert!(n > 0, "daemon closed the connection");
        d.push(&buf[..n]);
    }
}

fn status(id: u64, s: Status) -> ServerFrame {
    ServerFrame {
        header: FrameHeader {
            version: PROTOCOL_VERSION,
            id,
        },
        result: Err(s),
    }
}

#[test]
fn ping_pong_through_the_client() {
    let h = Harness::start(|_| {});
    let mut c = h.client();
    c.ping().expect("pong");
    c.ping().expect("second pong on the same connection");
    c.close();
}

#[test]
fn principal_is_the_sha256_of_the_client_certificate() {
    let h = Harness::start(|_| {});
    h.client().ping().expect("pong");
    let want = Principal::Application {
        cert_sha256: Sha256::digest(&h.pki.client_der).into(),
    };
    let seen = h.seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|p| *p == want), "{seen:?}");
}

#[test]
fn garbage_gets_bad_frame_and_the_connection_goes_on() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(true);
    let mut d = Deframer::new();
    // Undecodable header: id 0.
    s.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(0, Status::BadFrame));
    // A header that decodes, then junk: the answer carries the id.
    let mut body = client_frame(PROTOCOL_VERSION, 42, Request::Ping)[4..].to_vec();
    body.pop();
    body.push(0xEE);
    let mut wire = (body.len() as u32).to_be_bytes().to_vec();
    wire.extend(body);
    s.write_all(&wire).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(42, Status::BadFrame));
    // An oversized length prefix: FrameTooLarge, and the stream resynchronises.
    let big = (frame::MAX_FRAME_LEN + 1) as u32;
    let mut wire = big.to_be_bytes().to_vec();
    wire.extend(std::iter::repeat_n(0u8, big as usize));
    s.write_all(&wire).expect("write");
    assert_eq!(read_frame(&mut s, &mut d), status(0, Status::FrameTooLarge));
    s.write_all(&client_frame(PROTOCOL_VERSION, 43, Request::Ping))
        .expect("write");
    let answer = read_frame(&mut s, &mut d);
    assert_eq!(answer.header.id, 43);
    assert_eq!(answer.result, Ok(Response::Pong));
}

#[test]
fn unknown_version_is_refused() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(true);
    let mut d = Deframer::new();
    s.write_all(&client_frame(99, 5, Request::Ping))
        .expect("write");
    assert_eq!(
        read_frame(&mut s, &mut d),
        status(
            5,
            Status::UnsupportedVersion {
                supported: PROTOCOL_VERSION
            }
        )
    );
    assert!(
        h.seen.lock().expect("lock").is_empty(),
        "nothing reached the card"
    );
}

#[test]
fn connection_without_client_certificate_is_refused() {
    let h = Harness::start(|_| {});
    let mut s = h.raw(false);
    // TLS 1.3: the client finishes its side of the handshake before the server checks it.
    let _ = s.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping));
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes of application data without a client certificate"),
        Err(e) => {
            let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            assert!(
                tls.is_some() || e.kind() == std::io::ErrorKind::ConnectionReset,
                "{e:?}"
            );
        }
    }
    assert!(
        h.seen.lock().expect("lock").is_empty(),
        "nothing reached the card"
    );
    // The daemon still serves authenticated clients.
    h.client().ping().expect("pong");
}

#[test]
fn pipelined_requests_come_back_matched_by_id() {
    let h = Harness::start(|c| c.max_in_flight_per_conn = 500);
    let mut c = h.client();
    let mut requests = Vec::new();
    for i in 0..300 {
        requests.push(if i % 3 == 0 {
            Request::ListKeys
        } else {
            Request::Ping
        });
    }
    let results = c.pipeline(requests).expect("pipeline");
    assert_eq!(results.len(), 300);
    for (i, r) in results.iter().enumerate() {
        let want = if i % 3 == 0 {
            Err(Status::UnknownKey)
        } else {
            Ok(Response::Pong)
        };
        assert_eq!(*r, want, "request {i}");
    }
}

#[test]
fn requests_past_the_in_flight_bound_get_busy_and_all_are_answered() {
    let h = Harness::start(|c| c.max_in_flight_per_conn = 2);
    let mut c = h.client();
    let results = c.pipeline(vec![Request::Ping; 200]).expect("pipeline");
    assert_eq!(results.len(), 200);
    assert!(
        results
            .iter()
            .all(|r| *r == Ok(Response::Pong) || *r == Err(Status::Busy)),
        "{results:?}"
    );
    c.ping().expect("the connection still works");
}

#[test]
fn card_link_failure_answers_card_unavailable_then_recovers() {
    let h = Harness::start(|_| {});
    let mut c = h.client();
    match c.delete_key("drop-link") {
        Err(ClientError::Status(Status::CardUnavailable)) => {}
        other => panic!("{other:?}"),
    }
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        match c.ping() {
            Ok(()) => break,
            Err(ClientError::Status(Status::CardUnavailable)) if Instant::now() < give_up => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err(e) => panic!("card link did not come back: {e}"),
        }
    }
}

#[test]
fn idle_connection_is_closed_and_others_are_served() {
    let h = Harness::start(|c| c.idle_timeout = Duration::from_millis(200));
    let mut idle = h.client();
    std::thread::sleep(Duration::from_millis(600));
    assert!(idle.ping().is_err(), "idle connection was closed");
    h.client().ping().expect("a fresh connection works");
}

#[test]
fn connections_past_the_bound_are_closed() {
    let h = Harness::start(|c| c.max_connections = 1);
    let mut first = h.client();
    first.ping().expect("first connection served");
    let second = Client::connect(&h.profile()).and_then(|mut c| c.ping());
    assert!(second.is_err(), "second connection refused");
    first.ping().expect("first connection still served");
}

#[test]
fn labels_over_64_bytes_are_refused_before_sending() {
    let h = Harness::start(|_| {});
    let mut c = h.client();
    assert!(matches!(
        c.delete_key(&"x".repeat(65)),
        Err(ClientError::InvalidArgument(_))
    ));
    assert!(h.seen.lock().expect("lock").is_empty());
}

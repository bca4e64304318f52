//! Shared test harness: a throw-away PKI, the real card in-process (`gmhsm-card`'s
//! `InProcessCard`: the firmware on in-memory devices, initialized in demo mode) on a Unix
//! socket, and a daemon running in a thread of the test process. The card records every frame
//! it receives ([`Harness::seen`]), `CloseSession` included.
#![allow(dead_code)]

pub mod keycard;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use gmhsm_client::{Client, Profile};
use gmhsm_daemon::{Daemon, DaemonConfig, ReloadHandle, ShutdownHandle};
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{ClientFrame, Deframer, PROTOCOL_VERSION, Principal, Request, ServerFrame, Status};

pub use gmhsm_card::testing::InProcessCard;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A CA able to issue client certificates.
pub struct Ca {
    pub cert: Certificate,
    pub key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("ca cert");
        Ca { cert, key }
    }

    /// A client certificate and key, as PEM.
    pub fn client(&self, cn: &str) -> (Certificate, String) {
        let key = KeyPair::generate().expect("client key");
        let mut cp = CertificateParams::new(Vec::<String>::new()).expect("client params");
        cp.distinguished_name.push(DnType::CommonName, cn);
        cp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = cp.signed_by(&key, &self.cert, &self.key).expect("client cert");
        (cert, key.serialize_pem())
    }
}

/// A CA, a server certificate for `gmhsm.local`, a client certificate `app1`; PEM files in
/// `dir` (`ca.pem` is what clients trust for the server).
pub struct Pki {
    pub dir: PathBuf,
    pub ca: Ca,
    pub ca_pem: String,
    pub server_pem: String,
    pub server_key_pem: String,
    pub client_der: Vec<u8>,
}

pub fn make_pki() -> Pki {
    let dir = std::env::temp_dir().join(format!(
        "gmhsmd-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ca = Ca::new("gmhsm test CA");
    let server_key = KeyPair::generate().expect("server key");
    let mut sp = CertificateParams::new(vec!["gmhsm.local".to_string()]).expect("server params");
    sp.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = sp.signed_by(&server_key, &ca.cert, &ca.key).expect("server cert");
    let (client, client_key) = ca.client("app1");
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).expect("write");
    std::fs::write(dir.join("client.pem"), client.pem()).expect("write");
    std::fs::write(dir.join("client.key"), client_key).expect("write");
    Pki {
        dir,
        ca_pem: ca.cert.pem(),
        ca,
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_der: client.der().to_vec(),
    }
}

impl Pki {
    /// Write a client profile `<name>.toml` for `addr` using `<cert>.pem` / `<cert>.key`.
    pub fn profile(&self, name: &str, cert: &str, addr: SocketAddr) -> Profile {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "address = \"{addr}\"\nserver_name = \"gmhsm.local\"\nca_cert = \"ca.pem\"\n\
                 client_cert = \"{cert}.pem\"\nclient_key = \"{cert}.key\"\ntimeout_secs = 10\n"
            ),
        )
        .expect("write profile");
        Profile::load(path).expect("profile")
    }

    /// Issue a client certificate `<name>.pem` / `<name>.key` from `ca`.
    pub fn issue(&self, ca: &Ca, name: &str) -> Vec<u8> {
        let (cert, key) = ca.client(name);
        std::fs::write(self.dir.join(format!("{name}.pem")), cert.pem()).expect("write");
        std::fs::write(self.dir.join(format!("{name}.key")), key).expect("write");
        cert.der().to_vec()
    }
}

/// An RSA key generation: a request the real card takes a second or so to answer (its
/// primes are searched off the card's lock), for tests that need one in flight.
pub fn slow_request(label: &str) -> Request {
    Request::GenerateKey {
        label: gmhsm_proto::Label::try_from(label).expect("label"),
        alg: gmhsm_proto::KeyAlg::Rsa3072,
        caps: gmhsm_proto::Capabilities::DEFAULT,
        domains: 0,
    }
}

pub struct Harness {
    pub pki: Pki,
    pub addr: SocketAddr,
    pub card: InProcessCard,
    pub shutdown: ShutdownHandle,
    pub reload: ReloadHandle,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Harness {
    pub fn start(tune: impl FnOnce(&mut DaemonConfig)) -> Harness {
        Harness::start_with(|_, c| tune(c))
    }

    /// Start with a configuration tuned knowing the PKI (its folder, its CA).
    pub fn start_with(tune: impl FnOnce(&Pki, &mut DaemonConfig)) -> Harness {
        let pki = make_pki();
        let card = InProcessCard::start();
        let mut config = DaemonConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            pki.server_pem.clone().into_bytes(),
            pki.server_key_pem.clone().into_bytes(),
            pki.ca_pem.clone().into_bytes(),
            card.socket().to_path_buf(),
        );
        // The throw-away CA is dedicated to this daemon: admit its certificates.
        config.applications = gmhsm_daemon::Applications::AnyCertificate;
        tune(&pki, &mut config);
        let daemon = Daemon::bind(config).expect("daemon binds");
        let addr = daemon.local_addr();
        let shutdown = daemon.shutdown_handle();
        let reload = daemon.reload_handle();
        let thread = Some(std::thread::spawn(move || daemon.run()));
        Harness { pki, addr, card, shutdown, reload, thread }
    }

    /// The principal of every frame that reached the card so far.
    pub fn seen(&self) -> Vec<Principal> {
        self.card.seen().into_iter().map(|f| f.principal).collect()
    }

    /// The profile of the `app1` client certificate.
    pub fn profile(&self) -> Profile {
        self.pki.profile("client", "client", self.addr)
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.profile()).expect("client connects")
    }

    /// A raw rustls connection, with or without the client certificate.
    pub fn raw(&self, with_cert: bool) -> StreamOwned<ClientConnection, TcpStream> {
        self.raw_with(with_cert.then_some("client"))
    }

    /// A raw TLS connection with the certificate `pki/NAME.pem` (issued with `Pki::issue`).
    pub fn raw_as(&self, name: &str) -> StreamOwned<ClientConnection, TcpStream> {
        self.raw_with(Some(name))
    }

    fn raw_with(&self, cert_name: Option<&str>) -> StreamOwned<ClientConnection, TcpStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes()).expect("ca")).expect("root");
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(roots);
        let config = if let Some(name) = cert_name {
            let cert = CertificateDer::from_pem_file(self.pki.dir.join(format!("{name}.pem"))).expect("cert");
            let key = PrivateKeyDer::from_pem_file(self.pki.dir.join(format!("{name}.key"))).expect("key");
            builder.with_client_auth_cert(vec![cert], key).expect("client auth")
        } else {
            builder.with_no_client_auth()
        };
        let name = ServerName::try_from("gmhsm.local").expect("name");
        let conn = ClientConnection::new(Arc::new(config), name).expect("conn");
        let tcp = TcpStream::connect(self.addr).expect("tcp");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        StreamOwned::new(conn, tcp)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        stop_daemon(&self.shutdown, self.thread.take(), &self.pki.dir);
    }
}

/// Stop a daemon run on a thread of the test: it must have returned `Ok` (unless the test is
/// already failing), then its folder goes.
pub fn stop_daemon(shutdown: &ShutdownHandle, thread: Option<JoinHandle<anyhow::Result<()>>>, dir: &std::path::Path) {
    shutdown.shutdown();
    if let Some(t) = thread {
        let result = t.join().expect("daemon thread does not panic");
        if !std::thread::panicking() {
            result.expect("daemon run returns Ok");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

pub fn client_frame(version: u16, id: u64, request: Request) -> Vec<u8> {
    frame::encode(&ClientFrame { header: FrameHeader { version, id }, request }).expect("encode")
}

/// The next frame from any byte stream; panics if the peer closes first.
pub fn read_frame(s: &mut impl Read, d: &mut Deframer) -> ServerFrame {
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

pub fn status(id: u64, s: Status) -> ServerFrame {
    ServerFrame { header: FrameHeader { version: PROTOCOL_VERSION, id }, result: Err(s) }
}

/// Retry `f` every 50 ms until it returns `Some`, giving up (panicking with `what`) after
/// 10 s. Used where the daemon reacts asynchronously (a close it has yet to notice).
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < give_up, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

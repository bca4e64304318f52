//! TLS server keys held by the real card (`InProcessCard`): the keys are generated in the
//! card under `tls:p256` / `tls:sm2` as the local principal, certificates issued from their
//! public keys alone, and the daemon's configuration holds only the labels and certificates.
//!
//! The daemon reaches the card through a small relay ([`KeyCard::socket`]) that forwards every
//! frame unchanged — except that, when [`KeyCard::slow_next`] is set, it holds the next `Sign`
//! for [`SLOW_SIGN`] first (setting [`KeyCard::slow_started`]). That is the one fault here the
//! real card cannot produce: a signature slow on one link while the card answers the others
//! (the card executes requests one at a time, so a slow request on the card itself would hold
//! every link's pings too, which is not what `a_slow_card_signature_does_not_stall_…` tests).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, PublicKeyData, SignatureAlgorithm};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use gmhsm_daemon::{CardKeyScheme, CardTlsKey, Daemon, DaemonConfig, ShutdownHandle};
use gmhsm_proto::frame::{self, FrameHeader};
use gmhsm_proto::{
    Capabilities, CardFrame, Deframer, KeyAlg, Label, Mechanism, PROTOCOL_VERSION, Principal, Request, Response,
    ServerFrame,
};
use gmhsm_tls_sm::certs::{self, CertParams, Role, Sm2Certificate, Sm2KeyPair};

use super::{Ca, InProcessCard, Pki, client_frame, read_frame};

/// How long a slow signature takes.
pub const SLOW_SIGN: Duration = Duration::from_secs(2);

/// One `Sign` request as the card received it.
#[derive(Debug, Clone)]
pub struct SignSeen {
    pub principal: Principal,
    pub session: u64,
    pub label: String,
    pub mechanism: Mechanism,
}

/// The real card, the relay in front of it, and the relay's slow-signature switch.
pub struct KeyCard {
    pub card: InProcessCard,
    relay: PathBuf,
    pub slow_next: Arc<AtomicBool>,
    pub slow_started: Arc<AtomicBool>,
}

impl KeyCard {
    pub fn start() -> KeyCard {
        let card = InProcessCard::start();
        let relay = card.dir().join("relay.sock");
        let listener = UnixListener::bind(&relay).expect("bind the relay");
        let (slow_next, slow_started) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (upstream, next, started) = (card.socket().to_path_buf(), slow_next.clone(), slow_started.clone());
        std::thread::spawn(move || {
            for down in listener.incoming() {
                let Ok(down) = down else { return };
                let Ok(up) = UnixStream::connect(&upstream) else { return };
                let (next, started) = (next.clone(), started.clone());
                std::thread::spawn(move || relay_link(down, up, &next, &started));
            }
        });
        KeyCard { card, relay, slow_next, slow_started }
    }

    /// Where the daemon connects.
    pub fn socket(&self) -> &Path {
        &self.relay
    }

    /// Every `Sign` the card received.
    pub fn signs(&self) -> Vec<SignSeen> {
        let signs = self.card.seen().into_iter().filter_map(|f| match f.request {
            Request::Sign { label, mechanism, .. } => {
                Some(SignSeen { principal: f.principal, session: f.session, label: label.to_string(), mechanism })
            }
            _ => None,
        });
        signs.collect()
    }

    /// Generate `label` in the card as the local principal: its SPKI (DER).
    fn generate(&self, label: &str, alg: KeyAlg) -> Vec<u8> {
        let mut link = UnixStream::connect(self.card.socket()).expect("connect to the card");
        let request = Request::GenerateKey {
            label: Label::try_from(label).expect("label"),
            alg,
            caps: Capabilities::SIGN | Capabilities::VERIFY,
            domains: 0,
        };
        let header = FrameHeader { version: PROTOCOL_VERSION, id: 1 };
        let f = CardFrame { header, principal: Principal::Local, session: 1, request };
        link.write_all(&frame::encode(&f).expect("encode")).expect("send");
        let answer: ServerFrame = read_frame(&mut link, &mut Deframer::new());
        match answer.result {
            Ok(Response::KeyGenerated { spki_der, .. }) => spki_der,
            other => panic!("the card did not generate {label}: {other:?}"),
        }
    }

    /// `tls:p256` generated in the card, and its `gmhsm.local` certificate (PEM) issued by
    /// `ca` from the public key alone.
    pub fn p256_key(&self, ca: &Ca) -> String {
        let spki = self.generate("tls:p256", KeyAlg::EcdsaP256);
        let point = P256Public(spki[spki.len() - 65..].to_vec());
        let mut params = CertificateParams::new(vec!["gmhsm.local".to_string()]).expect("server params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.signed_by(&point, &ca.cert, &ca.key).expect("certificate for the card's public key").pem()
    }

    /// `tls:sm2` generated in the card, its `gmhsm.local` certificate (PEM) and the SM2 CA
    /// that issued it from the public key alone.
    pub fn sm2_key(&self) -> (String, Sm2Certificate) {
        let spki = self.generate("tls:sm2", KeyAlg::Sm2);
        let now = SystemTime::now();
        let params = |subject: &str, role| CertParams {
            subject: subject.into(),
            dns_names: vec!["gmhsm.local".into()],
            ip_addresses: vec![],
            not_before: now - Duration::from_secs(3600),
            not_after: now + Duration::from_secs(86_400),
            role,
        };
        let ca_key = Sm2KeyPair::generate().expect("key");
        let ca = certs::self_signed(&params("CN=gmhsm SM2 CA", Role::Ca), &ca_key).expect("ca");
        let cert = certs::issue_for_public_key(&params("CN=gmhsm.local", Role::Server), &spki, &ca, &ca_key)
            .expect("server cert");
        (cert.pem().expect("pem"), ca)
    }
}

/// Relay one link: frames from the daemon to the card (holding a `Sign` when asked to),
/// answers back unchanged.
fn relay_link(mut down: UnixStream, mut up: UnixStream, next: &AtomicBool, started: &AtomicBool) {
    let (Ok(mut up_r), Ok(mut down_w)) = (up.try_clone(), down.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut down_w);
        let _ = down_w.shutdown(std::net::Shutdown::Both);
    });
    let mut d = Deframer::new();
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n @ 1..) = down.read(&mut buf) {
        d.push(&buf[..n]);
        while let Ok(Some(body)) = d.next_frame() {
            let sign = matches!(frame::decode::<CardFrame>(&body), Ok(CardFrame { request: Request::Sign { .. }, .. }));
            if sign && next.swap(false, Ordering::SeqCst) {
                started.store(true, Ordering::SeqCst);
                std::thread::sleep(SLOW_SIGN);
            }
            let mut wire = (body.len() as u32).to_be_bytes().to_vec();
            wire.extend_from_slice(&body);
            if up.write_all(&wire).is_err() {
                return;
            }
        }
    }
    let _ = up.shutdown(std::net::Shutdown::Both);
}

/// A P-256 public key known only as its SEC1 point, for rcgen to certify.
struct P256Public(Vec<u8>);

impl PublicKeyData for P256Public {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }
    fn algorithm(&self) -> &SignatureAlgorithm {
        &rcgen::PKCS_ECDSA_P256_SHA256
    }
}

/// A daemon whose TLS keys are in a [`KeyCard`].
pub struct KeyHarness {
    pub pki: Pki,
    pub addr: SocketAddr,
    pub shutdown: ShutdownHandle,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// Dropped after the daemon stopped.
    pub card: KeyCard,
}

impl KeyHarness {
    /// `keys`: (label, scheme, the certificate PEM) for each key of `card`.
    pub fn start(pki: Pki, card: KeyCard, keys: Vec<(&str, CardKeyScheme, String)>) -> KeyHarness {
        let card_path = card.socket().to_path_buf();
        let mut tls_keys = Vec::new();
        for (label, scheme, cert_pem) in keys {
            tls_keys.push(CardTlsKey { label: label.to_string(), cert_chain_pem: cert_pem.into_bytes(), scheme });
        }
        // No server key at all: only labels and certificates.
        let mut config = DaemonConfig::new(
            "127.0.0.1:0".parse().expect("addr"),
            Vec::new(),
            Vec::new(),
            pki.ca_pem.clone().into_bytes(),
            card_path,
        );
        config.card_tls_keys = tls_keys;
        config.applications = gmhsm_daemon::Applications::AnyCertificate;
        assert!(config.server_key_pem.is_empty());
        let daemon = Daemon::bind(config).expect("daemon binds");
        let addr = daemon.local_addr();
        let shutdown = daemon.shutdown_handle();
        let thread = Some(std::thread::spawn(move || daemon.run()));
        KeyHarness { pki, addr, shutdown, thread, card }
    }

    /// A rustls client over `provider` trusting `roots`, with the `app1` certificate or none.
    /// The handshake happens at the first read or write.
    pub fn connect(
        &self,
        provider: CryptoProvider,
        roots: &[CertificateDer<'static>],
        with_cert: bool,
    ) -> StreamOwned<ClientConnection, TcpStream> {
        let mut store = RootCertStore::empty();
        for r in roots {
            store.add(r.clone()).expect("root");
        }
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("tls13")
            .with_root_certificates(store);
        let config = if with_cert {
            let cert = CertificateDer::from_pem_file(self.pki.dir.join("client.pem")).expect("cert");
            let key = PrivateKeyDer::from_pem_file(self.pki.dir.join("client.key")).expect("key");
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

    /// The test CA (which issued the P-256 server certificate).
    pub fn ca_der(&self) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(self.pki.ca_pem.as_bytes()).expect("ca")
    }
}

impl Drop for KeyHarness {
    fn drop(&mut self) {
        super::stop_daemon(&self.shutdown, self.thread.take(), &self.pki.dir);
    }
}

/// Send a Ping with `id` and expect its Pong.
pub fn ping(s: &mut (impl Read + Write), d: &mut Deframer, id: u64) {
    s.write_all(&client_frame(PROTOCOL_VERSION, id, Request::Ping)).expect("write ping");
    let answer = read_frame(s, d);
    assert_eq!(answer.header.id, id);
    assert_eq!(answer.result, Ok(Response::Pong));
}

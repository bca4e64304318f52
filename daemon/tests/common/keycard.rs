//! A fake card that holds real TLS keys (P-256 with `p256`, SM2 with `sm2`) and answers
//! `Sign` for `Principal::Local`, with a daemon whose configuration holds only the keys'
//! labels and certificates.
//!
//! Every connection to the card socket is served by its own thread (the daemon's card link
//! and each card key's own link). The card records every `Sign` it receives; when
//! [`KeyCard::slow_next`] is set, the next signature waits [`SLOW_SIGN`] first and sets
//! [`KeyCard::slow_started`] as it begins.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, PublicKeyData, SignatureAlgorithm};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::{Digest, Sha256};
use sm2::pkcs8::DecodePrivateKey;

use gmhsm_daemon::{CardKeyScheme, CardTlsKey, Daemon, DaemonConfig, ShutdownHandle};
use gmhsm_proto::frame;
use gmhsm_proto::{
    CardFrame, Deframer, Mechanism, PROTOCOL_VERSION, Principal, Request, Response, ServerFrame, Status,
};
use gmhsm_tls_sm::certs::{self, CertParams, Role, Sm2Certificate, Sm2KeyPair};

use super::{Ca, Pki, client_frame, read_frame};

/// How long a slow signature takes.
pub const SLOW_SIGN: Duration = Duration::from_secs(2);

/// A private key the fake card holds.
pub enum CardKey {
    P256(p256::ecdsa::SigningKey),
    Sm2(sm2::SecretKey),
}

/// One `Sign` request as the card received it.
#[derive(Debug, Clone)]
pub struct SignSeen {
    pub principal: Principal,
    pub session: u64,
    pub label: String,
    pub mechanism: Mechanism,
}

/// The card's shared state, as the test sees it.
#[derive(Clone, Default)]
pub struct KeyCard {
    pub signs: Arc<Mutex<Vec<SignSeen>>>,
    pub slow_next: Arc<AtomicBool>,
    pub slow_started: Arc<AtomicBool>,
}

impl KeyCard {
    pub fn signs(&self) -> Vec<SignSeen> {
        self.signs.lock().expect("lock").clone()
    }
}

pub fn start_key_card(path: &Path, keys: Vec<(String, CardKey)>) -> KeyCard {
    let listener = UnixListener::bind(path).expect("bind card socket");
    let card = KeyCard::default();
    let keys = Arc::new(keys);
    let card2 = card.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (card, keys) = (card2.clone(), keys.clone());
            std::thread::spawn(move || serve(stream, &card, &keys));
        }
    });
    card
}

fn serve(mut s: UnixStream, card: &KeyCard, keys: &[(String, CardKey)]) {
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
            let result = match f.request {
                Request::Ping => Ok(Response::Pong),
                Request::Sign { label, mechanism, message } => {
                    card.signs.lock().expect("lock").push(SignSeen {
                        principal: f.principal.clone(),
                        session: f.session,
                        label: label.to_string(),
                        mechanism: mechanism.clone(),
                    });
                    if card.slow_next.swap(false, Ordering::SeqCst) {
                        card.slow_started.store(true, Ordering::SeqCst);
                        std::thread::sleep(SLOW_SIGN);
                    }
                    let key = keys.iter().find(|(l, _)| l == label.as_str());
                    match (&f.principal, key) {
                        (Principal::Local, Some((_, key))) => sign(key, &mechanism, &message),
                        (Principal::Local, None) => Err(Status::UnknownKey),
                        _ => Err(Status::AccessDenied),
                    }
                }
                _ => Err(Status::UnknownKey),
            };
            let out = frame::encode(&ServerFrame { header: f.header, result }).expect("encode");
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// What the real card does: ECDSA over SHA-256(message), SM2 over SM3(Z ‖ message); DER.
fn sign(key: &CardKey, mechanism: &Mechanism, message: &[u8]) -> Result<Response, Status> {
    match (key, mechanism) {
        (CardKey::P256(k), Mechanism::EcdsaP256Sha256) => {
            use p256::ecdsa::signature::Signer;
            let sig: p256::ecdsa::Signature = k.sign(message);
            Ok(Response::Signature(sig.to_der().as_bytes().to_vec()))
        }
        (CardKey::Sm2(secret), Mechanism::Sm2Sm3 { distid }) => {
            use sm2::dsa::signature::Signer;
            let distid = std::str::from_utf8(distid).map_err(|_| Status::InvalidArgument)?;
            let k = sm2::dsa::SigningKey::new(distid, secret).map_err(|_| Status::Internal)?;
            let sig: sm2::dsa::Signature = k.sign(message);
            Ok(Response::Signature(sig.to_der().as_bytes().to_vec()))
        }
        _ => Err(Status::InvalidArgument),
    }
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

/// A P-256 card key (deterministic from `seed`) and its `gmhsm.local` certificate (PEM)
/// issued by `ca` from the public key alone.
pub fn p256_key(seed: &str, ca: &Ca) -> (CardKey, String) {
    let key = p256::ecdsa::SigningKey::from_slice(&Sha256::digest(seed.as_bytes())).expect("a valid scalar");
    let point = key.verifying_key().to_sec1_point(false).as_bytes().to_vec();
    let mut params = CertificateParams::new(vec!["gmhsm.local".to_string()]).expect("server params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&P256Public(point), &ca.cert, &ca.key).expect("certificate for the card's public key");
    (CardKey::P256(key), cert.pem())
}

/// An SM2 CA and an SM2 `gmhsm.local` server key and certificate. `certs::issue` takes a
/// key pair, so the key is made here and handed to the fake card.
pub fn sm2_key() -> (CardKey, String, Sm2Certificate) {
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
    let key = Sm2KeyPair::generate().expect("key");
    let cert = certs::issue(&params("CN=gmhsm.local", Role::Server), &key, &ca, &ca_key).expect("server cert");
    let der = key.expose_secret_pkcs8_der().expect("pkcs8");
    let secret = sm2::SecretKey::from_pkcs8_der(der.secret_der()).expect("sm2 key");
    (CardKey::Sm2(secret), cert.pem().expect("pem"), ca)
}

/// A daemon whose TLS keys are in a [`KeyCard`].
pub struct KeyHarness {
    pub pki: Pki,
    pub addr: SocketAddr,
    pub card: KeyCard,
    pub shutdown: ShutdownHandle,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl KeyHarness {
    /// `keys`: (label, scheme, the card's key, the certificate PEM) for each card key.
    pub fn start(pki: Pki, keys: Vec<(&str, CardKeyScheme, CardKey, String)>) -> KeyHarness {
        let card_path = pki.dir.join("card.sock");
        let mut card_keys = Vec::new();
        let mut tls_keys = Vec::new();
        for (label, scheme, key, cert_pem) in keys {
            card_keys.push((label.to_string(), key));
            tls_keys.push(CardTlsKey { label: label.to_string(), cert_chain_pem: cert_pem.into_bytes(), scheme });
        }
        let card = start_key_card(&card_path, card_keys);
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
        KeyHarness { pki, addr, card, shutdown, thread }
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

/// Send a Ping with `id` and expect its Pong.
pub fn ping(s: &mut (impl Read + Write), d: &mut Deframer, id: u64) {
    s.write_all(&client_frame(PROTOCOL_VERSION, id, Request::Ping)).expect("write ping");
    let answer = read_frame(s, d);
    assert_eq!(answer.header.id, id);
    assert_eq!(answer.result, Ok(Response::Pong));
}

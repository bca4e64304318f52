//! In-memory rustls client ⇄ server handshakes through the SM provider: RFC 8998 with mutual
//! SM2 authentication, a standard ECDSA/AES-GCM handshake on the same server, and the clean
//! failures (no common suite, untrusted CA, wrong distinguishing ID).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gmhsm_tls_sm::certs::{self, CertParams, Role, Sm2Certificate, Sm2KeyPair};
use gmhsm_tls_sm::{
    CURVE_SM2_GROUP, SM2SIG_SM3, SmOrStandardResolver, TLS_SM4_GCM_SM3_ID, provider, sm_only_provider, sm2_signing_key,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{
    AlertDescription, CipherSuite, ClientConfig, ClientConnection, Error, NamedGroup, PeerIncompatible, RootCertStore,
    ServerConfig, ServerConnection, SignatureAlgorithm, SignatureScheme,
};

/// An SM2 CA with a server ("localhost") and a client certificate under it.
struct SmPki {
    ca: Sm2Certificate,
    server: (Sm2Certificate, Sm2KeyPair),
    client: (Sm2Certificate, Sm2KeyPair),
}

fn params(subject: &str, role: Role) -> CertParams {
    let now = SystemTime::now();
    CertParams {
        subject: subject.into(),
        dns_names: vec!["localhost".into()],
        ip_addresses: vec!["127.0.0.1".parse().expect("ip")],
        not_before: now - Duration::from_secs(3600),
        not_after: now + Duration::from_secs(86_400),
        role,
    }
}

fn sm_pki() -> SmPki {
    sm_pki_named("CN=gmhsm test SM2 CA,O=gmhsm")
}

fn sm_pki_named(ca_name: &str) -> SmPki {
    let ca_key = Sm2KeyPair::generate().expect("ca key");
    let ca = certs::self_signed(&params(ca_name, Role::Ca), &ca_key).expect("ca");
    let leaf = |cn: &str, role| {
        let key = Sm2KeyPair::generate().expect("key");
        let cert = certs::issue(&params(cn, role), &key, &ca, &ca_key).expect("issue");
        (cert, key)
    };
    let server = leaf("CN=localhost,O=gmhsm", Role::Server);
    let client = leaf("CN=app-01,O=gmhsm", Role::Client);
    SmPki { ca, server, client }
}

/// An ECDSA P-256 CA (rcgen) with one end-entity certificate for `localhost`, usable for
/// both server and client authentication.
struct EcdsaPki {
    ca: CertificateDer<'static>,
    leaf: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn ecdsa_pki() -> EcdsaPki {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let leaf_key = KeyPair::generate_for(alg).expect("leaf key");
    let mut leaf_params = CertificateParams::new(vec!["localhost".into()]).expect("params");
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).expect("leaf");
    EcdsaPki {
        ca: ca.der().clone(),
        leaf: leaf.der().clone(),
        leaf_key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

fn roots(cas: &[&CertificateDer<'static>]) -> Arc<RootCertStore> {
    let mut store = RootCertStore::empty();
    for ca in cas {
        store.add((*ca).clone()).expect("root");
    }
    Arc::new(store)
}

/// Our server: both certificates behind the resolver, client certificates required and
/// verified against both CAs with the SM provider's algorithms.
fn server_config(sm: &SmPki, ec: &EcdsaPki) -> Arc<ServerConfig> {
    let p = Arc::new(provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(&[&sm.ca.der(), &ec.ca]), Arc::clone(&p))
        .build()
        .expect("client verifier");
    let sm_key = sm2_signing_key(&sm.server.1.expose_secret_pkcs8_der().expect("der")).expect("sm");
    let sm_ck = CertifiedKey::new(vec![sm.server.0.der()], sm_key);
    let ec_key = p.key_provider.load_private_key(ec.leaf_key.clone_key()).expect("ecdsa key");
    let ec_ck = CertifiedKey::new(vec![ec.leaf.clone()], ec_key);
    let resolver = SmOrStandardResolver::new(Arc::new(sm_ck), Arc::new(ec_ck)).expect("sm key");
    let config = ServerConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(resolver));
    Arc::new(config)
}

fn client_config(
    p: CryptoProvider,
    trusted: &[&CertificateDer<'static>],
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(Arc::new(p))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots(trusted))
        .with_client_auth_cert(chain, key)
        .expect("client cert");
    Arc::new(config)
}

fn connect(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> (ClientConnection, ServerConnection) {
    let name = ServerName::try_from("localhost").expect("name");
    (ClientConnection::new(client, name).expect("client"), ServerConnection::new(server).expect("server"))
}

/// Moves every pending TLS byte from `from` to `to` through a Vec and lets `to` process it.
fn deliver(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
) -> Result<usize, Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write to Vec");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read from slice");
        to.process_new_packets()?;
    }
    Ok(wire.len())
}

/// Runs the handshake to completion or to the first error on either side; the side that
/// failed has queued its alert, which is delivered so the other side sees it too.
fn handshake(c: &mut ClientConnection, s: &mut ServerConnection) -> (Result<(), Error>, Result<(), Error>) {
    let (mut cr, mut sr) = (Ok(()), Ok(()));
    for _ in 0..10 {
        if let Err(e) = deliver(c, s) {
            sr = Err(e);
        }
        if let Err(e) = deliver(s, c) {
            cr = Err(e);
        }
        if cr.is_err() || sr.is_err() {
            if sr.is_ok() {
                sr = deliver(c, s).map(|_| ());
            }
            return (cr, sr);
        }
        if !c.is_handshaking() && !s.is_handshaking() {
            return (cr, sr);
        }
    }
    panic!("handshake did not finish in 10 rounds");
}

/// Sends `msg` from `a` to `b` as application data and returns what `b` read.
fn echo(
    a: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
    b: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl rustls::SideData>>,
    msg: &[u8],
) -> Vec<u8> {
    use std::io::{Read, Write};
    a.writer().write_all(msg).expect("write");
    deliver(a, b).expect("deliver");
    let mut got = vec![0u8; msg.len()];
    b.reader().read_exact(&mut got).expect("read");
    got
}

#[test]
fn rfc8998_suite_with_mutual_sm2_auth() {
    let (sm, ec) = (sm_pki(), ecdsa_pki());
    let client = client_config(
        provider(),
        &[&sm.ca.der()],
        vec![sm.client.0.der()],
        sm.client.1.expose_secret_pkcs8_der().expect("der"),
    );
    let (mut c, mut s) = connect(client, server_config(&sm, &ec));
    let (cr, sr) = handshake(&mut c, &mut s);
    cr.expect("client handshake");
    sr.expect("server handshake");

    for suite in [c.negotiated_cipher_suite(), s.negotiated_cipher_suite()] {
        assert_eq!(suite.expect("suite").suite(), TLS_SM4_GCM_SM3_ID);
    }
    for group in [c.negotiated_key_exchange_group(), s.negotiated_key_exchange_group()] {
        assert_eq!(group.expect("group").name(), CURVE_SM2_GROUP);
    }
    assert_eq!(c.peer_certificates().expect("server chain")[0], sm.server.0.der());
    assert_eq!(s.peer_certificates().expect("client chain")[0], sm.client.0.der());

    assert_eq!(echo(&mut c, &mut s, b"request over SM4-GCM"), b"request over SM4-GCM");
    for round in 0..4u8 {
        let big = vec![round; 12_000];
        assert_eq!(echo(&mut s, &mut c, &big), big);
    }
}

#[test]
fn strict_sm_client_gets_the_rfc8998_profile() {
    let (sm, ec) = (sm_pki(), ecdsa_pki());
    let client = client_config(
        sm_only_provider(),
        &[&sm.ca.der()],
        vec![sm.client.0.der()],
        sm.client.1.expose_secret_pkcs8_der().expect("der"),
    );
    let (mut c, mut s) = connect(client, server_config(&sm, &ec));
    let (cr, sr) = handshake(&mut c, &mut s);
    cr.expect("client");
    sr.expect("server");
    assert_eq!(c.negotiated_cipher_suite().expect("suite").suite(), TLS_SM4_GCM_SM3_ID);
    assert_eq!(c.negotiated_key_exchange_group().expect("kx").name(), CURVE_SM2_GROUP);
    assert_eq!(echo(&mut s, &mut c, b"pong"), b"pong");
}

#[test]
fn standard_client_gets_aes_gcm_and_ecdsa_from_the_same_server() {
    let (sm, ec) = (sm_pki(), ecdsa_pki());
    // A client that knows nothing of SM: rustls' stock ring provider.
    let client = client_config(
        rustls::crypto::ring::default_provider(),
        &[&ec.ca],
        vec![ec.leaf.clone()],
        ec.leaf_key.clone_key(),
    );
    let (mut c, mut s) = connect(client, server_config(&sm, &ec));
    let (cr, sr) = handshake(&mut c, &mut s);
    cr.expect("client");
    sr.expect("server");
    let suite = s.negotiated_cipher_suite().expect("suite").suite();
    assert!(
        matches!(suite, CipherSuite::TLS13_AES_256_GCM_SHA384 | CipherSuite::TLS13_AES_128_GCM_SHA256),
        "{suite:?}"
    );
    assert_eq!(s.negotiated_key_exchange_group().expect("kx").name(), NamedGroup::X25519);
    assert_eq!(c.peer_certificates().expect("chain")[0], ec.leaf);
    assert_eq!(s.peer_certificates().expect("chain")[0], ec.leaf);
    assert_eq!(echo(&mut c, &mut s, b"ping"), b"ping");
    assert_eq!(echo(&mut s, &mut c, b"pong"), b"pong");
}

#[test]
fn sm_only_client_and_aes_only_server_fail_cleanly() {
    let (sm, ec) = (sm_pki(), ecdsa_pki());
    let server = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_single_cert(vec![ec.leaf.clone()], ec.leaf_key.clone_key())
        .expect("server cert");
    let server = Arc::new(server);

    // Only the SM suite, but X25519 among the groups: the suite is what does not match.
    let sm_suite_only = CryptoProvider { cipher_suites: vec![gmhsm_tls_sm::TLS13_SM4_GCM_SM3], ..provider() };
    // The strict profile: curveSM2 alone, so the group is refused first.
    let cases = [
        (sm_suite_only, PeerIncompatible::NoCipherSuitesInCommon),
        (sm_only_provider(), PeerIncompatible::NoKxGroupsInCommon),
    ];
    for (client_provider, why) in cases {
        let client = client_config(
            client_provider,
            &[&sm.ca.der(), &ec.ca],
            vec![sm.client.0.der()],
            sm.client.1.expose_secret_pkcs8_der().expect("der"),
        );
        let (mut c, mut s) = connect(client, Arc::clone(&server));
        let (cr, sr) = handshake(&mut c, &mut s);
        assert_eq!(sr.expect_err("server refuses"), Error::PeerIncompatible(why));
        assert_eq!(cr.expect_err("client is told"), Error::AlertReceived(AlertDescription::HandshakeFailure));
        assert!(c.negotiated_cipher_suite().is_none());
    }
}

#[test]
fn untrusted_sm2_server_is_refused() {
    use rustls::CertificateError::{BadSignature, UnknownIssuer};
    let (sm, ec) = (sm_pki(), ecdsa_pki());
    // Another CA under a different name: no path. Another CA under the same name: the SM2
    // signature on the server certificate does not verify under its key.
    let cases = [(sm_pki_named("CN=someone else,O=elsewhere"), UnknownIssuer), (sm_pki(), BadSignature)];
    for (other, why) in cases {
        let client = client_config(
            provider(),
            &[&other.ca.der()],
            vec![sm.client.0.der()],
            sm.client.1.expose_secret_pkcs8_der().expect("der"),
        );
        let (mut c, mut s) = connect(client, server_config(&sm, &ec));
        let (cr, sr) = handshake(&mut c, &mut s);
        assert_eq!(cr.expect_err("refused"), Error::InvalidCertificate(why));
        assert!(sr.is_err());
    }
}

/// Always the same certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

/// A key that signs `sm2sig_sm3` with the certificate ID instead of RFC 8998's TLS 1.3 ID.
#[derive(Debug)]
struct WrongDistId(Arc<sm2::dsa::SigningKey>);

impl SigningKey for WrongDistId {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered.contains(&SM2SIG_SM3).then(|| Box::new(WrongDistIdSigner(Arc::clone(&self.0))) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::Unknown(0xE0)
    }
}

#[derive(Debug)]
struct WrongDistIdSigner(Arc<sm2::dsa::SigningKey>);

impl Signer for WrongDistIdSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use sm2::dsa::signature::Signer as _;
        let sig: sm2::dsa::Signature = self.0.sign(message);
        Ok(sig.to_der().to_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        SM2SIG_SM3
    }
}

#[test]
fn certificate_verify_with_the_certificate_distid_is_refused() {
    use sm2::pkcs8::DecodePrivateKey;
    let sm = sm_pki();
    let der = sm.server.1.expose_secret_pkcs8_der().expect("der");
    let secret = sm2::SecretKey::from_pkcs8_der(der.secret_der()).expect("secret");
    let wrong = sm2::dsa::SigningKey::new(gmhsm_tls_sm::CERT_DISTID, &secret).expect("key");
    let server = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(CertifiedKey::new(
            vec![sm.server.0.der()],
            Arc::new(WrongDistId(Arc::new(wrong))),
        )))));
    let client = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("tls13")
        .with_root_certificates(roots(&[&sm.ca.der()]))
        .with_no_client_auth();
    let (mut c, mut s) = connect(Arc::new(client), Arc::new(server));
    let (cr, _) = handshake(&mut c, &mut s);
    assert_eq!(
        cr.expect_err("bad CertificateVerify"),
        Error::InvalidCertificate(rustls::CertificateError::BadSignature)
    );
}

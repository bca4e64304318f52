//! TLS server keys held by the crypto card (the real one, in-process): the daemon's configuration has only the
//! labels and certificates; every handshake signature is a `Sign` the card answers for
//! `Principal::Local`. RFC 8998 (`TLS_SM4_GCM_SM3`, `curveSM2`, `sm2sig_sm3`) and the
//! standard suite side by side, and a slow card signature that does not stall the daemon.

mod common;

use std::io::{Read, Write};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rustls::CipherSuite;
use rustls_pki_types::pem::PemObject;

use common::keycard::*;
use common::*;
use gmhsm_daemon::CardKeyScheme;
use gmhsm_proto::{Deframer, Mechanism, PROTOCOL_VERSION, Principal, Request};
use gmhsm_tls_sm::{CURVE_SM2_GROUP, TLS_SM4_GCM_SM3_ID, TLS13_DISTID};

fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[test]
fn standard_client_handshakes_against_a_card_held_p256_key() {
    let pki = make_pki();
    let card = KeyCard::start();
    let cert_pem = card.p256_key(&pki.ca);
    let h = KeyHarness::start(pki, card, vec![("tls:p256", CardKeyScheme::EcdsaP256Sha256, cert_pem.clone())]);
    let mut s = h.connect(ring(), &[h.ca_der()], true);
    let mut d = Deframer::new();
    ping(&mut s, &mut d, 1);
    ping(&mut s, &mut d, 2);

    let suite = s.conn.negotiated_cipher_suite().expect("suite").suite();
    assert!(
        matches!(suite, CipherSuite::TLS13_AES_256_GCM_SHA384 | CipherSuite::TLS13_AES_128_GCM_SHA256),
        "{suite:?}"
    );
    let served = s.conn.peer_certificates().expect("server certificate")[0].clone();
    let want = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("pem");
    assert_eq!(served, want, "the card key's certificate was served");

    let signs = h.card.signs();
    assert_eq!(signs.len(), 1, "one handshake, one card signature: {signs:?}");
    assert_eq!(signs[0].principal, Principal::Local);
    assert_eq!(signs[0].label, "tls:p256");
    assert_eq!(signs[0].mechanism, Mechanism::EcdsaP256Sha256);
    assert_eq!(signs[0].session, u64::MAX, "the key's own card session");
}

#[test]
fn sm_client_negotiates_rfc8998_against_a_card_held_sm2_key() {
    let pki = make_pki();
    let card = KeyCard::start();
    let p256_pem = card.p256_key(&pki.ca);
    let (sm2_pem, sm2_ca) = card.sm2_key();
    let h = KeyHarness::start(
        pki,
        card,
        vec![
            ("tls:p256", CardKeyScheme::EcdsaP256Sha256, p256_pem),
            ("tls:sm2", CardKeyScheme::Sm2Sm3, sm2_pem.clone()),
        ],
    );
    let roots = [h.ca_der(), sm2_ca.der()];

    let mut s = h.connect(gmhsm_tls_sm::sm_only_provider(), &roots, true);
    let mut d = Deframer::new();
    ping(&mut s, &mut d, 1);
    assert_eq!(s.conn.negotiated_cipher_suite().expect("suite").suite(), TLS_SM4_GCM_SM3_ID);
    let group = s.conn.negotiated_key_exchange_group().expect("group");
    assert_eq!(group.name(), CURVE_SM2_GROUP);
    let served = s.conn.peer_certificates().expect("server certificate")[0].clone();
    let want = rustls_pki_types::CertificateDer::from_pem_slice(sm2_pem.as_bytes()).expect("pem");
    assert_eq!(served, want, "the SM2 certificate for an sm2sig_sm3 client");
    let signs = h.card.signs();
    assert_eq!(signs.len(), 1, "{signs:?}");
    assert_eq!(signs[0].label, "tls:sm2");
    assert_eq!(signs[0].principal, Principal::Local);
    match &signs[0].mechanism {
        Mechanism::Sm2Sm3 { distid } => assert_eq!(&distid[..], TLS13_DISTID.as_bytes()),
        other => panic!("{other:?}"),
    }

    // The same daemon gives a standard client the P-256 certificate.
    let mut s = h.connect(ring(), &roots, true);
    ping(&mut s, &mut Deframer::new(), 2);
    let signs = h.card.signs();
    assert_eq!(signs.len(), 2);
    assert_eq!(signs[1].label, "tls:p256");
    assert_eq!(signs[1].mechanism, Mechanism::EcdsaP256Sha256);
}

#[test]
fn without_a_client_certificate_the_handshake_is_refused() {
    let pki = make_pki();
    let card = KeyCard::start();
    let cert_pem = card.p256_key(&pki.ca);
    let h = KeyHarness::start(pki, card, vec![("tls:p256", CardKeyScheme::EcdsaP256Sha256, cert_pem)]);
    let mut s = h.connect(ring(), &[h.ca_der()], false);
    // TLS 1.3: the client finishes its side before the server checks its certificate.
    let _ = s.write_all(&client_frame(PROTOCOL_VERSION, 1, Request::Ping));
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("got {n} bytes of application data without a client certificate"),
        Err(e) => {
            let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
            assert!(
                matches!(tls, Some(rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired))),
                "{e:?}"
            );
        }
    }
    // Still serving authenticated clients.
    let mut s = h.connect(ring(), &[h.ca_der()], true);
    ping(&mut s, &mut Deframer::new(), 1);
}

/// While a handshake waits for a slow card signature, an established connection keeps
/// being served: its pings are all answered before the slow handshake completes.
#[test]
fn a_slow_card_signature_does_not_stall_established_connections() {
    let pki = make_pki();
    let card = KeyCard::start();
    let cert_pem = card.p256_key(&pki.ca);
    let h = KeyHarness::start(pki, card, vec![("tls:p256", CardKeyScheme::EcdsaP256Sha256, cert_pem)]);
    let mut fast = h.connect(ring(), &[h.ca_der()], true);
    let mut d = Deframer::new();
    ping(&mut fast, &mut d, 1);

    let order = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    h.card.slow_next.store(true, Ordering::SeqCst);
    let mut slow = h.connect(ring(), &[h.ca_der()], true);
    let order2 = order.clone();
    let slow_thread = std::thread::spawn(move || {
        ping(&mut slow, &mut Deframer::new(), 7);
        order2.lock().expect("lock").push("slow handshake done");
    });
    eventually("the card is inside the slow signature", || h.card.slow_started.load(Ordering::SeqCst).then_some(()));
    for id in 2..6 {
        ping(&mut fast, &mut d, id);
    }
    order.lock().expect("lock").push("established pings done");
    slow_thread.join().expect("slow client");
    assert_eq!(*order.lock().expect("lock"), ["established pings done", "slow handshake done"]);
}

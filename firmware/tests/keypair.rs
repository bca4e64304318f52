//! `GenerateKeyPair` and the key-export policy through `Hsm::execute`: the pairs are valid
//! (the public key is \[d\]G by the crates' own arithmetic, signatures verify), the wrapped
//! form opens with the KEK through the card's SM4-GCM `Decrypt`, every refusal has its
//! status, and no pair costs a flash write or an audit record.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_firmware::alg::sm2 as fsm2;
use gmhsm_platform::{Devices, Platform};
use gmhsm_proto::request::KeyPairProtection;
use gmhsm_proto::response::PrivateKeyOut;
use gmhsm_proto::*;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};

/// A card, and its flash's probe: program and erase operations counted.
fn counting(seed: u64) -> (Hsm<TestBoard>, FlashProbe) {
    let flash = fresh_flash();
    let writes = flash.probe();
    let mut hsm =
        Hsm::boot(Devices { noise: TestNoise { x: seed, stuck: false }, flash, tamper: tamper(), clock: TestClock });
    hsm.initialize().unwrap();
    (hsm, writes)
}

fn ready(seed: u64) -> Hsm<TestBoard> {
    let mut hsm = boot(fresh_flash(), &tamper(), seed, false);
    hsm.initialize().unwrap();
    hsm
}

fn make<P: Platform>(hsm: &mut Hsm<P>, p: &Principal, name: &str, alg: KeyAlg, caps: Capabilities, domains: u32) {
    let r = hsm.exec(p, Request::GenerateKey { label: label(name), alg, caps, domains });
    assert!(matches!(r, Ok(Response::KeyGenerated { .. })), "{r:?}");
}

fn wrapped(kek: &str) -> KeyPairProtection {
    KeyPairProtection::Wrapped { kek: label(kek) }
}

fn pair_req(alg: KeyAlg, protection: KeyPairProtection) -> Request {
    Request::GenerateKeyPair { alg, protection }
}

/// (SPKI, private key out) of a successful answer.
fn pair(r: Result<Response, Status>, want: KeyAlg) -> (Vec<u8>, PrivateKeyOut) {
    match r {
        Ok(Response::KeyPair { alg, spki_der, private }) if alg == want => (spki_der, private),
        other => panic!("expected a {want:?} key pair, got {other:?}"),
    }
}

/// Open a wrapped private key with the KEK, inside the card (SM4-GCM `Decrypt`, AAD = SPKI).
fn unwrap<P: Platform>(
    hsm: &mut Hsm<P>,
    p: &Principal,
    kek: &str,
    spki: &[u8],
    blob: &[u8],
) -> Result<Vec<u8>, Status> {
    assert!(blob.len() > 12 + 16, "nonce, ciphertext and tag");
    let mechanism = CipherMech::Sm4GcmCardNonce { aad: spki.to_vec() };
    match hsm.exec(p, Request::Decrypt { key: KeyRef::Label(label(kek)), mechanism, data: blob.to_vec() }) {
        Ok(Response::Data(d)) => Ok(d.expose_secret().to_vec()),
        Ok(other) => panic!("{other:?}"),
        Err(s) => Err(s),
    }
}

/// The PKCS#8 SM2 key matches the SPKI by the crate's own arithmetic, and a signature made
/// with it verifies with the SPKI's key.
fn check_sm2(spki: &[u8], pkcs8: &[u8]) {
    let secret = sm2::SecretKey::from_pkcs8_der(pkcs8).expect("PKCS#8 SM2 key");
    assert_eq!(secret.public_key().to_public_key_der().unwrap().as_bytes(), spki, "public key is [d]G");
    let public = sm2::PublicKey::from_public_key_der(spki).unwrap();
    let mut rng = XorShiftRng(99);
    let sig = fsm2::sign(&mut rng, &secret, fsm2::DEFAULT_ID, b"signed with a generated key").unwrap();
    fsm2::verify(&public, fsm2::DEFAULT_ID, b"signed with a generated key", &sig).unwrap();
    assert!(fsm2::verify(&public, fsm2::DEFAULT_ID, b"another message", &sig).is_err());
}

#[test]
fn sm2_pair_wrapped_under_a_kek_opens_and_signs() {
    let mut hsm = ready(71);
    let p = app(1);
    make(&mut hsm, &p, "kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    let mut seen = Vec::new();
    for _ in 0..8 {
        let (spki, private) = pair(hsm.exec(&p, pair_req(KeyAlg::Sm2, wrapped("kek"))), KeyAlg::Sm2);
        let PrivateKeyOut::Wrapped(blob) = private else { panic!("asked for a wrapped key") };
        assert_eq!((spki.len(), blob.len()), (91, 12 + 138 + 16));
        let pkcs8 = unwrap(&mut hsm, &p, "kek", &spki, &blob).unwrap();
        check_sm2(&spki, &pkcs8);
        // The SPKI is bound: another public key (AAD) or an altered byte does not open.
        let mut other_spki = spki.clone();
        other_spki[90] ^= 1;
        assert_eq!(unwrap(&mut hsm, &p, "kek", &other_spki, &blob), Err(Status::DecryptFailed));
        let mut altered = blob.clone();
        altered[40] ^= 1;
        assert_eq!(unwrap(&mut hsm, &p, "kek", &spki, &altered), Err(Status::DecryptFailed));
        assert!(!seen.contains(&spki), "every pair is fresh");
        seen.push(spki);
    }
    // Another SM4 key does not open it.
    make(&mut hsm, &p, "kek2", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    let (spki, PrivateKeyOut::Wrapped(blob)) = pair(hsm.exec(&p, pair_req(KeyAlg::Sm2, wrapped("kek"))), KeyAlg::Sm2)
    else {
        panic!()
    };
    assert_eq!(unwrap(&mut hsm, &p, "kek2", &spki, &blob), Err(Status::DecryptFailed));
}

#[test]
fn p256_and_rsa_pairs() {
    let mut hsm = ready(72);
    let p = app(1);
    make(&mut hsm, &p, "kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    let (spki, PrivateKeyOut::Wrapped(blob)) =
        pair(hsm.exec(&p, pair_req(KeyAlg::EcdsaP256, wrapped("kek"))), KeyAlg::EcdsaP256)
    else {
        panic!()
    };
    let pkcs8 = unwrap(&mut hsm, &p, "kek", &spki, &blob).unwrap();
    let secret = p256::SecretKey::from_pkcs8_der(&pkcs8).unwrap();
    assert_eq!(secret.public_key().to_public_key_der().unwrap().as_bytes(), &spki[..]);

    let (spki, PrivateKeyOut::Wrapped(blob)) =
        pair(hsm.exec(&p, pair_req(KeyAlg::Rsa2048, wrapped("kek"))), KeyAlg::Rsa2048)
    else {
        panic!()
    };
    let pkcs8 = unwrap(&mut hsm, &p, "kek", &spki, &blob).unwrap();
    let secret = rsa::PrivateKey::from_pkcs8_der(&pkcs8).unwrap();
    assert_eq!(secret.to_public_key().to_public_key_der().unwrap().as_bytes(), &spki[..]);
    assert_eq!(rsa::traits::PublicKeyParts::size(&secret), 256);
}

#[test]
fn refusals() {
    let mut hsm = ready(73);
    let (owner, other) = (app(1), app(2));
    make(&mut hsm, &owner, "kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    make(&mut hsm, &owner, "no-wrap", KeyAlg::Sm4, Capabilities::ENCRYPT | Capabilities::DECRYPT, 0);
    make(&mut hsm, &owner, "sm2-wrap", KeyAlg::Sm2, Capabilities::WRAP | Capabilities::UNWRAP, 0);
    make(&mut hsm, &owner, "hmac", KeyAlg::HmacSm3, Capabilities::DEFAULT, 0);
    let refused = |hsm: &mut Hsm<TestBoard>, p: &Principal, alg, protection| hsm.exec(p, pair_req(alg, protection));
    // Without the WRAP capability, with a key that is not SM4, with someone else's key.
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("no-wrap")), Err(Status::AccessDenied));
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("sm2-wrap")), Err(Status::WrongKeyType));
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("hmac")), Err(Status::AccessDenied));
    assert_eq!(refused(&mut hsm, &other, KeyAlg::Sm2, wrapped("kek")), Err(Status::UnknownKey));
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("missing")), Err(Status::UnknownKey));
    // Symmetric algorithms are not pairs.
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm4, wrapped("kek")), Err(Status::InvalidArgument));
    // Plaintext is off by default, for applications and local tools alike.
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, KeyPairProtection::Plaintext), Err(Status::AccessDenied));
    assert_eq!(
        refused(&mut hsm, &Principal::Local, KeyAlg::Sm2, KeyPairProtection::Plaintext),
        Err(Status::AccessDenied)
    );
    // A stopped service refuses applications before anything else.
    assert_eq!(hsm.exec(&Principal::Local, Request::ServiceStop), Ok(Response::Done));
    assert_eq!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("kek")), Err(Status::ServiceStopped));
    assert_eq!(hsm.exec(&Principal::Local, Request::ServiceStart), Ok(Response::Done));
    assert!(refused(&mut hsm, &owner, KeyAlg::Sm2, wrapped("kek")).is_ok());
    // A registered application of the KEK's domain may use it only with WRAP in its own set.
    let mut sha = [0u8; 32];
    sha[0] = 9;
    let reg = |caps| Request::RegisterApplication {
        cert_sha256: sha,
        name: heapless::String::try_from("peer").unwrap(),
        domains: 1,
        caps,
        quota: None,
    };
    make(&mut hsm, &owner, "shared", KeyAlg::Sm4, Capabilities::DEFAULT, 1);
    let peer = Principal::Application { cert_sha256: sha };
    assert_eq!(hsm.exec(&Principal::Local, reg(Capabilities::ENCRYPT)), Ok(Response::Done));
    assert_eq!(refused(&mut hsm, &peer, KeyAlg::Sm2, wrapped("shared")), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&Principal::Local, reg(Capabilities::WRAP)), Ok(Response::Done));
    assert!(refused(&mut hsm, &peer, KeyAlg::Sm2, wrapped("shared")).is_ok());
}

#[test]
fn plaintext_export_needs_the_policy_switch() {
    let tamper = tamper();
    let mut hsm = boot(fresh_flash(), &tamper, 74, false);
    hsm.initialize().unwrap();
    let p = app(1);
    let policy = |set| Request::KeyExportPolicy { set };
    assert_eq!(hsm.exec(&p, policy(None)), Ok(Response::KeyExportPolicy { allow_plaintext: false }));
    // Applications cannot turn it on.
    assert_eq!(hsm.exec(&p, policy(Some(true))), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&p, pair_req(KeyAlg::Sm2, KeyPairProtection::Plaintext)), Err(Status::AccessDenied));
    // Local administration (no quorum on a device without admin cards) can; audited.
    let before = hsm.status().audit.last_seq;
    assert_eq!(
        hsm.exec(&Principal::Local, policy(Some(true))),
        Ok(Response::KeyExportPolicy { allow_plaintext: true })
    );
    let rec = match hsm.exec(&Principal::Local, Request::ReadAudit { from_seq: before + 1, max: 8 }) {
        Ok(Response::Audit(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(
        rec.iter()
            .any(|r| matches!(r.event, AuditEvent::Admin { action: gmhsm_proto::admin::AdminAction::PolicyChanged }))
    );
    let (spki, private) = pair(hsm.exec(&p, pair_req(KeyAlg::Sm2, KeyPairProtection::Plaintext)), KeyAlg::Sm2);
    let PrivateKeyOut::Plaintext(pkcs8) = private else { panic!("asked for plaintext") };
    assert_eq!(format!("{pkcs8:?}"), "SecretBytes(138 bytes)", "no secret in Debug");
    check_sm2(&spki, pkcs8.expose_secret());
    let (spki, PrivateKeyOut::Plaintext(pkcs8)) =
        pair(hsm.exec(&p, pair_req(KeyAlg::EcdsaP256, KeyPairProtection::Plaintext)), KeyAlg::EcdsaP256)
    else {
        panic!()
    };
    let secret = p256::SecretKey::from_pkcs8_der(pkcs8.expose_secret()).unwrap();
    assert_eq!(secret.public_key().to_public_key_der().unwrap().as_bytes(), &spki[..]);
    // The switch survives a reboot, and turning it off refuses again.
    let flash = hsm.into_flash().unwrap();
    let mut hsm = boot(flash, &tamper, 75, false);
    assert_eq!(hsm.exec(&p, policy(None)), Ok(Response::KeyExportPolicy { allow_plaintext: true }));
    assert_eq!(
        hsm.exec(&Principal::Local, policy(Some(false))),
        Ok(Response::KeyExportPolicy { allow_plaintext: false })
    );
    assert_eq!(hsm.exec(&p, pair_req(KeyAlg::Sm2, KeyPairProtection::Plaintext)), Err(Status::AccessDenied));
}

#[test]
fn the_switch_does_not_outlive_the_device_master_key() {
    let tamper = tamper();
    let mut hsm = boot(fresh_flash(), &tamper, 76, false);
    hsm.initialize().unwrap();
    let on = Request::KeyExportPolicy { set: Some(true) };
    assert_eq!(hsm.exec(&Principal::Local, on), Ok(Response::KeyExportPolicy { allow_plaintext: true }));
    assert_eq!(hsm.exec(&Principal::Local, Request::Zeroize), Ok(Response::Done));
    hsm.initialize().unwrap();
    let get = Request::KeyExportPolicy { set: None };
    assert_eq!(hsm.exec(&app(1), get), Ok(Response::KeyExportPolicy { allow_plaintext: false }));
    let plain = pair_req(KeyAlg::Sm2, KeyPairProtection::Plaintext);
    assert_eq!(hsm.exec(&app(1), plain), Err(Status::AccessDenied));
}

#[test]
fn pairs_write_nothing_to_flash_and_are_not_audited() {
    let (mut hsm, writes) = counting(77);
    let p = app(1);
    make(&mut hsm, &p, "kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    assert!(hsm.exec(&Principal::Local, Request::KeyExportPolicy { set: Some(true) }).is_ok());
    // Warm the key cache: the first use of a stored key may read (never write) its record.
    pair(hsm.exec(&p, pair_req(KeyAlg::Sm2, wrapped("kek"))), KeyAlg::Sm2);
    let ops = |p: &FlashProbe| p.counts().writes + p.counts().erases;
    let (w0, audit0) = (ops(&writes), hsm.status().audit.last_seq);
    for i in 0..64 {
        let protection = if i % 2 == 0 { wrapped("kek") } else { KeyPairProtection::Plaintext };
        pair(hsm.exec(&p, pair_req(KeyAlg::Sm2, protection)), KeyAlg::Sm2);
    }
    pair(hsm.exec(&p, pair_req(KeyAlg::EcdsaP256, wrapped("kek"))), KeyAlg::EcdsaP256);
    assert!(ops(&writes) > 0, "the counter counts (initialization wrote)");
    assert_eq!(ops(&writes), w0, "no flash write per key pair");
    assert_eq!(hsm.status().audit.last_seq, audit0, "no audit record per key pair");
    assert_eq!(hsm.status().keys, 4, "nothing stored: the three device keys (SDF index 0, audit) and the KEK");
}

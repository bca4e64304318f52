//! Every request type end to end: CLI or client SDK → TLS 1.3 → gmhsmd → card link → card,
//! on the simulator. The card's semantics are tested in the firmware; this shows each request
//! and its answer cross the real daemon intact, including session state bound to the
//! connection.

use gmhsm_client::*;
use gmhsm_tests::*;

fn connect(app: &Appliance) -> Client {
    Client::connect(&Profile::load(app.profile()).unwrap()).unwrap()
}

#[test]
fn every_request_through_the_daemon() {
    let tmp = TempDir::new("reqs");
    let app = Appliance::start(&tmp.path().join("state"), &["--demo"]);
    let mut c = connect(&app);

    // Keys of every algorithm, info, list.
    for (label, alg) in [
        ("sm2", KeyAlg::Sm2),
        ("rsa", KeyAlg::Rsa2048),
        ("p256", KeyAlg::EcdsaP256),
        ("kek", KeyAlg::Sm4),
        ("hmac", KeyAlg::HmacSm3),
    ] {
        c.generate_key_with(label, alg, Capabilities::DEFAULT, 0).unwrap();
        assert_eq!(c.key_info(label).unwrap().alg, alg);
    }
    // An SDF-style key, granted the caller's IVs (a natural SM4 key refuses them).
    let sdf = Capabilities::ENCRYPT | Capabilities::DECRYPT | Capabilities::CALLER_IV;
    c.generate_key_with("sdf-kek", KeyAlg::Sm4, sdf, 0).unwrap();
    let labels: Vec<String> = c.list_keys().unwrap().into_iter().map(|(l, _)| l).collect();
    for l in ["sm2", "rsa", "p256", "kek", "hmac", "sdf:enc:0", "sdf:sign:0"] {
        assert!(labels.iter().any(|x| x == l), "{l} missing from {labels:?}");
    }

    // Signatures.
    for (label, mech) in
        [("sm2", Mechanism::sm2_default()), ("rsa", Mechanism::RsaPssSha256), ("p256", Mechanism::EcdsaP256Sha256)]
    {
        let sig = c.sign(label, mech.clone(), b"msg").unwrap();
        assert!(c.verify(label, mech.clone(), b"msg", &sig).unwrap());
        assert!(!c.verify(label, mech.clone(), b"msG", &sig).unwrap());
        // Many messages in one request (SignBatch): one signature each, in order.
        let messages: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'm'; i as usize + 1]).collect();
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let sigs = c.sign_batch(label, mech.clone(), &refs).unwrap();
        assert_eq!(sigs.len(), messages.len());
        for (m, s) in messages.iter().zip(&sigs) {
            assert!(c.verify(label, mech.clone(), m, s).unwrap(), "{label}: batch signature of {m:?}");
        }
        assert!(!c.verify(label, mech.clone(), &messages[0], &sigs[1]).unwrap());
        assert!(c.sign_batch(label, mech.clone(), &[]).is_err(), "an empty batch is refused by the SDK");
        // ... and by the card, when a client sends one anyway.
        let empty = Request::SignBatch { label: to_label(label).unwrap(), mechanism: mech, messages: vec![] };
        assert!(matches!(c.call(empty), Err(ClientError::Status(Status::InvalidArgument))));
    }

    // Encryption, every family.
    let sm2 = CipherMech::Sm2 { layout: Sm2Layout::Der };
    let ct = c.encrypt(KeyRef::Label(to_label("sm2").unwrap()), sm2.clone(), b"secret").unwrap();
    assert_eq!(
        c.decrypt(KeyRef::Label(to_label("sm2").unwrap()), sm2.clone(), &ct).unwrap().expose_secret(),
        b"secret"
    );
    // Many ciphertexts in one request (DecryptBatch): each its own plaintext, in order, across
    // the card's groups of eight and the two halves it computes at once (from 16 on); a spoilt
    // one is `None` in its place and spoils nothing else.
    let plain: Vec<Vec<u8>> = (0..21u8).map(|i| vec![b'A' + i; i as usize + 1]).collect();
    let mut cts: Vec<Vec<u8>> =
        plain.iter().map(|p| c.encrypt(KeyRef::Label(to_label("sm2").unwrap()), sm2.clone(), p).unwrap()).collect();
    for i in [9, 17] {
        let last = cts[i].len() - 1;
        cts[i][last] ^= 1;
    }
    let refs: Vec<&[u8]> = cts.iter().map(Vec::as_slice).collect();
    let want: Vec<Option<Vec<u8>>> =
        plain.iter().enumerate().map(|(i, p)| (i != 9 && i != 17).then(|| p.clone())).collect();
    for n in [11, 21] {
        let got: Vec<Option<Vec<u8>>> = c
            .decrypt_batch("sm2", sm2.clone(), &refs[..n])
            .unwrap()
            .into_iter()
            .map(|p| p.map(|p| p.expose_secret().to_vec()))
            .collect();
        assert_eq!(got, want[..n], "{n} ciphertexts");
    }
    assert!(c.decrypt_batch("sm2", sm2.clone(), &[]).is_err(), "an empty batch is refused by the SDK");
    let empty = Request::DecryptBatch { label: to_label("sm2").unwrap(), mechanism: sm2.clone(), ciphertexts: vec![] };
    assert!(matches!(c.call(empty), Err(ClientError::Status(Status::InvalidArgument))));
    assert!(matches!(
        c.decrypt_batch("rsa", CipherMech::RsaOaepSha256, &refs[..1]),
        Err(ClientError::Status(Status::WrongKeyType))
    ));
    let oaep = CipherMech::RsaOaepSha256;
    let ct = c.encrypt(KeyRef::Label(to_label("rsa").unwrap()), oaep.clone(), b"secret").unwrap();
    assert_eq!(c.decrypt(KeyRef::Label(to_label("rsa").unwrap()), oaep, &ct).unwrap().expose_secret(), b"secret");
    // SM4 under IVs and nonces the appliance draws (in front of the ciphertext)...
    let natural = || KeyRef::Label(to_label("kek").unwrap());
    for m in [
        CipherMech::Sm4 { mode: Sm4Mode::CbcCardIv, pkcs7: true },
        CipherMech::Sm4GcmCardNonce { aad: b"hdr".to_vec() },
    ] {
        let a = c.encrypt(natural(), m.clone(), b"block data").unwrap();
        let b = c.encrypt(natural(), m.clone(), b"block data").unwrap();
        assert_ne!(a[..12], b[..12], "fresh IVs: {m:?}");
        assert_eq!(c.decrypt(natural(), m, &a).unwrap().expose_secret(), b"block data");
    }
    let cbc = CipherMech::Sm4 { mode: Sm4Mode::Cbc { iv: [9; 16] }, pkcs7: true };
    assert!(matches!(c.encrypt(natural(), cbc.clone(), b"x"), Err(ClientError::Status(Status::AccessDenied))));
    // ... and under the caller's, with a key granted them.
    let kek = || KeyRef::Label(to_label("sdf-kek").unwrap());
    let ct = c.encrypt(kek(), cbc.clone(), b"block data").unwrap();
    assert_eq!(c.decrypt(kek(), cbc.clone(), &ct).unwrap().expose_secret(), b"block data");

    // MACs, hashes, random.
    let hm = || KeyRef::Label(to_label("hmac").unwrap());
    let tag = c.mac(hm(), MacMech::HmacSm3, b"data").unwrap();
    assert!(c.verify_mac(hm(), MacMech::HmacSm3, b"data", &tag).unwrap());
    assert!(!c.verify_mac(hm(), MacMech::HmacSm3, b"dat4", &tag).unwrap());
    let d = c.hash(HashAlg::Sm3, b"abc").unwrap();
    assert_eq!(d[..4], [0x66, 0xc7, 0xf0, 0xf4]);
    let r1 = c.random(32).unwrap();
    assert_eq!(r1.len(), 32);
    assert_ne!(r1, c.random(32).unwrap());

    // Multi-part operations live on this connection.
    let h = c.op_init(MultiOp::Encrypt { key: kek(), mechanism: cbc.clone() }).unwrap();
    let mut multi = c.op_update(h, b"block").unwrap().expose_secret().to_vec();
    multi.extend(c.op_final(h, b" data").unwrap().expose_secret());
    assert_eq!(multi, ct);
    assert!(matches!(c.op_final(h, b""), Err(ClientError::Status(Status::UnknownHandle))));

    // Envelope to the device's key (SDF index 0), opened on another connection.
    let wrap = WrapWith::Key {
        label: to_label("sdf:enc:0").unwrap(),
        mechanism: CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 },
    };
    let sk = c.generate_session_key(wrap).unwrap();
    let gcm = CipherMech::Sm4Gcm { nonce: [1; 12], aad: vec![] };
    let sealed = c.encrypt(KeyRef::Session(sk.handle), gcm.clone(), b"bid 42").unwrap();
    let mut other = connect(&app);
    assert!(matches!(
        other.decrypt(KeyRef::Session(sk.handle), gcm.clone(), &sealed),
        Err(ClientError::Status(Status::UnknownHandle))
    ));
    let h2 = other.import_session_key("sdf:enc:0", CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 }, &sk.wrapped).unwrap();
    assert_eq!(other.decrypt(KeyRef::Session(h2), gcm, &sealed).unwrap().expose_secret(), b"bid 42");
    other.destroy_session_key(h2).unwrap();

    // SM2 key exchange between two connections (two parties).
    c.generate_key_with("kx-a", KeyAlg::Sm2, Capabilities::DEFAULT, 0).unwrap();
    other.generate_key_with("kx-b", KeyAlg::Sm2, Capabilities::DEFAULT, 0).unwrap();
    let sec1 = |spki: Vec<u8>| spki[spki.len() - 65..].to_vec();
    let pa = sec1(c.export_public_key("kx-a").unwrap().1);
    let pb = sec1(other.export_public_key("kx-b").unwrap().1);
    let (pending, ra) = c.agreement_init("kx-a", b"alice").unwrap();
    let (kb, rb, _sb) = other.agreement_respond("kx-b", b"bob", b"alice", &pa, &ra).unwrap();
    let ka = c.agreement_finish(pending, b"bob", &pb, &rb).unwrap();
    let ecb = CipherMech::Sm4 { mode: Sm4Mode::Ecb, pkcs7: true };
    let x = c.encrypt(KeyRef::Session(ka), ecb.clone(), b"agreed").unwrap();
    assert_eq!(other.decrypt(KeyRef::Session(kb), ecb, &x).unwrap().expose_secret(), b"agreed");

    // Access passwords are per connection.
    c.set_key_password("sm2", b"index password").unwrap();
    assert!(matches!(
        c.sign("sm2", Mechanism::sm2_default(), b"m"),
        Err(ClientError::Status(Status::PasswordRequired))
    ));
    c.authorize_key("sm2", b"index password").unwrap();
    c.sign("sm2", Mechanism::sm2_default(), b"m").unwrap();
    let mut third = connect(&app);
    assert!(matches!(
        third.sign("sm2", Mechanism::sm2_default(), b"m"),
        Err(ClientError::Status(Status::PasswordRequired))
    ));

    // Self-test, status, and the refusals of local-only requests.
    assert_eq!(c.self_test().unwrap().error, None);
    assert!(c.status().unwrap().audit.last_seq > 5);
    assert!(matches!(c.read_audit(1, 10), Err(ClientError::Status(Status::AccessDenied))));
    assert!(matches!(
        c.register_application([0; 32], "x", 1, Capabilities::ALL),
        Err(ClientError::Status(Status::AccessDenied))
    ));
    c.delete_key("p256").unwrap();
    assert!(matches!(c.key_info("p256"), Err(ClientError::Status(Status::UnknownKey))));
}

#[test]
fn cli_encrypt_seal_and_open() {
    let tmp = TempDir::new("cli");
    let app = Appliance::start(&tmp.path().join("state"), &["--demo"]);
    let p = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    std::fs::write(p("doc"), b"the quarterly numbers").unwrap();
    ok(&app.cli(&["key", "generate", "--alg", "sm4", "--label", "data-key"]), "generate sm4");
    ok(&app.cli(&["encrypt", "--label", "data-key", "--in", &p("doc"), "--out", &p("doc.enc")]), "encrypt");
    ok(&app.cli(&["decrypt", "--label", "data-key", "--in", &p("doc.enc"), "--out", &p("doc.dec")]), "decrypt");
    assert_eq!(std::fs::read(p("doc.dec")).unwrap(), b"the quarterly numbers");

    // A client seals to the appliance's public key (from its export), the card opens it.
    let pem = ok(&app.cli(&["key", "export", "--label", "sdf:enc:0", "--pem"]), "export device key");
    std::fs::write(p("device.pem"), pem).unwrap();
    ok(&app.cli(&["seal", "--to-pem", &p("device.pem"), "--in", &p("doc"), "--out", &p("doc.env")]), "seal");
    ok(&app.cli(&["open", "--label", "sdf:enc:0", "--in", &p("doc.env"), "--out", &p("doc.opened")]), "open");
    assert_eq!(std::fs::read(p("doc.opened")).unwrap(), b"the quarterly numbers");

    // Hash and random through the CLI; MAC verify exit codes.
    let out = String::from_utf8(ok(&app.cli(&["hash", "--in", &p("doc")]), "hash")).unwrap();
    assert_eq!(out.trim().len(), 64);
    ok(&app.cli(&["key", "generate", "--alg", "hmac-sm3", "--label", "m"]), "generate hmac");
    ok(&app.cli(&["mac", "--label", "m", "--in", &p("doc"), "--out", &p("doc.mac")]), "mac");
    ok(&app.cli(&["verify-mac", "--label", "m", "--in", &p("doc"), "--mac", &p("doc.mac")]), "verify-mac");
    let bad = app.cli(&["verify-mac", "--label", "m", "--in", &p("doc.enc"), "--mac", &p("doc.mac")]);
    assert_eq!(bad.status.code(), Some(1));
    let info = String::from_utf8(ok(&app.cli(&["key", "info", "--label", "m"]), "info")).unwrap();
    assert!(info.contains("hmac-sm3") && info.contains("capabilities: mac"), "{info}");

    // SM4: a MAC key apart from the cipher key; a CBC-MAC IV folded in by the CLI. The
    // caller's IV on a natural key is refused (exit 4, AccessDenied).
    ok(&app.cli(&["key", "generate", "--alg", "sm4", "--label", "mk", "--caps", "mac"]), "generate sm4 mac");
    std::fs::write(p("blocks"), [7u8; 32]).unwrap();
    let iv = "000102030405060708090a0b0c0d0e0f";
    let cbc_mac = ["--label", "mk", "--in", &p("blocks"), "--mech", "sm4-cbc-mac", "--iv", iv];
    ok(&app.cli(&[&["mac"][..], &cbc_mac, &["--out", &p("blocks.mac")]].concat()), "cbc-mac");
    ok(&app.cli(&[&["verify-mac"][..], &cbc_mac, &["--mac", &p("blocks.mac")]].concat()), "verify cbc-mac");
    let wrong =
        ["verify-mac", "--label", "mk", "--in", &p("blocks"), "--mech", "sm4-cbc-mac", "--mac", &p("blocks.mac")];
    assert_eq!(app.cli(&wrong).status.code(), Some(1), "another IV, another MAC");
    let ctr = ["encrypt", "--label", "data-key", "--in", &p("doc"), "--mech", "sm4-ctr", "--iv", iv];
    assert_eq!(app.cli(&ctr).status.code(), Some(4), "caller IV without caller-iv");
}

//! Every request of the card's request set through `Hsm::execute`: mechanisms, multi-part
//! operations, session keys and envelopes, SM2 key exchange, capabilities, domains and
//! private-key access passwords.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_proto::*;

fn ready(seed: u64) -> Hsm<TestBoard> {
    let mut hsm = boot(fresh_flash(), &tamper(), seed, false);
    hsm.initialize().unwrap();
    hsm
}

fn data(r: Result<Response, Status>) -> Vec<u8> {
    match r {
        Ok(Response::Data(d)) => d.expose_secret().to_vec(),
        Ok(Response::Digest(d)) | Ok(Response::Random(d)) | Ok(Response::Signature(d)) => d,
        other => panic!("expected data, got {other:?}"),
    }
}

fn make(hsm: &mut Hsm<TestBoard>, p: &Principal, name: &str, alg: KeyAlg, caps: Capabilities, domains: u32) {
    let r = hsm.exec(p, Request::GenerateKey { label: label(name), alg, caps, domains });
    assert!(matches!(r, Ok(Response::KeyGenerated { .. })), "{r:?}");
}

fn key(name: &str) -> KeyRef {
    KeyRef::Label(label(name))
}

#[test]
fn random_and_hashes() {
    let mut hsm = ready(11);
    let a = data(hsm.exec(&app(1), Request::GenerateRandom { len: 64 }));
    let b = data(hsm.exec(&app(1), Request::GenerateRandom { len: 64 }));
    assert_eq!(a.len(), 64);
    assert_ne!(a, b);
    assert_eq!(hsm.exec(&app(1), Request::GenerateRandom { len: 1 << 20 }), Err(Status::InvalidArgument));
    let d = data(hsm.exec(&app(1), Request::Hash { alg: HashAlg::Sm3, data: b"abc".to_vec() }));
    assert_eq!(hex::encode(d), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
    // Multi-part equals one-shot.
    let Ok(Response::Handle(h)) = hsm.exec(&app(1), Request::OpInit { op: MultiOp::Hash { alg: HashAlg::Sha256 } })
    else {
        panic!()
    };
    data(hsm.exec(&app(1), Request::OpUpdate { handle: h, data: b"ab".to_vec() }));
    let multi = data(hsm.exec(&app(1), Request::OpFinal { handle: h, data: b"c".to_vec() }));
    let one = data(hsm.exec(&app(1), Request::Hash { alg: HashAlg::Sha256, data: b"abc".to_vec() }));
    assert_eq!(multi, one);
    assert_eq!(hsm.exec(&app(1), Request::OpFinal { handle: h, data: vec![] }), Err(Status::UnknownHandle));
}

#[test]
fn every_signature_mechanism() {
    let mut hsm = ready(12);
    let p = app(1);
    for (name, alg, mech) in [
        ("sm2", KeyAlg::Sm2, Mechanism::sm2_default()),
        ("rsa", KeyAlg::Rsa2048, Mechanism::RsaPssSha256),
        ("rsa", KeyAlg::Rsa2048, Mechanism::RsaPkcs1v15Sha256),
        ("p256", KeyAlg::EcdsaP256, Mechanism::EcdsaP256Sha256),
    ] {
        if hsm.exec(&p, Request::GetKeyInfo { label: label(name) }).is_err() {
            make(&mut hsm, &p, name, alg, Capabilities::DEFAULT, 0);
        }
        let sig =
            data(hsm.exec(&p, Request::Sign { label: label(name), mechanism: mech.clone(), message: b"m".to_vec() }));
        let v = Request::Verify { label: label(name), mechanism: mech.clone(), message: b"m".to_vec(), signature: sig };
        assert_eq!(hsm.exec(&p, v), Ok(Response::Verified), "{name} {mech:?}");
    }
    // SM2 over a digest computed by a multi-part HashSm2 verifies as a message signature.
    let Ok(Response::PublicKey { spki_der, .. }) = hsm.exec(&p, Request::ExportPublicKey { label: label("sm2") })
    else {
        panic!()
    };
    let distid = heapless::Vec::from_slice(SM2_DEFAULT_ID).unwrap();
    let Ok(Response::Handle(h)) = hsm.exec(&p, Request::OpInit { op: MultiOp::HashSm2 { spki_der, distid } }) else {
        panic!()
    };
    let e = data(hsm.exec(&p, Request::OpFinal { handle: h, data: b"hello".to_vec() }));
    let sig = data(hsm.exec(&p, Request::Sign { label: label("sm2"), mechanism: Mechanism::Sm2Digest, message: e }));
    let v = Request::Verify {
        label: label("sm2"),
        mechanism: Mechanism::sm2_default(),
        message: b"hello".to_vec(),
        signature: sig,
    };
    assert_eq!(hsm.exec(&p, v), Ok(Response::Verified));
    // A digest of the wrong size is refused.
    let bad = Request::Sign { label: label("sm2"), mechanism: Mechanism::Sm2Digest, message: vec![0; 31] };
    assert_eq!(hsm.exec(&p, bad), Err(Status::InvalidArgument));
}

/// `SignBatch`: one signature per message, in order, each verifying as a `Sign` would (by the
/// card and, for SM2, by the RustCrypto crate over the same message); all or nothing.
#[test]
fn sign_batch_signs_every_message_in_order_or_none() {
    let mut hsm = ready(14);
    let p = app(1);
    let messages: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; i as usize + 1]).collect();
    let batch = |name: &str, mechanism: Mechanism, messages: &[Vec<u8>]| Request::SignBatch {
        label: label(name),
        mechanism,
        messages: messages.iter().cloned().map(ByteBuf::from).collect(),
    };
    for (name, alg, mech) in [
        ("sm2", KeyAlg::Sm2, Mechanism::sm2_default()),
        ("p256", KeyAlg::EcdsaP256, Mechanism::EcdsaP256Sha256),
        ("rsa", KeyAlg::Rsa2048, Mechanism::RsaPkcs1v15Sha256),
    ] {
        make(&mut hsm, &p, name, alg, Capabilities::DEFAULT, 0);
        let n = if alg == KeyAlg::Rsa2048 { 3 } else { messages.len() };
        let Ok(Response::Signatures(sigs)) = hsm.exec(&p, batch(name, mech.clone(), &messages[..n])) else {
            panic!("{name}: no signatures")
        };
        assert_eq!(sigs.len(), n, "{name}");
        for (m, sig) in messages.iter().zip(&sigs) {
            let v = Request::Verify {
                label: label(name),
                mechanism: mech.clone(),
                message: m.clone(),
                signature: sig.to_vec(),
            };
            assert_eq!(hsm.exec(&p, v), Ok(Response::Verified), "{name}: signature of {m:?}");
        }
        // Order matters: a signature does not verify over its neighbour's message.
        let v = Request::Verify {
            label: label(name),
            mechanism: mech.clone(),
            message: messages[1].clone(),
            signature: sigs[0].to_vec(),
        };
        assert_eq!(hsm.exec(&p, v), Err(Status::SignatureInvalid), "{name}");
    }
    // SM2 signatures check with the crate too (GB/T 32918.2 with the default ID).
    let Ok(Response::PublicKey { spki_der, .. }) = hsm.exec(&p, Request::ExportPublicKey { label: label("sm2") })
    else {
        panic!()
    };
    let public = <sm2::PublicKey as sm2::pkcs8::DecodePublicKey>::from_public_key_der(&spki_der).unwrap();
    let vk = sm2::dsa::VerifyingKey::new(core::str::from_utf8(SM2_DEFAULT_ID).unwrap(), public).unwrap();
    let Ok(Response::Signatures(sigs)) = hsm.exec(&p, batch("sm2", Mechanism::sm2_default(), &messages)) else {
        panic!()
    };
    for (m, sig) in messages.iter().zip(&sigs) {
        let sig = sm2::dsa::Signature::from_der(sig).unwrap();
        sm2::dsa::signature::Verifier::verify(&vk, m, &sig).expect("the crate verifies the card's batch signature");
    }
    // Refused as a whole: empty, too many, a digest of the wrong size among good ones, a key
    // the caller may not use, a key that does not sign.
    assert_eq!(hsm.exec(&p, batch("sm2", Mechanism::sm2_default(), &[])), Err(Status::InvalidArgument));
    let many = vec![vec![1u8]; MAX_SIGN_BATCH + 1];
    assert_eq!(hsm.exec(&p, batch("sm2", Mechanism::sm2_default(), &many)), Err(Status::InvalidArgument));
    let digests = [vec![0u8; 32], vec![0u8; 31]];
    assert_eq!(hsm.exec(&p, batch("sm2", Mechanism::Sm2Digest, &digests)), Err(Status::InvalidArgument));
    assert_eq!(hsm.exec(&app(2), batch("sm2", Mechanism::sm2_default(), &messages)), Err(Status::UnknownKey));
    make(&mut hsm, &p, "sm4", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    assert_eq!(hsm.exec(&p, batch("sm4", Mechanism::sm2_default(), &messages)), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&p, batch("p256", Mechanism::sm2_default(), &messages)), Err(Status::WrongKeyType));
    // RSA batches are shorter (an RSA signature holds the card for milliseconds).
    let rsa = vec![vec![3u8]; MAX_SIGN_BATCH_RSA + 1];
    assert_eq!(hsm.exec(&p, batch("rsa", Mechanism::RsaPkcs1v15Sha256, &rsa)), Err(Status::InvalidArgument));
    // The full size is accepted.
    let full = vec![vec![2u8; 32]; MAX_SIGN_BATCH];
    let Ok(Response::Signatures(sigs)) = hsm.exec(&p, batch("sm2", Mechanism::Sm2Digest, &full)) else { panic!() };
    assert_eq!(sigs.len(), MAX_SIGN_BATCH);
    assert_eq!(sigs.iter().collect::<std::collections::BTreeSet<_>>().len(), MAX_SIGN_BATCH, "fresh nonces");
}

/// An SM2 key that encrypts often gets its own table (after 16 uses): every ciphertext before
/// and after decrypts, in every layout.
#[test]
fn sm2_encryption_to_a_busy_key_round_trips() {
    let mut hsm = ready(15);
    let p = app(1);
    make(&mut hsm, &p, "enc", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    for i in 0..40u8 {
        let layout = [Sm2Layout::C1C3C2, Sm2Layout::C1C2C3, Sm2Layout::Der][usize::from(i % 3)];
        let msg = vec![i; usize::from(i) + 1];
        let mech = CipherMech::Sm2 { layout };
        let ct = data(hsm.exec(&p, Request::Encrypt { key: key("enc"), mechanism: mech.clone(), data: msg.clone() }));
        let back = data(hsm.exec(&p, Request::Decrypt { key: key("enc"), mechanism: mech, data: ct }));
        assert_eq!(back, msg, "encryption {i}");
    }
    // The fast path keeps the checks: another application cannot encrypt to the key.
    let r = hsm.exec(
        &app(2),
        Request::Encrypt { key: key("enc"), mechanism: CipherMech::Sm2 { layout: Sm2Layout::Der }, data: vec![1] },
    );
    assert_eq!(r, Err(Status::UnknownKey));
}

#[test]
fn public_key_encryption_round_trips() {
    let mut hsm = ready(13);
    let p = app(1);
    make(&mut hsm, &p, "sm2", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    // Raw RSA needs its own capability, granted at generation (see caps.rs for the refusal).
    let rsa_caps = Capabilities::ENCRYPT | Capabilities::DECRYPT | Capabilities::RAW_RSA;
    make(&mut hsm, &p, "rsa", KeyAlg::Rsa2048, rsa_caps, 0);
    let mut mechs: Vec<(&str, CipherMech)> =
        [Sm2Layout::C1C3C2, Sm2Layout::C1C2C3, Sm2Layout::Der].map(|l| ("sm2", CipherMech::Sm2 { layout: l })).to_vec();
    mechs.push(("rsa", CipherMech::RsaPkcs1v15));
    mechs.push(("rsa", CipherMech::RsaOaepSha256));
    for (name, mech) in mechs {
        let ct =
            data(hsm.exec(&p, Request::Encrypt { key: key(name), mechanism: mech.clone(), data: b"secret".to_vec() }));
        let pt = data(hsm.exec(&p, Request::Decrypt { key: key(name), mechanism: mech.clone(), data: ct.clone() }));
        assert_eq!(pt, b"secret", "{mech:?}");
        let mut bad = ct;
        let n = bad.len() - 1;
        bad[n] ^= 1;
        let r = hsm.exec(&p, Request::Decrypt { key: key(name), mechanism: mech.clone(), data: bad });
        if mech == CipherMech::RsaPkcs1v15 {
            // Implicit rejection: a bad ciphertext yields unrelated bytes, not an error oracle.
            assert!(!matches!(&r, Ok(Response::Data(d)) if d.expose_secret() == b"secret"), "{r:?}");
        } else {
            assert_eq!(r, Err(Status::DecryptFailed), "{mech:?}");
        }
    }
    // Raw RSA: private operation inverts the public one.
    let mut m = vec![0u8; 256];
    m[255] = 42;
    let c = data(hsm.exec(&p, Request::Encrypt { key: key("rsa"), mechanism: CipherMech::RsaRaw, data: m.clone() }));
    let back = data(hsm.exec(&p, Request::Decrypt { key: key("rsa"), mechanism: CipherMech::RsaRaw, data: c }));
    assert_eq!(back, m);
}

#[test]
fn symmetric_keys_modes_macs_and_multipart() {
    let mut hsm = ready(14);
    let p = app(1);
    // Caller IVs (as SDF and PKCS#11 give them) need CALLER_IV; MACs a key of their own
    // (the card-IV modes and the refusals are in caps.rs).
    let sdf = Capabilities::ENCRYPT | Capabilities::DECRYPT | Capabilities::CALLER_IV;
    make(&mut hsm, &p, "kek", KeyAlg::Sm4, sdf, 0);
    make(&mut hsm, &p, "mac", KeyAlg::Sm4, Capabilities::MAC, 0);
    make(&mut hsm, &p, "hmac", KeyAlg::HmacSm3, Capabilities::DEFAULT, 0);
    let msg: Vec<u8> = (0..100u8).collect();
    let iv = [7u8; 16];
    for mode in [Sm4Mode::Ecb, Sm4Mode::Cbc { iv }, Sm4Mode::Cfb { iv }, Sm4Mode::Ofb { iv }, Sm4Mode::Ctr { iv }] {
        let pkcs7 = matches!(mode, Sm4Mode::Ecb | Sm4Mode::Cbc { .. });
        let mech = CipherMech::Sm4 { mode, pkcs7 };
        let ct = data(hsm.exec(&p, Request::Encrypt { key: key("kek"), mechanism: mech.clone(), data: msg.clone() }));
        // Multi-part encryption in uneven pieces gives the same ciphertext.
        let Ok(Response::Handle(h)) =
            hsm.exec(&p, Request::OpInit { op: MultiOp::Encrypt { key: key("kek"), mechanism: mech.clone() } })
        else {
            panic!()
        };
        let mut multi = data(hsm.exec(&p, Request::OpUpdate { handle: h, data: msg[..33].to_vec() }));
        multi.extend(data(hsm.exec(&p, Request::OpUpdate { handle: h, data: msg[33..71].to_vec() })));
        multi.extend(data(hsm.exec(&p, Request::OpFinal { handle: h, data: msg[71..].to_vec() })));
        assert_eq!(multi, ct, "{mode:?}");
        let pt = data(hsm.exec(&p, Request::Decrypt { key: key("kek"), mechanism: mech, data: ct }));
        assert_eq!(pt, msg);
    }
    let gcm = CipherMech::Sm4Gcm { nonce: [3; 12], aad: b"hdr".to_vec() };
    let sealed = data(hsm.exec(&p, Request::Encrypt { key: key("kek"), mechanism: gcm.clone(), data: msg.clone() }));
    assert_eq!(sealed.len(), msg.len() + 16);
    assert_eq!(data(hsm.exec(&p, Request::Decrypt { key: key("kek"), mechanism: gcm, data: sealed.clone() })), msg);
    let wrong_aad = CipherMech::Sm4Gcm { nonce: [3; 12], aad: b"HDR".to_vec() };
    assert_eq!(
        hsm.exec(&p, Request::Decrypt { key: key("kek"), mechanism: wrong_aad, data: sealed }),
        Err(Status::DecryptFailed)
    );

    let zero = [0; 16];
    for (name, mech) in
        [("hmac", MacMech::HmacSm3), ("mac", MacMech::Sm4Cmac), ("mac", MacMech::Sm4CbcMac { iv: zero })]
    {
        let input = msg[..96].to_vec();
        let tag = data(hsm.exec(&p, Request::Mac { key: key(name), mechanism: mech, data: input.clone() }));
        let ok = Request::VerifyMac { key: key(name), mechanism: mech, data: input.clone(), mac: tag.clone() };
        assert_eq!(hsm.exec(&p, ok), Ok(Response::Verified));
        let mut bad = tag.clone();
        bad[0] ^= 1;
        let no = Request::VerifyMac { key: key(name), mechanism: mech, data: input.clone(), mac: bad };
        assert_eq!(hsm.exec(&p, no), Err(Status::SignatureInvalid));
        let Ok(Response::Handle(h)) =
            hsm.exec(&p, Request::OpInit { op: MultiOp::Mac { key: key(name), mechanism: mech } })
        else {
            panic!()
        };
        data(hsm.exec(&p, Request::OpUpdate { handle: h, data: input[..48].to_vec() }));
        assert_eq!(data(hsm.exec(&p, Request::OpFinal { handle: h, data: input[48..].to_vec() })), tag);
    }
    // An HMAC key cannot encrypt, a signature key cannot MAC.
    let e = Request::Encrypt {
        key: key("hmac"),
        mechanism: CipherMech::Sm4 { mode: Sm4Mode::Ecb, pkcs7: true },
        data: msg,
    };
    assert_eq!(hsm.exec(&p, e), Err(Status::AccessDenied));
}

#[test]
fn envelopes_move_a_session_key_between_sessions() {
    let mut hsm = ready(15);
    let p = app(1);
    make(&mut hsm, &p, "enc", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    let sm4 = CipherMech::Sm4 { mode: Sm4Mode::Cbc { iv: [1; 16] }, pkcs7: true };
    let wrap = WrapWith::Key { label: label("enc"), mechanism: CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 } };
    let Ok(Response::SessionKey { handle, wrapped }) = hsm.execute(&p, 10, Request::GenerateSessionKey { wrap }) else {
        panic!()
    };
    let ct = data(hsm.execute(
        &p,
        10,
        Request::Encrypt { key: KeyRef::Session(handle), mechanism: sm4.clone(), data: b"bid".to_vec() },
    ));
    // Another session (another connection) unwraps the envelope inside the card.
    let import = Request::ImportSessionKey {
        unwrap_with: label("enc"),
        mechanism: CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 },
        wrapped,
    };
    let Ok(Response::SessionKey { handle: h2, .. }) = hsm.execute(&p, 11, import) else { panic!() };
    let pt = data(hsm.execute(
        &p,
        11,
        Request::Decrypt { key: KeyRef::Session(h2), mechanism: sm4.clone(), data: ct.clone() },
    ));
    assert_eq!(pt, b"bid");
    // Session keys die with their session and are invisible to other sessions.
    assert_eq!(
        hsm.execute(&p, 12, Request::Decrypt { key: KeyRef::Session(h2), mechanism: sm4.clone(), data: ct.clone() }),
        Err(Status::UnknownHandle)
    );
    hsm.execute(&p, 11, Request::CloseSession).unwrap();
    assert_eq!(
        hsm.execute(&p, 11, Request::Decrypt { key: KeyRef::Session(h2), mechanism: sm4.clone(), data: ct }),
        Err(Status::UnknownHandle)
    );
    // A session belongs to its principal.
    assert_eq!(hsm.execute(&app(2), 10, Request::DestroySessionKey { handle }), Err(Status::AccessDenied));
    assert_eq!(hsm.execute(&p, 10, Request::DestroySessionKey { handle }), Ok(Response::Done));

    // Wrapped to an external public key (a client's certificate key).
    let Ok(Response::PublicKey { spki_der, .. }) = hsm.exec(&p, Request::ExportPublicKey { label: label("enc") })
    else {
        panic!()
    };
    let wrap = WrapWith::External { spki_der, mechanism: CipherMech::Sm2 { layout: Sm2Layout::Der } };
    let Ok(Response::SessionKey { wrapped, .. }) = hsm.exec(&p, Request::GenerateSessionKey { wrap }) else { panic!() };
    assert_eq!(wrapped[0], 0x30, "DER SM2Cipher");
}

#[test]
fn sm2_key_exchange_agrees() {
    let mut hsm = ready(16);
    let (a, b) = (app(1), app(2));
    make(&mut hsm, &a, "ka", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    make(&mut hsm, &b, "kb", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    let sec1 = |hsm: &mut Hsm<TestBoard>, p: &Principal, l: &str| {
        let Ok(Response::PublicKey { spki_der, .. }) = hsm.exec(p, Request::ExportPublicKey { label: label(l) }) else {
            panic!()
        };
        spki_der[spki_der.len() - 65..].to_vec()
    };
    let (pa, pb) = (sec1(&mut hsm, &a, "ka"), sec1(&mut hsm, &b, "kb"));
    let id = |s: &[u8]| heapless::Vec::<u8, 128>::from_slice(s).unwrap();
    let Ok(Response::Agreement { handle, ephemeral: ra }) =
        hsm.execute(&a, 1, Request::AgreementInit { label: label("ka"), own_id: id(b"alice"), key_len: 16 })
    else {
        panic!()
    };
    let respond = Request::AgreementRespond {
        label: label("kb"),
        own_id: id(b"bob"),
        peer_id: id(b"alice"),
        peer_public: pa,
        peer_ephemeral: ra,
        key_len: 16,
    };
    let Ok(Response::AgreementReply { key_handle: kb, ephemeral: rb, .. }) = hsm.execute(&b, 2, respond) else {
        panic!()
    };
    let finish = Request::AgreementFinish { handle, peer_id: id(b"bob"), peer_public: pb, peer_ephemeral: rb };
    let Ok(Response::SessionKey { handle: ka, .. }) = hsm.execute(&a, 1, finish) else { panic!() };
    let ecb = CipherMech::Sm4 { mode: Sm4Mode::Ecb, pkcs7: true };
    let ct = data(hsm.execute(
        &a,
        1,
        Request::Encrypt { key: KeyRef::Session(ka), mechanism: ecb.clone(), data: b"hi".to_vec() },
    ));
    let pt = data(hsm.execute(&b, 2, Request::Decrypt { key: KeyRef::Session(kb), mechanism: ecb, data: ct }));
    assert_eq!(pt, b"hi", "both sides derived the same key");
}

#[test]
fn capabilities_domains_and_applications() {
    let mut hsm = ready(17);
    let (owner, member, outsider) = (app(1), app(2), app(3));
    make(&mut hsm, &owner, "signer", KeyAlg::Sm2, Capabilities::SIGN | Capabilities::VERIFY, 0b10);
    // A capability the key lacks is refused even to its owner.
    let enc = Request::Encrypt {
        key: key("signer"),
        mechanism: CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 },
        data: vec![1],
    };
    assert_eq!(hsm.exec(&owner, enc), Err(Status::AccessDenied));
    // Capabilities beyond the algorithm's are refused at generation.
    let r = hsm.exec(
        &owner,
        Request::GenerateKey { label: label("x"), alg: KeyAlg::HmacSm3, caps: Capabilities::SIGN, domains: 0 },
    );
    assert_eq!(r, Err(Status::InvalidArgument));
    let sign = |l: &str| Request::Sign { label: label(l), mechanism: Mechanism::sm2_default(), message: vec![1] };
    assert_eq!(hsm.exec(&member, sign("signer")), Err(Status::UnknownKey));
    // Only local administration registers applications.
    let reg = |fp: u8, domains: u32, caps: Capabilities| Request::RegisterApplication {
        cert_sha256: [fp; 32],
        name: heapless::String::try_from("app").unwrap(),
        domains,
        caps,
        quota: None,
    };
    assert_eq!(hsm.exec(&member, reg(2, 0b10, Capabilities::ALL)), Err(Status::AccessDenied));
    hsm.exec(&Principal::Local, reg(2, 0b110, Capabilities::SIGN)).unwrap();
    hsm.exec(&Principal::Local, reg(3, 0b001, Capabilities::ALL)).unwrap();
    assert!(matches!(hsm.exec(&member, sign("signer")), Ok(Response::Signature(_))));
    assert_eq!(hsm.exec(&outsider, sign("signer")), Err(Status::UnknownKey));
    // The member's registered capabilities bound what it may do; it may not delete.
    let v = Request::Verify {
        label: label("signer"),
        mechanism: Mechanism::sm2_default(),
        message: vec![1],
        signature: vec![0],
    };
    assert_eq!(hsm.exec(&member, v), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&member, Request::DeleteKey { label: label("signer") }), Err(Status::AccessDenied));
    let names = |hsm: &mut Hsm<TestBoard>, p: &Principal| {
        let Ok(Response::Keys(keys)) = hsm.exec(p, Request::ListKeys) else { panic!() };
        keys.into_iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>()
    };
    // Registered applications also see the device's own keys (SDF index 0, every domain).
    assert_eq!(names(&mut hsm, &member), ["sdf:enc:0", "sdf:sign:0", "signer"]);
    assert_eq!(names(&mut hsm, &outsider), ["sdf:enc:0", "sdf:sign:0"]);
    assert!(names(&mut hsm, &app(9)).is_empty(), "unregistered principals see only their own keys");
}

#[test]
fn access_passwords_gate_private_use_and_lock() {
    let mut hsm = ready(18);
    let p = app(1);
    make(&mut hsm, &p, "idx1", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    let pw = |s: &[u8]| Password::new(s).unwrap();
    assert_eq!(
        hsm.exec(&p, Request::SetKeyPassword { label: label("idx1"), password: pw(b"short") }),
        Err(Status::InvalidArgument)
    );
    hsm.exec(&p, Request::SetKeyPassword { label: label("idx1"), password: pw(b"correct horse") }).unwrap();
    let sign = Request::Sign { label: label("idx1"), mechanism: Mechanism::sm2_default(), message: vec![1] };
    assert_eq!(hsm.exec(&p, sign.clone()), Err(Status::PasswordRequired));
    // Public operations need no password.
    assert!(hsm.exec(&p, Request::ExportPublicKey { label: label("idx1") }).is_ok());
    assert_eq!(
        hsm.exec(&p, Request::AuthorizeKey { label: label("idx1"), password: pw(b"wrong pass") }),
        Err(Status::WrongPassword)
    );
    hsm.exec(&p, Request::AuthorizeKey { label: label("idx1"), password: pw(b"correct horse") }).unwrap();
    assert!(matches!(hsm.exec(&p, sign.clone()), Ok(Response::Signature(_))));
    // Authorization is per session.
    assert_eq!(hsm.execute(&p, 99, sign.clone()), Err(Status::PasswordRequired));
    // The earlier success reset the counter: four more wrong guesses, the fifth locks.
    for i in 0..5 {
        assert_eq!(
            hsm.execute(&p, 99, Request::AuthorizeKey { label: label("idx1"), password: pw(b"wrong pass") }),
            Err(if i < 4 { Status::WrongPassword } else { Status::KeyLocked })
        );
    }
    assert_eq!(
        hsm.execute(&p, 99, Request::AuthorizeKey { label: label("idx1"), password: pw(b"correct horse") }),
        Err(Status::KeyLocked),
        "locked even for the right password"
    );
    let Ok(Response::KeyInfo(info)) = hsm.exec(&p, Request::GetKeyInfo { label: label("idx1") }) else { panic!() };
    assert!(info.password);
}

#[test]
fn self_test_on_request() {
    let mut hsm = ready(19);
    let Ok(Response::Status(st)) = hsm.exec(&app(1), Request::SelfTest) else { panic!() };
    assert_eq!(st.error, None);
}

#[test]
fn enveloped_key_pair_import_gmt0016() {
    use gmhsm_firmware::alg::{self, sm4};
    let mut hsm = ready(20);
    let p = app(1);
    make(&mut hsm, &p, "device-enc", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    let Ok(Response::PublicKey { spki_der, .. }) =
        hsm.exec(&p, Request::ExportPublicKey { label: label("device-enc") })
    else {
        panic!()
    };
    let device_pub = alg::sm2::public_from_sec1(&spki_der[spki_der.len() - 65..]).unwrap();

    // The escrow centre's side: a key pair, a fresh SM4 key, the envelope.
    let mut rng = XorShiftRng(0x1234_5678_9abc);
    let escrowed = alg::sm2::generate(&mut rng).unwrap();
    let mut pub_sec1 = [4u8; 65];
    pub_sec1[1..].copy_from_slice(&alg::sm2::public_xy(&escrowed.public_key()));
    let sym = [0x42u8; 16];
    let enc_d =
        sm4::crypt(&sym, sm4::Mode::Ecb, sm4::Direction::Encrypt, sm4::Padding::None, &escrowed.to_bytes()).unwrap();
    let wrapped = alg::sm2_pke::encrypt(&mut rng, &device_pub, &sym, alg::sm2_pke::Layout::C1C3C2).unwrap();
    let blob = gmhsm_firmware::envelope::build(&enc_d[..].try_into().unwrap(), &pub_sec1, &wrapped);

    let import = |blob: Vec<u8>, name: &str| Request::ImportEnvelopedKeyPair {
        label: label(name),
        unwrap_with: label("device-enc"),
        blob,
        caps: Capabilities::DEFAULT,
        domains: 0,
    };
    let Ok(Response::KeyGenerated { alg: KeyAlg::Sm2, spki_der }) = hsm.exec(&p, import(blob.clone(), "user-enc"))
    else {
        panic!()
    };
    assert_eq!(&spki_der[spki_der.len() - 65..], &pub_sec1[..]);
    // Data encrypted outside to the escrowed public key decrypts inside the card.
    let ct =
        alg::sm2_pke::encrypt(&mut rng, &escrowed.public_key(), b"mail key", alg::sm2_pke::Layout::C1C3C2).unwrap();
    let mech = CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 };
    assert_eq!(data(hsm.exec(&p, Request::Decrypt { key: key("user-enc"), mechanism: mech, data: ct })), b"mail key");
    // An encryption key pair does not sign.
    let sign = Request::Sign { label: label("user-enc"), mechanism: Mechanism::sm2_default(), message: vec![] };
    assert_eq!(hsm.exec(&p, sign), Err(Status::AccessDenied));
    // A blob whose public key does not match its private key imports nothing.
    let mut wrong = pub_sec1;
    wrong[1..].copy_from_slice(&alg::sm2::public_xy(&alg::sm2::generate(&mut rng).unwrap().public_key()));
    let bad = gmhsm_firmware::envelope::build(&enc_d[..].try_into().unwrap(), &wrong, &wrapped);
    assert_eq!(hsm.exec(&p, import(bad, "user-enc2")), Err(Status::DecryptFailed));
    assert_eq!(hsm.exec(&p, Request::GetKeyInfo { label: label("user-enc2") }), Err(Status::UnknownKey));
    assert_eq!(hsm.exec(&p, import(blob[..100].to_vec(), "user-enc3")), Err(Status::InvalidArgument));
}

#[test]
fn idle_refills_nonces_and_pooled_signatures_verify() {
    let mut hsm = ready(21);
    let p = app(1);
    make(&mut hsm, &p, "s", KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    let mut batches = 0;
    while hsm.idle() {
        batches += 1;
        assert!(batches <= 64, "idle work must end once the pool is full");
    }
    assert!(batches > 0, "an empty pool is refilled while idle");
    let mut seen = std::collections::HashSet::new();
    for i in 0..40u8 {
        let sig = data(
            hsm.exec(&p, Request::Sign { label: label("s"), mechanism: Mechanism::sm2_default(), message: vec![i] }),
        );
        // r is never reused: each pooled nonce is used once.
        assert!(seen.insert(sig[..40].to_vec()));
        let v = Request::Verify {
            label: label("s"),
            mechanism: Mechanism::sm2_default(),
            message: vec![i],
            signature: sig,
        };
        assert_eq!(hsm.exec(&p, v), Ok(Response::Verified));
    }
    assert!(hsm.idle(), "used nonces are replaced while idle");
}

#[test]
fn buffering_gcm_contexts_are_bounded_per_session() {
    let mut hsm = ready(22);
    let p = app(1);
    make(&mut hsm, &p, "kek", KeyAlg::Sm4, Capabilities::DEFAULT, 0);
    let op = || Request::OpInit {
        op: MultiOp::Decrypt { key: key("kek"), mechanism: CipherMech::Sm4Gcm { nonce: [0; 12], aad: vec![] } },
    };
    let mut handles = Vec::new();
    for _ in 0..4 {
        let Ok(Response::Handle(h)) = hsm.exec(&p, op()) else { panic!("GCM context refused too early") };
        handles.push(h);
    }
    assert_eq!(hsm.exec(&p, op()), Err(Status::Busy), "a fifth buffering GCM context in one session");
    // Other operations still open, other sessions have their own allowance, and a finished
    // context frees its place.
    assert!(hsm.exec(&p, Request::OpInit { op: MultiOp::Hash { alg: HashAlg::Sm3 } }).is_ok());
    assert!(matches!(hsm.execute(&p, 2, op()), Ok(Response::Handle(_))));
    let _ = hsm.exec(&p, Request::OpFinal { handle: handles[0], data: vec![] });
    assert!(matches!(hsm.exec(&p, op()), Ok(Response::Handle(_))));
}

/// What one link read brings in at once (`Hsm::execute_many`): consecutive SM2 decryptions are
/// computed together, and every answer is the one the same request gets alone — successes,
/// spoilt ciphertexts, refused principals, wrong key types, other layouts, other keys and
/// other requests in between — and `before_each` runs before every request.
#[test]
fn requests_executed_together_answer_as_one_at_a_time() {
    let mut hsm = ready(17);
    let p = app(1);
    for name in ["a", "b"] {
        make(&mut hsm, &p, name, KeyAlg::Sm2, Capabilities::DEFAULT, 0);
    }
    make(&mut hsm, &p, "rsa", KeyAlg::Rsa2048, Capabilities::DEFAULT, 0);
    let c1 = CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 };
    let der = CipherMech::Sm2 { layout: Sm2Layout::Der };
    let mut enc = |name: &str, mech: &CipherMech, m: &[u8]| {
        data(hsm.exec(&p, Request::Encrypt { key: key(name), mechanism: mech.clone(), data: m.to_vec() }))
    };
    let a: Vec<Vec<u8>> = (0..12u8).map(|i| enc("a", &c1, &[i; 20])).collect();
    let b = enc("b", &c1, b"for b");
    let a_der = enc("a", &der, b"der");
    let mut spoilt = a[1].clone();
    spoilt[100] ^= 1;
    let dec = |name: &str, mech: &CipherMech, ct: &[u8]| Request::Decrypt {
        key: key(name),
        mechanism: mech.clone(),
        data: ct.to_vec(),
    };
    let mut items: Vec<(Principal, Request)> = vec![
        (p.clone(), dec("a", &c1, &a[0])),
        (p.clone(), dec("a", &c1, &spoilt)),
        (app(2), dec("a", &c1, &a[2])),
        (p.clone(), dec("rsa", &c1, &a[3])),
        (p.clone(), dec("b", &c1, &b)),
        (p.clone(), dec("a", &c1, &b)),
        (p.clone(), dec("a", &der, &a_der)),
        (p.clone(), dec("a", &c1, &a_der)),
        (p.clone(), Request::Ping),
        (p.clone(), dec("a", &c1, &a[4][..50])),
    ];
    items.extend(a[5..].iter().map(|ct| (p.clone(), dec("a", &c1, ct))));
    // A run long enough to be split in two halves computed at once (TestBoard::join).
    items.extend(a.iter().chain(&a).map(|ct| (p.clone(), dec("a", &c1, ct))));
    let want: Vec<Result<Response, Status>> = items.iter().map(|(who, r)| hsm.exec(who, r.clone())).collect();
    assert!(want.iter().filter(|r| r.is_ok()).count() >= 10, "most succeed: {want:?}");
    assert!(want.iter().any(|r| *r == Err(Status::UnknownKey)) && want.iter().any(|r| *r == Err(Status::WrongKeyType)));
    let mut calls = 0;
    let joins = JOINS.load(std::sync::atomic::Ordering::Relaxed);
    let got = hsm.execute_many(items.iter().map(|(who, r)| (who.clone(), 1, r.clone())).collect(), |_| calls += 1);
    assert_eq!(got, want);
    assert_eq!(calls, items.len());
    assert!(JOINS.load(std::sync::atomic::Ordering::Relaxed) > joins, "the long run was split");
    // Order holds: a decryption after a deletion in the same read does not see the key.
    let got = hsm.execute_many(
        vec![
            (p.clone(), 1, dec("a", &c1, &a[0])),
            (p.clone(), 1, Request::DeleteKey { label: label("a") }),
            (p.clone(), 1, dec("a", &c1, &a[0])),
        ],
        |_| {},
    );
    assert_eq!(
        got,
        vec![Ok(Response::Data(SecretBytes::new(vec![0; 20]))), Ok(Response::Deleted), Err(Status::UnknownKey)]
    );
}

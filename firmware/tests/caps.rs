//! Capabilities do not add up to more than they say (issue 12, finding 4): a principal that
//! holds one capability on a key gets that use and nothing else. In particular no capability
//! but CALLER_IV answers the raw block cipher E_K(x) for an x the caller picks, which would
//! decrypt the key's CTR and GCM data, give the GHASH key and forge GCM tags (the "SPKI as
//! AAD" binding of wrapped private keys among them); RSA decryption without RAW_RSA signs
//! nothing; wrapping never repeats a nonce. Also: plaintexts and passwords stay out of
//! `Debug` (finding 9).

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_proto::*;

type C = Capabilities;

/// Each principal in its own card session (a session belongs to one principal).
trait Run {
    fn run(&mut self, p: &Principal, r: Request) -> Result<Response, Status>;
}

impl Run for Hsm<TestBoard> {
    fn run(&mut self, p: &Principal, r: Request) -> Result<Response, Status> {
        let session = match p {
            Principal::Application { cert_sha256 } => u64::from(cert_sha256[0]),
            Principal::Local => 1000,
        };
        self.execute(p, session, r)
    }
}

fn ready(seed: u64) -> Hsm<TestBoard> {
    let mut hsm = boot(fresh_flash(), &tamper(), seed, false);
    hsm.initialize().unwrap();
    hsm
}

fn data(r: Result<Response, Status>) -> Vec<u8> {
    match r {
        Ok(Response::Data(d)) => d.expose_secret().to_vec(),
        other => panic!("expected data, got {other:?}"),
    }
}

fn key(name: &str) -> KeyRef {
    KeyRef::Label(label(name))
}

fn make(hsm: &mut Hsm<TestBoard>, p: &Principal, name: &str, alg: KeyAlg, caps: C) {
    let r = hsm.run(p, Request::GenerateKey { label: label(name), alg, caps, domains: 1 });
    assert!(matches!(r, Ok(Response::KeyGenerated { .. })), "{r:?}");
}

/// Application `n`, registered in domain 1 with exactly `caps`.
fn member(hsm: &mut Hsm<TestBoard>, n: u8, caps: C) -> Principal {
    let name = heapless::String::try_from("member").unwrap();
    hsm.run(
        &Principal::Local,
        Request::RegisterApplication { cert_sha256: [n; 32], name, domains: 1, caps, quota: None },
    )
    .unwrap();
    app(n)
}

fn sm4(mode: Sm4Mode) -> CipherMech {
    CipherMech::Sm4 { mode, pkcs7: false }
}

fn enc(name: &str, mechanism: CipherMech, data: &[u8]) -> Request {
    Request::Encrypt { key: key(name), mechanism, data: data.to_vec() }
}

fn dec(name: &str, mechanism: CipherMech, data: &[u8]) -> Request {
    Request::Decrypt { key: key(name), mechanism, data: data.to_vec() }
}

/// Every request that would run the block cipher of the stored SM4 key `name` on a block the
/// caller picks (`x`), or repeat a nonce: each answers E_K(x) (or D_K(x)) or the keystream of
/// a chosen counter block when it is served.
fn raw_block_probes(name: &str, x: [u8; 16]) -> Vec<(&'static str, Request)> {
    let zeros = [0u8; 16];
    let mut x_then_zeros = x.to_vec();
    x_then_zeros.extend_from_slice(&zeros);
    let nonce: [u8; 12] = x[..12].try_into().unwrap();
    let multi = |mechanism| Request::OpInit { op: MultiOp::Encrypt { key: key(name), mechanism } };
    let wrap = |mechanism| Request::GenerateSessionKey { wrap: WrapWith::Key { label: label(name), mechanism } };
    let mac = |mechanism| Request::Mac { key: key(name), mechanism, data: x.to_vec() };
    vec![
        ("ECB encryption", enc(name, sm4(Sm4Mode::Ecb), &x)),
        ("ECB decryption", dec(name, sm4(Sm4Mode::Ecb), &x)),
        ("CBC encryption, caller IV", enc(name, sm4(Sm4Mode::Cbc { iv: x }), &zeros)),
        ("CTR encryption, caller IV", enc(name, sm4(Sm4Mode::Ctr { iv: x }), &zeros)),
        ("GCM encryption, caller nonce", enc(name, CipherMech::Sm4Gcm { nonce, aad: vec![] }, &zeros)),
        ("CTR decryption", dec(name, sm4(Sm4Mode::Ctr { iv: x }), &zeros)),
        ("CTR decryption, IV in data", dec(name, sm4(Sm4Mode::CtrCardIv), &x_then_zeros)),
        ("OFB decryption, IV in data", dec(name, sm4(Sm4Mode::OfbCardIv), &x_then_zeros)),
        ("CFB decryption, IV in data", dec(name, sm4(Sm4Mode::CfbCardIv), &x_then_zeros)),
        ("multi-part CBC encryption", multi(sm4(Sm4Mode::CbcCardIv))),
        ("wrapping, caller nonce", wrap(CipherMech::Sm4Gcm { nonce, aad: vec![] })),
        ("wrapping in ECB", wrap(sm4(Sm4Mode::Ecb))),
        ("CBC-MAC", mac(MacMech::Sm4CbcMac { iv: zeros })),
        (
            "CBC-MAC, caller IV",
            Request::Mac { key: key(name), mechanism: MacMech::Sm4CbcMac { iv: x }, data: zeros.to_vec() },
        ),
        ("CMAC", mac(MacMech::Sm4Cmac)),
    ]
}

fn assert_no_raw_block(hsm: &mut Hsm<TestBoard>, who: &Principal, name: &str, why: &str) {
    for (what, r) in raw_block_probes(name, [0x5a; 16]) {
        let got = hsm.run(who, r);
        assert!(got.is_err(), "{why}: {what} was served: {got:?}");
    }
}

/// The natural set of an SM4 key, and each of its capabilities alone, gives no raw block
/// cipher (on the old code a plain SM4 key answered all of these: MAC was in its natural
/// set, caller IVs and nonces were taken on encryption, CTR decryption ran on any IV).
#[test]
fn no_cipher_capability_answers_the_raw_block_cipher() {
    let mut hsm = ready(31);
    let owner = app(1);
    make(&mut hsm, &owner, "data", KeyAlg::Sm4, C::DEFAULT);
    assert_no_raw_block(&mut hsm, &owner, "data", "the owner, natural capabilities");
    for (n, cap) in [(2, C::ENCRYPT), (3, C::DECRYPT), (4, C::WRAP), (5, C::UNWRAP), (6, C::MAC)] {
        let who = member(&mut hsm, n, cap);
        assert_no_raw_block(&mut hsm, &who, "data", &format!("a member with {cap:?} only"));
    }
}

/// MAC alone on an SM4 key computes MACs and nothing else; an SM4 key is a MAC key or a
/// cipher key, never both.
#[test]
fn mac_keys_are_not_cipher_keys() {
    let mut hsm = ready(32);
    let owner = app(1);
    let mixed = Request::GenerateKey { label: label("both"), alg: KeyAlg::Sm4, caps: C::MAC | C::ENCRYPT, domains: 0 };
    assert_eq!(hsm.run(&owner, mixed), Err(Status::InvalidArgument));
    make(&mut hsm, &owner, "mac", KeyAlg::Sm4, C::MAC);
    let block = [0x11u8; 32];
    let zero = MacMech::Sm4CbcMac { iv: [0; 16] };
    let tag = data(hsm.run(&owner, Request::Mac { key: key("mac"), mechanism: zero, data: block.to_vec() }));
    let check = Request::VerifyMac { key: key("mac"), mechanism: zero, data: block.to_vec(), mac: tag };
    assert_eq!(hsm.run(&owner, check), Ok(Response::Verified));
    let mut sealed = vec![0u8; 12];
    sealed.extend_from_slice(&[0u8; 32]);
    for r in [
        enc("mac", CipherMech::Sm4GcmCardNonce { aad: vec![] }, b"x"),
        enc("mac", sm4(Sm4Mode::CtrCardIv), b"x"),
        dec("mac", CipherMech::Sm4GcmCardNonce { aad: vec![] }, &sealed),
        dec("mac", sm4(Sm4Mode::CbcCardIv), &[0; 32]),
    ] {
        assert_eq!(hsm.run(&owner, r), Err(Status::AccessDenied));
    }
}

/// ENCRYPT alone: encryption under IVs and nonces the card draws (fresh each time, returned
/// in front of the ciphertext), no decryption.
#[test]
fn encrypt_alone_gives_no_decryption() {
    let mut hsm = ready(33);
    let owner = app(1);
    make(&mut hsm, &owner, "data", KeyAlg::Sm4, C::DEFAULT);
    let who = member(&mut hsm, 2, C::ENCRYPT);
    let gcm = CipherMech::Sm4GcmCardNonce { aad: b"hdr".to_vec() };
    let a = data(hsm.run(&who, enc("data", gcm.clone(), b"attack at dawn")));
    let b = data(hsm.run(&who, enc("data", gcm.clone(), b"attack at dawn")));
    assert_eq!(a.len(), 12 + 14 + 16);
    assert_ne!(a[..12], b[..12], "a fresh nonce each time");
    assert_eq!(data(hsm.run(&owner, dec("data", gcm.clone(), &a))), b"attack at dawn");
    assert_eq!(hsm.run(&who, dec("data", gcm, &a)), Err(Status::AccessDenied));
    let ctr = data(hsm.run(&who, enc("data", sm4(Sm4Mode::CtrCardIv), b"attack at dawn")));
    assert_eq!(ctr.len(), 16 + 14);
    assert_eq!(hsm.run(&who, dec("data", sm4(Sm4Mode::CbcCardIv), &[0; 32])), Err(Status::AccessDenied));
}

/// DECRYPT alone: decryption of CBC and GCM data (the IV or nonce the data carries); no
/// encryption, and no forward cipher (so no GHASH key, no GCM forgery: a tag over another
/// AAD does not verify).
#[test]
fn decrypt_alone_gives_no_encryption_and_no_gcm_forgery() {
    let mut hsm = ready(34);
    let owner = app(1);
    make(&mut hsm, &owner, "data", KeyAlg::Sm4, C::DEFAULT);
    let who = member(&mut hsm, 3, C::DECRYPT);
    let gcm = CipherMech::Sm4GcmCardNonce { aad: b"spki A".to_vec() };
    let sealed = data(hsm.run(&owner, enc("data", gcm.clone(), b"private key")));
    assert_eq!(data(hsm.run(&who, dec("data", gcm, &sealed))), b"private key");
    let other = CipherMech::Sm4GcmCardNonce { aad: b"spki B".to_vec() };
    assert_eq!(hsm.run(&who, dec("data", other, &sealed)), Err(Status::DecryptFailed));
    let cbc = CipherMech::Sm4 { mode: Sm4Mode::CbcCardIv, pkcs7: true };
    let ct = data(hsm.run(&owner, enc("data", cbc.clone(), b"payroll")));
    assert_eq!(data(hsm.run(&who, dec("data", cbc.clone(), &ct))), b"payroll");
    for r in [
        enc("data", cbc, b"x"),
        enc("data", CipherMech::Sm4GcmCardNonce { aad: vec![] }, b"x"),
        // H = E_K(0): the keystream of counter block 0 under CTR decryption.
        dec("data", sm4(Sm4Mode::Ctr { iv: [0; 16] }), &[0; 16]),
    ] {
        assert_eq!(hsm.run(&who, r), Err(Status::AccessDenied));
    }
}

/// WRAP alone: session keys and key pairs wrapped under nonces the card draws, never the
/// caller's; UNWRAP opens what WRAP made.
#[test]
fn wrap_alone_never_repeats_a_nonce() {
    let mut hsm = ready(35);
    let owner = app(1);
    make(&mut hsm, &owner, "kek", KeyAlg::Sm4, C::DEFAULT);
    let who = member(&mut hsm, 4, C::WRAP);
    let gcm = CipherMech::Sm4GcmCardNonce { aad: vec![] };
    let wrap = || Request::GenerateSessionKey { wrap: WrapWith::Key { label: label("kek"), mechanism: gcm.clone() } };
    let mut nonces = Vec::new();
    for _ in 0..2 {
        let Ok(Response::SessionKey { wrapped, .. }) = hsm.run(&who, wrap()) else { panic!("wrap refused") };
        assert_eq!(wrapped.len(), 12 + 16 + 16);
        nonces.push(wrapped[..12].to_vec());
        let unwrap = Request::ImportSessionKey { unwrap_with: label("kek"), mechanism: gcm.clone(), wrapped };
        assert!(matches!(hsm.run(&owner, unwrap), Ok(Response::SessionKey { .. })));
    }
    assert_ne!(nonces[0], nonces[1]);
    let fixed = CipherMech::Sm4Gcm { nonce: [9; 12], aad: vec![] };
    let r =
        hsm.run(&who, Request::GenerateSessionKey { wrap: WrapWith::Key { label: label("kek"), mechanism: fixed } });
    assert_eq!(r, Err(Status::AccessDenied));
}

/// RSA decryption without RAW_RSA signs nothing: `c^d mod n` of an encoded digest would be
/// a PKCS#1 v1.5 signature. RAW_RSA is never in a natural set.
#[test]
fn rsa_decrypt_without_raw_rsa_signs_nothing() {
    let mut hsm = ready(36);
    let owner = app(1);
    make(&mut hsm, &owner, "rsa", KeyAlg::Rsa2048, C::DEFAULT);
    let Ok(Response::KeyInfo(info)) = hsm.run(&owner, Request::GetKeyInfo { label: label("rsa") }) else { panic!() };
    assert!(!info.caps.contains(C::RAW_RSA));
    // EMSA-PKCS1-v1_5 of a SHA-256 digest: 00 01 ff.. 00 DigestInfo digest.
    let mut em = vec![0x00, 0x01];
    em.resize(256 - 19 - 32 - 1, 0xff);
    em.push(0);
    em.extend_from_slice(&[0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]);
    em.extend_from_slice(&[0x05, 0x00, 0x04, 0x20]);
    em.extend_from_slice(&[0x42; 32]);
    assert_eq!(em.len(), 256);
    let who = member(&mut hsm, 3, C::DECRYPT | C::UNWRAP);
    for p in [&owner, &who] {
        assert_eq!(hsm.run(p, dec("rsa", CipherMech::RsaRaw, &em)), Err(Status::AccessDenied));
        let unwrap =
            Request::ImportSessionKey { unwrap_with: label("rsa"), mechanism: CipherMech::RsaRaw, wrapped: em.clone() };
        assert_eq!(hsm.run(p, unwrap), Err(Status::AccessDenied));
    }
    // The public operation needs nothing beyond ENCRYPT.
    assert!(hsm.run(&owner, enc("rsa", CipherMech::RsaRaw, &em)).is_ok());
}

/// CALLER_IV is what it says, and only that: with it the caller's IVs are taken and CTR
/// decryption of zeros is the raw cipher (what ECB encryption answers); the owner grants it.
#[test]
fn caller_iv_is_the_raw_cipher_and_is_granted_explicitly() {
    let mut hsm = ready(37);
    let owner = app(1);
    make(&mut hsm, &owner, "sdf", KeyAlg::Sm4, C::ENCRYPT | C::DECRYPT | C::CALLER_IV);
    let x = [0x5a; 16];
    let ecb = data(hsm.run(&owner, enc("sdf", sm4(Sm4Mode::Ecb), &x)));
    assert_eq!(data(hsm.run(&owner, dec("sdf", sm4(Sm4Mode::Ctr { iv: x }), &[0; 16]))), ecb);
    // A member registered with every capability but holding a key without CALLER_IV does
    // not get it; on this key it does.
    make(&mut hsm, &owner, "plain", KeyAlg::Sm4, C::DEFAULT);
    let who = member(&mut hsm, 7, C::ALL);
    assert_no_raw_block(&mut hsm, &who, "plain", "a member with ALL on a natural key");
    assert_eq!(data(hsm.run(&who, enc("sdf", sm4(Sm4Mode::Ecb), &x))), ecb);
    // Card-IV modes round-trip under the same key, each encryption under a fresh IV.
    for mode in [Sm4Mode::CbcCardIv, Sm4Mode::CfbCardIv, Sm4Mode::OfbCardIv, Sm4Mode::CtrCardIv] {
        let m = CipherMech::Sm4 { mode, pkcs7: mode == Sm4Mode::CbcCardIv };
        let a = data(hsm.run(&owner, enc("sdf", m.clone(), b"forty-two bytes of something to encrypt!!")));
        let b = data(hsm.run(&owner, enc("sdf", m.clone(), b"forty-two bytes of something to encrypt!!")));
        assert_ne!(a[..16], b[..16], "{mode:?}");
        assert_eq!(data(hsm.run(&owner, dec("sdf", m, &a))), b"forty-two bytes of something to encrypt!!");
    }
}

/// Multi-part encryption under a card IV writes the IV first; what it produces decrypts in
/// one shot (CTR decryption needing CALLER_IV, the key has it).
#[test]
fn multi_part_card_iv_writes_the_iv_first() {
    let mut hsm = ready(38);
    let owner = app(1);
    make(&mut hsm, &owner, "data", KeyAlg::Sm4, C::ENCRYPT | C::DECRYPT | C::CALLER_IV);
    for m in [sm4(Sm4Mode::CtrCardIv), CipherMech::Sm4GcmCardNonce { aad: b"a".to_vec() }] {
        let op = MultiOp::Encrypt { key: key("data"), mechanism: m.clone() };
        let Ok(Response::Handle(h)) = hsm.run(&owner, Request::OpInit { op }) else { panic!("{m:?}") };
        let mut out = data(hsm.run(&owner, Request::OpUpdate { handle: h, data: b"first part, ".to_vec() }));
        out.extend(data(hsm.run(&owner, Request::OpFinal { handle: h, data: b"second part".to_vec() })));
        assert_eq!(data(hsm.run(&owner, dec("data", m, &out))), b"first part, second part");
    }
}

/// Finding 9: a decrypted plaintext and a password never show in `Debug` of the answer or
/// the request that carries them.
#[test]
fn plaintexts_and_passwords_stay_out_of_debug() {
    let mut hsm = ready(39);
    let owner = app(1);
    make(&mut hsm, &owner, "data", KeyAlg::Sm4, C::DEFAULT);
    let gcm = CipherMech::Sm4GcmCardNonce { aad: vec![] };
    let sealed = data(hsm.run(&owner, enc("data", gcm.clone(), b"attack at dawn")));
    let answer = hsm.run(&owner, dec("data", gcm, &sealed));
    let shown = format!("{answer:?}");
    assert!(matches!(&answer, Ok(Response::Data(d)) if d.expose_secret() == b"attack at dawn"));
    assert!(!shown.contains("attack") && !shown.contains("97, 116, 116"), "{shown}");
    let password = Password::new(b"correct horse").unwrap();
    for r in [
        Request::SetKeyPassword { label: label("data"), password: password.clone() },
        Request::AuthorizeKey { label: label("data"), password },
    ] {
        let shown = format!("{r:?}");
        assert!(!shown.contains("correct") && !shown.contains("99, 111, 114"), "{shown}");
    }
}

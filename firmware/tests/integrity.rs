//! Finding 3: what a writer of the flash can no longer do. Each test powers the card down,
//! changes the flash through the store as an attacker with flash access could (a CRC-valid
//! rewrite, an old authentic copy, a deleted record, a whole older image), boots again on
//! the same tamper RAM and checks that the card refuses to serve and says why. Then: a power
//! cut at every flash write of a key generation and deletion boots to the old or new state.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_firmware::keys::KeyRecord;
use gmhsm_firmware::store::Store;
use gmhsm_platform::sim::RamFlash as CutFlash;
use gmhsm_platform::*;
use gmhsm_proto::*;

/// A demo card with key `k` (owner app 1) and password `password1`.
fn card() -> (Hsm<TestBoard>, TestTamper) {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 3, false);
    hsm.initialize().unwrap();
    hsm.exec(&app(1), gen_req(label("k"), KeyAlg::Sm2)).unwrap();
    hsm.exec(
        &app(1),
        Request::SetKeyPassword { label: label("k"), password: gmhsm_proto::Password::new(b"password1").unwrap() },
    )
    .unwrap();
    (hsm, t)
}

/// Power down, edit the flash through the store, boot again.
fn edit(hsm: Hsm<TestBoard>, t: &TestTamper, f: impl FnOnce(&mut Store<RamFlash>)) -> Hsm<TestBoard> {
    let mut store = Store::open(hsm.into_flash().unwrap()).unwrap();
    f(&mut store);
    boot(store.into_flash(), t, 4, false)
}

/// The card is in its error state with a reason naming the flash, and serves nothing.
fn refuses(hsm: &mut Hsm<TestBoard>) {
    let st = hsm.status();
    let why = st.error.clone().unwrap_or_else(|| panic!("accepted: {st:?}"));
    assert!(why.contains("flash"), "{why}");
    assert_eq!(
        hsm.exec(&Principal::Local, Request::ExportPublicKey { label: label("sdf:enc:0") }),
        Err(Status::DeviceError)
    );
    assert_eq!(hsm.exec(&app(1), Request::GetKeyInfo { label: label("k") }), Err(Status::DeviceError));
}

/// A stored key record's payload (without its tag), decoded, changed and written back with
/// the old tag (an attacker cannot compute a new one).
fn rewrite_record(s: &mut Store<RamFlash>, name: &[u8], f: impl FnOnce(&mut KeyRecord)) {
    let v = s.get(name).unwrap().unwrap();
    let (payload, tag) = v.split_at(v.len() - 16);
    let mut rec: KeyRecord = postcard::from_bytes(payload).unwrap();
    f(&mut rec);
    let mut out = postcard::to_allocvec(&rec).unwrap();
    out.extend_from_slice(tag);
    s.insert(name, &out).unwrap();
}

#[test]
fn stripped_password_is_detected() {
    let (hsm, t) = card();
    let mut hsm = edit(hsm, &t, |s| rewrite_record(s, b"k:k", |r| r.password = None));
    refuses(&mut hsm);
    let sign = Request::Sign { label: label("k"), mechanism: Mechanism::sm2_default(), message: b"m".to_vec() };
    assert_eq!(hsm.exec(&app(1), sign), Err(Status::DeviceError));
}

/// Replaying the authentic record from before the wrong guesses (failures = 0).
#[test]
fn reset_failure_counter_is_detected() {
    let (mut hsm, t) = card();
    let store = Store::open(hsm.into_flash().unwrap()).unwrap();
    let before = store.get(b"k:k").unwrap().unwrap();
    hsm = boot(store.into_flash(), &t, 5, false);
    for _ in 0..3 {
        let r = hsm.exec(
            &app(1),
            Request::AuthorizeKey { label: label("k"), password: gmhsm_proto::Password::new(b"wrong-guess").unwrap() },
        );
        assert_eq!(r, Err(Status::WrongPassword));
    }
    let mut hsm = edit(hsm, &t, |s| s.insert(b"k:k", &before).unwrap());
    refuses(&mut hsm);
}

/// The device encryption key's public key is served from its record without unwrapping:
/// a swapped SPKI would make clients seal to the attacker.
#[test]
fn swapped_device_public_key_is_not_served() {
    let (mut hsm, t) = card();
    let Ok(Response::KeyGenerated { spki_der: evil, .. }) = hsm.exec(&app(1), gen_req(label("evil"), KeyAlg::Sm2))
    else {
        panic!()
    };
    let mut hsm = edit(hsm, &t, |s| rewrite_record(s, b"k:sdf:enc:0", |r| r.spki_der = evil.clone()));
    refuses(&mut hsm);
}

#[test]
fn altered_application_record_is_detected() {
    let (mut hsm, t) = card();
    let reg = Request::RegisterApplication {
        cert_sha256: [7; 32],
        name: "a".try_into().unwrap(),
        domains: 1,
        caps: Capabilities::SIGN,
        quota: None,
    };
    hsm.exec(&Principal::Local, reg).unwrap();
    let mut hsm = edit(hsm, &t, |s| {
        let mut name = b"app:".to_vec();
        name.extend_from_slice(&[7; 32]);
        let mut v = s.get(&name).unwrap().unwrap();
        // The name is `a`: domains follow it (varint 1 -> 0x7f: every domain).
        v[2] = 0x7f;
        s.insert(&name, &v).unwrap();
    });
    refuses(&mut hsm);
}

/// Turning plaintext export on, off, then putting the old "on" blob back.
#[test]
fn replayed_export_policy_is_detected() {
    let (mut hsm, t) = card();
    hsm.exec(&Principal::Local, Request::KeyExportPolicy { set: Some(true) }).unwrap();
    let store = Store::open(hsm.into_flash().unwrap()).unwrap();
    let on = store.get(b"m:export-plain").unwrap().unwrap();
    hsm = boot(store.into_flash(), &t, 5, false);
    hsm.exec(&Principal::Local, Request::KeyExportPolicy { set: Some(false) }).unwrap();
    let mut hsm = edit(hsm, &t, |s| s.insert(b"m:export-plain", &on).unwrap());
    refuses(&mut hsm);
    assert_eq!(hsm.exec(&Principal::Local, Request::KeyExportPolicy { set: None }), Err(Status::DeviceError));
}

/// Deleting a key record (or bringing a deleted one back) is detected.
#[test]
fn deleted_and_revived_keys_are_detected() {
    let (hsm, t) = card();
    let mut hsm = edit(hsm, &t, |s| {
        s.remove(b"k:k").unwrap();
    });
    refuses(&mut hsm);

    let (mut hsm, t) = card();
    let store = Store::open(hsm.into_flash().unwrap()).unwrap();
    let old = store.get(b"k:k").unwrap().unwrap();
    hsm = boot(store.into_flash(), &t, 5, false);
    hsm.exec(&app(1), Request::DeleteKey { label: label("k") }).unwrap();
    let mut hsm = edit(hsm, &t, |s| s.insert(b"k:k", &old).unwrap());
    refuses(&mut hsm);
}

/// Save the whole image, make changes, put the old image back, reboot.
#[test]
fn whole_image_rollback_refuses_to_serve() {
    let (hsm, t) = card();
    let saved = hsm.into_flash().unwrap();
    let mut hsm = boot(RamFlash::from_image(saved.image().to_vec(), saved.geometry(), 1), &t, 5, false);
    hsm.exec(&app(1), Request::DeleteKey { label: label("k") }).unwrap();
    hsm.exec(&app(1), gen_req(label("new"), KeyAlg::Sm4)).unwrap();
    drop(hsm.into_flash());
    let mut hsm = boot(saved, &t, 6, false);
    refuses(&mut hsm);
    assert!(hsm.status().error.unwrap().contains("rolled back"));
    // Audited: the boot record carries the reason.
    let Ok(Response::Audit(recs)) = hsm.exec(&Principal::Local, Request::ReadAudit { from_seq: 0, max: 256 }) else {
        panic!()
    };
    let boot = recs.iter().rev().find(|r| matches!(r.event, AuditEvent::Boot { .. })).unwrap();
    assert!(matches!(&boot.event, AuditEvent::Boot { error: Some(e) } if e.contains("rolled back")), "{boot:?}");
}

/// A record rewritten and the chain after it recomputed with plain SM3 (what the old,
/// unkeyed chain accepted) is found at boot.
#[test]
fn audit_rechained_with_plain_sm3_is_detected() {
    let (hsm, t) = card();
    let hsm = edit(hsm, &t, |s| {
        let key = |seq: u64| [&b"a:"[..], &seq.to_be_bytes()].concat();
        let last = s.keys().filter(|k| k.starts_with(b"a:")).count() as u64;
        let mut prev: Option<[u8; 32]> = None;
        for seq in 5..=last {
            let v = s.get(&key(seq)).unwrap().unwrap();
            let (mut rec, _) = postcard::take_from_bytes::<AuditRecord>(&v).unwrap();
            if seq == 5 {
                rec.event = AuditEvent::KeyDeleted { label: label("k") };
            }
            if let Some(h) = prev {
                rec.prev_hash = h;
            }
            let bytes = postcard::to_allocvec(&rec).unwrap();
            prev = Some(gmhsm_firmware::audit::hash(&rec));
            s.insert(&key(seq), &bytes).unwrap();
        }
    });
    assert_eq!(hsm.status().audit.chain_break, Some(5));
}

/// A flash with power cuts, for the cut-at-every-write tests.
struct CutBoard;
impl Platform for CutBoard {
    type Noise = TestNoise;
    type Flash = CutFlash;
    type Tamper = TestTamper;
    type Clock = TestClock;
}

fn cut_boot(flash: CutFlash, t: &TestTamper, seed: u64) -> Hsm<CutBoard> {
    Hsm::boot(Devices { noise: TestNoise { x: seed, stuck: false }, flash, tamper: t.clone(), clock: TestClock })
}

/// Cut power at the n-th flash write of `op` for every n until it completes uncut; after
/// each cut the card must boot without error, in the old or the new state (`present` says
/// which), and keep working.
fn cut_everywhere(
    op: impl Fn(&mut Hsm<CutBoard>, usize) -> Result<Response, Status>,
    present: impl Fn(&mut Hsm<CutBoard>, usize) -> bool,
) {
    let t = tamper();
    let g = FlashGeometry { page_size: 4096, page_count: 64, word_size: 4 };
    let mut hsm = cut_boot(CutFlash::new(g, 1), &t, 1);
    hsm.initialize().unwrap();
    for i in 0..8 {
        hsm.exec(&app(1), gen_req(label(&format!("k{i}")), KeyAlg::Sm4)).unwrap();
    }
    let mut both = (false, false);
    for n in 0.. {
        let mut flash = hsm.into_flash().unwrap();
        flash.reboot();
        flash.cut_after(n);
        hsm = cut_boot(flash, &t, n + 10);
        let done = op(&mut hsm, n as usize);
        let mut flash = hsm.into_flash().unwrap();
        let cut = flash.was_cut();
        flash.reboot();
        hsm = cut_boot(flash, &t, n + 1000);
        let st = hsm.status();
        assert_eq!(st.error, None, "cut after {n} writes");
        assert_eq!(st.audit.chain_break, None, "cut after {n} writes");
        let now = present(&mut hsm, n as usize);
        if now {
            both.0 = true
        } else {
            both.1 = true
        }
        hsm.exec(&app(1), gen_req(label(&format!("after{n}")), KeyAlg::Sm4)).unwrap();
        if !cut {
            assert!(done.is_ok(), "{done:?}");
            break;
        }
    }
    assert!(both.0 && both.1, "cuts left the old state and the new");
}

#[test]
fn power_cut_at_every_write_of_a_key_generation() {
    cut_everywhere(
        |h, n| h.exec(&app(1), gen_req(label(&format!("g{n}")), KeyAlg::Sm2)),
        |h, n| h.exec(&app(1), Request::GetKeyInfo { label: label(&format!("g{n}")) }).is_ok(),
    );
}

#[test]
fn power_cut_at_every_write_of_a_key_deletion() {
    cut_everywhere(
        |h, n| {
            h.exec(&app(1), gen_req(label(&format!("d{n}")), KeyAlg::Sm4))?;
            h.exec(&app(1), Request::DeleteKey { label: label(&format!("d{n}")) })
        },
        |h, n| h.exec(&app(1), Request::GetKeyInfo { label: label(&format!("d{n}")) }).is_ok(),
    );
}

/// A checkpoint verifies with the audit key's public key over the hash of the record, and no
/// request can make the card sign a forged checkpoint message with that key.
#[test]
fn audit_checkpoint_is_signed_by_the_audit_key_only() {
    let (mut hsm, _t) = card();
    let Ok(Response::Audit(recs)) = hsm.exec(&Principal::Local, Request::ReadAudit { from_seq: 0, max: 256 }) else {
        panic!()
    };
    let last = recs.last().unwrap();
    let Ok(Response::AuditCheckpoint(cp)) = hsm.exec(&Principal::Local, Request::AuditCheckpoint { seq: last.seq })
    else {
        panic!()
    };
    assert_eq!(cp.record_hash, gmhsm_firmware::audit::hash(last));
    let Ok(Response::PublicKey { spki_der, .. }) =
        hsm.exec(&Principal::Local, Request::ExportPublicKey { label: label("audit:sign") })
    else {
        panic!()
    };
    use gmhsm_firmware::alg::sm2 as fsm2;
    use sm2::pkcs8::DecodePublicKey;
    let public = sm2::PublicKey::from_public_key_der(&spki_der).unwrap();
    let msg = gmhsm_proto::audit::checkpoint_message(cp.seq, &cp.record_hash);
    let sig = fsm2::signature_from_bytes(&cp.signature).unwrap();
    fsm2::verify(&public, SM2_DEFAULT_ID, &msg, &sig).unwrap();
    let mut other = msg;
    other[64] ^= 1;
    assert!(fsm2::verify(&public, SM2_DEFAULT_ID, &other, &sig).is_err());
    // Nobody can sign with it through a request, not even the local tools.
    let forge =
        Request::Sign { label: label("audit:sign"), mechanism: Mechanism::sm2_default(), message: other.to_vec() };
    assert!(hsm.exec(&Principal::Local, forge.clone()).is_err());
    assert!(hsm.exec(&app(1), forge).is_err());
    assert_eq!(hsm.exec(&app(1), Request::AuditCheckpoint { seq: last.seq }), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&Principal::Local, Request::AuditCheckpoint { seq: 10_000 }), Err(Status::InvalidArgument));
}

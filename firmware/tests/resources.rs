//! Issue 12, findings 1 and 5: no application can stop the card for everyone (quotas, the
//! store's reserve, an audit log that drops its oldest records instead of failing), and the
//! reserved label prefixes and password tries belong to whom they should.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_firmware::audit::verify_run;
use gmhsm_platform::FlashGeometry;
use gmhsm_proto::*;

const L: Principal = Principal::Local;

fn ready(seed: u64) -> Hsm<TestBoard> {
    let mut hsm = boot(fresh_flash(), &tamper(), seed, false);
    hsm.initialize().unwrap();
    hsm
}

/// A flash whose store holds about 30 KB of records.
fn tiny_flash() -> RamFlash {
    let g = FlashGeometry { page_size: 4096, page_count: 16, word_size: 4 };
    RamFlash::new(g, 1)
}

fn register(hsm: &mut Hsm<TestBoard>, n: u8, domains: u32, caps: Capabilities, quota: Option<AppQuota>) {
    let r =
        Request::RegisterApplication { cert_sha256: [n; 32], name: "app".try_into().unwrap(), domains, caps, quota };
    assert_eq!(hsm.exec(&L, r), Ok(Response::Done));
}

fn generate(hsm: &mut Hsm<TestBoard>, p: &Principal, name: &str, alg: KeyAlg) -> Result<Response, Status> {
    hsm.exec(p, gen_req(label(name), alg))
}

/// Keys `p` generates under `prefix` until the card refuses one; returns how many and why.
fn generate_until_refused(hsm: &mut Hsm<TestBoard>, p: &Principal, prefix: &str, alg: KeyAlg) -> (usize, Status) {
    for n in 0..100_000 {
        if let Err(s) = generate(hsm, p, &format!("{prefix}{n}"), alg) {
            return (n, s);
        }
    }
    panic!("{prefix}: never refused");
}

fn keys_of(hsm: &mut Hsm<TestBoard>, p: &Principal) -> Vec<String> {
    match hsm.exec(p, Request::ListKeys) {
        Ok(Response::Keys(k)) => k.into_iter().map(|(l, _)| l.to_string()).filter(|l| !l.starts_with("sdf:")).collect(),
        r => panic!("{r:?}"),
    }
}

fn whole_audit(hsm: &mut Hsm<TestBoard>) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    loop {
        let from = out.last().map_or(0, |r| r.seq + 1);
        match hsm.exec(&L, Request::ReadAudit { from_seq: from, max: 256 }) {
            Ok(Response::Audit(v)) if v.is_empty() => return out,
            Ok(Response::Audit(v)) => out.extend(v),
            r => panic!("{r:?}"),
        }
    }
}

/// Guards finding 1: one application generating keys in a loop had no limit. It is now
/// refused with `QuotaExceeded` at its registered quota, nothing stored, while a second
/// application and the local tools go on; a deletion gives the room back; the count survives
/// a reboot (rebuilt from the store).
#[test]
fn an_application_at_its_key_quota_is_refused_while_others_and_local_tools_work() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 41, false);
    hsm.initialize().unwrap();
    register(&mut hsm, 1, 1, Capabilities::ALL, Some(AppQuota { max_keys: 5, max_bytes: 1 << 20 }));
    let (made, why) = generate_until_refused(&mut hsm, &app(1), "k", KeyAlg::Sm4);
    assert_eq!((made, why), (5, Status::QuotaExceeded));
    assert_eq!(keys_of(&mut hsm, &app(1)).len(), 5, "the refused key was not stored");
    assert_eq!(hsm.usage(&app(1)).keys, 5);
    // Another application (unregistered: the default quota) and the local tools still work.
    assert!(generate(&mut hsm, &app(2), "other", KeyAlg::Sm2).is_ok());
    assert!(generate(&mut hsm, &L, "local", KeyAlg::Sm2).is_ok());
    assert_eq!(hsm.status().error, None);
    // A deletion gives the room back.
    assert_eq!(hsm.exec(&app(1), Request::DeleteKey { label: label("k0") }), Ok(Response::Deleted));
    assert!(generate(&mut hsm, &app(1), "again", KeyAlg::Sm4).is_ok());
    assert_eq!(generate(&mut hsm, &app(1), "over", KeyAlg::Sm4), Err(Status::QuotaExceeded));
    // After a reboot the count is rebuilt from the store.
    let mut hsm = boot(hsm.into_flash().unwrap(), &t, 42, false);
    assert_eq!(hsm.usage(&app(1)).keys, 5);
    assert_eq!(generate(&mut hsm, &app(1), "over", KeyAlg::Sm4), Err(Status::QuotaExceeded));
    assert!(generate(&mut hsm, &app(2), "other-2", KeyAlg::Sm4).is_ok());
}

/// The byte quota counts what the application's records take in the store; applications
/// registered without a quota get `AppQuota::DEFAULT`; the local principal is not counted.
#[test]
fn the_byte_quota_counts_store_bytes_and_the_default_applies() {
    let mut hsm = ready(43);
    register(&mut hsm, 1, 1, Capabilities::ALL, Some(AppQuota { max_keys: 1000, max_bytes: 1000 }));
    let (made, why) = generate_until_refused(&mut hsm, &app(1), "k", KeyAlg::Sm2);
    assert_eq!(why, Status::QuotaExceeded);
    let used = hsm.usage(&app(1));
    assert_eq!(used.keys as usize, made);
    assert!(made >= 1 && used.bytes <= 1000 && used.bytes * (made as u64 + 1) > 1000 * made as u64, "{used:?}");
    // Registered without a quota: the default number of keys.
    register(&mut hsm, 2, 1, Capabilities::ALL, None);
    let (made, why) = generate_until_refused(&mut hsm, &app(2), "d", KeyAlg::Sm4);
    assert_eq!((made as u32, why), (AppQuota::DEFAULT.max_keys, Status::QuotaExceeded));
    // The local principal's keys are not counted.
    assert!(generate(&mut hsm, &L, "local", KeyAlg::Sm4).is_ok());
    assert_eq!(hsm.usage(&L), Default::default());
}

/// Guards finding 1: applications filling the store put the card in its error state ("audit
/// log write failed") and then every application failed. Now they are refused at the store's
/// reserve; the card stays operational; audit keeps appending (oldest dropped, a `Dropped`
/// record, the chain verifies); local administration and audit work, also after a reboot.
#[test]
fn filling_a_tiny_store_never_puts_the_card_in_its_error_state() {
    let t = tamper();
    let mut hsm = boot(tiny_flash(), &t, 44, false);
    hsm.initialize().unwrap();
    let (n1, why1) = generate_until_refused(&mut hsm, &app(1), "a", KeyAlg::Sm2);
    let (_, why2) = generate_until_refused(&mut hsm, &app(2), "b", KeyAlg::Sm4);
    assert!(n1 > 0);
    assert_eq!((why1, why2), (Status::QuotaExceeded, Status::QuotaExceeded));
    // Audit traffic from applications: refused uses of a key they cannot see, each audited.
    for _ in 0..400 {
        let sign = Request::Sign { label: label("a0"), mechanism: Mechanism::sm2_default(), message: vec![1] };
        assert_eq!(hsm.exec(&app(2), sign), Err(Status::UnknownKey));
    }
    assert_eq!(hsm.status().error, None);
    // The owner still uses its keys; local administration still writes.
    let sign = Request::Sign { label: label("a0"), mechanism: Mechanism::sm2_default(), message: vec![1] };
    assert!(matches!(hsm.exec(&app(1), sign.clone()), Ok(Response::Signature(_))));
    register(&mut hsm, 3, 1, Capabilities::ALL, None);
    assert!(generate(&mut hsm, &L, "local", KeyAlg::Sm4).is_ok());
    let audit = whole_audit(&mut hsm);
    assert!(audit[0].seq > 1, "the oldest records were dropped");
    assert!(audit.iter().any(|r| matches!(r.event, AuditEvent::Dropped { .. })), "and that is audited");
    assert!(audit.iter().any(|r| matches!(&r.event, AuditEvent::KeyGenerated { label, .. } if label == "local")));
    assert_eq!(verify_run(&audit), Ok(()));
    assert_eq!(hsm.status().audit.chain_break, None);

    // After a reboot: operational, the boot audited, administration and applications'
    // other work go on, new keys are still refused at the reserve.
    let mut hsm = boot(hsm.into_flash().unwrap(), &t, 45, false);
    let st = hsm.status();
    assert_eq!((st.error, st.audit.chain_break), (None, None));
    assert_eq!(generate(&mut hsm, &app(1), "after", KeyAlg::Sm2), Err(Status::QuotaExceeded));
    assert!(matches!(hsm.exec(&app(1), sign), Ok(Response::Signature(_))));
    register(&mut hsm, 4, 1, Capabilities::ALL, None);
    assert_eq!(hsm.exec(&app(1), Request::DeleteKey { label: label("a0") }), Ok(Response::Deleted));
    let audit = whole_audit(&mut hsm);
    assert!(audit.iter().any(|r| matches!(r.event, AuditEvent::Boot { error: None })));
    assert!(audit.iter().any(|r| matches!(&r.event, AuditEvent::KeyDeleted { label } if label == "a0")));
    assert_eq!(verify_run(&audit), Ok(()));
    assert_eq!(hsm.status().error, None);
}

/// Guards finding 5: an application could create (or import) keys under `sdf:` and `tls:`,
/// hijacking an SDF index other applications use or the daemon's TLS key. They are the
/// card's and the quorum's: refused to applications (audited), the local tools keep them.
#[test]
fn applications_cannot_create_import_or_delete_reserved_labels() {
    let mut hsm = ready(46);
    register(&mut hsm, 2, u32::MAX, Capabilities::ALL, None);
    for name in ["sdf:sign:1", "sdf:enc:7", "sdf:kek:1", "tls:sm2", "tls:p256"] {
        let r = hsm.exec(
            &app(2),
            Request::GenerateKey {
                label: label(name),
                alg: KeyAlg::Sm2,
                caps: Capabilities::DEFAULT,
                domains: u32::MAX,
            },
        );
        assert_eq!(r, Err(Status::AccessDenied), "{name}");
    }
    let import = Request::ImportEnvelopedKeyPair {
        label: label("sdf:enc:2"),
        unwrap_with: label("sdf:enc:0"),
        blob: vec![0; 200],
        caps: Capabilities::DEFAULT,
        domains: u32::MAX,
    };
    assert_eq!(hsm.exec(&app(2), import), Err(Status::AccessDenied));
    assert_eq!(hsm.exec(&app(2), Request::DeleteKey { label: label("sdf:enc:0") }), Err(Status::AccessDenied));
    assert!(keys_of(&mut hsm, &app(2)).is_empty(), "nothing was created");
    let denials = whole_audit(&mut hsm)
        .iter()
        .filter(|r| r.principal == Some(app(2)) && matches!(r.event, AuditEvent::Denied { .. }))
        .count();
    assert!(denials >= 7, "{denials} denials audited");
    // Labels that merely contain the prefixes elsewhere are the application's to use.
    assert!(generate(&mut hsm, &app(2), "my-sdf:key", KeyAlg::Sm4).is_ok());
    // The appliance keeps its own: the daemon's TLS key and SDF indices (demo device).
    assert!(generate(&mut hsm, &L, "tls:sm2", KeyAlg::Sm2).is_ok());
    assert!(generate(&mut hsm, &L, "sdf:sign:1", KeyAlg::Sm2).is_ok());
    // Applications of its domains still use an index.
    let sign = Request::Sign { label: label("sdf:sign:0"), mechanism: Mechanism::sm2_default(), message: vec![1] };
    assert!(matches!(hsm.exec(&app(2), sign), Ok(Response::Signature(_))));
}

/// Guards finding 5: any principal that could see a password-protected key could spend its
/// password tries and lock it for its owner. Only a principal that may use the protected
/// (private) half may try; others are refused without touching the counter.
#[test]
fn a_principal_that_cannot_use_the_private_half_cannot_spend_password_tries() {
    let mut hsm = ready(47);
    let owner = app(1);
    // Domain 1's viewer may only verify; its member may sign.
    register(&mut hsm, 2, 1, Capabilities::VERIFY, None);
    register(&mut hsm, 3, 1, Capabilities::SIGN | Capabilities::VERIFY, None);
    let r = hsm.exec(
        &owner,
        Request::GenerateKey { label: label("idx"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 1 },
    );
    assert!(r.is_ok());
    let pw = |s: &[u8]| gmhsm_proto::Password::new(s).unwrap();
    let set = Request::SetKeyPassword { label: label("idx"), password: pw(b"correct horse") };
    assert_eq!(hsm.exec(&owner, set), Ok(Response::Done));
    let guess = |p: &[u8]| Request::AuthorizeKey { label: label("idx"), password: pw(p) };
    for _ in 0..10 {
        assert_eq!(hsm.exec(&app(2), guess(b"wrong pass")), Err(Status::AccessDenied));
    }
    // The owner's tries are untouched: four wrong, then the right one still works.
    for _ in 0..4 {
        assert_eq!(hsm.execute(&owner, 7, guess(b"wrong pass")), Err(Status::WrongPassword));
    }
    assert_eq!(hsm.execute(&owner, 7, guess(b"correct horse")), Ok(Response::Done));
    // A member that may sign with the key may try its password.
    assert_eq!(hsm.execute(&app(3), 8, guess(b"wrong pass")), Err(Status::WrongPassword));
    assert_eq!(hsm.execute(&app(3), 8, guess(b"correct horse")), Ok(Response::Done));
    let sign = Request::Sign { label: label("idx"), mechanism: Mechanism::sm2_default(), message: vec![1] };
    assert!(matches!(hsm.execute(&app(3), 8, sign), Ok(Response::Signature(_))));
}

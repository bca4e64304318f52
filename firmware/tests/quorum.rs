//! Quorum administration in the card, end to end in-process: the init ceremony (n = 5,
//! k = 3), quorum logins, authority expiry and logout, out-of-order steps, card-set
//! replacement, PIN-unblock authorization and zeroize. The admin cards are simulated with the
//! sm2 crate (key pair, INTERNAL AUTHENTICATE signature, share slot); the real virtual cards
//! through pcscd are exercised in sim/tests/ceremony_pcsc.rs.

mod common;
mod quorum_rig;

use common::*;
use quorum_rig::*;

use gmhsm_firmware::Hsm;
use gmhsm_firmware::alg::sm2 as fsm2;
use gmhsm_platform::*;
use gmhsm_proto::admin::{CardRole, QuorumPolicy};
use gmhsm_proto::admin_card as spec;
use gmhsm_proto::{AuditEvent, Capabilities, KeyAlg, Request, Response, Status};

#[test]
fn init_five_cards_then_two_are_refused_and_three_succeed() {
    let mut r = rig();
    assert!(!r.hsm.status().initialized);
    let cards = r.init(5, 3);
    assert!(r.hsm.status().initialized, "the commit leaves the factory state");
    let st = r.status();
    assert_eq!((st.ceremony_initialized, st.n, st.k, st.epoch, st.authority), (true, 5, 3, 1, false));

    // Without a quorum every administrative request is refused (and audited).
    assert_eq!(r.register(1), Err(Status::AccessDenied));
    assert_eq!(
        r.x(Request::GenerateKey {
            label: label("sdf:sign:1"),
            alg: KeyAlg::Sm2,
            caps: Capabilities::DEFAULT,
            domains: 0
        }),
        Err(Status::AccessDenied)
    );
    // Non-SDF keys of the appliance (e.g. TLS) are not administration.
    r.x(Request::GenerateKey { label: label("tls:test"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 })
        .unwrap();

    assert_eq!(r.login(&cards[0]).unwrap().admins, 1);
    let st = r.login(&cards[3]).unwrap();
    assert_eq!((st.admins, st.authority), (2, false));
    assert_eq!(r.register(1), Err(Status::AccessDenied), "2 of 3 is not a quorum");
    // The same card twice counts once.
    assert_eq!(r.login(&cards[3]).unwrap().admins, 2);
    let st = r.login(&cards[4]).unwrap();
    assert_eq!((st.admins, st.authority, st.expires_in_ms), (3, true, TIMEOUT));
    r.register(1).unwrap();
    r.x(Request::GenerateKey { label: label("sdf:sign:1"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 })
        .unwrap();
    r.x(Request::RevokeApplication { cert_sha256: [1; 32] }).unwrap();

    // Another session (another console) has no authority.
    assert_eq!(
        r.hsm.execute(&L, S + 1, Request::RevokeApplication { cert_sha256: [1; 32] }),
        Err(Status::AccessDenied)
    );
    // Applications can never administer.
    assert_eq!(r.hsm.execute(&app(9), S, Request::AdminChallenge), Err(Status::AccessDenied));

    // Operator and auditor cards log in alone, without authority.
    let st = r.hsm.execute(&L, S + 2, Request::AdminChallenge).and_then(|resp| {
        let Response::AdminNonce(n) = resp else { panic!() };
        let sig = cards[5].sign(&n, &mut r.rng);
        r.hsm.execute(&L, S + 2, Request::AdminLogin { serial: cards[5].serial.clone(), signature: sig, share: vec![] })
    });
    let Ok(Response::AdminState(st)) = st else { panic!("{st:?}") };
    assert_eq!((st.role, st.authority), (Some(CardRole::Operator), false));

    let audit = r.audit();
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::AuthorityGranted { cards: 3 })));
    assert!(audit.iter().any(|e| matches!(e, AuditEvent::Denied { status: Status::AccessDenied, .. })));
    assert_eq!(
        audit
            .iter()
            .filter(|e| matches!(e, AuditEvent::Ceremony { step: gmhsm_proto::admin::CeremonyStep::CardVerified, .. }))
            .count(),
        7
    );
}

#[test]
fn bad_logins_are_refused() {
    let mut r = rig();
    let cards = r.init(3, 2);
    // No nonce, nonce reuse, wrong signature, someone else's share, unknown card.
    let sig = cards[0].sign(&[0u8; 32], &mut r.rng);
    assert_eq!(
        r.x(Request::AdminLogin { serial: cards[0].serial.clone(), signature: sig, share: cards[0].share.clone() }),
        Err(Status::InvalidArgument)
    );
    let n = r.nonce();
    let sig = cards[0].sign(&n, &mut r.rng);
    let req = Request::AdminLogin { serial: cards[0].serial.clone(), signature: sig, share: cards[0].share.clone() };
    r.x(req.clone()).unwrap();
    assert_eq!(r.x(req), Err(Status::InvalidArgument), "a nonce is single use");
    let n = r.nonce();
    let sig = cards[1].sign(&[1u8; 32], &mut r.rng);
    let _ = n;
    assert_eq!(
        r.x(Request::AdminLogin { serial: cards[1].serial.clone(), signature: sig, share: cards[1].share.clone() }),
        Err(Status::SignatureInvalid)
    );
    let n = r.nonce();
    let sig = cards[1].sign(&n, &mut r.rng);
    assert_eq!(
        r.x(Request::AdminLogin { serial: cards[1].serial.clone(), signature: sig, share: cards[2].share.clone() }),
        Err(Status::DecryptFailed),
        "share bound to its card"
    );
    let mut forged = cards[1].share.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let n = r.nonce();
    let sig = cards[1].sign(&n, &mut r.rng);
    assert_eq!(
        r.x(Request::AdminLogin { serial: cards[1].serial.clone(), signature: sig, share: forged }),
        Err(Status::DecryptFailed)
    );
    let stranger = Card::new("NOBODY", CardRole::Administrator, &mut r.rng);
    assert_eq!(r.login(&stranger), Err(Status::InvalidArgument));
    assert!(!r.status().authority);
    assert!(r.login(&cards[1]).unwrap().authority);
    let audit = r.audit();
    assert!(audit.iter().filter(|e| matches!(e, AuditEvent::CardLogin { accepted: false, .. })).count() >= 4);
}

#[test]
fn authority_expires_with_the_clock_and_ends_below_quorum() {
    let mut r = rig();
    let cards = r.init(5, 3);
    for c in &cards[..4] {
        r.login(c).unwrap();
    }
    r.register(1).unwrap();
    // 4 cards (one more than k): any one of them leaving ends the authority and logs every
    // card out — the card shows none left (it used to keep 3 = k and the authority, while the
    // panel said "logged out").
    let st = match r.x(Request::AdminLogout { serial: Some(cards[0].serial.clone()) }).unwrap() {
        Response::AdminState(s) => s,
        x => panic!("{x:?}"),
    };
    assert_eq!((st.admins, st.authority), (0, false));
    assert_eq!(r.register(3), Err(Status::AccessDenied));
    // A fresh quorum, then the clock runs out.
    for c in &cards[..3] {
        r.login(c).unwrap();
    }
    r.register(3).unwrap();
    r.clock.advance(TIMEOUT - 1);
    r.register(4).unwrap();
    r.clock.advance(1);
    assert_eq!(r.register(5), Err(Status::AccessDenied));
    assert!(!r.status().authority);
    // Closing the session ends authority too.
    for c in &cards[2..5] {
        r.login(c).unwrap();
    }
    r.register(5).unwrap();
    r.x(Request::CloseSession).unwrap();
    assert_eq!(r.register(6), Err(Status::AccessDenied));
    let audit = r.audit();
    for reason in [
        gmhsm_proto::admin::AuthorityEnd::BelowQuorum,
        gmhsm_proto::admin::AuthorityEnd::Expired,
        gmhsm_proto::admin::AuthorityEnd::SessionClosed,
    ] {
        assert!(audit.iter().any(|e| *e == AuditEvent::AuthorityEnded { reason }), "{reason:?} audited");
    }
}

#[test]
fn ceremony_steps_out_of_order_are_refused() {
    let mut r = rig();
    let mut a = Card::new("ADM-1", CardRole::Administrator, &mut r.rng);
    // Nothing before InitBegin.
    assert_eq!(r.enroll(&mut a), Err(Status::InvalidArgument));
    assert_eq!(r.x(Request::CeremonyCommit), Err(Status::InvalidArgument));
    assert_eq!(r.login(&a), Err(Status::InvalidArgument));
    // Policy rules: k = n refused unless explicitly allowed, k >= 2.
    assert_eq!(r.x(Request::InitBegin { policy: QuorumPolicy::new(3, 3) }), Err(Status::InvalidArgument));
    assert_eq!(r.x(Request::InitBegin { policy: QuorumPolicy::new(3, 1) }), Err(Status::InvalidArgument));
    let mut p = QuorumPolicy::new(3, 3);
    p.allow_k_equals_n = true;
    r.x(Request::InitBegin { policy: p }).unwrap();
    r.x(Request::CeremonyAbort).unwrap();

    r.x(Request::InitBegin { policy: QuorumPolicy::new(3, 2) }).unwrap();
    assert_eq!(
        r.x(Request::InitBegin { policy: QuorumPolicy::new(3, 2) }),
        Err(Status::InvalidArgument),
        "one ceremony at a time"
    );
    // Another session cannot drive or cancel it.
    assert_eq!(r.hsm.execute(&L, S + 1, Request::CeremonyAbort), Err(Status::AccessDenied));
    r.enroll(&mut a).unwrap();
    assert_eq!(r.enroll(&mut a), Err(Status::InvalidArgument), "duplicate card");
    assert_eq!(r.verify(&a), Err(Status::InvalidArgument), "verify before the share");
    r.give_share(&mut a).unwrap();
    assert_eq!(r.give_share(&mut a), Err(Status::InvalidArgument), "share twice");
    assert_eq!(r.x(Request::CeremonyCommit), Err(Status::InvalidArgument), "commit with cards missing");
    let mut wrong = Card::new("ADM-1b", CardRole::Administrator, &mut r.rng);
    wrong.sk = fsm2::generate(&mut r.rng).unwrap();
    r.verify(&a).unwrap();
    // Still factory: no DMK, nothing usable.
    assert!(!r.hsm.status().initialized);
    assert_eq!(r.x(gen_req(label("x"), KeyAlg::Sm4)), Err(Status::NotInitialized));
    let mut b = Card::new("ADM-2", CardRole::Administrator, &mut r.rng);
    let mut c = Card::new("ADM-3", CardRole::Administrator, &mut r.rng);
    for card in [&mut b, &mut c] {
        r.enroll(card).unwrap();
        r.give_share(card).unwrap();
    }
    r.verify(&b).unwrap();
    let mut d = Card::new("ADM-4", CardRole::Administrator, &mut r.rng);
    assert_eq!(r.enroll(&mut d), Err(Status::InvalidArgument), "n cards already");
    // A card that signs with another key is not verified; the commit waits for it.
    let mut impostor = Card::new("ADM-3", CardRole::Administrator, &mut r.rng);
    impostor.share = c.share.clone();
    assert_eq!(r.verify(&impostor), Err(Status::SignatureInvalid));
    assert_eq!(r.x(Request::CeremonyCommit), Err(Status::InvalidArgument));
    r.verify(&c).unwrap();
    r.x(Request::CeremonyCommit).unwrap();
    assert!(r.hsm.status().initialized);
    assert_eq!(
        r.x(Request::InitBegin { policy: QuorumPolicy::new(3, 2) }),
        Err(Status::InvalidArgument),
        "init only from factory"
    );
    let refused = r
        .audit()
        .iter()
        .filter(|e| matches!(e, AuditEvent::Ceremony { step: gmhsm_proto::admin::CeremonyStep::Refused, .. }))
        .count();
    assert!(refused >= 8, "{refused} refusals audited");
}

#[test]
fn replaced_card_set_works_and_the_old_one_does_not() {
    let mut r = rig();
    let old = r.init(5, 3);
    for c in &old[..3] {
        r.login(c).unwrap();
    }
    r.x(Request::GenerateKey { label: label("sdf:sign:1"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 })
        .unwrap();
    r.x(Request::ReplaceBegin { n: 4, k: 2 }).unwrap();
    let mut new: Vec<Card> =
        (1..=4).map(|i| Card::new(&format!("NEW-{i}"), CardRole::Administrator, &mut r.rng)).collect();
    // An old serial cannot be enrolled again... only new cards.
    let mut again = Card::new("OPR-1", CardRole::Operator, &mut r.rng);
    assert_eq!(r.enroll(&mut again), Err(Status::InvalidArgument), "kept operator serial clashes");
    r.enrol_all(&mut new);
    // The old set's authority ended with the commit.
    assert!(!r.status().authority);
    assert_eq!(r.status().epoch, 2);
    for c in &old[..5] {
        assert!(r.login(c).is_err(), "old card {:?} must not log in", c.serial);
    }
    assert!(!r.status().authority);
    r.login(&new[2]).unwrap();
    assert!(r.login(&new[0]).unwrap().authority, "2 of the new 4");
    r.register(7).unwrap();
    // Stored keys did not change: the SDF key made before still signs.
    r.x(Request::Sign {
        label: label("sdf:sign:1"),
        mechanism: gmhsm_proto::Mechanism::sm2_default(),
        message: b"m".to_vec(),
    })
    .unwrap();
    // The operator card was kept.
    let n = r.nonce();
    let sig = old[5].sign(&n, &mut r.rng);
    r.x(Request::AdminLogin { serial: old[5].serial.clone(), signature: sig, share: vec![] }).unwrap();
}

#[test]
fn unblock_needs_the_quorum_and_the_card_accepts_it() {
    let mut r = rig();
    let cards = r.init(3, 2);
    let ch = r.challenge();
    let req = Request::AuthorizeUnblock {
        serial: cards[0].serial.clone(),
        card_challenge: ch,
        new_pin_block: gmhsm_proto::PinBlock::new(*b"123456\xFF\xFF"),
    };
    assert_eq!(r.x(req.clone()), Err(Status::AccessDenied));
    r.login(&cards[1]).unwrap();
    r.login(&cards[2]).unwrap();
    let Response::DomainAuthorization(sig) = r.x(req).unwrap() else { panic!() };
    assert!(cards[0].accepts(spec::purpose::RESET_RETRY_COUNTER, &ch, b"123456\xFF\xFF", &sig));
    assert!(!cards[0].accepts(spec::purpose::RESET_RETRY_COUNTER, &ch, b"654321\xFF\xFF", &sig));
    // Policy change: n and k stay; thresholds may rise to n.
    let mut p = QuorumPolicy::new(3, 2);
    p.thresholds.zeroize = 3;
    r.x(Request::SetPolicy { policy: p }).unwrap();
    assert_eq!(r.x(Request::Zeroize), Err(Status::AccessDenied), "zeroize now needs 3 cards");
    r.login(&cards[0]).unwrap();
    r.x(Request::Zeroize).unwrap();
}

#[test]
fn zeroize_leaves_nothing_readable() {
    let mut r = rig();
    let cards = r.init(3, 2);
    r.login(&cards[0]).unwrap();
    r.login(&cards[1]).unwrap();
    r.x(Request::GenerateKey { label: label("sdf:enc:1"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 })
        .unwrap();
    r.register(1).unwrap();
    assert!(r.hsm.status().keys >= 3);
    assert_ne!(r.tamper.ram(), [0u8; 64]);
    r.x(Request::Zeroize).unwrap();
    assert_eq!(r.tamper.ram(), [0u8; 64], "DMK wiped");
    let st = r.hsm.status();
    assert_eq!((st.initialized, st.keys), (false, 0));
    assert_eq!(r.x(Request::ListKeys), Err(Status::NotInitialized));
    assert_eq!(
        r.x(Request::Sign {
            label: label("sdf:sign:0"),
            mechanism: gmhsm_proto::Mechanism::sm2_default(),
            message: vec![1]
        }),
        Err(Status::NotInitialized)
    );
    // The old cards are nobody now; the audit log survives and names the zeroize.
    assert!(r.login(&cards[0]).is_err());
    assert!(
        r.audit().iter().any(|e| matches!(e, AuditEvent::Admin { action: gmhsm_proto::admin::AdminAction::Zeroized }))
    );
    // After a reboot the card is factory-fresh and a new init ceremony can run.
    let flash = {
        let Rig { hsm, .. } = r;
        hsm.into_flash().unwrap()
    };
    let clock = QClock::default();
    let tamper = tamper();
    let mut hsm = Hsm::<QBoard>::boot(Devices { noise: TestNoise { x: 5, stuck: false }, flash, tamper, clock });
    assert!(!hsm.status().initialized);
    assert_eq!(hsm.execute(&L, 1, Request::ListKeys), Err(Status::NotInitialized));
}

#[test]
fn demo_devices_keep_local_administration() {
    let mut r = rig();
    r.hsm.initialize().unwrap();
    r.register(1).unwrap();
    r.x(Request::GenerateKey { label: label("sdf:sign:1"), alg: KeyAlg::Sm2, caps: Capabilities::DEFAULT, domains: 0 })
        .unwrap();
    r.x(Request::RevokeApplication { cert_sha256: [1; 32] }).unwrap();
    assert!(!r.status().ceremony_initialized);
    // So is stopping and starting the service.
    r.x(Request::ServiceStop).unwrap();
    assert_eq!(r.hsm.execute(&app(3), S, Request::ListKeys), Err(Status::ServiceStopped));
    r.x(Request::ServiceStart).unwrap();
    r.hsm.execute(&app(3), S, Request::ListKeys).unwrap();
    assert_eq!(
        r.hsm.execute(
            &app(3),
            S,
            Request::RegisterApplication {
                cert_sha256: [1; 32],
                name: "a".try_into().unwrap(),
                domains: 1,
                caps: Capabilities::ALL,
                quota: None,
            }
        ),
        Err(Status::AccessDenied)
    );
}

/// Audit events after `seq`.
fn events_after(r: &mut Rig, seq: u64) -> Vec<AuditEvent> {
    match r.x(Request::ReadAudit { from_seq: seq + 1, max: 256 }).unwrap() {
        Response::Audit(v) => v.into_iter().map(|rec| rec.event).collect(),
        x => panic!("{x:?}"),
    }
}

#[test]
fn service_stop_needs_the_quorum_refuses_applications_and_survives_a_reboot() {
    use gmhsm_proto::admin::AdminAction;
    let mut r = rig();
    let cards = r.init(3, 2);
    let a = app(1);
    let sign = || Request::Sign {
        label: label("app-key"),
        mechanism: gmhsm_proto::Mechanism::sm2_default(),
        message: b"pay 100".to_vec(),
    };

    // Without the quorum's authority nobody stops the service.
    assert_eq!(r.x(Request::ServiceStop), Err(Status::AccessDenied));
    r.login(&cards[0]).unwrap();
    r.login(&cards[1]).unwrap();
    r.register(1).unwrap();
    r.hsm.execute(&a, 100, gen_req(label("app-key"), KeyAlg::Sm2)).unwrap();
    r.hsm.execute(&a, 100, sign()).unwrap();
    assert_eq!(r.hsm.execute(&a, 100, Request::ServiceStop), Err(Status::AccessDenied), "applications never");
    assert_eq!(r.hsm.execute(&L, S + 1, Request::ServiceStop), Err(Status::AccessDenied), "another session");
    assert!(!r.hsm.status().service_stopped);

    // Stopped: applications get ServiceStopped for everything but Ping and GetStatus,
    // without an audit record each; local tools go on.
    let seq = r.hsm.status().audit.last_seq;
    r.x(Request::ServiceStop).unwrap();
    assert!(r.hsm.status().service_stopped);
    for _ in 0..5 {
        assert_eq!(r.hsm.execute(&a, 100, sign()), Err(Status::ServiceStopped));
    }
    assert_eq!(r.hsm.execute(&a, 100, Request::ListKeys), Err(Status::ServiceStopped));
    assert_eq!(r.hsm.execute(&a, 100, Request::Ping), Ok(Response::Pong));
    let st = r.hsm.execute(&a, 100, Request::GetStatus);
    assert!(matches!(&st, Ok(Response::Status(s)) if s.service_stopped), "{st:?}");
    r.x(Request::ListKeys).unwrap();
    let events = events_after(&mut r, seq);
    assert_eq!(events, [AuditEvent::Admin { action: AdminAction::ServiceStopped }], "only the stop is audited");

    // Sessions and load: three sessions open (two consoles' and the application's), every
    // request counted; CloseSession ends one.
    let st = r.hsm.status();
    assert_eq!(st.sessions, 3);
    let requests = st.requests;
    r.hsm.execute(&a, 100, Request::Ping).unwrap();
    r.hsm.execute(&a, 100, Request::CloseSession).unwrap();
    let st = r.hsm.status();
    assert_eq!((st.sessions, st.requests), (2, requests + 2));

    // The stop survives a reboot; the authority does not, so starting needs a new quorum.
    let mut r = r.reboot(false);
    let st = r.hsm.status();
    assert!(st.service_stopped && st.error.is_none(), "{st:?}");
    assert_eq!((st.sessions, st.requests), (0, 0), "counted since boot");
    assert_eq!(r.hsm.execute(&a, 200, sign()), Err(Status::ServiceStopped));
    assert_eq!(r.x(Request::ServiceStart), Err(Status::AccessDenied));
    r.login(&cards[1]).unwrap();
    r.login(&cards[2]).unwrap();
    r.x(Request::ServiceStart).unwrap();
    assert!(!r.hsm.status().service_stopped);
    r.hsm.execute(&a, 200, sign()).unwrap();
    let audit = r.audit();
    assert!(audit.contains(&AuditEvent::Admin { action: AdminAction::ServiceStarted }));
    assert!(!audit.iter().any(|e| matches!(e, AuditEvent::Denied { status: Status::ServiceStopped, .. })));
}

/// Guards issue 12 finding 1: applications filling the store of a ceremony-initialized card
/// put it in its error state, where even the quorum's `Zeroize` was refused. On a small flash
/// filled by applications up to the reserve they may not use, the card stays operational, and
/// the quorum logs in, registers an application and zeroizes, before and after a reboot.
#[test]
fn a_store_full_of_application_keys_still_lets_the_quorum_administer_and_zeroize() {
    use gmhsm_proto::admin::AdminAction;
    let g = FlashGeometry { page_size: 4096, page_count: 16, word_size: 4 };
    let mut r = rig_on(RamFlash::new(g, 1));
    let cards = r.init(3, 2);
    for a in 1..=3u8 {
        let refused = (0..10_000).find_map(|i| {
            let req = Request::GenerateKey {
                label: label(&format!("k{a}-{i}")),
                alg: KeyAlg::Sm2,
                caps: Capabilities::DEFAULT,
                domains: 0,
            };
            r.hsm.execute(&app(a), 100 + u64::from(a), req).err()
        });
        assert_eq!(refused, Some(Status::QuotaExceeded), "application {a}");
    }
    assert_eq!(r.hsm.status().error, None);
    r.login(&cards[0]).unwrap();
    r.login(&cards[1]).unwrap();
    r.register(4).unwrap();
    assert_eq!(r.hsm.status().error, None);

    let Rig { hsm, clock, tamper, rng, flash_fails } = r;
    let flash = hsm.into_flash().unwrap();
    let hsm = Hsm::<QBoard>::boot(Devices {
        noise: TestNoise { x: 5, stuck: false },
        flash,
        tamper: tamper.clone(),
        clock: clock.clone(),
    });
    let mut r = Rig { hsm, clock, tamper, rng, flash_fails };
    assert_eq!(r.hsm.status().error, None);
    r.login(&cards[1]).unwrap();
    r.login(&cards[2]).unwrap();
    r.register(5).unwrap();
    r.x(Request::Zeroize).unwrap();
    assert!(!r.hsm.status().initialized);
    assert!(r.audit().contains(&AuditEvent::Admin { action: AdminAction::Zeroized }));
}

impl Rig {
    /// Power down, let `edit` change the flash through the store (as a flash writer could),
    /// and boot again on the same tamper RAM.
    fn tamper_with_flash(self, edit: impl FnOnce(&mut gmhsm_firmware::store::Store<RamFlash>)) -> Rig {
        let Rig { hsm, clock, tamper, rng, flash_fails } = self;
        let mut store = gmhsm_firmware::store::Store::open(hsm.into_flash().unwrap()).unwrap();
        edit(&mut store);
        let flash = store.into_flash();
        let hsm = Hsm::boot(Devices {
            noise: TestNoise { x: 6, stuck: false },
            flash,
            tamper: tamper.clone(),
            clock: clock.clone(),
        });
        Rig { hsm, clock, tamper, rng, flash_fails }
    }

    /// Local administration that a demo card allows without cards must all be refused.
    fn local_admin_refused(&mut self) {
        assert!(self.register(9).is_err(), "RegisterApplication without cards");
        assert!(self.x(Request::KeyExportPolicy { set: Some(true) }).is_err(), "plaintext export without cards");
        assert!(self.x(Request::Zeroize).is_err(), "Zeroize without cards");
        assert!(self.hsm.status().initialized, "not zeroized");
    }
}

/// Finding 2: a tombstoned admin record on a ceremony-initialized card used to read as "demo
/// card", letting the local principal register applications, allow plaintext export and
/// zeroize without cards. Now it is the error state, with its reason in `GetStatus`.
#[test]
fn tombstoned_admin_record_is_the_error_state_not_demo() {
    let mut r = rig();
    r.init(3, 2);
    let mut r = r.tamper_with_flash(|s| {
        s.remove(b"q:admin").unwrap();
    });
    let st = r.hsm.status();
    assert!(st.error.is_some(), "{st:?}");
    assert!(st.initialized);
    r.local_admin_refused();
}

/// Finding 2: one flipped byte in the admin record (a CRC-valid rewrite) is the error state.
#[test]
fn altered_admin_record_is_the_error_state_not_demo() {
    let mut r = rig();
    r.init(3, 2);
    let mut r = r.tamper_with_flash(|s| {
        let mut v = s.get(b"q:admin").unwrap().unwrap();
        v[3] ^= 1;
        s.insert(b"q:admin", &v).unwrap();
    });
    assert!(r.hsm.status().error.unwrap().contains("flash"));
    r.local_admin_refused();
}

/// Deleting the init marker with a DMK present used to zeroize the DMK at boot (a flash
/// writer could force a factory reset). Now the set digest no longer matches: error state,
/// the DMK is kept.
#[test]
fn deleted_init_marker_is_the_error_state_not_a_factory_reset() {
    let mut r = rig();
    r.init(3, 2);
    let ram = r.tamper.ram();
    let r = r.tamper_with_flash(|s| {
        s.remove(b"m:init").unwrap();
    });
    let st = r.hsm.status();
    assert!(st.initialized && st.error.is_some(), "{st:?}");
    assert_eq!(r.tamper.ram(), ram, "the DMK survives");
}

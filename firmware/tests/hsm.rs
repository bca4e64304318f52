//! The card end to end through `Hsm::execute`, on in-memory test doubles of the board.

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_platform::*;
use gmhsm_proto::{KeyAlg, Mechanism, Principal, Request, Response, Status};

#[test]
fn factory_state_refuses_until_initialized() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 1, false);
    assert!(!hsm.status().initialized);
    let r = hsm.exec(&app(1), gen_req(label("a"), KeyAlg::Sm2));
    assert_eq!(r, Err(Status::NotInitialized));
    assert_eq!(hsm.exec(&app(1), Request::Ping), Ok(Response::Pong));
    hsm.initialize().unwrap();
    assert!(hsm.status().initialized);
    assert_eq!(hsm.initialize(), Err(Status::InvalidArgument), "initialize is once only");
}

#[test]
fn sm2_and_rsa_sign_verify_and_isolation() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 2, false);
    hsm.initialize().unwrap();
    for (name, alg, mech) in
        [("s", KeyAlg::Sm2, Mechanism::sm2_default()), ("r", KeyAlg::Rsa2048, Mechanism::RsaPkcs1v15Sha256)]
    {
        let r = hsm.exec(&app(1), gen_req(label(name), alg)).unwrap();
        assert!(matches!(r, Response::KeyGenerated { .. }));
        let again = hsm.exec(&app(1), gen_req(label(name), alg));
        assert_eq!(again, Err(Status::KeyExists));
        let Response::Signature(sig) = hsm
            .exec(&app(1), Request::Sign { label: label(name), mechanism: mech.clone(), message: b"hello".to_vec() })
            .unwrap()
        else {
            panic!("not a signature")
        };
        let ok = hsm.exec(
            &app(1),
            Request::Verify {
                label: label(name),
                mechanism: mech.clone(),
                message: b"hello".to_vec(),
                signature: sig.clone(),
            },
        );
        assert_eq!(ok, Ok(Response::Verified));
        let bad = hsm.exec(
            &app(1),
            Request::Verify {
                label: label(name),
                mechanism: mech.clone(),
                message: b"hellO".to_vec(),
                signature: sig.clone(),
            },
        );
        assert_eq!(bad, Err(Status::SignatureInvalid));
        // Another application sees nothing.
        let other = hsm.exec(&app(2), Request::Sign { label: label(name), mechanism: mech, message: vec![] });
        assert_eq!(other, Err(Status::UnknownKey));
    }
    // The wrong mechanism for the key type.
    let wrong = hsm
        .exec(&app(1), Request::Sign { label: label("s"), mechanism: Mechanism::RsaPkcs1v15Sha256, message: vec![] });
    assert_eq!(wrong, Err(Status::WrongKeyType));
    let Response::Keys(keys) = hsm.exec(&app(1), Request::ListKeys).unwrap() else { panic!() };
    assert_eq!(keys.len(), 2);
    let Response::Keys(keys) = hsm.exec(&app(2), Request::ListKeys).unwrap() else { panic!() };
    assert!(keys.is_empty());
}

#[test]
fn keys_survive_reboot_and_die_with_tamper() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 3, false);
    hsm.initialize().unwrap();
    let Response::KeyGenerated { spki_der, .. } = hsm.exec(&app(1), gen_req(label("k"), KeyAlg::Sm2)).unwrap() else {
        panic!()
    };
    let flash = hsm.into_flash().unwrap();
    let mut hsm = boot(flash, &t, 4, false);
    assert_eq!(hsm.status().error, None);
    assert_eq!(hsm.status().boots, 2);
    let r = hsm.exec(&app(1), Request::ExportPublicKey { label: label("k") }).unwrap();
    assert_eq!(r, Response::PublicKey { alg: KeyAlg::Sm2, spki_der });
    let sig = hsm.exec(
        &app(1),
        Request::Sign { label: label("k"), mechanism: Mechanism::sm2_default(), message: b"m".to_vec() },
    );
    assert!(matches!(sig, Ok(Response::Signature(_))));

    // Open the enclosure: the DMK is gone, the card refuses, and stays refusing after reboot.
    t.trip();
    let r = hsm.exec(&app(1), Request::ExportPublicKey { label: label("k") });
    assert_eq!(r, Err(Status::DeviceError));
    assert!(t.ram().iter().all(|&b| b == 0), "tamper RAM zeroized");
    assert!(hsm.status().error.unwrap().contains("tamper"));
    let hsm = boot(hsm.into_flash().unwrap(), &t, 5, false);
    assert!(hsm.status().error.unwrap().contains("master key lost"));
}

#[test]
fn stuck_noise_source_is_an_error_state() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 6, true);
    let st = hsm.status();
    assert!(st.error.as_deref().unwrap_or("").contains("repetition"), "{st:?}");
    assert_eq!(hsm.initialize(), Err(Status::InvalidArgument));
    let r = hsm.exec(&app(1), gen_req(label("x"), KeyAlg::Sm2));
    assert_eq!(r, Err(Status::DeviceError));
}

#[test]
fn audit_log_chains_lifecycle_and_denials() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 7, false);
    hsm.initialize().unwrap();
    hsm.exec(&app(1), gen_req(label("a"), KeyAlg::Sm2)).unwrap();
    let denied = hsm.exec(&app(2), Request::ExportPublicKey { label: label("a") });
    assert_eq!(denied, Err(Status::UnknownKey));
    hsm.exec(&app(1), Request::DeleteKey { label: label("a") }).unwrap();
    // Applications may not read the log; local tools may.
    let r = hsm.exec(&app(1), Request::ReadAudit { from_seq: 1, max: 100 });
    assert_eq!(r, Err(Status::AccessDenied));
    let Response::Audit(recs) = hsm.exec(&Principal::Local, Request::ReadAudit { from_seq: 1, max: 100 }).unwrap()
    else {
        panic!()
    };
    use gmhsm_proto::AuditEvent as E;
    let events: Vec<_> = recs.iter().map(|r| r.event.clone()).collect();
    assert!(matches!(events[0], E::Boot { error: None }));
    assert_eq!(events[1], E::Initialized);
    // The device's own keys (SDF index 0) are born at initialization.
    assert_eq!(events[2], E::KeyGenerated { label: label("sdf:sign:0"), alg: KeyAlg::Sm2 });
    assert_eq!(events[3], E::KeyGenerated { label: label("sdf:enc:0"), alg: KeyAlg::Sm2 });
    assert_eq!(recs[3].principal, Some(Principal::Local));
    // And the audit checkpoint key.
    assert_eq!(events[4], E::KeyGenerated { label: label("audit:sign"), alg: KeyAlg::Sm2 });
    assert_eq!(events[5], E::KeyGenerated { label: label("a"), alg: KeyAlg::Sm2 });
    assert!(matches!(events[6], E::Denied { status: Status::AccessDenied, .. }));
    assert_eq!(recs[6].principal, Some(app(2)));
    assert!(matches!(events[7], E::KeyDeleted { .. }));
    assert!(matches!(events[8], E::Denied { request: 8, status: Status::AccessDenied }));
    assert_eq!(gmhsm_firmware::audit::verify_run(&recs), Ok(()));
    let mut forged = recs.clone();
    forged[5].event = E::KeyGenerated { label: label("b"), alg: KeyAlg::Sm2 };
    assert_eq!(gmhsm_firmware::audit::verify_run(&forged), Err(7));

    // The chain survives a reboot and is verified there.
    let hsm = boot(hsm.into_flash().unwrap(), &t, 8, false);
    let st = hsm.status();
    assert_eq!(st.audit.chain_break, None);
    assert_eq!(st.audit.last_seq, recs.len() as u64 + 1, "boot record appended");
}

#[test]
fn altered_audit_record_is_a_chain_break_at_boot() {
    let t = tamper();
    let mut hsm = boot(fresh_flash(), &t, 9, false);
    hsm.initialize().unwrap();
    hsm.exec(&app(1), gen_req(label("a"), KeyAlg::Sm2)).unwrap();
    hsm.exec(&app(1), gen_req(label("b"), KeyAlg::Sm2)).unwrap();
    let flash = hsm.into_flash().unwrap();
    // Rewrite record 5 through the store, as an attacker with flash access could.
    let mut store = gmhsm_firmware::store::Store::open(flash).unwrap();
    let mut k = b"a:".to_vec();
    k.extend_from_slice(&5u64.to_be_bytes());
    let mut rec: gmhsm_proto::AuditRecord = postcard::from_bytes(&store.get(&k).unwrap().unwrap()).unwrap();
    rec.event = gmhsm_proto::AuditEvent::KeyGenerated { label: label("evil"), alg: KeyAlg::Sm2 };
    store.insert(&k, &postcard::to_allocvec(&rec).unwrap()).unwrap();
    let hsm = boot(store.into_flash(), &t, 10, false);
    // The rewritten record itself fails (its tag is gone), not only the link after it.
    assert_eq!(hsm.status().audit.chain_break, Some(5));
}

/// Noise that turns bad after boot: the periodic test at the next reseed catches it.
struct DecayingNoise {
    x: u64,
    bad: Rc<Cell<bool>>,
}

impl NoiseSource for DecayingNoise {
    fn min_entropy_bits(&self) -> u8 {
        4
    }
    fn fill_raw(&mut self, out: &mut [u8]) -> Result<(), NoiseError> {
        for b in out {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            // Slightly biased (each bit set with probability 5/8 on the bad source):
            // passes the 90B health tests, fails the statistical tests.
            let v = (self.x >> 32) as u8;
            *b = if self.bad.get() { v | ((self.x >> 8) as u8 & (self.x >> 16) as u8) } else { v };
        }
        Ok(())
    }
}

struct StepClock(Rc<Cell<u64>>);
impl Clock for StepClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
}

struct DecayBoard;
impl Platform for DecayBoard {
    type Noise = DecayingNoise;
    type Flash = RamFlash;
    type Tamper = TestTamper;
    type Clock = StepClock;
}

#[test]
fn source_going_bad_is_caught_at_reseed() {
    let bad = Rc::new(Cell::new(false));
    let now = Rc::new(Cell::new(0));
    let mut hsm: Hsm<DecayBoard> = Hsm::boot(Devices {
        noise: DecayingNoise { x: 77, bad: bad.clone() },
        flash: fresh_flash(),
        tamper: tamper(),
        clock: StepClock(now.clone()),
    });
    hsm.initialize().unwrap();
    hsm.exec(&app(1), gen_req(label("a"), KeyAlg::Sm2)).unwrap();
    bad.set(true);
    // Before the reseed is due the DRBG keeps serving; after it, the periodic test fails.
    now.set(601_000);
    let r = hsm.exec(&app(1), gen_req(label("b"), KeyAlg::Sm2));
    assert_eq!(r, Err(Status::DeviceError));
    let st = hsm.status();
    assert!(st.error.as_deref().unwrap_or("").contains("statistical"), "{st:?}");
    let r = hsm.exec(&app(1), gen_req(label("c"), KeyAlg::Sm2));
    assert_eq!(r, Err(Status::DeviceError), "the error state is latched");
}

//! Issue 12, finding 7: RSA key generation split around its prime search
//! (`Hsm::execute_start`, `KeygenJob::compute` outside the card's lock, `Hsm::finish_keygen`)
//! makes exactly the checks of the direct path, at the start and again at the finish, and a
//! refused request leaves nothing behind.

mod common;

use common::*;
use gmhsm_firmware::Hsm;
use gmhsm_firmware::hsm::{KeygenJob, Started};
use gmhsm_proto::request::KeyPairProtection;
use gmhsm_proto::*;

const L: Principal = Principal::Local;

fn ready(seed: u64) -> Hsm<TestBoard> {
    let mut hsm = boot(fresh_flash(), &tamper(), seed, false);
    hsm.initialize().unwrap();
    hsm
}

fn rsa_req(name: &str) -> Request {
    gen_req(label(name), KeyAlg::Rsa2048)
}

/// The job of a request that passed its checks (panics on an immediate answer).
fn job(hsm: &mut Hsm<TestBoard>, p: &Principal, r: Request) -> KeygenJob {
    match hsm.execute_start(p, 1, r) {
        Started::Keygen(job) => *job,
        Started::Answered(a) => panic!("expected a job, got {a:?}"),
    }
}

fn answered(hsm: &mut Hsm<TestBoard>, p: &Principal, r: Request) -> Result<Response, Status> {
    match hsm.execute_start(p, 1, r) {
        Started::Answered(a) => a,
        Started::Keygen(job) => panic!("expected an answer, got {job:?}"),
    }
}

fn audit(hsm: &mut Hsm<TestBoard>) -> Vec<AuditRecord> {
    match hsm.exec(&L, Request::ReadAudit { from_seq: 0, max: 256 }) {
        Ok(Response::Audit(records)) => records,
        other => panic!("{other:?}"),
    }
}

fn generated_audits(hsm: &mut Hsm<TestBoard>, name: &str) -> usize {
    audit(hsm).iter().filter(|r| matches!(&r.event, AuditEvent::KeyGenerated { label, .. } if label == name)).count()
}

fn key_count(hsm: &mut Hsm<TestBoard>) -> u32 {
    hsm.status().keys
}

/// The split path stores, audits and answers as the direct one: nothing exists until the
/// finish, then the key is there, usable, its public key the one answered, and audited once.
#[test]
fn split_generation_stores_audits_and_answers_like_the_direct_path() {
    let mut hsm = ready(1);
    let keys = key_count(&mut hsm);
    let job = job(&mut hsm, &L, rsa_req("rsa"));
    assert_eq!(key_count(&mut hsm), keys, "nothing stored at the start");
    assert_eq!(hsm.exec(&L, Request::ExportPublicKey { label: label("rsa") }), Err(Status::UnknownKey));
    let done = job.compute();
    let spki = match hsm.finish_keygen(done) {
        Ok(Response::KeyGenerated { alg: KeyAlg::Rsa2048, spki_der }) => spki_der,
        other => panic!("{other:?}"),
    };
    assert_eq!(key_count(&mut hsm), keys + 1);
    assert_eq!(
        hsm.exec(&L, Request::ExportPublicKey { label: label("rsa") }),
        Ok(Response::PublicKey { alg: KeyAlg::Rsa2048, spki_der: spki })
    );
    assert_eq!(generated_audits(&mut hsm, "rsa"), 1, "audited once, at the finish");
    let sign = Request::Sign { label: label("rsa"), mechanism: Mechanism::RsaPkcs1v15Sha256, message: b"m".to_vec() };
    assert!(matches!(hsm.exec(&L, sign), Ok(Response::Signature(_))));
}

/// A label taken between start and finish: the finish is refused with `KeyExists`, the key
/// that took the label stays, nothing else is stored and no generation of it is audited twice.
#[test]
fn label_taken_meanwhile_is_key_exists_and_nothing_is_stored() {
    let mut hsm = ready(2);
    let job = job(&mut hsm, &L, rsa_req("taken"));
    assert!(matches!(hsm.exec(&L, gen_req(label("taken"), KeyAlg::Sm2)), Ok(Response::KeyGenerated { .. })));
    let keys = key_count(&mut hsm);
    assert_eq!(hsm.finish_keygen(job.compute()), Err(Status::KeyExists));
    assert_eq!(key_count(&mut hsm), keys);
    assert!(matches!(
        hsm.exec(&L, Request::GetKeyInfo { label: label("taken") }),
        Ok(Response::KeyInfo(KeyInfo { alg: KeyAlg::Sm2, .. }))
    ));
    assert_eq!(generated_audits(&mut hsm, "taken"), 1, "only the SM2 key's generation");
}

/// The quota is counted again at the finish: two jobs started within a one-key quota, the
/// second finish is refused and stores nothing.
#[test]
fn quota_is_checked_again_at_the_finish() {
    let mut hsm = ready(3);
    let quota = Some(AppQuota { max_keys: 1, max_bytes: 1 << 20 });
    let r = Request::RegisterApplication {
        cert_sha256: [7; 32],
        name: "app".try_into().unwrap(),
        domains: 1,
        caps: Capabilities::DEFAULT,
        quota,
    };
    assert_eq!(hsm.exec(&L, r), Ok(Response::Done));
    let a = app(7);
    let first = job(&mut hsm, &a, rsa_req("a"));
    let second = job(&mut hsm, &a, rsa_req("b"));
    assert!(matches!(hsm.finish_keygen(first.compute()), Ok(Response::KeyGenerated { .. })));
    let keys = key_count(&mut hsm);
    assert_eq!(hsm.finish_keygen(second.compute()), Err(Status::QuotaExceeded));
    assert_eq!(key_count(&mut hsm), keys);
    assert_eq!(hsm.exec(&a, Request::GetKeyInfo { label: label("b") }), Err(Status::UnknownKey));
}

/// Refusals come back at once, as on the direct path, with no job: a label already taken, a
/// reserved label, an unregistered application (audited as a denial), a bad protection.
#[test]
fn refused_requests_get_no_job() {
    let mut hsm = ready(4);
    assert!(matches!(hsm.exec(&L, gen_req(label("x"), KeyAlg::Sm4)), Ok(Response::KeyGenerated { .. })));
    assert_eq!(answered(&mut hsm, &L, rsa_req("x")), Err(Status::KeyExists));
    let before = audit(&mut hsm).len();
    let refused = answered(&mut hsm, &app(9), rsa_req("sdf:mine"));
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(refused, hsm.execute(&app(9), 1, rsa_req("sdf:mine")), "the same answer as the direct path");
    assert!(audit(&mut hsm).len() > before, "the denial is audited");
    let plain = Request::GenerateKeyPair { alg: KeyAlg::Rsa2048, protection: KeyPairProtection::Plaintext };
    assert_eq!(answered(&mut hsm, &L, plain), Err(Status::AccessDenied), "plaintext export not allowed");
}

/// `GenerateKeyPair` splits too: the pair comes back at the finish, wrapped under the KEK.
#[test]
fn key_pairs_split_too() {
    let mut hsm = ready(5);
    assert!(matches!(hsm.exec(&L, gen_req(label("kek"), KeyAlg::Sm4)), Ok(Response::KeyGenerated { .. })));
    let r =
        Request::GenerateKeyPair { alg: KeyAlg::Rsa2048, protection: KeyPairProtection::Wrapped { kek: label("kek") } };
    let job = job(&mut hsm, &L, r);
    match hsm.finish_keygen(job.compute()) {
        Ok(Response::KeyPair { alg: KeyAlg::Rsa2048, spki_der, private: response::PrivateKeyOut::Wrapped(blob) }) => {
            assert!(!spki_der.is_empty() && blob.len() > 28);
        }
        other => panic!("{other:?}"),
    }
}

/// Everything else is answered at once by `execute_start`, as `execute` answers it.
#[test]
fn other_requests_are_answered_at_once() {
    let mut hsm = ready(6);
    assert_eq!(answered(&mut hsm, &L, Request::Ping), Ok(Response::Pong));
    assert!(matches!(answered(&mut hsm, &L, gen_req(label("s"), KeyAlg::Sm2)), Ok(Response::KeyGenerated { .. })));
}

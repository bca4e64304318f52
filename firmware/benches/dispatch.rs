//! The card's request layer, end to end inside the firmware: `Hsm::execute` (and
//! `execute_many` for a read of consecutive SM2 decryptions) on in-memory test devices.
//! What it adds to the primitives of `benches/primitives.rs`: dispatch, access checks, the key
//! cache, the nonce pool (refilled between iterations by `Hsm::idle`, as the simulator's
//! engine does), and answer building.

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use common::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gmhsm_firmware::Hsm;
use gmhsm_proto::*;

/// Decryptions per `execute_many` read (two groups of eight lanes, split over two cores).
const READ: usize = 16;

fn ready() -> (Hsm<TestBoard>, Principal) {
    let mut hsm = boot(fresh_flash(), &tamper(), 7, false);
    hsm.initialize().expect("initialize");
    let p = app(1);
    for (name, alg) in [("sm2", KeyAlg::Sm2), ("sm4", KeyAlg::Sm4)] {
        let r = hsm.exec(&p, gen_req(label(name), alg));
        assert!(matches!(r, Ok(Response::KeyGenerated { .. })), "{r:?}");
    }
    (hsm, p)
}

fn bytes(r: Result<Response, Status>) -> Vec<u8> {
    match r {
        Ok(Response::Data(d)) => d.expose_secret().to_vec(),
        other => panic!("expected data, got {other:?}"),
    }
}

fn dispatch(c: &mut Criterion) {
    let (mut hsm, p) = ready();
    let sm2 = KeyRef::Label(label("sm2"));
    let c1 = CipherMech::Sm2 { layout: Sm2Layout::C1C3C2 };
    let ct = bytes(hsm.exec(&p, Request::Encrypt { key: sm2.clone(), mechanism: c1.clone(), data: vec![7; 32] }));
    let decrypt = Request::Decrypt { key: sm2.clone(), mechanism: c1.clone(), data: ct };
    let sign = Request::Sign { label: label("sm2"), mechanism: Mechanism::sm2_default(), message: vec![5; 64] };
    let gcm = CipherMech::Sm4GcmCardNonce { aad: vec![] };
    let sm4 = Request::Encrypt { key: KeyRef::Label(label("sm4")), mechanism: gcm, data: vec![3; 64] };

    let mut g = c.benchmark_group("dispatch");
    g.measurement_time(Duration::from_secs(4));
    g.throughput(Throughput::Elements(1));
    g.bench_function("GetKeyInfo", |b| {
        b.iter(|| black_box(hsm.exec(&p, Request::GetKeyInfo { label: label("sm2") }).is_ok()))
    });
    g.bench_function("Sign SM2 (pool refilled by idle)", |b| {
        b.iter(|| {
            while hsm.idle() {}
            black_box(hsm.exec(&p, sign.clone()).is_ok())
        })
    });
    g.bench_function("Decrypt SM2", |b| b.iter(|| black_box(hsm.exec(&p, decrypt.clone()).is_ok())));
    g.bench_function("Encrypt SM4-GCM 64 B", |b| b.iter(|| black_box(hsm.exec(&p, sm4.clone()).is_ok())));
    g.throughput(Throughput::Elements(READ as u64));
    g.bench_function("execute_many 16 x Decrypt SM2", |b| {
        b.iter(|| {
            let read = (0..READ).map(|_| (p.clone(), 1, decrypt.clone())).collect();
            black_box(hsm.execute_many(read, |_| {}).iter().all(|r| r.is_ok()))
        })
    });
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);

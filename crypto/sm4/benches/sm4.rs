//! SM4 throughput per backend next to the table-based `sm4` crate: one block, and CBC
//! encryption, CTR and GCM at 64 B and 64 KiB (criterion reports bytes/s).
//! OpenSSL for comparison: `openssl speed -evp sm4-cbc -seconds 1 -bytes 65536` (and
//! `sm4-ctr`, `-bytes 64`; OpenSSL 3.0 has no `sm4-gcm` in `speed`).

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::consts::U12;
use cipher::array::Array;
use cipher::common::InnerIvInit;
use cipher::{BlockCipherEncrypt, BlockModeEncrypt, KeyInit, StreamCipher};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gmhsm_sm4::{Backend, Sm4};

const KEY: [u8; 16] = [7; 16];
const IV: [u8; 16] = [9; 16];

/// Runs the mode benchmarks for one block cipher type built by `make`.
fn modes<C>(c: &mut Criterion, name: &str, make: impl Fn() -> C)
where
    C: BlockCipherEncrypt<BlockSize = cipher::consts::U16> + KeyInit + Clone,
{
    let mut g = c.benchmark_group("sm4");
    g.throughput(Throughput::Bytes(16));
    let cipher = make();
    g.bench_function(format!("{name}/block"), |b| {
        let mut block = Array::from([1u8; 16]);
        b.iter(|| cipher.encrypt_block(black_box(&mut block)))
    });
    for len in [64usize, 65536] {
        g.throughput(Throughput::Bytes(len as u64));
        let mut buf = vec![0u8; len];
        g.bench_function(format!("{name}/cbc-enc/{len}"), |b| {
            b.iter(|| {
                let mut m = cbc::Encryptor::<C>::inner_iv_init(make_clone(&cipher), &Array::from(IV));
                m.encrypt_blocks(Array::slice_as_chunks_mut(black_box(&mut buf[..])).0);
            })
        });
        g.bench_function(format!("{name}/ctr/{len}"), |b| {
            b.iter(|| {
                let core =
                    ctr::CtrCore::<C, ctr::flavors::Ctr128BE>::inner_iv_init(make_clone(&cipher), &Array::from(IV));
                ctr::Ctr128BE::<C>::from_core(core).apply_keystream(black_box(&mut buf[..]));
            })
        });
        let gcm = aes_gcm::AesGcm::<C, U12>::from(make_clone(&cipher));
        g.bench_function(format!("{name}/gcm-enc/{len}"), |b| {
            b.iter(|| gcm.encrypt_inout_detached(&Array::from([3u8; 12]), b"", black_box(&mut buf[..]).into()).unwrap())
        });
    }
    g.finish();
}

fn make_clone<C: Clone>(c: &C) -> C {
    c.clone()
}

fn bench(c: &mut Criterion) {
    for backend in Backend::ALL.into_iter().filter(|b| b.is_available()) {
        let name = format!("{backend:?}").to_lowercase();
        modes(c, &name, || Sm4::new_with_backend(&Array::from(KEY), backend).unwrap());
    }
    modes(c, "sm4-crate", || sm4::Sm4::new(&Array::from(KEY)));
    let mut g = c.benchmark_group("sm4");
    g.bench_function("key-schedule", |b| b.iter(|| <Sm4 as KeyInit>::new(black_box(&Array::from(KEY)))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);

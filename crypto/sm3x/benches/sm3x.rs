//! Multi-buffer SM3 per backend next to the `sm3` crate in a loop, on the firmware's two
//! shapes: `e_i = SM3(Z ‖ M_i)` for 64 messages of 32 bytes with a 32-byte prefix (two blocks
//! each), and the Hash_DRBG's hashgen, 64 messages of 55 bytes without prefix (one block
//! each). Criterion reports messages per second.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gmhsm_sm3x::{Backend, digest_many_with};
use sm3::{Digest, Sm3};

fn shape(c: &mut Criterion, name: &str, prefix: &[u8], msg_len: usize, count: usize) {
    let data: Vec<Vec<u8>> = (0..count).map(|i| (0..msg_len).map(|j| (i * 31 + j * 7) as u8).collect()).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| &m[..]).collect();
    let mut out = vec![[0u8; 32]; count];
    let mut g = c.benchmark_group(format!("sm3x/{name}"));
    g.throughput(Throughput::Elements(count as u64));
    for backend in [Backend::Avx512, Backend::Portable] {
        if !backend.available() {
            println!("!!! {backend:?} not benchmarked: this CPU lacks it !!!");
            continue;
        }
        g.bench_function(format!("{backend:?}"), |b| {
            b.iter(|| digest_many_with(backend, black_box(prefix), black_box(&msgs), &mut out).unwrap())
        });
    }
    g.bench_function("sm3-crate-loop", |b| {
        b.iter(|| {
            for (m, o) in black_box(&msgs).iter().zip(out.iter_mut()) {
                *o = Sm3::new().chain_update(black_box(prefix)).chain_update(m).finalize().into();
            }
        })
    });
    g.finish();
}

fn bench(c: &mut Criterion) {
    shape(c, "64x32B+32B-prefix", &[0x5a; 32], 32, 64);
    shape(c, "64x55B", &[], 55, 64);
}

criterion_group!(benches, bench);
criterion_main!(benches);

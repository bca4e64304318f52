//! One call of the eight-lane variable-base multiplication (eight \[k_l\]P_l at once, each lane
//! with its own table of P_l … 8P_l and 65 signed base-16 digits) for each curve.
//! `cargo bench -p gmhsm-ec-ifma --bench varbase`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gmhsm_ec_ifma::{Curve, LANES, P256, Sm2, VARBASE_DIGITS, VARBASE_ENTRIES, is_available, varbase_mul8};

type Multiples = [[[u8; 32]; 2]; VARBASE_ENTRIES];

/// Any coordinates below p serve for timing: the kernel's work does not depend on them.
fn tables() -> Vec<Multiples> {
    (0..LANES)
        .map(|l| {
            core::array::from_fn(|j| {
                let mut x = [0x11u8; 32];
                x[31] = l as u8;
                x[30] = j as u8;
                [x, [0x22; 32]]
            })
        })
        .collect()
}

fn digits() -> Vec<[i8; VARBASE_DIGITS]> {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    (0..LANES)
        .map(|_| {
            core::array::from_fn(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed % 17) as i8 - 8
            })
        })
        .collect()
}

fn run<C: Curve>(tables: &[Multiples], digits: &[[i8; VARBASE_DIGITS]]) {
    black_box(varbase_mul8::<C>(black_box(tables), black_box(digits)));
}

fn varbase(c: &mut Criterion) {
    if !is_available() {
        eprintln!("varbase: NOT MEASURED (this CPU lacks AVX-512 IFMA)");
        return;
    }
    let (tables, digits) = (tables(), digits());
    let mut g = c.benchmark_group("varbase8");
    g.bench_function("sm2", |b| b.iter(|| run::<Sm2>(&tables, &digits)));
    g.bench_function("p256", |b| b.iter(|| run::<P256>(&tables, &digits)));
    g.bench_function("sm2_one_lane", |b| b.iter(|| run::<Sm2>(&tables[..1], &digits[..1])));
    g.finish();
}

criterion_group!(benches, varbase);
criterion_main!(benches);

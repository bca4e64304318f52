//! One call of the eight-lane comb (eight \[k\]G at once, W = 6: 43 windows of 32 entries) for
//! each curve, and the table's construction. `cargo bench -p gmhsm-ec-ifma`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use gmhsm_ec_ifma::{CombTable, Curve, LANES, P256, Sm2};

const W: usize = 6;
const ENTRIES: usize = 1 << (W - 1);
const WINDOWS: usize = 256 / W + 1;

/// Any coordinates below p serve for timing: the kernel's work does not depend on them.
fn table<C: Curve>() -> Option<CombTable<C>> {
    CombTable::new(WINDOWS, ENTRIES, |i, j| {
        let mut x = [0x11u8; 32];
        x[31] = i as u8;
        x[30] = j as u8;
        (x, [0x22; 32])
    })
}

fn comb(c: &mut Criterion) {
    let mut digits = [[0i8; LANES]; WINDOWS];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for row in digits.iter_mut() {
        for d in row.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *d = (seed % 65) as i8 - 32;
        }
    }
    let (Some(sm2), Some(p256)) = (table::<Sm2>(), table::<P256>()) else {
        eprintln!("comb: NOT MEASURED (this CPU lacks AVX-512 IFMA)");
        return;
    };
    let mut g = c.benchmark_group("comb8");
    g.bench_function("sm2", |b| b.iter(|| sm2.mul8(black_box(&digits))));
    g.bench_function("p256", |b| b.iter(|| p256.mul8(black_box(&digits))));
    g.bench_function("table_new_sm2", |b| b.iter(table::<Sm2>));
    g.finish();
}

criterion_group!(benches, comb);
criterion_main!(benches);

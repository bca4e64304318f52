//! One IFMA exponentiation, an interleaved pair and the per-modulus setup, for each size, next
//! to crypto-bigint's `BoxedMontyForm::pow` (the portable reference) on the same operands:
//! `cargo bench -p gmhsm-ifma --bench modexp`. Without AVX-512 IFMA only the reference runs and
//! the bench says so.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use gmhsm_ifma::ModExp;

/// splitmix64: reproducible operands without a dependency.
struct Rng(u64);

impl Rng {
    fn limbs<const W: usize>(&mut self) -> [u64; W] {
        core::array::from_fn(|_| {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
    }
}

fn size<const W: usize, const L: usize, const Z: usize>(c: &mut Criterion) {
    let mut rng = Rng(9);
    let mut m = rng.limbs::<W>();
    m[0] |= 1;
    m[W - 1] |= 1 << 63;
    // Below m: the top limb cleared.
    let (mut base, mut exp) = (rng.limbs::<W>(), rng.limbs::<W>());
    base[W - 1] = 0;
    exp[W - 1] = 0;
    let mut g = c.benchmark_group(format!("modexp{}", 64 * W));
    match ModExp::<W, L, Z>::new(&m) {
        Some(e) => {
            let (mut x, mut y) = ([0u64; W], [0u64; W]);
            g.bench_function("ifma_one", |b| b.iter(|| e.pow(black_box(&base), black_box(&exp), &mut x)));
            g.bench_function("ifma_pair", |b| {
                b.iter(|| ModExp::pow2([&e, &e], [black_box(&base), &base], [black_box(&exp), &exp], [&mut x, &mut y]))
            });
            g.bench_function("ifma_setup", |b| b.iter(|| ModExp::<W, L, Z>::new(black_box(&m))));
        }
        None => println!("!!! modexp{}: IFMA not benchmarked: this CPU lacks AVX-512 IFMA !!!", 64 * W),
    }
    let params = BoxedMontyParams::new(Odd::new(BoxedUint::from_words(m)).expect("odd modulus"));
    let b_form = BoxedMontyForm::new(BoxedUint::from_words(base), &params);
    let e_big = BoxedUint::from_words(exp);
    g.bench_function("crypto_bigint_reference", |b| b.iter(|| black_box(&b_form).pow(black_box(&e_big))));
    g.finish();
}

fn bench(c: &mut Criterion) {
    size::<16, 20, 2>(c);
    size::<24, 30, 4>(c);
    size::<32, 40, 5>(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);

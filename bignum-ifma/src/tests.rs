//! The IFMA exponentiation against crypto-bigint's `BoxedMontyForm::pow` on random and edge
//! moduli, bases and exponents, and the limb conversions and constants on their own.

extern crate std;

use super::*;
use crypto_bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use crypto_bigint::{BoxedUint, Odd};
use std::{eprintln, vec::Vec};

/// splitmix64: reproducible test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn limbs(&mut self) -> [u64; 16] {
        core::array::from_fn(|_| self.next())
    }

    /// Below m (m > 1): random limbs with the top one cleared and reduced by subtraction.
    fn below(&mut self, m: &[u64; 16]) -> [u64; 16] {
        let mut x = self.limbs();
        let top = (0..16).rev().find(|&i| m[i] != 0).unwrap();
        for l in &mut x[top..] {
            *l = 0;
        }
        x
    }
}

fn big(x: &[u64; 16]) -> BoxedUint {
    BoxedUint::from_words(x.iter().copied())
}

fn reference(m: &[u64; 16], base: &[u64; 16], exp: &[u64; 16]) -> [u64; 16] {
    let params = BoxedMontyParams::new(Odd::new(big(m)).unwrap());
    let r = BoxedMontyForm::new(big(base), &params).pow(&big(exp)).retrieve();
    let mut out = [0u64; 16];
    out.copy_from_slice(&r.as_words()[..16]);
    out
}

/// The IFMA path, or `None` after saying loudly that it was not tested. Set
/// `GMHSM_REQUIRE_IFMA=1` to make that a failure (CI on a machine known to have IFMA).
fn ifma(m: &[u64; 16]) -> Option<ModExp1024> {
    if !x86_available() {
        eprintln!("!!! gmhsm-ifma: this CPU lacks AVX-512 IFMA: the IFMA path is NOT TESTED here !!!");
        assert!(std::env::var_os("GMHSM_REQUIRE_IFMA").is_none(), "GMHSM_REQUIRE_IFMA set but no IFMA");
        return None;
    }
    Some(ModExp1024::new(m).expect("IFMA available and m odd > 1"))
}

fn x86_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return x86::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn check(e: &ModExp1024, m: &[u64; 16], base: &[u64; 16], exp: &[u64; 16]) {
    let mut out = [0u64; 16];
    e.pow(base, exp, &mut out);
    assert_eq!(out, reference(m, base, exp), "m={m:x?} base={base:x?} exp={exp:x?}");
}

fn moduli(rng: &mut Rng) -> Vec<[u64; 16]> {
    let mut v = Vec::new();
    for _ in 0..6 {
        let mut m = rng.limbs();
        m[0] |= 1;
        m[15] |= 1 << 63;
        v.push(m);
    }
    // Shorter moduli, the largest, the smallest, and 2^1023 + 1 (all-zero middle limbs).
    for top in [15usize, 8, 1, 0] {
        let mut m = rng.limbs();
        m[top] = (m[top] >> 7) | 1 << 56;
        m[0] |= 1;
        for l in &mut m[top + 1..] {
            *l = 0;
        }
        v.push(m);
    }
    v.push([u64::MAX; 16]);
    let mut three = [0u64; 16];
    three[0] = 3;
    v.push(three);
    let mut sparse = [0u64; 16];
    sparse[0] = 1;
    sparse[15] = 1 << 63;
    v.push(sparse);
    v
}

#[test]
fn pow_agrees_with_crypto_bigint() {
    let mut rng = Rng(0x1fa);
    let mut count = 0;
    for m in moduli(&mut rng) {
        let Some(e) = ifma(&m) else { return };
        let mut m1 = m;
        m1[0] -= 1;
        let mut one = [0u64; 16];
        one[0] = 1;
        let bases = [[0u64; 16], one, m1, rng.below(&m), rng.below(&m)];
        let exps = [[0u64; 16], one, [u64::MAX; 16], rng.limbs(), rng.limbs(), m1];
        for base in &bases {
            for exp in &exps {
                check(&e, &m, base, exp);
                count += 1;
            }
        }
    }
    assert_eq!(count, 13 * 5 * 6);
}

#[test]
fn random_rsa_shaped() {
    let mut rng = Rng(0x2048);
    for _ in 0..40 {
        let mut m = rng.limbs();
        m[0] |= 1;
        m[15] |= 3 << 62;
        let Some(e) = ifma(&m) else { return };
        for _ in 0..3 {
            let (base, exp) = (rng.below(&m), rng.below(&m));
            check(&e, &m, &base, &exp);
        }
    }
}

/// Two moduli at once (the CRT halves) agree with one at a time and with the reference.
#[test]
fn pow2_agrees() {
    let mut rng = Rng(0x22);
    let ms = moduli(&mut rng);
    for pair in ms.windows(2) {
        let (Some(a), Some(b)) = (ifma(&pair[0]), ifma(&pair[1])) else { return };
        for _ in 0..3 {
            let bases = [rng.below(&pair[0]), rng.below(&pair[1])];
            let exps = [rng.limbs(), rng.limbs()];
            let (mut x, mut y) = ([0u64; 16], [0u64; 16]);
            ModExp1024::pow2([&a, &b], [&bases[0], &bases[1]], [&exps[0], &exps[1]], [&mut x, &mut y]);
            assert_eq!(x, reference(&pair[0], &bases[0], &exps[0]));
            assert_eq!(y, reference(&pair[1], &bases[1], &exps[1]));
        }
    }
}

#[test]
fn new_rejects_even_and_one() {
    let mut m = [0u64; 16];
    m[0] = 1;
    assert!(ModExp1024::new(&m).is_none());
    m[0] = 10;
    assert!(ModExp1024::new(&m).is_none());
    m[0] = 11;
    assert_eq!(ModExp1024::new(&m).is_some(), x86_available());
}

#[test]
fn limb_conversions_round_trip() {
    let mut rng = Rng(52);
    for _ in 0..100 {
        let x = rng.limbs();
        let l = to52(&x);
        assert!(l.iter().all(|&v| v <= MASK52));
        assert!(l[LIMBS..].iter().all(|&v| v == 0));
        assert_eq!(from52(&l), x);
    }
}

#[test]
fn constants() {
    let mut rng = Rng(7);
    let mut m = rng.limbs();
    m[0] |= 1;
    let Some(e) = ifma(&m) else { return };
    assert_eq!(e.k0.wrapping_mul(m[0]) & MASK52, MASK52, "k0·m ≡ −1 mod 2^52");
    // R² mod m = (2^1040 mod m)² mod m; 2^1040 = 2^16 · 2^1024.
    let mut r16 = [0u64; 16];
    r16[0] = 1 << 16;
    let mut two1024 = [0u64; 16];
    two1024[0] = 2;
    let mut exp = [0u64; 16];
    exp[0] = 1024;
    let r = reference(&m, &two1024, &exp);
    exp[0] = 2;
    let mut want = reference(&m, &r, &exp);
    let r16sq = reference(&m, &r16, &exp);
    want = {
        let params = BoxedMontyParams::new(Odd::new(big(&m)).unwrap());
        let a = BoxedMontyForm::new(big(&want), &params);
        let b = BoxedMontyForm::new(big(&r16sq), &params);
        let p = (a * b).retrieve();
        core::array::from_fn(|i| p.as_words()[i])
    };
    assert_eq!(from52(&e.rr), want);
}

/// Best-of time of one exponentiation and of an interleaved pair:
/// `cargo test --release -p gmhsm-ifma -- --ignored --nocapture timing`.
#[test]
#[ignore = "timing, not a test"]
fn timing() {
    let mut rng = Rng(9);
    let mut m = rng.limbs();
    m[0] |= 1;
    m[15] |= 1 << 63;
    let Some(e) = ifma(&m) else { return };
    let (base, exp) = (rng.below(&m), rng.below(&m));
    let (mut x, mut y) = ([0u64; 16], [0u64; 16]);
    let mut best = [f64::MAX; 2];
    for _ in 0..200 {
        let t = std::time::Instant::now();
        e.pow(&base, &exp, &mut x);
        best[0] = best[0].min(t.elapsed().as_secs_f64() * 1e6);
        let t = std::time::Instant::now();
        ModExp1024::pow2([&e, &e], [&base, &base], [&exp, &exp], [&mut x, &mut y]);
        best[1] = best[1].min(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut setup = f64::MAX;
    for _ in 0..50 {
        let t = std::time::Instant::now();
        core::hint::black_box(ModExp1024::new(&m));
        setup = setup.min(t.elapsed().as_secs_f64() * 1e6);
    }
    std::println!("one: {:.1} us, pair: {:.1} us, new: {setup:.1} us", best[0], best[1]);
}

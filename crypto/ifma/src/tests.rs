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

    fn limbs<const W: usize>(&mut self) -> [u64; W] {
        core::array::from_fn(|_| self.next())
    }

    /// Below m (m > 1): random limbs with the top one cleared and reduced by subtraction.
    fn below<const W: usize>(&mut self, m: &[u64; W]) -> [u64; W] {
        let mut x = self.limbs();
        let top = (0..W).rev().find(|&i| m[i] != 0).unwrap();
        for l in &mut x[top..] {
            *l = 0;
        }
        x
    }
}

fn big(x: &[u64]) -> BoxedUint {
    BoxedUint::from_words(x.iter().copied())
}

fn reference<const W: usize>(m: &[u64; W], base: &[u64; W], exp: &[u64; W]) -> [u64; W] {
    let params = BoxedMontyParams::new(Odd::new(big(m)).unwrap());
    let r = BoxedMontyForm::new(big(base), &params).pow(&big(exp)).retrieve();
    let mut out = [0u64; W];
    out.copy_from_slice(&r.as_words()[..W]);
    out
}

/// The IFMA path, or `None` after saying loudly that it was not tested. Set
/// `GMHSM_REQUIRE_IFMA=1` to make that a failure (CI on a machine known to have IFMA).
fn ifma<const W: usize, const L: usize, const Z: usize>(m: &[u64; W]) -> Option<ModExp<W, L, Z>> {
    if !x86_available() {
        eprintln!("!!! gmhsm-ifma: this CPU lacks AVX-512 IFMA: the IFMA path is NOT TESTED here !!!");
        assert!(std::env::var_os("GMHSM_REQUIRE_IFMA").is_none(), "GMHSM_REQUIRE_IFMA set but no IFMA");
        return None;
    }
    Some(ModExp::new(m).expect("IFMA available and m odd > 1"))
}

fn x86_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return x86::available();
    #[cfg(not(target_arch = "x86_64"))]
    false
}

fn check<const W: usize, const L: usize, const Z: usize>(
    e: &ModExp<W, L, Z>,
    m: &[u64; W],
    base: &[u64; W],
    exp: &[u64; W],
) {
    let mut out = [0u64; W];
    e.pow(base, exp, &mut out);
    assert_eq!(out, reference(m, base, exp), "W={W} m={m:x?} base={base:x?} exp={exp:x?}");
}

/// Full-length random moduli, shorter ones (top limb at W − 1, W/2, 1, 0), all ones, 3, and
/// 2^(64W−1) + 1 (all-zero middle limbs): 13 in all.
fn moduli<const W: usize>(rng: &mut Rng) -> Vec<[u64; W]> {
    let mut v = Vec::new();
    for _ in 0..6 {
        let mut m = rng.limbs::<W>();
        m[0] |= 1;
        m[W - 1] |= 1 << 63;
        v.push(m);
    }
    for top in [W - 1, W / 2, 1, 0] {
        let mut m = rng.limbs::<W>();
        m[top] = (m[top] >> 7) | 1 << 56;
        m[0] |= 1;
        for l in &mut m[top + 1..] {
            *l = 0;
        }
        v.push(m);
    }
    v.push([u64::MAX; W]);
    let mut three = [0u64; W];
    three[0] = 3;
    v.push(three);
    let mut sparse = [0u64; W];
    sparse[0] = 1;
    sparse[W - 1] = 1 << 63;
    v.push(sparse);
    v
}

fn pow_agrees<const W: usize, const L: usize, const Z: usize>(seed: u64) {
    let mut rng = Rng(seed);
    let mut count = 0;
    for m in moduli::<W>(&mut rng) {
        let Some(e) = ifma::<W, L, Z>(&m) else { return };
        let mut m1 = m;
        m1[0] -= 1;
        let mut one = [0u64; W];
        one[0] = 1;
        let bases = [[0u64; W], one, m1, rng.below(&m), rng.below(&m)];
        let exps = [[0u64; W], one, [u64::MAX; W], rng.limbs(), rng.limbs(), m1];
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
fn pow_agrees_with_crypto_bigint() {
    pow_agrees::<16, 20, 2>(0x1fa);
}

#[test]
fn pow_agrees_with_crypto_bigint_1536() {
    pow_agrees::<24, 30, 4>(0x1536);
}

#[test]
fn pow_agrees_with_crypto_bigint_2048() {
    pow_agrees::<32, 40, 5>(0x2048);
}

fn random_rsa_shaped<const W: usize, const L: usize, const Z: usize>(seed: u64, count: usize) {
    let mut rng = Rng(seed);
    for _ in 0..count {
        let mut m = rng.limbs::<W>();
        m[0] |= 1;
        m[W - 1] |= 3 << 62;
        let Some(e) = ifma::<W, L, Z>(&m) else { return };
        for _ in 0..3 {
            let (base, exp) = (rng.below(&m), rng.below(&m));
            check(&e, &m, &base, &exp);
        }
    }
}

#[test]
fn random_rsa_shaped_1024() {
    random_rsa_shaped::<16, 20, 2>(0x2048, 40);
}

#[test]
fn random_rsa_shaped_1536() {
    random_rsa_shaped::<24, 30, 4>(0x3072, 20);
}

#[test]
fn random_rsa_shaped_2048() {
    random_rsa_shaped::<32, 40, 5>(0x4096, 20);
}

/// Two moduli at once (the CRT halves) agree with one at a time and with the reference.
fn pow2_agrees<const W: usize, const L: usize, const Z: usize>(seed: u64) {
    let mut rng = Rng(seed);
    let ms = moduli::<W>(&mut rng);
    for pair in ms.windows(2) {
        let (Some(a), Some(b)) = (ifma::<W, L, Z>(&pair[0]), ifma::<W, L, Z>(&pair[1])) else { return };
        for _ in 0..3 {
            let bases = [rng.below(&pair[0]), rng.below(&pair[1])];
            let exps = [rng.limbs::<W>(), rng.limbs::<W>()];
            let (mut x, mut y) = ([0u64; W], [0u64; W]);
            ModExp::pow2([&a, &b], [&bases[0], &bases[1]], [&exps[0], &exps[1]], [&mut x, &mut y]);
            assert_eq!(x, reference(&pair[0], &bases[0], &exps[0]));
            assert_eq!(y, reference(&pair[1], &bases[1], &exps[1]));
        }
    }
}

#[test]
fn pow2_agrees_1024() {
    pow2_agrees::<16, 20, 2>(0x22);
}

#[test]
fn pow2_agrees_1536() {
    pow2_agrees::<24, 30, 4>(0x33);
}

#[test]
fn pow2_agrees_2048() {
    pow2_agrees::<32, 40, 5>(0x44);
}

fn rejects_even_and_one<const W: usize, const L: usize, const Z: usize>() {
    let mut m = [0u64; W];
    m[0] = 1;
    assert!(ModExp::<W, L, Z>::new(&m).is_none());
    m[0] = 10;
    assert!(ModExp::<W, L, Z>::new(&m).is_none());
    m[0] = 11;
    assert_eq!(ModExp::<W, L, Z>::new(&m).is_some(), x86_available());
}

#[test]
fn new_rejects_even_and_one() {
    rejects_even_and_one::<16, 20, 2>();
    rejects_even_and_one::<24, 30, 4>();
    rejects_even_and_one::<32, 40, 5>();
}

fn round_trip<const W: usize, const L: usize, const Z: usize>() {
    let mut rng = Rng(52);
    for _ in 0..100 {
        let x = rng.limbs::<W>();
        let l = to52::<W, L, Z>(&x);
        assert!((0..8 * Z + 4).all(|i| l.get(i) <= MASK52));
        assert!((L..8 * Z + 4).all(|i| l.get(i) == 0));
        assert_eq!(from52::<W, L, Z>(&l), x);
    }
}

#[test]
fn limb_conversions_round_trip() {
    round_trip::<16, 20, 2>();
    round_trip::<24, 30, 4>();
    round_trip::<32, 40, 5>();
}

/// k0 and R² mod m = 2^(2·52·L) mod m against the reference.
fn constants<const W: usize, const L: usize, const Z: usize>(seed: u64) {
    let mut rng = Rng(seed);
    let mut m = rng.limbs::<W>();
    m[0] |= 1;
    let Some(e) = ifma::<W, L, Z>(&m) else { return };
    assert_eq!(e.k0.wrapping_mul(m[0]) & MASK52, MASK52, "k0·m ≡ −1 mod 2^52");
    let mut two = [0u64; W];
    two[0] = 2;
    let mut exp = [0u64; W];
    exp[0] = (2 * 52 * L) as u64;
    assert_eq!(from52::<W, L, Z>(&e.rr), reference(&m, &two, &exp));
}

#[test]
fn constants_all_sizes() {
    constants::<16, 20, 2>(7);
    constants::<24, 30, 4>(8);
    constants::<32, 40, 5>(9);
}

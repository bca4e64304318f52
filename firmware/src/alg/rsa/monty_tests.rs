//! Cross-checks of [`super`] against crypto-bigint (the `rsa` crate's arithmetic) on random
//! values and the edge cases 0, 1, m − 1, for moduli of 1, 2, 16, 24 and 32 limbs: random
//! full-width, small top limb, 2^(64L) − 1 and an RSA prime.

use super::*;
use crate::alg::testrng::CounterRng;
use alloc::vec::Vec;
use p256::elliptic_curve::bigint::modular::{BoxedMontyForm, BoxedMontyParams};
use p256::elliptic_curve::bigint::{BoxedUint, NonZero, Odd, Resize};
use rand_core::TryRng;

fn random<const L: usize>(rng: &mut CounterRng) -> [u64; L] {
    let mut r = [0u64; L];
    for l in r.iter_mut() {
        *l = rng.try_next_u64().unwrap();
    }
    r
}

fn big(limbs: &[u64]) -> BoxedUint {
    BoxedUint::from_words(limbs.iter().copied())
}

fn back<const L: usize>(v: &BoxedUint) -> [u64; L] {
    let mut r = [0u64; L];
    for (r, w) in r.iter_mut().zip(v.as_words()) {
        *r = *w;
    }
    r
}

/// a mod m for a of any width, by crypto-bigint.
fn reduce<const L: usize>(a: &[u64], m: &[u64; L]) -> [u64; L] {
    let a = big(a);
    let m = big(m).resize(a.bits_precision());
    back(&a.rem(&NonZero::new(m).unwrap()))
}

/// Moduli to test at width L: random with the top bit set, a small top limb, 2^(64L) − 1.
fn moduli<const L: usize>(rng: &mut CounterRng) -> Vec<[u64; L]> {
    let mut full = random::<L>(rng);
    full[0] |= 1;
    full[L - 1] |= 1 << 63;
    let mut small = random::<L>(rng);
    small[0] |= 1;
    small[L - 1] = 3;
    alloc::vec![full, small, [u64::MAX; L]]
}

fn check_field<const L: usize>(m: &[u64; L], rng: &mut CounterRng) {
    let f = Field::new(m);
    let params = BoxedMontyParams::new(Odd::new(big(m)).unwrap());
    let nz = NonZero::new(big(m)).unwrap();
    // R² mod m and R mod m from their definitions.
    let mut wide = alloc::vec![0u64; 2 * L + 1];
    wide[2 * L] = 1;
    assert_eq!(&reduce(&wide, m), f.r2(), "R^2 mod m");
    let mut wide = alloc::vec![0u64; L + 1];
    wide[L] = 1;
    assert_eq!(&reduce(&wide, m), f.one(), "R mod m");
    let mut m1 = *m;
    m1[0] -= 1;
    let mut values = alloc::vec![[0u64; L], unit::<L>(), m1];
    for _ in 0..6 {
        values.push(reduce(&random::<L>(rng), m));
    }
    for a in &values {
        let am = f.to_mont(a);
        assert_eq!(&f.retrieve(&am), a, "round trip");
        assert_eq!(f.sqr(&am), f.mul(&am, &am), "sqr = mul");
        for b in &values {
            let bm = f.to_mont(b);
            let want = back::<L>(&big(a).mul_mod(&big(b), &nz));
            assert_eq!(f.retrieve(&f.mul(&am, &bm)), want, "mul");
            // Plain a·b·R^-1: times R again is a·b.
            assert_eq!(f.mul(&f.mul(a, b), &f.r2), want, "mul plain");
            let diff = f.sub(a, b);
            assert_eq!(f.retrieve(&f.to_mont(&diff)), back::<L>(&big(a).sub_mod(&big(b), &nz)), "sub");
            // A 2L-limb product below m·R.
            let mut prod = alloc::vec![0u64; 2 * L];
            mul_wide(a, b, &mut prod);
            assert_eq!(f.retrieve(&f.to_mont_wide(&prod)), want, "to_mont_wide");
        }
        let am = f.to_mont(a);
        let mut exps = alloc::vec![[0u64; L], unit::<L>(), [u64::MAX; L], m1];
        exps.push(random::<L>(rng));
        let mut short = [0u64; L];
        short[0] = 0b1011;
        exps.push(short);
        for e in &exps {
            let want = BoxedMontyForm::new(big(a), &params).pow(&big(e)).retrieve();
            assert_eq!(f.retrieve(&f.pow(&am, e)), back::<L>(&want), "pow");
            assert_eq!(f.retrieve(&f.pow_public(&am, e)), back::<L>(&want), "pow_public");
        }
    }
}

fn check_width<const L: usize>(seed: &[u8]) {
    let mut rng = CounterRng::new(seed);
    for m in moduli::<L>(&mut rng) {
        check_field(&m, &mut rng);
    }
}

#[test]
fn one_and_two_limbs() {
    check_width::<1>(b"monty 1");
    check_width::<2>(b"monty 2");
    // The smallest moduli: 1 (everything is 0), 3.
    let f = Field::<1>::new(&[1]);
    assert_eq!(f.to_mont(&[5]), [0]);
    let f = Field::<1>::new(&[3]);
    assert_eq!(f.retrieve(&f.pow(&f.to_mont(&[2]), &[3])), [2]);
}

#[test]
fn widths_of_rsa_primes() {
    check_width::<16>(b"monty 16");
    check_width::<24>(b"monty 24");
    check_width::<32>(b"monty 32");
}

#[test]
fn coding_and_helpers() {
    assert_eq!(from_be::<1>(&[1, 2]), Some([0x0102]));
    assert_eq!(from_be::<1>(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 7]), Some([7]));
    assert_eq!(from_be::<1>(&[1, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    let mut out = [0u8; 10];
    to_be(&[0x0102], &mut out);
    assert_eq!(out, [0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    assert!(lt_public(&[5, 1], &[4, 2]));
    assert!(!lt_public(&[4, 2], &[4, 2]));
    assert!(!lt_public(&[0, 3], &[9, 2]));
    let mut a = [u64::MAX, u64::MAX, 0];
    assert_eq!(add_into(&mut a, &[1]), 0);
    assert_eq!(a, [0, 0, 1]);
    assert_eq!(eq_mask(3, 3), u64::MAX);
    assert_eq!(eq_mask(3, 4), 0);
    assert_eq!(eq_mask(0, 1 << 63), 0);
    let exp = [0xf0u64, 0b101];
    assert_eq!(window(&exp, 4, 5), 0b01111);
    assert_eq!(window(&exp, 62, 5), 0b10100);
    let table = [[1u64, 2], [3, 4], [5, 6]];
    assert_eq!(select(&table, 2), [5, 6]);
    assert_eq!(select(&table, 7), [0, 0]);
}

//! The kernel against the RustCrypto `sm2` crate (points) and crypto-bigint (constants and
//! modular products). On a CPU without AVX-512 IFMA these tests print "NOT TESTED" and pass,
//! unless `GMHSM_REQUIRE_IFMA=1`, which makes them fail instead.

extern crate std;

use super::*;
use alloc::vec::Vec;
use crypto_bigint::{NonZero, U256};
use sm2::elliptic_curve::BatchNormalize;
use sm2::elliptic_curve::group::Group;
use sm2::elliptic_curve::point::AffineCoordinates;
use sm2::{ProjectivePoint, Scalar};

const W: usize = 6;
const ENTRIES: usize = 1 << (W - 1);
const WINDOWS: usize = 256 / W + 1;

fn ifma_or_skip(what: &str) -> bool {
    if is_available() {
        return true;
    }
    assert!(std::env::var("GMHSM_REQUIRE_IFMA").as_deref() != Ok("1"), "{what}: this CPU lacks AVX-512 IFMA");
    std::println!("{what}: NOT TESTED (this CPU lacks AVX-512 IFMA)");
    false
}

fn p() -> U256 {
    U256::from_words(P64)
}

/// Affine (x, y) as big-endian bytes.
type XY = ([u8; 32], [u8; 32]);

fn affine_bytes(points: &[ProjectivePoint]) -> Vec<XY> {
    let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(points);
    affine.iter().map(|a| (a.x().into(), a.y().into())).collect()
}

/// The comb table of G for W = 6, as the firmware builds it.
fn generator_table() -> (CombTable, Vec<XY>) {
    let mut base = ProjectivePoint::GENERATOR;
    let mut points = Vec::new();
    for _ in 0..WINDOWS {
        let mut acc = base;
        for _ in 0..ENTRIES {
            points.push(acc);
            acc += &base;
        }
        for _ in 0..W {
            base = base.double();
        }
    }
    let bytes = affine_bytes(&points);
    (CombTable::new(WINDOWS, ENTRIES, |i, j| bytes[i * ENTRIES + j]).unwrap(), bytes)
}

/// Σ d_i · 2^(W·i) as a scalar.
fn scalar_of(digits: &[i8]) -> Scalar {
    let mut k = Scalar::ZERO;
    for &d in digits.iter().rev() {
        k *= Scalar::from(1u64 << W);
        let abs = Scalar::from(u64::from(d.unsigned_abs()));
        k += if d < 0 { -abs } else { abs };
    }
    k
}

/// The kernel's (X, Y, Z) is the crate's affine (x, y): X = x·Z², Y = y·Z³ (mod p).
fn assert_same_point(got: &Jacobian, want: &ProjectivePoint, what: &str) {
    let n = NonZero::new(p()).unwrap();
    let be = |b: &[u8; 32]| U256::from_be_slice(b);
    if bool::from(want.is_identity()) {
        assert!(got.z_is_zero(), "{what}: expected the identity");
        return;
    }
    assert!(!got.z_is_zero(), "{what}: unexpected Z = 0");
    let want = affine_bytes(&[*want])[0];
    let (x, y, z) = (be(&got.x), be(&got.y), be(&got.z));
    for v in [&x, &y, &z] {
        assert!(v < &p(), "{what}: not fully reduced");
    }
    let z2 = z.mul_mod(&z, &n);
    let z3 = z2.mul_mod(&z, &n);
    assert_eq!(x, be(&want.0).mul_mod(&z2, &n), "{what}: X");
    assert_eq!(y, be(&want.1).mul_mod(&z3, &n), "{what}: Y");
}

/// A small deterministic generator (xorshift), enough for test digits.
struct Digits(u64);
impl Digits {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn digit(&mut self) -> i8 {
        (self.next() % (2 * ENTRIES as u64 + 1)) as i8 - ENTRIES as i8
    }
}

#[test]
fn constants_are_what_they_claim() {
    let n = NonZero::new(p()).unwrap();
    let two256 = p().wrapping_neg(); // 2^256 − p ≡ 2^256 (mod p)
    let r = two256.mul_mod(&U256::from_u64(16), &n);
    let r2 = r.mul_mod(&r, &n);
    let limbs = |v: &U256| to_limbs52(&v.to_be_bytes().into());
    let p8 = |i: usize| {
        // 8p limb by limb: the 52-bit limbs of p shifted by 3, carried.
        let mut out = [0u64; 5];
        let mut carry = 0;
        for (k, o) in out.iter_mut().enumerate() {
            let v = (P52[k] << 3) + carry;
            *o = if k < 4 { v & MASK52 } else { v };
            carry = v >> 52;
        }
        out[i]
    };
    #[cfg(target_arch = "x86_64")]
    {
        let (r2k, onek, p8k) = x86::constants_for_tests();
        assert_eq!(r2k, limbs(&r2), "R² mod p");
        assert_eq!(onek, limbs(&r), "R mod p");
        assert_eq!(p8k, core::array::from_fn(p8), "8p");
    }
    assert_eq!(P52, limbs(&p()), "p in 52-bit limbs");
}

#[test]
fn eight_random_scalars_match_the_crate() {
    if !ifma_or_skip("eight_random_scalars_match_the_crate") {
        return;
    }
    let (table, _) = generator_table();
    let mut rng = Digits(0x9e37_79b9_7f4a_7c15);
    for round in 0..12 {
        let mut digits = [[0i8; LANES]; WINDOWS];
        for row in digits.iter_mut() {
            for d in row.iter_mut() {
                *d = rng.digit();
            }
        }
        // Lane 1: the lowest windows zero (the accumulator stays empty for a while); lane 2:
        // extreme digits; lane 3: a single nonzero digit in the top window.
        for (i, row) in digits.iter_mut().enumerate() {
            if i < 5 + round {
                row[1] = 0;
            }
            row[2] = if (i + round) % 2 == 0 { ENTRIES as i8 } else { -(ENTRIES as i8) };
            row[3] = if i == WINDOWS - 1 { -3 } else { 0 };
        }
        let got = table.mul8(&digits);
        for (l, got) in got.iter().enumerate() {
            let lane: Vec<i8> = digits.iter().map(|row| row[l]).collect();
            let want = ProjectivePoint::GENERATOR * scalar_of(&lane);
            assert_same_point(got, &want, &std::format!("round {round} lane {l}"));
        }
    }
}

#[test]
fn all_zero_digits_give_the_identity() {
    if !ifma_or_skip("all_zero_digits_give_the_identity") {
        return;
    }
    let (table, _) = generator_table();
    let mut digits = [[0i8; LANES]; WINDOWS];
    digits[7][5] = 1;
    let got = table.mul8(&digits);
    for (l, got) in got.iter().enumerate() {
        let want = if l == 5 {
            ProjectivePoint::GENERATOR * scalar_of(&[0, 0, 0, 0, 0, 0, 0, 1])
        } else {
            ProjectivePoint::IDENTITY
        };
        assert_same_point(got, &want, &std::format!("lane {l}"));
    }
}

#[test]
fn exceptional_additions_are_reported_as_z_zero() {
    if !ifma_or_skip("exceptional_additions_are_reported_as_z_zero") {
        return;
    }
    // A table whose windows 0 and 1 are equal, so that d0 = d1 adds a point to itself and
    // d0 = −d1 adds a point to its negative.
    let (_, bytes) = generator_table();
    let table = CombTable::new(3, ENTRIES, |i, j| bytes[if i == 1 { j } else { i * ENTRIES + j }]).unwrap();
    let mut digits = [[0i8; LANES]; 3];
    let cases: [(i8, i8, i8); LANES] =
        [(3, 3, 0), (3, -3, 0), (5, 5, 1), (-7, 7, 2), (3, 4, 0), (0, 4, 1), (9, 0, 0), (1, 2, 3)];
    for (l, &(a, b, c)) in cases.iter().enumerate() {
        digits[0][l] = a;
        digits[1][l] = b;
        digits[2][l] = c;
    }
    let got = table.mul8(&digits);
    for (l, &(a, b, c)) in cases.iter().enumerate() {
        let exceptional = a == b || a == -b && a != 0;
        assert_eq!(got[l].z_is_zero(), exceptional, "lane {l}");
        if !exceptional {
            // Windows 0 and 1 are both multiples of G; window 2 of 2^12·G.
            let k = Scalar::from(u64::from(a.unsigned_abs())) * sign(a)
                + Scalar::from(u64::from(b.unsigned_abs())) * sign(b)
                + Scalar::from(u64::from(c.unsigned_abs()) << 12) * sign(c);
            assert_same_point(&got[l], &(ProjectivePoint::GENERATOR * k), &std::format!("lane {l}"));
        }
    }
}

fn sign(d: i8) -> Scalar {
    if d < 0 { -Scalar::ONE } else { Scalar::ONE }
}

#[test]
#[should_panic(expected = "a digit exceeds the table")]
fn digits_beyond_the_table_are_refused() {
    if !is_available() {
        panic!("a digit exceeds the table (NOT TESTED: this CPU lacks AVX-512 IFMA)");
    }
    let (_, bytes) = generator_table();
    let table = CombTable::new(2, ENTRIES, |i, j| bytes[i * ENTRIES + j]).unwrap();
    let mut digits = [[0i8; LANES]; 2];
    digits[1][4] = ENTRIES as i8 + 1;
    let _ = table.mul8(&digits);
}

#[test]
fn coordinates_not_below_p_are_refused() {
    if !ifma_or_skip("coordinates_not_below_p_are_refused") {
        return;
    }
    let p_bytes: [u8; 32] = p().to_be_bytes().into();
    assert!(CombTable::new(1, 1, |_, _| (p_bytes, [1; 32])).is_none());
    assert!(CombTable::new(1, 1, |_, _| ([1; 32], [0xff; 32])).is_none());
    assert!(CombTable::new(1, 0, |_, _| ([1; 32], [1; 32])).is_none());
    assert!(CombTable::new(1, 128, |_, _| ([1; 32], [1; 32])).is_none());
}

#[test]
fn reduce_once_is_exact_at_the_edges() {
    // p → 0, p − 1 → p − 1, 2p − 1 → p − 1, 0 → 0.
    let pl = P52;
    let two_p_minus_1 = {
        let mut out = [0u64; 5];
        let mut carry = 0u64;
        for k in 0..5 {
            let v = (pl[k] << 1) + carry;
            out[k] = if k < 4 { v & MASK52 } else { v };
            carry = v >> 52;
        }
        out[0] -= 1;
        out
    };
    let mut p_minus_1 = pl;
    p_minus_1[0] -= 1;
    assert_eq!(reduce_once(&pl), [0; 4]);
    assert_eq!(reduce_once(&p_minus_1), reduce_once(&two_p_minus_1));
    let want: [u8; 32] = p().wrapping_sub(&U256::ONE).to_be_bytes().into();
    assert_eq!(to_bytes(&reduce_once(&p_minus_1)), want);
    assert_eq!(reduce_once(&[0; 5]), [0; 4]);
}

//! The kernel against the RustCrypto `sm2` and `p256` crates (points) and crypto-bigint
//! (constants and modular products), for both curves. On a CPU without AVX-512 IFMA the
//! kernel tests print "NOT TESTED" and pass, unless `GMHSM_REQUIRE_IFMA=1`, which makes them
//! fail instead.

extern crate std;

use super::*;
use crypto_bigint::{NonZero, U256};

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

fn p_of<C: Curve>() -> U256 {
    U256::from_words(C::P64)
}

fn limbs_of(v: &U256) -> [u64; 5] {
    to_limbs52(&v.to_be_bytes().into())
}

/// 2^(52·limb + shift) mod p, signed, summed over `FOLD`.
fn fold_value<C: Curve>() -> U256 {
    let n = NonZero::new(p_of::<C>()).unwrap();
    let mut acc = U256::ZERO;
    for &(limb, shift, negative) in &C::FOLD {
        let term = U256::ONE.shl_vartime((52 * limb as u32) + shift as u32);
        acc = if negative { acc.sub_mod(&term, &n) } else { acc.add_mod(&term, &n) };
    }
    acc
}

fn check_constants<C: Curve>() {
    let p = p_of::<C>();
    let n = NonZero::new(p).unwrap();
    let two256 = p.wrapping_neg(); // 2^256 − p ≡ 2^256 (mod p)
    let r = two256.mul_mod(&U256::from_u64(16), &n);
    let r2 = r.mul_mod(&r, &n);
    assert_eq!(C::P52, limbs_of(&p), "p in 52-bit limbs");
    assert_eq!(C::R2_52, limbs_of(&r2), "R² mod p");
    assert_eq!(C::ONE_52, limbs_of(&r), "R mod p");
    assert_eq!(fold_value::<C>(), two256, "FOLD is 2^256 mod p");
    // 8p limb by limb: the 52-bit limbs of p shifted by 3, carried.
    let mut p8 = [0u64; 5];
    let mut carry = 0;
    for (k, o) in p8.iter_mut().enumerate() {
        let v = (C::P52[k] << 3) + carry;
        *o = if k < 4 { v & MASK52 } else { v };
        carry = v >> 52;
    }
    assert_eq!(C::P8_52, p8, "8p");
    assert_eq!(C::P64[0], u64::MAX, "p ≡ −1 (mod 2^64): the Montgomery step relies on it");
}

#[test]
fn constants_are_what_they_claim() {
    check_constants::<Sm2>();
    check_constants::<P256>();
}

fn check_reduce_once<C: Curve>() {
    // p → 0, p − 1 → p − 1, 2p − 1 → p − 1, 0 → 0.
    let pl = C::P52;
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
    assert_eq!(reduce_once::<C>(&pl), [0; 4]);
    assert_eq!(reduce_once::<C>(&p_minus_1), reduce_once::<C>(&two_p_minus_1));
    let want: [u8; 32] = p_of::<C>().wrapping_sub(&U256::ONE).to_be_bytes().into();
    assert_eq!(to_bytes(&reduce_once::<C>(&p_minus_1)), want);
    assert_eq!(reduce_once::<C>(&[0; 5]), [0; 4]);
}

#[test]
fn reduce_once_is_exact_at_the_edges() {
    check_reduce_once::<Sm2>();
    check_reduce_once::<P256>();
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

/// The point tests, once per curve, against that curve's RustCrypto crate.
macro_rules! curve_tests {
    ($module:ident, $curve:ty, $krate:ident) => {
        mod $module {
            use super::*;
            use alloc::vec::Vec;
            use $krate::elliptic_curve::BatchNormalize;
            use $krate::elliptic_curve::group::Group;
            use $krate::elliptic_curve::point::AffineCoordinates;
            use $krate::{ProjectivePoint, Scalar};

            type C = $curve;
            /// Affine (x, y) as big-endian bytes.
            type XY = ([u8; 32], [u8; 32]);

            fn affine_bytes(points: &[ProjectivePoint]) -> Vec<XY> {
                let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(points);
                affine.iter().map(|a| (a.x().into(), a.y().into())).collect()
            }

            /// The comb table of G for W = 6, as the firmware builds it.
            fn generator_table() -> (CombTable<C>, Vec<XY>) {
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

            fn signed(d: i8) -> Scalar {
                let abs = Scalar::from(u64::from(d.unsigned_abs()));
                if d < 0 { -abs } else { abs }
            }

            /// Σ d_i · 2^(W·i) as a scalar.
            fn scalar_of(digits: &[i8]) -> Scalar {
                let mut k = Scalar::ZERO;
                for &d in digits.iter().rev() {
                    k *= Scalar::from(1u64 << W);
                    k += signed(d);
                }
                k
            }

            /// The kernel's (X, Y, Z) is the crate's affine (x, y): X = x·Z², Y = y·Z³ (mod p).
            fn assert_same_point(got: &Jacobian, want: &ProjectivePoint, what: &str) {
                let p = p_of::<C>();
                let n = NonZero::new(p).unwrap();
                let be = |b: &[u8; 32]| U256::from_be_slice(b);
                if bool::from(want.is_identity()) {
                    assert!(got.z_is_zero(), "{what}: expected the identity");
                    return;
                }
                assert!(!got.z_is_zero(), "{what}: unexpected Z = 0");
                let want = affine_bytes(&[*want])[0];
                let (x, y, z) = (be(&got.x), be(&got.y), be(&got.z));
                for v in [&x, &y, &z] {
                    assert!(v < &p, "{what}: not fully reduced");
                }
                let z2 = z.mul_mod(&z, &n);
                let z3 = z2.mul_mod(&z, &n);
                assert_eq!(x, be(&want.0).mul_mod(&z2, &n), "{what}: X");
                assert_eq!(y, be(&want.1).mul_mod(&z3, &n), "{what}: Y");
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
                    // Lane 1: the lowest windows zero (the accumulator stays empty for a
                    // while); lane 2: extreme digits; lane 3: one nonzero digit, in the top
                    // window.
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
                // A table whose windows 0 and 1 are equal, so that d0 = d1 adds a point to
                // itself and d0 = −d1 adds a point to its negative.
                let (_, bytes) = generator_table();
                let table: CombTable<C> =
                    CombTable::new(3, ENTRIES, |i, j| bytes[if i == 1 { j } else { i * ENTRIES + j }]).unwrap();
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
                        let k = signed(a) + signed(b) + signed(c) * Scalar::from(1u64 << 12);
                        assert_same_point(&got[l], &(ProjectivePoint::GENERATOR * k), &std::format!("lane {l}"));
                    }
                }
            }

            #[test]
            #[should_panic(expected = "a digit exceeds the table")]
            fn digits_beyond_the_table_are_refused() {
                if !ifma_or_skip("digits_beyond_the_table_are_refused") {
                    // The expected panic, so that the skip passes (and says so above);
                    // with GMHSM_REQUIRE_IFMA=1 `ifma_or_skip` fails with another message.
                    panic!("a digit exceeds the table (NOT TESTED: this CPU lacks AVX-512 IFMA)");
                }
                let (_, bytes) = generator_table();
                let table: CombTable<C> = CombTable::new(2, ENTRIES, |i, j| bytes[i * ENTRIES + j]).unwrap();
                let mut digits = [[0i8; LANES]; 2];
                digits[1][4] = ENTRIES as i8 + 1;
                let _ = table.mul8(&digits);
            }

            #[test]
            fn coordinates_not_below_p_are_refused() {
                if !ifma_or_skip("coordinates_not_below_p_are_refused") {
                    return;
                }
                let p_bytes: [u8; 32] = p_of::<C>().to_be_bytes().into();
                assert!(CombTable::<C>::new(1, 1, |_, _| (p_bytes, [1; 32])).is_none());
                assert!(CombTable::<C>::new(1, 1, |_, _| ([1; 32], [0xff; 32])).is_none());
                assert!(CombTable::<C>::new(1, 0, |_, _| ([1; 32], [1; 32])).is_none());
                assert!(CombTable::<C>::new(1, 128, |_, _| ([1; 32], [1; 32])).is_none());
            }
        }
    };
}

curve_tests!(sm2_curve, Sm2, sm2);
curve_tests!(p256_curve, P256, p256);

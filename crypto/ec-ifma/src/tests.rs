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

/// v + p in 52-bit limbs (v normalized, below p), carried; the top limb may reach bit 49.
fn plus_p<C: Curve>(v: &[u64; 5]) -> [u64; 5] {
    let mut out = [0u64; 5];
    let mut carry = 0u64;
    for k in 0..5 {
        let s = v[k] + C::P52[k] + carry;
        out[k] = if k < 4 { s & MASK52 } else { s };
        carry = s >> 52;
    }
    out
}

fn check_reduce_full<C: Curve>() {
    let p = p_of::<C>();
    let mut rng = Digits(0x7777_1234_abcd_0001);
    let values = [U256::ZERO, U256::ONE, p.wrapping_sub(&U256::ONE), U256::from_u64(1 << 52)];
    let mut rand = [U256::ZERO; 4];
    for r in rand.iter_mut() {
        let w: [u64; 4] = core::array::from_fn(|_| rng.next());
        *r = U256::from_words(w).rem(&NonZero::new(p).unwrap());
    }
    // Each value below p, and the same value plus p, eight lanes at a time.
    for vs in [values, rand] {
        let mut input = [[0u64; LANES]; 5];
        for (l, v) in vs.iter().enumerate() {
            let limbs = limbs_of(v);
            let high = plus_p::<C>(&limbs);
            for t in 0..5 {
                input[t][2 * l] = limbs[t];
                input[t][2 * l + 1] = high[t];
            }
        }
        let mut out = [[0u64; LANES]; 5];
        // SAFETY: the caller checked `is_available()`; the inputs are normalized and below 2p.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            x86::reduce_full8::<C>(&input, &mut out)
        };
        for (l, v) in vs.iter().enumerate() {
            for lane in [2 * l, 2 * l + 1] {
                let got: [u64; 5] = core::array::from_fn(|t| out[t][lane]);
                assert_eq!(got, limbs_of(v), "lane {lane}");
            }
        }
    }
}

#[test]
fn reduce_full_is_exact() {
    if !ifma_or_skip("reduce_full_is_exact") {
        return;
    }
    check_reduce_full::<Sm2>();
    check_reduce_full::<P256>();
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

/// Signed base-16 digits in [−8, 8] of a scalar given big-endian, least significant first:
/// the firmware's `sm2_fast::varbase::recode` (64 nibbles plus the final carry), branch-free.
fn recode16(repr: &[u8; 32]) -> [i8; VARBASE_DIGITS] {
    let mut digits = [0i8; VARBASE_DIGITS];
    let mut carry: i32 = 0;
    for (i, digit) in digits.iter_mut().enumerate().take(64) {
        let byte = repr[31 - i / 2];
        let v = i32::from((byte >> (4 * (i % 2))) & 0xF) + carry; // 0 ..= 16
        let c = ((8 - v) >> 31) & 1; // v > 8
        *digit = (v - (c << 4)) as i8;
        carry = c;
    }
    digits[64] = carry as i8;
    digits
}

/// The point tests, once per curve, against that curve's RustCrypto crate.
macro_rules! curve_tests {
    ($module:ident, $curve:ty, $krate:ident) => {
        mod $module {
            use super::*;
            use alloc::vec::Vec;
            use $krate::elliptic_curve::BatchNormalize;
            use $krate::elliptic_curve::ff::PrimeField;
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

            // ---- Variable base (`varbase_mul8`) ----

            type Multiples = [[[u8; 32]; 2]; VARBASE_ENTRIES];

            /// P, 2P, …, 8P.
            fn multiples(p: &ProjectivePoint) -> [ProjectivePoint; VARBASE_ENTRIES] {
                let mut out = [*p; VARBASE_ENTRIES];
                for j in 1..VARBASE_ENTRIES {
                    out[j] = out[j - 1] + p;
                }
                out
            }

            /// A lane table: the affine big-endian coordinates of `points`.
            fn table_of(points: &[ProjectivePoint; VARBASE_ENTRIES]) -> Multiples {
                let bytes = affine_bytes(points);
                core::array::from_fn(|j| [bytes[j].0, bytes[j].1])
            }

            fn random_scalar(rng: &mut Digits) -> Scalar {
                let two32 = Scalar::from(1u64 << 32);
                let two64 = two32 * two32;
                let mut k = Scalar::ZERO;
                for _ in 0..4 {
                    k = k * two64 + Scalar::from(rng.next());
                }
                k
            }

            fn random_point(rng: &mut Digits) -> ProjectivePoint {
                ProjectivePoint::GENERATOR * random_scalar(rng)
            }

            fn recode(k: &Scalar) -> [i8; VARBASE_DIGITS] {
                recode16(&k.to_repr().into())
            }

            /// What a lane must give, by the kernel's own schedule on the crate's complete
            /// arithmetic: from the top digit down, four doublings and the digit's signed
            /// entry of `mults` added. `None` (Z = 0 expected) if a nonzero digit met a
            /// non-empty accumulator equal to its multiple, to its negative, or already the
            /// identity — where the kernel's mixed addition gives or keeps Z = 0 — or if the
            /// sum is the identity.
            fn reference(
                mults: &[ProjectivePoint; VARBASE_ENTRIES],
                digits: &[i8; VARBASE_DIGITS],
            ) -> Option<ProjectivePoint> {
                let mut acc: Option<ProjectivePoint> = None;
                let mut exceptional = false;
                for &d in digits.iter().rev() {
                    if let Some(a) = acc.as_mut() {
                        for _ in 0..4 {
                            *a = a.double();
                        }
                    }
                    if d == 0 {
                        continue;
                    }
                    let q = mults[usize::from(d.unsigned_abs()) - 1];
                    let q = if d < 0 { -q } else { q };
                    acc = Some(match acc {
                        None => q,
                        Some(a) => {
                            exceptional |= a == q || a == -q || bool::from(a.is_identity());
                            a + q
                        }
                    });
                }
                match acc {
                    Some(a) if !exceptional && !bool::from(a.is_identity()) => Some(a),
                    _ => None,
                }
            }

            fn assert_lane(got: &Jacobian, want: Option<ProjectivePoint>, what: &str) {
                match want {
                    Some(want) => assert_same_point(got, &want, what),
                    None => assert!(got.z_is_zero(), "{what}: expected Z = 0"),
                }
            }

            fn varbase(tables: &[Multiples], digits: &[[i8; VARBASE_DIGITS]]) -> Vec<Jacobian> {
                let got = varbase_mul8::<C>(tables, digits).expect("IFMA is available");
                assert_eq!(got.len(), tables.len());
                got
            }

            #[test]
            fn recoding_reconstructs_the_scalar() {
                let mut rng = Digits(0x1234_5678_9abc_def1);
                let edge = [Scalar::ZERO, Scalar::ONE, -Scalar::ONE, -Scalar::from(8u64)];
                for k in edge.into_iter().chain((0..40).map(|_| random_scalar(&mut rng))) {
                    let d = recode(&k);
                    let mut acc = Scalar::ZERO;
                    for &x in d.iter().rev() {
                        assert!((-8..=8).contains(&x));
                        acc = acc * Scalar::from(16u64) + signed(x);
                    }
                    assert_eq!(acc, k);
                }
            }

            #[test]
            fn varbase_random_points_and_scalars_match_the_crate() {
                if !ifma_or_skip("varbase_random_points_and_scalars_match_the_crate") {
                    return;
                }
                let mut rng = Digits(0x2545_f491_4f6c_dd1d);
                for n in [1, 3, 8] {
                    for round in 0..3 {
                        let points: Vec<ProjectivePoint> = (0..n).map(|_| random_point(&mut rng)).collect();
                        let scalars: Vec<Scalar> = (0..n).map(|_| random_scalar(&mut rng)).collect();
                        let tables: Vec<Multiples> = points.iter().map(|p| table_of(&multiples(p))).collect();
                        let digits: Vec<[i8; VARBASE_DIGITS]> = scalars.iter().map(recode).collect();
                        let got = varbase(&tables, &digits);
                        for l in 0..n {
                            let what = std::format!("n = {n}, round {round}, lane {l}");
                            assert_same_point(&got[l], &(points[l] * scalars[l]), &what);
                        }
                    }
                }
            }

            #[test]
            fn varbase_edge_scalars() {
                if !ifma_or_skip("varbase_edge_scalars") {
                    return;
                }
                let mut rng = Digits(0x0bad_5eed_1234_4321);
                // 0, 1 … 20, n − 1 … n − 20, random: digits by the recoding.
                let mut cases: Vec<(Scalar, [i8; VARBASE_DIGITS])> = Vec::new();
                for k in (0..=20u64).map(Scalar::from).chain((1..=20u64).map(|j| -Scalar::from(j))) {
                    cases.push((k, recode(&k)));
                }
                // All digits zero but the top one (16^64 = 2^256), and the top one alone −8 … 8.
                for top in -8i8..=8 {
                    let mut d = [0i8; VARBASE_DIGITS];
                    d[VARBASE_DIGITS - 1] = top;
                    let two256 = {
                        let two32 = Scalar::from(1u64 << 32);
                        let two128 = two32 * two32 * two32 * two32;
                        two128 * two128
                    };
                    cases.push((signed(top) * two256, d));
                }
                // Extreme digits: all 8, all −8, alternating.
                for pattern in [[8i8, 8], [-8, -8], [8, -8], [-7, 1]] {
                    let d: [i8; VARBASE_DIGITS] = core::array::from_fn(|i| pattern[i % 2]);
                    let mut k = Scalar::ZERO;
                    for &x in d.iter().rev() {
                        k = k * Scalar::from(16u64) + signed(x);
                    }
                    cases.push((k, d));
                }
                let mut exceptional = 0;
                for (c, chunk) in cases.chunks(LANES).enumerate() {
                    let points: Vec<ProjectivePoint> = chunk.iter().map(|_| random_point(&mut rng)).collect();
                    let mults: Vec<_> = points.iter().map(multiples).collect();
                    let tables: Vec<Multiples> = mults.iter().map(table_of).collect();
                    let digits: Vec<[i8; VARBASE_DIGITS]> = chunk.iter().map(|c| c.1).collect();
                    let got = varbase(&tables, &digits);
                    for (l, (k, d)) in chunk.iter().enumerate() {
                        let what = std::format!("chunk {c} lane {l}");
                        let want = reference(&mults[l], d);
                        assert_lane(&got[l], want, &what);
                        match want {
                            Some(w) => assert_eq!(w, points[l] * k, "{what}: reference"),
                            None if *k == Scalar::ZERO => {}
                            None => exceptional += 1,
                        }
                    }
                }
                // Only scalars within 16 of n may meet the exceptional case.
                assert!(exceptional <= 16, "{exceptional} exceptional lanes");
                std::println!("varbase_edge_scalars: {} cases, {exceptional} exceptional (Z = 0)", cases.len());
            }

            #[test]
            fn varbase_exceptional_additions_give_z_zero() {
                if !ifma_or_skip("varbase_exceptional_additions_give_z_zero") {
                    return;
                }
                let mut rng = Digits(0x5151_7e7e_a5a5_0f0f);
                // A lying table: entry 8 holds 16P, so the digits 1 then ±8 add 16P to ±16P.
                let lying = |p: &ProjectivePoint| {
                    let mut m = multiples(p);
                    m[7] = p.double().double().double().double();
                    m
                };
                let top = VARBASE_DIGITS - 1;
                let mut cases: Vec<([ProjectivePoint; VARBASE_ENTRIES], [i8; VARBASE_DIGITS], bool)> = Vec::new();
                for (hi, lo, at, tail, exc) in [
                    (1i8, 8i8, top, false, true), // 16P + 16P: doubling case
                    (1, -8, top, false, true),    // 16P − 16P: opposite case
                    (-1, -8, top, true, true),    // exceptional early, more digits after it
                    (1, 8, 1, false, true),       // at the last digit
                    (1, 7, top, true, false),     // 16P + 7P: regular
                    (-2, 8, top, true, false),    // −32P + 16P: regular
                    (1, 8, 30, true, true),       // in the middle, random digits after
                ] {
                    let p = random_point(&mut rng);
                    let mut d = [0i8; VARBASE_DIGITS];
                    d[at] = hi;
                    d[at - 1] = lo;
                    if tail {
                        for x in d[..at - 1].iter_mut() {
                            *x = (rng.next() % 17) as i8 - 8;
                        }
                    }
                    cases.push((lying(&p), d, exc));
                }
                // An honest lane alongside.
                let p = random_point(&mut rng);
                let k = random_scalar(&mut rng);
                cases.push((multiples(&p), recode(&k), false));
                let tables: Vec<Multiples> = cases.iter().map(|c| table_of(&c.0)).collect();
                let digits: Vec<[i8; VARBASE_DIGITS]> = cases.iter().map(|c| c.1).collect();
                let got = varbase(&tables, &digits);
                for (l, (mults, d, exc)) in cases.iter().enumerate() {
                    let what = std::format!("lane {l}");
                    let want = reference(mults, d);
                    assert_eq!(want.is_none(), *exc, "{what}: the reference disagrees with the case");
                    assert_eq!(got[l].z_is_zero(), *exc, "{what}: Z = 0");
                    assert_lane(&got[l], want, &what);
                }
                assert_same_point(&got[LANES - 1], &(p * k), "honest lane");
            }

            #[test]
            fn varbase_lanes_are_independent() {
                if !ifma_or_skip("varbase_lanes_are_independent") {
                    return;
                }
                let mut rng = Digits(0x0123_4567_89ab_cdef);
                let points: Vec<ProjectivePoint> = (0..LANES).map(|_| random_point(&mut rng)).collect();
                let mut tables: Vec<Multiples> = points.iter().map(|p| table_of(&multiples(p))).collect();
                let mut digits: Vec<[i8; VARBASE_DIGITS]> =
                    (0..LANES).map(|_| recode(&random_scalar(&mut rng))).collect();
                let before = varbase(&tables, &digits);
                // Lane 3: another point and other digits, then zero digits.
                tables[3] = table_of(&multiples(&random_point(&mut rng)));
                digits[3] = recode(&random_scalar(&mut rng));
                let after = varbase(&tables, &digits);
                digits[3] = [0; VARBASE_DIGITS];
                let zeroed = varbase(&tables, &digits);
                assert!(zeroed[3].z_is_zero(), "lane 3 with zero digits");
                for l in (0..LANES).filter(|&l| l != 3) {
                    for other in [&after, &zeroed] {
                        assert_eq!(
                            (before[l].x, before[l].y, before[l].z),
                            (other[l].x, other[l].y, other[l].z),
                            "lane {l} changed with lane 3"
                        );
                    }
                }
                assert_ne!((before[3].x, before[3].z), (after[3].x, after[3].z));
                // And fewer lanes than eight give the same results for the lanes given.
                let three = varbase(&tables[4..7], &digits[4..7]);
                for (l, got) in (4..7).zip(&three) {
                    assert_eq!((got.x, got.y, got.z), (after[l].x, after[l].y, after[l].z), "lane {l} alone");
                }
            }

            #[test]
            #[should_panic(expected = "a digit is outside [-8, 8]")]
            fn varbase_digits_beyond_eight_are_refused() {
                let mut rng = Digits(7);
                let tables = [table_of(&multiples(&random_point(&mut rng)))];
                let mut digits = [[0i8; VARBASE_DIGITS]];
                digits[0][17] = -9;
                let _ = varbase_mul8::<C>(&tables, &digits);
            }

            #[test]
            #[should_panic(expected = "a coordinate is not below p")]
            fn varbase_coordinates_not_below_p_are_refused() {
                let mut rng = Digits(8);
                let mut tables = [table_of(&multiples(&random_point(&mut rng)))];
                tables[0][5][1] = p_of::<C>().to_be_bytes().into();
                let _ = varbase_mul8::<C>(&tables, &[[0i8; VARBASE_DIGITS]]);
            }

            #[test]
            #[should_panic(expected = "lanes")]
            fn varbase_no_lanes_are_refused() {
                let _ = varbase_mul8::<C>(&[], &[]);
            }

            #[test]
            #[should_panic(expected = "lanes")]
            fn varbase_nine_lanes_are_refused() {
                let tables = [[[[1u8; 32]; 2]; VARBASE_ENTRIES]; LANES + 1];
                let _ = varbase_mul8::<C>(&tables, &[[0i8; VARBASE_DIGITS]; LANES + 1]);
            }

            #[test]
            #[should_panic(expected = "one row of digits per table")]
            fn varbase_mismatched_lengths_are_refused() {
                let tables = [[[[1u8; 32]; 2]; VARBASE_ENTRIES]; 2];
                let _ = varbase_mul8::<C>(&tables, &[[0i8; VARBASE_DIGITS]; 3]);
            }
        }
    };
}

curve_tests!(sm2_curve, Sm2, sm2);
curve_tests!(p256_curve, P256, p256);

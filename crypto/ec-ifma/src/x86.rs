//! The AVX-512 IFMA kernels: field arithmetic modulo the curve's prime on eight lanes (one
//! field element per 64-bit lane, five 52-bit limbs in five `zmm` registers), the
//! madd-2007-bl mixed addition and the dbl-2001-b doubling on it, the comb loop and the
//! variable-base loop. Every function is compiled for AVX-512 F and IFMA and reached only
//! through [`comb8`], [`varbase8`] and [`to_montgomery8`], which the crate calls only after
//! detecting both.

use core::arch::x86_64::*;

use crate::{Curve, ENTRY_LIMBS, LANES, MASK52, VARBASE_DIGITS, VARBASE_ENTRIES};

cpufeatures::new!(cpuid_ifma, "avx512f", "avx512ifma");

pub(crate) fn available() -> bool {
    cpuid_ifma::get()
}

type V = __m512i;

/// Eight field elements, limb-major: `0[t]` holds limb t of every lane.
#[derive(Clone, Copy)]
struct Fe([V; 5]);

#[target_feature(enable = "avx512f")]
#[inline]
fn splat(x: u64) -> V {
    _mm512_set1_epi64(x as i64)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn constant(c: &[u64; 5]) -> Fe {
    Fe([splat(c[0]), splat(c[1]), splat(c[2]), splat(c[3]), splat(c[4])])
}

/// Signed carry ripple: limbs 0–3 into [0, 2^52), the rest into limb 4. The value must be
/// non-negative.
#[target_feature(enable = "avx512f")]
#[inline]
fn normalize(mut t: [V; 5]) -> Fe {
    let mask = splat(MASK52);
    for i in 0..4 {
        let c = _mm512_srai_epi64::<52>(t[i]);
        t[i] = _mm512_and_si512(t[i], mask);
        t[i + 1] = _mm512_add_epi64(t[i + 1], c);
    }
    Fe(t)
}

/// A normalized value below 2^271 → the same value mod p, normalized and below 2^257: the
/// bits from 2^256 up (h) come back as h · (2^256 mod p), a sum of four signed powers of two
/// (`Curve::FOLD`). The total stays non-negative: the leading term is +2^224 for both curves.
#[target_feature(enable = "avx512f")]
#[inline]
fn fold<C: Curve>(a: Fe) -> Fe {
    let mut t = a.0;
    let h = _mm512_srli_epi64::<48>(t[4]);
    t[4] = _mm512_and_si512(t[4], splat((1 << 48) - 1));
    for &(limb, shift, negative) in &C::FOLD {
        let term = _mm512_sllv_epi64(h, splat(shift));
        t[limb] = if negative { _mm512_sub_epi64(t[limb], term) } else { _mm512_add_epi64(t[limb], term) };
    }
    normalize(t)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn add<C: Curve>(a: &Fe, b: &Fe) -> Fe {
    fold::<C>(normalize(core::array::from_fn(|i| _mm512_add_epi64(a.0[i], b.0[i]))))
}

#[target_feature(enable = "avx512f")]
#[inline]
fn dbl<C: Curve>(a: &Fe) -> Fe {
    fold::<C>(normalize(core::array::from_fn(|i| _mm512_slli_epi64::<1>(a.0[i]))))
}

/// a − b as a + 8p − b (b < 2^257 < 8p keeps it positive).
#[target_feature(enable = "avx512f")]
#[inline]
fn sub<C: Curve>(a: &Fe, b: &Fe) -> Fe {
    let p8 = constant(&C::P8_52);
    fold::<C>(normalize(core::array::from_fn(|i| _mm512_sub_epi64(_mm512_add_epi64(a.0[i], p8.0[i]), b.0[i]))))
}

/// p − a for 0 ≤ a ≤ p (table coordinates are fully reduced).
#[target_feature(enable = "avx512f")]
#[inline]
fn neg_reduced<C: Curve>(a: &Fe) -> Fe {
    let p = constant(&C::P52);
    normalize(core::array::from_fn(|i| _mm512_sub_epi64(p.0[i], a.0[i])))
}

/// Montgomery reduction of a ten-limb product: t / 2^260 mod p, below 1.25p for t below
/// 2^514 (a product of two values below 2^257). Five rounds of "add m · p · 2^(52·i) with m
/// the low limb, carry that limb up": both primes are ≡ −1 (mod 2^64), so −p^−1 ≡ 1
/// (mod 2^52) and m needs no multiplication. A limb of p that is all ones (2^52 − 1) adds
/// m · 2^52 − m as −m and +m on two limbs, and a zero limb adds nothing, so only p's other
/// limbs cost IFMA instructions (SM2: two of five, P-256: three). Limbs may go negative in
/// between (two's complement lanes, carried with arithmetic shifts); the value does not.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn redc<C: Curve>(mut t: [V; 10]) -> Fe {
    let mask = splat(MASK52);
    for i in 0..5 {
        let m = _mm512_and_si512(t[i], mask);
        for (j, &pj) in C::P52.iter().enumerate() {
            if pj == MASK52 {
                // At j = 0 the −m only clears t[i]'s low bits, which the carry below drops.
                if j > 0 {
                    t[i + j] = _mm512_sub_epi64(t[i + j], m);
                }
                t[i + j + 1] = _mm512_add_epi64(t[i + j + 1], m);
            } else if pj != 0 {
                let pj = splat(pj);
                t[i + j] = _mm512_madd52lo_epu64(t[i + j], pj, m);
                t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], pj, m);
            }
        }
        // t[i] ≡ m (mod 2^52) if p's low limb is all ones, ≡ 0 otherwise: either way the
        // exact quotient by 2^52 of (t[i] + m · p₀) is the arithmetic shift.
        let c = _mm512_srai_epi64::<52>(t[i]);
        t[i + 1] = _mm512_add_epi64(t[i + 1], c);
    }
    normalize([t[5], t[6], t[7], t[8], t[9]])
}

/// Montgomery product a · b / 2^260 mod p, below 1.25p for a, b below 2^257 (normalized):
/// the 25 partial products into ten limbs, then [`redc`].
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn mul<C: Curve>(a: &Fe, b: &Fe) -> Fe {
    let mut t = [_mm512_setzero_si512(); 10];
    for i in 0..5 {
        for j in 0..5 {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a.0[i], b.0[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a.0[i], b.0[j]);
        }
    }
    redc::<C>(t)
}

/// a² / 2^260 mod p: the ten cross products once, doubled, plus the five squares (15
/// products instead of 25), then [`redc`].
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn sq<C: Curve>(a: &Fe) -> Fe {
    let mut t = [_mm512_setzero_si512(); 10];
    for i in 0..5 {
        for j in i + 1..5 {
            t[i + j] = _mm512_madd52lo_epu64(t[i + j], a.0[i], a.0[j]);
            t[i + j + 1] = _mm512_madd52hi_epu64(t[i + j + 1], a.0[i], a.0[j]);
        }
    }
    for v in t.iter_mut() {
        *v = _mm512_slli_epi64::<1>(*v);
    }
    for i in 0..5 {
        t[2 * i] = _mm512_madd52lo_epu64(t[2 * i], a.0[i], a.0[i]);
        t[2 * i + 1] = _mm512_madd52hi_epu64(t[2 * i + 1], a.0[i], a.0[i]);
    }
    redc::<C>(t)
}

/// A normalized value below 2p → the same value fully reduced (below p): a − p, unless that
/// is negative. The signed carry ripple of [`normalize`] leaves limbs 0–3 in [0, 2^52) and
/// the sign of the whole value in limb 4, so a negative difference shows as a negative limb 4.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce_full<C: Curve>(a: &Fe) -> Fe {
    let p = constant(&C::P52);
    let d = normalize(core::array::from_fn(|i| _mm512_sub_epi64(a.0[i], p.0[i])));
    let negative = _mm512_cmplt_epi64_mask(d.0[4], _mm512_setzero_si512());
    blend(negative, &d, a)
}

/// `if k[lane] { b } else { a }` per lane.
#[target_feature(enable = "avx512f")]
#[inline]
fn blend(k: __mmask8, a: &Fe, b: &Fe) -> Fe {
    Fe(core::array::from_fn(|i| _mm512_mask_mov_epi64(a.0[i], k, b.0[i])))
}

/// Eight Jacobian points.
#[derive(Clone, Copy)]
struct Point {
    x: Fe,
    y: Fe,
    z: Fe,
}

/// madd-2007-bl: (X1, Y1, Z1) + (x2, y2), the same formula as the firmware's
/// `add_affine_ct_lanes`. Wrong (Z3 = 0) when the two points are equal or opposite.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn madd<C: Curve>(p: &Point, qx: &Fe, qy: &Fe) -> Point {
    let z1z1 = sq::<C>(&p.z);
    let u2 = mul::<C>(qx, &z1z1);
    let s2 = mul::<C>(&mul::<C>(qy, &p.z), &z1z1);
    let h = sub::<C>(&u2, &p.x);
    let hh = sq::<C>(&h);
    let i = dbl::<C>(&dbl::<C>(&hh));
    let j = mul::<C>(&h, &i);
    let r = dbl::<C>(&sub::<C>(&s2, &p.y));
    let v = mul::<C>(&p.x, &i);
    let x3 = sub::<C>(&sub::<C>(&sq::<C>(&r), &j), &dbl::<C>(&v));
    let y3 = sub::<C>(&mul::<C>(&r, &sub::<C>(&v, &x3)), &dbl::<C>(&mul::<C>(&p.y, &j)));
    let z3 = sub::<C>(&sub::<C>(&sq::<C>(&add::<C>(&p.z, &h)), &z1z1), &hh);
    Point { x: x3, y: y3, z: z3 }
}

/// 2P (dbl-2001-b, a = −3: 3M + 5S), step for step the firmware's `Jacobian::double`:
/// δ = Z², γ = Y², β = X·γ, α = 3(X − δ)(X + δ), X3 = α² − 8β, Z3 = (Y + Z)² − γ − δ,
/// Y3 = α(4β − X3) − 8γ². Every intermediate comes out of `mul`/`sq` (below 1.25p) or
/// `add`/`sub`/`dbl` (below 2^257), so the inputs of every step stay below 2^257. The
/// identity (Z = 0) doubles to Z3 = 2YZ = 0. Both curves have a = −3.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn double<C: Curve>(p: &Point) -> Point {
    let delta = sq::<C>(&p.z);
    let gamma = sq::<C>(&p.y);
    let beta = mul::<C>(&p.x, &gamma);
    let t = mul::<C>(&sub::<C>(&p.x, &delta), &add::<C>(&p.x, &delta));
    let alpha = add::<C>(&dbl::<C>(&t), &t);
    let beta4 = dbl::<C>(&dbl::<C>(&beta));
    let x3 = sub::<C>(&sq::<C>(&alpha), &dbl::<C>(&beta4));
    let z3 = sub::<C>(&sub::<C>(&sq::<C>(&add::<C>(&p.y, &p.z)), &gamma), &delta);
    let gamma2_8 = dbl::<C>(&dbl::<C>(&dbl::<C>(&sq::<C>(&gamma))));
    let y3 = sub::<C>(&mul::<C>(&alpha, &sub::<C>(&beta4, &x3)), &gamma2_8);
    Point { x: x3, y: y3, z: z3 }
}

/// Window `w` of the table (entries × 10 limbs): every lane's entry |d| − 1, all entries read.
#[target_feature(enable = "avx512f")]
#[inline]
fn select(window: &[u64], entries: usize, abs: V) -> (Fe, Fe) {
    let zero = _mm512_setzero_si512();
    let mut t = [zero; ENTRY_LIMBS];
    for j in 0..entries {
        let k = _mm512_cmpeq_epi64_mask(abs, splat(j as u64 + 1));
        let e = &window[j * ENTRY_LIMBS..(j + 1) * ENTRY_LIMBS];
        for (t, &e) in t.iter_mut().zip(e) {
            *t = _mm512_mask_mov_epi64(*t, k, splat(e));
        }
    }
    (Fe([t[0], t[1], t[2], t[3], t[4]]), Fe([t[5], t[6], t[7], t[8], t[9]]))
}

/// Every lane's multiple |d| · P_l from its own table (`mults[j]` holds (j + 1) · P_l in lane
/// l): all eight entries read, the wanted one kept per lane with a compare mask and a masked
/// move. |d| = 0 gives (0, 0), which the caller discards.
#[target_feature(enable = "avx512f")]
#[inline]
fn select_multiple(mults: &[[Fe; 2]; VARBASE_ENTRIES], abs: V) -> (Fe, Fe) {
    let zero = Fe([_mm512_setzero_si512(); 5]);
    let (mut x, mut y) = (zero, zero);
    for (j, m) in mults.iter().enumerate() {
        let k = _mm512_cmpeq_epi64_mask(abs, splat(j as u64 + 1));
        x = blend(k, &x, &m[0]);
        y = blend(k, &y, &m[1]);
    }
    (x, y)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn store(v: V, out: &mut [u64; LANES]) {
    // SAFETY: `out` is 8 writable u64, exactly the 64 bytes written; `storeu` has no
    // alignment requirement.
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn load(x: &[u64; LANES]) -> V {
    // SAFETY: `x` is 8 readable u64, exactly the 64 bytes read; `loadu` has no alignment
    // requirement.
    unsafe { _mm512_loadu_si512(x.as_ptr().cast()) }
}

/// Leave the Montgomery domain (a · 1 / R: at most p) and store limb-major.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn store_plain<C: Curve>(a: &Fe, out: &mut [[u64; LANES]; 5]) {
    let one = constant(&[1, 0, 0, 0, 0]);
    let v = mul::<C>(a, &one);
    for (v, out) in v.0.iter().zip(out.iter_mut()) {
        store(*v, out);
    }
}

/// Eight values (52-bit limbs, below p) times R mod p (below 1.25p).
///
/// # Safety
/// The CPU must have AVX-512 F and IFMA.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn to_montgomery8<C: Curve>(input: &[[u64; LANES]; 5], out: &mut [[u64; LANES]; 5]) {
    let a = Fe(core::array::from_fn(|i| load(&input[i])));
    let v = mul::<C>(&a, &constant(&C::R2_52));
    for (v, out) in v.0.iter().zip(out.iter_mut()) {
        store(*v, out);
    }
}

/// The comb: for every lane, Σ d_i · 2^(w·i) · G, leaving X, Y, Z (at most p, not yet reduced)
/// limb-major in `out[0]`, `out[1]`, `out[2]`; Z = 0 for a lane that met an exceptional case
/// or whose digits are all zero.
///
/// # Safety
/// The CPU must have AVX-512 F and IFMA; `table` must hold `windows · entries · 10` limbs and
/// `digits` `windows` rows, each |digit| ≤ entries.
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn comb8<C: Curve>(
    table: &[u64],
    windows: usize,
    entries: usize,
    digits: &[[i8; LANES]],
    out: &mut [[[u64; LANES]; 5]; 3],
) {
    let zero = _mm512_setzero_si512();
    let one = constant(&C::ONE_52);
    let stride = entries * ENTRY_LIMBS;
    let mut acc = Point { x: one, y: one, z: Fe([zero; 5]) };
    // Lanes whose accumulator is still the identity (nothing added yet).
    let mut empty: __mmask8 = 0xff;
    for (i, row) in digits.iter().enumerate().take(windows) {
        let d = _mm512_set_epi64(
            i64::from(row[7]),
            i64::from(row[6]),
            i64::from(row[5]),
            i64::from(row[4]),
            i64::from(row[3]),
            i64::from(row[2]),
            i64::from(row[1]),
            i64::from(row[0]),
        );
        let window = &table[i * stride..(i + 1) * stride];
        acc = add_digit::<C>(&acc, &mut empty, d, &one, |abs| select(window, entries, abs));
    }
    store_result::<C>(&acc, empty, out);
}

/// One step of both kernels: every lane's accumulator plus its digit d's multiple, given
/// `multiple(|d|)` (read by masks, never by index), negated where d < 0. An empty
/// accumulator becomes the multiple itself (Z = 1); a zero digit keeps the accumulator;
/// `empty` stays set only for lanes that have added nothing yet.
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn add_digit<C: Curve>(
    acc: &Point,
    empty: &mut __mmask8,
    d: V,
    one: &Fe,
    multiple: impl FnOnce(V) -> (Fe, Fe),
) -> Point {
    let zero = _mm512_setzero_si512();
    let abs = _mm512_abs_epi64(d);
    let negative = _mm512_cmplt_epi64_mask(d, zero);
    let is_zero = _mm512_cmpeq_epi64_mask(abs, zero);
    let (qx, qy) = multiple(abs);
    let qy = blend(negative, &qy, &neg_reduced::<C>(&qy));
    let sum = madd::<C>(acc, &qx, &qy);
    let sum = Point { x: blend(*empty, &sum.x, &qx), y: blend(*empty, &sum.y, &qy), z: blend(*empty, &sum.z, one) };
    *empty &= is_zero;
    Point { x: blend(is_zero, &sum.x, &acc.x), y: blend(is_zero, &sum.y, &acc.y), z: blend(is_zero, &sum.z, &acc.z) }
}

/// Store X, Y, Z of `acc` limb-major into `out`, with Z = 0 for the lanes still `empty` (a
/// lane that added nothing is the identity).
#[target_feature(enable = "avx512f,avx512ifma")]
#[inline]
fn store_result<C: Curve>(acc: &Point, empty: __mmask8, out: &mut [[[u64; LANES]; 5]; 3]) {
    let z = blend(empty, &acc.z, &Fe([_mm512_setzero_si512(); 5]));
    store_plain::<C>(&acc.x, &mut out[0]);
    store_plain::<C>(&acc.y, &mut out[1]);
    store_plain::<C>(&z, &mut out[2]);
}

/// The signed digits of step `i` of every lane, one lane per 64-bit element.
#[target_feature(enable = "avx512f")]
#[inline]
fn digit_vector(digits: &[[i8; VARBASE_DIGITS]; LANES], i: usize) -> V {
    _mm512_set_epi64(
        i64::from(digits[7][i]),
        i64::from(digits[6][i]),
        i64::from(digits[5][i]),
        i64::from(digits[4][i]),
        i64::from(digits[3][i]),
        i64::from(digits[2][i]),
        i64::from(digits[1][i]),
        i64::from(digits[0][i]),
    )
}

/// Variable base, eight lanes each with its own point: for every lane l,
/// Σ_i digits\[l\]\[i\] · 16^i · P_l, where `table[j][c]` holds coordinate c (x, y) of
/// (j + 1) · P_l in lane l as plain 52-bit limbs below p. Leaves X, Y, Z (at most p, not yet
/// reduced) limb-major in `out[0]`, `out[1]`, `out[2]`; Z = 0 for a lane that met an
/// exceptional case of `madd` or whose digits are all zero.
///
/// Z = 0 is absorbing, so an exceptional case anywhere reaches the output: once a lane's Z
/// is ≡ 0 (mod p), a doubling gives Z3 = (Y + Z)² − Y² − Z² ≡ 2YZ ≡ 0, a `madd` gives
/// Z3 = (Z1 + H)² − Z1² − H² ≡ 2·Z1·H ≡ 0, a zero digit keeps the accumulator, and the
/// "empty" blend no longer applies (it only ever turns off). The final reduction maps any
/// multiple of p that Z may be below 2^257 to 0.
///
/// # Safety
/// The CPU must have AVX-512 F and IFMA; every coordinate in `table` must be below p and every
/// digit in [−8, 8].
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn varbase8<C: Curve>(
    table: &[[[[u64; LANES]; 5]; 2]; VARBASE_ENTRIES],
    digits: &[[i8; VARBASE_DIGITS]; LANES],
    out: &mut [[[u64; LANES]; 5]; 3],
) {
    let zero = _mm512_setzero_si512();
    let one = constant(&C::ONE_52);
    let r2 = constant(&C::R2_52);
    // The multiples into Montgomery form (x · R² / R, below 1.25p), then fully reduced:
    // `neg_reduced` needs y ≤ p. Public data.
    let mut mults = [[Fe([zero; 5]); 2]; VARBASE_ENTRIES];
    for (m, t) in mults.iter_mut().zip(table) {
        for (m, t) in m.iter_mut().zip(t) {
            let plain = Fe(core::array::from_fn(|i| load(&t[i])));
            *m = reduce_full::<C>(&mul::<C>(&plain, &r2));
        }
    }
    let mut acc = Point { x: one, y: one, z: Fe([zero; 5]) };
    // Lanes whose accumulator is still the identity (nothing added yet).
    let mut empty: __mmask8 = 0xff;
    for i in (0..VARBASE_DIGITS).rev() {
        // Before the top digit the accumulator is the identity in every lane: nothing to
        // double (the condition depends on the loop counter only).
        if i + 1 < VARBASE_DIGITS {
            acc = double::<C>(&double::<C>(&double::<C>(&double::<C>(&acc))));
        }
        let d = digit_vector(digits, i);
        acc = add_digit::<C>(&acc, &mut empty, d, &one, |abs| select_multiple(&mults, abs));
    }
    store_result::<C>(&acc, empty, out);
}

/// [`reduce_full`] on eight values in 52-bit limbs, limb-major (for the tests: the kernel's
/// own inputs reach p or more only about once in 2^26, R² mod p being about 2^234 for both
/// primes).
///
/// # Safety
/// The CPU must have AVX-512 F and IFMA; every value must be normalized and below 2p.
#[cfg(test)]
#[target_feature(enable = "avx512f,avx512ifma")]
pub(crate) unsafe fn reduce_full8<C: Curve>(input: &[[u64; LANES]; 5], out: &mut [[u64; LANES]; 5]) {
    let a = Fe(core::array::from_fn(|i| load(&input[i])));
    let v = reduce_full::<C>(&a);
    for (v, out) in v.0.iter().zip(out.iter_mut()) {
        store(*v, out);
    }
}

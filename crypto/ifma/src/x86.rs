//! The AVX-512 IFMA kernel: almost-Montgomery multiplication on L limbs of 52 bits held in
//! Z `zmm` registers and, if L > 8·Z, one `ymm` (lanes 0–7, …, 8Z–8Z+3), and the fixed-window
//! exponentiation on it. Every function here is compiled for AVX-512 F, VL and IFMA and is
//! reached only through [`pow`], which the crate calls only after detecting all three.

use core::arch::x86_64::*;

use crate::{Lanes, MASK52, Scratch, WINDOW};

cpufeatures::new!(cpuid_ifma, "avx512f", "avx512vl", "avx512ifma");

pub(crate) fn available() -> bool {
    cpuid_ifma::get()
}

/// The largest Z this kernel is used with (the limbs of a 2048-bit modulus).
const MAX_Z: usize = 5;

/// A number in registers: lanes 0–7, 8–15, … in `z`, and lanes 8Z–8Z+3 in `t` if L > 8·Z
/// (the `tail`; otherwise `t` stays zero and no instruction touches it). The `ymm` part costs
/// half a `zmm` multiply on Zen 4 (512-bit operations are issued as two 256-bit halves), so
/// for 20 limbs the four lanes a third `zmm` would waste are not paid for.
#[derive(Clone, Copy)]
struct Num<const Z: usize> {
    z: [__m512i; Z],
    t: __m256i,
}

/// Whether L limbs need the `ymm` tail after Z `zmm` (a public, compile-time shape).
const fn tail<const L: usize, const Z: usize>() -> bool {
    L > 8 * Z
}

#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn num_zero<const Z: usize>() -> Num<Z> {
    Num { z: [_mm512_setzero_si512(); Z], t: _mm256_setzero_si256() }
}

#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn load<const L: usize, const Z: usize>(x: &Lanes<Z>) -> Num<Z> {
    let mut r = num_zero::<Z>();
    for (r, x) in r.z.iter_mut().zip(&x.z) {
        // SAFETY: `x` is 8 readable u64, so the 64-byte read stays inside it; `loadu` has no
        // alignment requirement.
        *r = unsafe { _mm512_loadu_si512(x.as_ptr().cast()) };
    }
    if tail::<L, Z>() {
        // SAFETY: `x.t` is 4 readable u64, a 32-byte read; no alignment requirement.
        r.t = unsafe { _mm256_loadu_si256(x.t.as_ptr().cast()) };
    }
    r
}

#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn store<const L: usize, const Z: usize>(x: &mut Lanes<Z>, v: Num<Z>) {
    for (x, v) in x.z.iter_mut().zip(v.z) {
        // SAFETY: as in `load`, for writes; `storeu` has no alignment requirement.
        unsafe { _mm512_storeu_si512(x.as_mut_ptr().cast(), v) };
    }
    if tail::<L, Z>() {
        // SAFETY: as in `load`, for writes.
        unsafe { _mm256_storeu_si256(x.t.as_mut_ptr().cast(), v.t) };
    }
}

/// The canonical 52-bit limbs of the value Σ r_j·2^(52j), for lanes below 2^63 and a value
/// below 2^(52·L).
///
/// Two rounds of "keep the low 52 bits, add the high bits to the next lane" leave every
/// lane ≤ 2^52 (after the first, lanes are < 2^52 + 2^12; after the second, the carries are
/// 0 or 1). The last carry ripple is an addition of bit masks: lane i is *generating* (g_i)
/// if it equals 2^52 and *propagating* (p_i) if it equals 2^52 − 1; the carry into lane i+1
/// is g_i | (p_i & carry into i), which are exactly the carries of the integer addition
/// g + (g | p), so the lanes that receive a carry are (g + (g | p)) ^ p. Those get +1, then
/// every lane is masked to 52 bits. No branch and no data-dependent address. (At most 44
/// lanes: the masks fit a u64.)
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn normalize<const L: usize, const Z: usize>(mut r: Num<Z>) -> Num<Z> {
    let mask = _mm512_set1_epi64(MASK52 as i64);
    let mask4 = _mm256_set1_epi64x(MASK52 as i64);
    let zero = _mm512_setzero_si512();
    for _ in 0..2 {
        let c: [__m512i; Z] = core::array::from_fn(|j| _mm512_srli_epi64::<52>(r.z[j]));
        // The carries one lane up: [0, c0[0..7]], [c0[7], c1[0..7]], …, [c_{Z−1}[7], ct[0..3]].
        for j in 0..Z {
            let below = if j == 0 { zero } else { c[j - 1] };
            r.z[j] = _mm512_add_epi64(_mm512_and_si512(r.z[j], mask), _mm512_alignr_epi64::<7>(c[j], below));
        }
        if tail::<L, Z>() {
            let ct = _mm256_srli_epi64::<52>(r.t);
            let up = _mm256_alignr_epi64::<3>(ct, _mm512_extracti64x4_epi64::<1>(c[Z - 1]));
            r.t = _mm256_add_epi64(_mm256_and_si256(r.t, mask4), up);
        }
    }
    let (mut g, mut p) = (0u64, 0u64);
    for j in 0..Z {
        g |= (_mm512_cmpgt_epu64_mask(r.z[j], mask) as u64) << (8 * j);
        p |= (_mm512_cmpeq_epi64_mask(r.z[j], mask) as u64) << (8 * j);
    }
    if tail::<L, Z>() {
        g |= (_mm256_cmpgt_epu64_mask(r.t, mask4) as u64) << (8 * Z);
        p |= (_mm256_cmpeq_epi64_mask(r.t, mask4) as u64) << (8 * Z);
    }
    let carry_in = (g.wrapping_add(g | p)) ^ p;
    let one = _mm512_set1_epi64(1);
    for j in 0..Z {
        let k = (carry_in >> (8 * j)) as __mmask8;
        r.z[j] = _mm512_and_si512(_mm512_mask_add_epi64(r.z[j], k, r.z[j], one), mask);
    }
    if tail::<L, Z>() {
        let k = (carry_in >> (8 * Z)) as __mmask8;
        r.t = _mm256_and_si256(_mm256_mask_add_epi64(r.t, k, r.t, _mm256_set1_epi64x(1)), mask4);
    }
    r
}

/// Almost-Montgomery multiplication, K independent ones interleaved (two hide each other's
/// latency): a·b·2^−(52·L) mod m, as a number < 2m with canonical limbs, for a, b < 2m
/// (canonical limbs) and 4m < 2^(52·L) (see the crate docs for the bound).
///
/// Operand scanning over the limbs of b: r += a·b_i (low halves), r += m·y (low halves) for
/// y = (r_0 + a_0·b_i)·k0 mod 2^52, which makes r_0 ≡ 0 mod 2^52; r ← r / 2^52 (lanes down
/// by one, the high bits of r_0 added to the new lane 0), then the high halves of a·b_i and
/// m·y, which belong one limb up and so land on the shifted lanes as they are.
///
/// Latency: the chain from one step's r to the next is only the broadcast of r_0, y, m·y,
/// the shift and one addition. y = lo52(r_0·k0) + lo52((a_0·k0 mod 2^52)·b_i), the second
/// term computed off the chain (the multiplier reads only the low 52 bits of y); the high
/// halves are summed into a separate register and added after the shift in one step.
///
/// Lanes are not normalized inside the loop: each gains less than 4·2^52 + 2^12 per step,
/// under 2^60 after 40 steps. Lanes at and above L stay zero (those of a and m are zero, and
/// the shift brings in zeros).
#[target_feature(enable = "avx512f,avx512vl,avx512ifma")]
#[inline]
fn amm<const L: usize, const Z: usize, const K: usize>(
    a: &[Num<Z>; K],
    b: [&Lanes<Z>; K],
    m: &[Num<Z>; K],
    k0: &[__m512i; K],
) -> [Num<Z>; K] {
    const { assert!(Z <= MAX_Z) };
    let zero = _mm512_setzero_si512();
    let zero4 = _mm256_setzero_si256();
    let mut r = [num_zero::<Z>(); K];
    let zero2 = _mm_setzero_si128();
    // a_0·k0 mod 2^52 (lane 0; only lane 0 of the `xmm` values below matters).
    let k0: [__m128i; K] = core::array::from_fn(|k| _mm512_castsi512_si128(k0[k]));
    let a0k0: [__m128i; K] =
        core::array::from_fn(|k| _mm_madd52lo_epu64(zero2, _mm512_castsi512_si128(a[k].z[0]), k0[k]));
    for i in 0..L {
        for k in 0..K {
            let (r, a, m) = (&mut r[k], &a[k], &m[k]);
            let bi = _mm512_set1_epi64(b[k].get(i) as i64);
            let bi4 = _mm512_castsi512_si256(bi);
            // Off the chain: a_0·b_i·k0 mod 2^52 and the high halves of a·b_i.
            let u = _mm_madd52lo_epu64(zero2, a0k0[k], _mm512_castsi512_si128(bi));
            let mut h = num_zero::<Z>();
            for j in 0..Z {
                h.z[j] = _mm512_madd52hi_epu64(zero, a.z[j], bi);
            }
            if tail::<L, Z>() {
                h.t = _mm256_madd52hi_epu64(zero4, a.t, bi4);
            }
            let y = _mm512_broadcastq_epi64(_mm_madd52lo_epu64(u, _mm512_castsi512_si128(r.z[0]), k0[k]));
            let y4 = _mm512_castsi512_si256(y);
            for j in 0..Z {
                r.z[j] = _mm512_madd52lo_epu64(r.z[j], a.z[j], bi);
            }
            if tail::<L, Z>() {
                r.t = _mm256_madd52lo_epu64(r.t, a.t, bi4);
            }
            for j in 0..Z {
                r.z[j] = _mm512_madd52lo_epu64(r.z[j], m.z[j], y);
            }
            if tail::<L, Z>() {
                r.t = _mm256_madd52lo_epu64(r.t, m.t, y4);
            }
            for j in 0..Z {
                h.z[j] = _mm512_madd52hi_epu64(h.z[j], m.z[j], y);
            }
            if tail::<L, Z>() {
                h.t = _mm256_madd52hi_epu64(h.t, m.t, y4);
            }
            let carry = _mm512_maskz_srli_epi64::<52>(1, r.z[0]);
            // Lanes down by one; only lane 0 of the widened `ymm` part is read.
            for j in 0..Z {
                let above = if j + 1 < Z {
                    r.z[j + 1]
                } else if tail::<L, Z>() {
                    _mm512_castsi256_si512(r.t)
                } else {
                    zero
                };
                r.z[j] = _mm512_add_epi64(_mm512_alignr_epi64::<1>(above, r.z[j]), h.z[j]);
            }
            r.z[0] = _mm512_add_epi64(r.z[0], carry);
            if tail::<L, Z>() {
                r.t = _mm256_add_epi64(_mm256_alignr_epi64::<1>(zero4, r.t), h.t);
            }
        }
    }
    for r in &mut r {
        *r = normalize::<L, Z>(*r);
    }
    r
}

/// table[idx] for a secret idx < 2^WINDOW: every entry is loaded and blended in under a
/// compare mask (`vpcmpeqq` into a mask register, `vpblendmq`), so the addresses and the
/// instructions are the same for every idx.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn select<const L: usize, const Z: usize>(table: &[Lanes<Z>; 1 << WINDOW], idx: u64) -> Num<Z> {
    let want = _mm512_set1_epi64(idx as i64);
    let mut r = num_zero::<Z>();
    for (i, entry) in table.iter().enumerate() {
        let k = _mm512_cmpeq_epi64_mask(want, _mm512_set1_epi64(i as i64));
        let e = load::<L, Z>(entry);
        for j in 0..Z {
            r.z[j] = _mm512_mask_mov_epi64(r.z[j], k, e.z[j]);
        }
        if tail::<L, Z>() {
            r.t = _mm256_mask_mov_epi64(r.t, k, e.t);
        }
    }
    r
}

/// `width` bits of `exp` from bit `pos` up (pos and width public, width < 64).
#[inline(always)]
fn window<const W: usize>(exp: &[u64; W], pos: usize, width: usize) -> u64 {
    let (limb, off) = (pos / 64, pos % 64);
    let mut v = exp[limb] >> off;
    if off + width > 64 && limb + 1 < exp.len() {
        v |= exp[limb + 1] << (64 - off);
    }
    v & ((1 << width) - 1)
}

/// One modulus of [`pow`]: m and R² = 2^(2·52·L) mod m (52-bit limbs), k0 = −m^−1 mod 2^52.
pub(crate) struct Modulus<'a, const Z: usize> {
    pub m: &'a Lanes<Z>,
    pub rr: &'a Lanes<Z>,
    pub k0: u64,
}

/// For each k < K: s[k].out ← the canonical limbs of a value ≤ m_k congruent to
/// s[k].base^exp[k] mod m_k, for s[k].base < m_k. Leaves secrets in `s` (the caller zeroizes).
///
/// Fixed 5-bit windows over all 64·W bits of each exponent: one top window of 64·W mod 5 bits
/// (or 5), then windows of five squarings and one multiplication by a table entry chosen by
/// [`select`]; the K exponentiations advance in lockstep through [`amm`].
#[target_feature(enable = "avx512f,avx512vl,avx512ifma")]
pub(crate) fn pow<const W: usize, const L: usize, const Z: usize, const K: usize>(
    ms: [Modulus<Z>; K],
    exp: [&[u64; W]; K],
    s: &mut [Scratch<Z>; K],
) {
    let mv: [Num<Z>; K] = core::array::from_fn(|k| load::<L, Z>(ms[k].m));
    let k0: [__m512i; K] = core::array::from_fn(|k| _mm512_set1_epi64(ms[k].k0 as i64));
    let mut unit = Lanes::<Z>::ZERO;
    unit.set(0, 1);
    // table[0] = R mod m (1 in the Montgomery domain), table[1] = base·R mod m, then
    // table[i] = table[i/2]² or table[i−1]·table[1]. One call site of `amm` for the whole
    // table (and one for the whole ladder below) keeps it inlined.
    for i in 0..1 << WINDOW {
        let a: [Num<Z>; K] = core::array::from_fn(|k| match i {
            0 => load::<L, Z>(ms[k].rr),
            1 => load::<L, Z>(&s[k].base),
            _ if i % 2 == 0 => load::<L, Z>(&s[k].table[i / 2]),
            _ => load::<L, Z>(&s[k].table[i - 1]),
        });
        for k in 0..K {
            s[k].tmp = match i {
                0 => unit,
                1 => *ms[k].rr,
                _ if i % 2 == 0 => s[k].table[i / 2],
                _ => s[k].table[1],
            };
        }
        let t = amm::<L, Z, K>(&a, core::array::from_fn(|k| &s[k].tmp), &mv, &k0);
        for k in 0..K {
            store::<L, Z>(&mut s[k].table[i], t[k]);
        }
    }
    let bits = 64 * W;
    let top = match bits % WINDOW {
        0 => WINDOW,
        r => r,
    };
    let mut pos = bits - top;
    let mut acc: [Num<Z>; K] = core::array::from_fn(|k| select::<L, Z>(&s[k].table, window(exp[k], pos, top)));
    while pos > 0 {
        pos -= WINDOW;
        // Five squarings, then one multiplication by the table entry of the window.
        for step in 0..=WINDOW {
            for k in 0..K {
                let v = if step < WINDOW { acc[k] } else { select::<L, Z>(&s[k].table, window(exp[k], pos, WINDOW)) };
                store::<L, Z>(&mut s[k].tmp, v);
            }
            acc = amm::<L, Z, K>(&acc, core::array::from_fn(|k| &s[k].tmp), &mv, &k0);
        }
    }
    // Out of the Montgomery domain: acc·R^−1 < (2m + R·m)/R < m + 1.
    acc = amm::<L, Z, K>(&acc, [&unit; K], &mv, &k0);
    for k in 0..K {
        store::<L, Z>(&mut s[k].out, acc[k]);
    }
}

//! The AVX-512 IFMA kernel: almost-Montgomery multiplication on 20 limbs of 52 bits held in
//! two `zmm` registers and one `ymm` (lanes 0–7, 8–15, 16–19), and the fixed-window
//! exponentiation on it. Every function here is compiled for AVX-512 F, VL and IFMA and is
//! reached only through [`pow`], which the crate calls only after detecting all three.

use core::arch::x86_64::*;

use crate::{LANES, LIMBS, MASK52, Scratch, WINDOW};

cpufeatures::new!(cpuid_ifma, "avx512f", "avx512vl", "avx512ifma");

pub(crate) fn available() -> bool {
    cpuid_ifma::get()
}

/// A number of 20 lanes in registers: lanes 0–7, 8–15 and 16–19. The `ymm` part costs half a
/// `zmm` multiply on Zen 4 (512-bit operations are issued as two 256-bit halves), so the
/// four lanes a third `zmm` would waste are not paid for.
#[derive(Clone, Copy)]
struct Num(__m512i, __m512i, __m256i);

#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn load(x: &[u64; LANES]) -> Num {
    // SAFETY: `x` is 24 readable u64, so the 64-byte reads at offsets 0 and 8 and the 32-byte
    // read at offset 16 stay inside it; `loadu` has no alignment requirement.
    unsafe {
        Num(
            _mm512_loadu_si512(x.as_ptr().cast()),
            _mm512_loadu_si512(x[8..].as_ptr().cast()),
            _mm256_loadu_si256(x[16..].as_ptr().cast()),
        )
    }
}

#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn store(x: &mut [u64; LANES], v: Num) {
    // SAFETY: as in `load`, for writes; `storeu` has no alignment requirement.
    unsafe {
        _mm512_storeu_si512(x.as_mut_ptr().cast(), v.0);
        _mm512_storeu_si512(x[8..].as_mut_ptr().cast(), v.1);
        _mm256_storeu_si256(x[16..].as_mut_ptr().cast(), v.2);
    }
}

/// The canonical 52-bit limbs of the value Σ r_j·2^(52j), for lanes below 2^63 and a value
/// below 2^1040.
///
/// Two rounds of "keep the low 52 bits, add the high bits to the next lane" leave every
/// lane ≤ 2^52 (after the first, lanes are < 2^52 + 2^12; after the second, the carries are
/// 0 or 1). The last carry ripple is an addition of bit masks: lane i is *generating* (g_i)
/// if it equals 2^52 and *propagating* (p_i) if it equals 2^52 − 1; the carry into lane i+1
/// is g_i | (p_i & carry into i), which are exactly the carries of the integer addition
/// g + (g | p), so the lanes that receive a carry are (g + (g | p)) ^ p. Those get +1, then
/// every lane is masked to 52 bits. No branch and no data-dependent address.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn normalize(mut r: Num) -> Num {
    let mask = _mm512_set1_epi64(MASK52 as i64);
    let mask4 = _mm256_set1_epi64x(MASK52 as i64);
    let zero = _mm512_setzero_si512();
    for _ in 0..2 {
        let (c0, c1, c2) = (_mm512_srli_epi64::<52>(r.0), _mm512_srli_epi64::<52>(r.1), _mm256_srli_epi64::<52>(r.2));
        // The carries one lane up: [0, c0[0..7]], [c0[7], c1[0..7]], [c1[7], c2[0..3]].
        let up0 = _mm512_alignr_epi64::<7>(c0, zero);
        let up1 = _mm512_alignr_epi64::<7>(c1, c0);
        let up2 = _mm256_alignr_epi64::<3>(c2, _mm512_extracti64x4_epi64::<1>(c1));
        r.0 = _mm512_add_epi64(_mm512_and_si512(r.0, mask), up0);
        r.1 = _mm512_add_epi64(_mm512_and_si512(r.1, mask), up1);
        r.2 = _mm256_add_epi64(_mm256_and_si256(r.2, mask4), up2);
    }
    let g = _mm512_cmpgt_epu64_mask(r.0, mask) as u32
        | (_mm512_cmpgt_epu64_mask(r.1, mask) as u32) << 8
        | (_mm256_cmpgt_epu64_mask(r.2, mask4) as u32) << 16;
    let p = _mm512_cmpeq_epi64_mask(r.0, mask) as u32
        | (_mm512_cmpeq_epi64_mask(r.1, mask) as u32) << 8
        | (_mm256_cmpeq_epi64_mask(r.2, mask4) as u32) << 16;
    let carry_in = (g.wrapping_add(g | p)) ^ p;
    let (one, one4) = (_mm512_set1_epi64(1), _mm256_set1_epi64x(1));
    Num(
        _mm512_and_si512(_mm512_mask_add_epi64(r.0, carry_in as __mmask8, r.0, one), mask),
        _mm512_and_si512(_mm512_mask_add_epi64(r.1, (carry_in >> 8) as __mmask8, r.1, one), mask),
        _mm256_and_si256(_mm256_mask_add_epi64(r.2, (carry_in >> 16) as __mmask8, r.2, one4), mask4),
    )
}

/// Almost-Montgomery multiplication, K independent ones interleaved (two hide each other's
/// latency): a·b·2^−1040 mod m, as a number < 2m with canonical limbs, for a, b < 2m
/// (canonical limbs) and 4m < 2^1040 (see the crate docs for the bound).
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
/// under 2^59 after 20 steps.
#[target_feature(enable = "avx512f,avx512vl,avx512ifma")]
#[inline]
#[allow(clippy::needless_range_loop)] // i indexes the K operands b[k]
fn amm<const K: usize>(a: &[Num; K], b: [&[u64; LANES]; K], m: &[Num; K], k0: &[__m512i; K]) -> [Num; K] {
    let zero = _mm512_setzero_si512();
    let zero4 = _mm256_setzero_si256();
    let mut r = [Num(zero, zero, zero4); K];
    let zero2 = _mm_setzero_si128();
    // a_0·k0 mod 2^52 (lane 0; only lane 0 of the `xmm` values below matters).
    let k0: [__m128i; K] = core::array::from_fn(|k| _mm512_castsi512_si128(k0[k]));
    let a0k0: [__m128i; K] = core::array::from_fn(|k| _mm_madd52lo_epu64(zero2, _mm512_castsi512_si128(a[k].0), k0[k]));
    for i in 0..LIMBS {
        for k in 0..K {
            let (r, a, m) = (&mut r[k], &a[k], &m[k]);
            let bi = _mm512_set1_epi64(b[k][i] as i64);
            let bi4 = _mm512_castsi512_si256(bi);
            // Off the chain: a_0·b_i·k0 mod 2^52 and the high halves of a·b_i.
            let u = _mm_madd52lo_epu64(zero2, a0k0[k], _mm512_castsi512_si128(bi));
            let mut h = Num(
                _mm512_madd52hi_epu64(zero, a.0, bi),
                _mm512_madd52hi_epu64(zero, a.1, bi),
                _mm256_madd52hi_epu64(zero4, a.2, bi4),
            );
            let y = _mm512_broadcastq_epi64(_mm_madd52lo_epu64(u, _mm512_castsi512_si128(r.0), k0[k]));
            let y4 = _mm512_castsi512_si256(y);
            r.0 = _mm512_madd52lo_epu64(r.0, a.0, bi);
            r.1 = _mm512_madd52lo_epu64(r.1, a.1, bi);
            r.2 = _mm256_madd52lo_epu64(r.2, a.2, bi4);
            r.0 = _mm512_madd52lo_epu64(r.0, m.0, y);
            r.1 = _mm512_madd52lo_epu64(r.1, m.1, y);
            r.2 = _mm256_madd52lo_epu64(r.2, m.2, y4);
            h.0 = _mm512_madd52hi_epu64(h.0, m.0, y);
            h.1 = _mm512_madd52hi_epu64(h.1, m.1, y);
            h.2 = _mm256_madd52hi_epu64(h.2, m.2, y4);
            let carry = _mm512_maskz_srli_epi64::<52>(1, r.0);
            // Lanes down by one; only lane 0 of the widened `ymm` part is read.
            r.0 = _mm512_add_epi64(_mm512_add_epi64(_mm512_alignr_epi64::<1>(r.1, r.0), carry), h.0);
            r.1 = _mm512_add_epi64(_mm512_alignr_epi64::<1>(_mm512_castsi256_si512(r.2), r.1), h.1);
            r.2 = _mm256_add_epi64(_mm256_alignr_epi64::<1>(zero4, r.2), h.2);
        }
    }
    r.map(|r| normalize(r))
}

/// table[idx] for a secret idx < 2^WINDOW: every entry is loaded and blended in under a
/// compare mask (`vpcmpeqq` into a mask register, `vpblendmq`), so the addresses and the
/// instructions are the same for every idx.
#[target_feature(enable = "avx512f,avx512vl")]
#[inline]
fn select(table: &[[u64; LANES]; 1 << WINDOW], idx: u64) -> Num {
    let want = _mm512_set1_epi64(idx as i64);
    let mut r = Num(_mm512_setzero_si512(), _mm512_setzero_si512(), _mm256_setzero_si256());
    for (i, entry) in table.iter().enumerate() {
        let k = _mm512_cmpeq_epi64_mask(want, _mm512_set1_epi64(i as i64));
        let e = load(entry);
        r.0 = _mm512_mask_mov_epi64(r.0, k, e.0);
        r.1 = _mm512_mask_mov_epi64(r.1, k, e.1);
        r.2 = _mm256_mask_mov_epi64(r.2, k, e.2);
    }
    r
}

/// `width` bits of `exp` from bit `pos` up (pos and width public, width < 64).
#[inline(always)]
fn window(exp: &[u64; 16], pos: usize, width: usize) -> u64 {
    let (limb, off) = (pos / 64, pos % 64);
    let mut v = exp[limb] >> off;
    if off + width > 64 && limb + 1 < exp.len() {
        v |= exp[limb + 1] << (64 - off);
    }
    v & ((1 << width) - 1)
}

/// One modulus of [`pow`]: m and R² = 2^2080 mod m (52-bit limbs), k0 = −m^−1 mod 2^52.
pub(crate) struct Modulus<'a> {
    pub m: &'a [u64; LANES],
    pub rr: &'a [u64; LANES],
    pub k0: u64,
}

/// For each k < K: s[k].out ← the canonical limbs of a value ≤ m_k congruent to
/// s[k].base^exp[k] mod m_k, for s[k].base < m_k. Leaves secrets in `s` (the caller zeroizes).
///
/// Fixed 5-bit windows over all 1024 bits of each exponent: one top window of 4 bits, then
/// 204 of five squarings and one multiplication by a table entry chosen by [`select`]; the K
/// exponentiations advance in lockstep through [`amm`].
#[target_feature(enable = "avx512f,avx512vl,avx512ifma")]
pub(crate) fn pow<const K: usize>(ms: [Modulus; K], exp: [&[u64; 16]; K], s: &mut [Scratch; K]) {
    let mv: [Num; K] = core::array::from_fn(|k| load(ms[k].m));
    let k0: [__m512i; K] = core::array::from_fn(|k| _mm512_set1_epi64(ms[k].k0 as i64));
    let mut unit = [0u64; LANES];
    unit[0] = 1;
    // table[0] = 2^1040 mod m (1 in the Montgomery domain), table[1] = base·2^1040 mod m.
    let t = amm(&core::array::from_fn(|k| load(ms[k].rr)), [&unit; K], &mv, &k0);
    for k in 0..K {
        store(&mut s[k].table[0], t[k]);
    }
    let t = amm(&core::array::from_fn(|k| load(&s[k].base)), core::array::from_fn(|k| ms[k].rr), &mv, &k0);
    for k in 0..K {
        store(&mut s[k].table[1], t[k]);
    }
    for i in 2..1 << WINDOW {
        let (x, y) = if i % 2 == 0 { (i / 2, i / 2) } else { (i - 1, 1) };
        let a = core::array::from_fn(|k| load(&s[k].table[x]));
        let t = amm(&a, core::array::from_fn(|k| &s[k].table[y]), &mv, &k0);
        for k in 0..K {
            store(&mut s[k].table[i], t[k]);
        }
    }
    let bits = 64 * 16;
    let top = match bits % WINDOW {
        0 => WINDOW,
        r => r,
    };
    let mut pos = bits - top;
    let mut acc: [Num; K] = core::array::from_fn(|k| select(&s[k].table, window(exp[k], pos, top)));
    while pos > 0 {
        pos -= WINDOW;
        for _ in 0..WINDOW {
            for k in 0..K {
                store(&mut s[k].tmp, acc[k]);
            }
            acc = amm(&acc, core::array::from_fn(|k| &s[k].tmp), &mv, &k0);
        }
        for k in 0..K {
            store(&mut s[k].tmp, select(&s[k].table, window(exp[k], pos, WINDOW)));
        }
        acc = amm(&acc, core::array::from_fn(|k| &s[k].tmp), &mv, &k0);
    }
    // Out of the Montgomery domain: acc·2^−1040 < (2m + 2^1040·m)/2^1040 < m + 1.
    acc = amm(&acc, [&unit; K], &mv, &k0);
    for k in 0..K {
        store(&mut s[k].out, acc[k]);
    }
}

//! The AVX-512 backend: sixteen messages per pass, one per 32-bit lane of a `zmm` register.
//!
//! Per block index `j` of a group: every active lane's block `j` is built in its 64-byte row
//! of [`Scratch::blocks`], the rows are loaded, byte-swapped and transposed in registers into
//! `W0..W15` (one register per word, one lane per message), expanded to `W0..W67` in
//! [`Scratch::w`], and the rounds update the chaining value of the lanes whose messages are
//! that long (a masked feed-forward leaves the others unchanged).

use core::arch::x86_64::*;

use zeroize::Zeroize;

use crate::{block_count, fill_block};

// `avx2` is implied by `avx512f` when enabling features, so it is checked as well.
cpufeatures::new!(cpuid_avx512, "avx2", "avx512f", "avx512bw");

pub(crate) fn avx512_available() -> bool {
    cpuid_avx512::get()
}

/// Messages per pass: the 32-bit lanes of a `zmm` register.
const LANES: usize = 16;

/// The initial value (GB/T 32905 §4.1).
const IV: [u32; 8] = [0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e];

/// `T_j <<< (j mod 32)` for each round `j` (GB/T 32905 §4.2, §5.3.3).
const T: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut j = 0;
    while j < 64 {
        let tj: u32 = if j < 16 { 0x79cc4519 } else { 0x7a879d8a };
        t[j] = tj.rotate_left(j as u32 % 32);
        j += 1;
    }
    t
};

/// `vpternlogd` truth tables, for operands `(a, b, c)`.
const XOR3: i32 = 0x96; // a ^ b ^ c
const MAJ: i32 = 0xe8; // (a & b) | (a & c) | (b & c)
const CHOOSE: i32 = 0xca; // (a & b) | (!a & c)

/// Every stack buffer that holds message bytes, message words or chaining values; zeroized
/// before [`digest_many`] returns.
#[repr(C, align(64))]
struct Scratch {
    /// Block `j` of each lane, lane-major.
    blocks: [[u8; 64]; LANES],
    /// The expanded message `W0..W67`, word-major: `w[k][lane]`.
    w: [[u32; LANES]; 68],
    /// The final chaining values, word-major.
    state: [[u32; LANES]; 8],
}

impl Scratch {
    fn zeroize(&mut self) {
        self.blocks.zeroize();
        self.w.zeroize();
        self.state.zeroize();
    }
}

/// `out[i] = SM3(prefix ‖ msgs[i])`, sixteen messages per pass.
///
/// # Safety
///
/// The CPU must have AVX-512 F and BW (checked by [`avx512_available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn digest_many(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    debug_assert_eq!(msgs.len(), out.len());
    let mut s = Scratch { blocks: [[0; 64]; LANES], w: [[0; LANES]; 68], state: [[0; LANES]; 8] };
    for (m, o) in msgs.chunks(LANES).zip(out.chunks_mut(LANES)) {
        group(prefix, m, o, &mut s);
    }
    s.zeroize();
}

/// Up to sixteen messages, one per lane.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn group(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]], s: &mut Scratch) {
    let mut nblocks = [0usize; LANES];
    for (n, m) in nblocks.iter_mut().zip(msgs) {
        *n = block_count(prefix.len() + m.len());
    }
    let longest = nblocks.iter().copied().max().unwrap_or(0);
    let mut v = IV.map(|x| _mm512_set1_epi32(x as i32));
    for j in 0..longest {
        // Lengths are public: which lanes take part is not a secret.
        let mut active: __mmask16 = 0;
        for (lane, (m, &n)) in msgs.iter().zip(&nblocks).enumerate() {
            if j < n {
                active |= 1 << lane;
                fill_block(prefix, m, j, n, &mut s.blocks[lane]);
            }
        }
        // Lanes not active keep stale bytes in their rows; their results are masked off.
        load_words(&s.blocks, &mut s.w);
        expand(&mut s.w);
        compress(&mut v, &s.w, active);
    }
    for (row, x) in s.state.iter_mut().zip(v) {
        store(row, x);
    }
    for (lane, o) in out.iter_mut().enumerate() {
        for (k, row) in s.state.iter().enumerate() {
            o[4 * k..4 * k + 4].copy_from_slice(&row[lane].to_be_bytes());
        }
    }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn load(x: &[u32; LANES]) -> __m512i {
    // SAFETY: `x` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(x.as_ptr().cast()) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn store(x: &mut [u32; LANES], v: __m512i) {
    // SAFETY: `x` is 64 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_si512(x.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn rol<const N: i32>(x: __m512i) -> __m512i {
    _mm512_rol_epi32::<N>(x)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn add(a: __m512i, b: __m512i) -> __m512i {
    _mm512_add_epi32(a, b)
}

#[target_feature(enable = "avx512f")]
#[inline]
fn tern<const IMM: i32>(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi32::<IMM>(a, b, c)
}

/// `P0(x) = x ^ (x <<< 9) ^ (x <<< 17)`.
#[target_feature(enable = "avx512f")]
#[inline]
fn p0(x: __m512i) -> __m512i {
    tern::<XOR3>(x, rol::<9>(x), rol::<17>(x))
}

/// `P1(x) = x ^ (x <<< 15) ^ (x <<< 23)`.
#[target_feature(enable = "avx512f")]
#[inline]
fn p1(x: __m512i) -> __m512i {
    tern::<XOR3>(x, rol::<15>(x), rol::<23>(x))
}

/// The sixteen 64-byte rows (one block per lane) to `W0..W15`: big-endian words, word `k` of
/// every lane in `w[k]`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn load_words(blocks: &[[u8; 64]; LANES], w: &mut [[u32; LANES]; 68]) {
    // Per 128-bit lane, reverse the bytes of each 32-bit word.
    let bswap = _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203);
    let mut r = [_mm512_setzero_si512(); LANES];
    for (x, b) in r.iter_mut().zip(blocks) {
        // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
        *x = _mm512_shuffle_epi8(unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }, bswap);
    }
    // 32-bit interleave: t[2i] 128-bit lane q = (r[2i][4q], r[2i+1][4q], r[2i][4q+1], r[2i+1][4q+1]).
    let mut t = [_mm512_setzero_si512(); LANES];
    for i in 0..LANES / 2 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // 64-bit interleave: u[4i + k] 128-bit lane q = word 4q + k of rows 4i..4i+3.
    for i in 0..LANES / 4 {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // 4×4 transposition of 128-bit lanes among r[k], r[4+k], r[8+k], r[12+k]: word 4q + k
    // gets lane q of each, in row order.
    for k in 0..4 {
        let (a, b, c, d) = (r[k], r[4 + k], r[8 + k], r[12 + k]);
        let ab_lo = _mm512_shuffle_i32x4::<0x44>(a, b); // a0 a1 b0 b1
        let ab_hi = _mm512_shuffle_i32x4::<0xee>(a, b); // a2 a3 b2 b3
        let cd_lo = _mm512_shuffle_i32x4::<0x44>(c, d); // c0 c1 d0 d1
        let cd_hi = _mm512_shuffle_i32x4::<0xee>(c, d); // c2 c3 d2 d3
        store(&mut w[k], _mm512_shuffle_i32x4::<0x88>(ab_lo, cd_lo)); // a0 b0 c0 d0
        store(&mut w[4 + k], _mm512_shuffle_i32x4::<0xdd>(ab_lo, cd_lo)); // a1 b1 c1 d1
        store(&mut w[8 + k], _mm512_shuffle_i32x4::<0x88>(ab_hi, cd_hi)); // a2 b2 c2 d2
        store(&mut w[12 + k], _mm512_shuffle_i32x4::<0xdd>(ab_hi, cd_hi)); // a3 b3 c3 d3
    }
}

/// The message expansion (GB/T 32905 §5.3.2): `W16..W67` from `W0..W15`. (`W'_j = W_j ^
/// W_{j+4}` is computed in the rounds.)
#[target_feature(enable = "avx512f")]
#[inline]
fn expand(w: &mut [[u32; LANES]; 68]) {
    for j in 16..68 {
        let x = tern::<XOR3>(load(&w[j - 16]), load(&w[j - 9]), rol::<15>(load(&w[j - 3])));
        let wj = tern::<XOR3>(p1(x), rol::<7>(load(&w[j - 13])), load(&w[j - 6]));
        store(&mut w[j], wj);
    }
}

/// One round `j` of the compression function, with the boolean functions `FF` and `GG` given
/// as `vpternlogd` truth tables.
macro_rules! round {
    ($v:ident, $w:ident, $j:expr, $ff:expr, $gg:expr) => {{
        let j = $j;
        let [a, b, c, d, e, f, g, h] = $v;
        let a12 = rol::<12>(a);
        let ss1 = rol::<7>(add(add(a12, _mm512_set1_epi32(T[j] as i32)), e));
        let ss2 = _mm512_xor_si512(ss1, a12);
        let wj = load(&$w[j]);
        let wj4 = load(&$w[j + 4]);
        let tt1 = add(add(tern::<$ff>(a, b, c), d), add(ss2, _mm512_xor_si512(wj, wj4)));
        let tt2 = add(add(tern::<$gg>(e, f, g), h), add(ss1, wj));
        $v = [tt1, a, rol::<9>(b), c, p0(tt2), e, rol::<19>(f), g];
    }};
}

/// The compression function (GB/T 32905 §5.3.3) on the lanes set in `active`; the others
/// keep their chaining value.
#[target_feature(enable = "avx512f")]
#[inline]
fn compress(v: &mut [__m512i; 8], w: &[[u32; LANES]; 68], active: __mmask16) {
    let mut x = *v;
    for j in 0..16 {
        round!(x, w, j, XOR3, XOR3);
    }
    for j in 16..64 {
        round!(x, w, j, MAJ, CHOOSE);
    }
    for (vi, xi) in v.iter_mut().zip(x) {
        *vi = _mm512_mask_xor_epi32(*vi, active, xi, *vi);
    }
}

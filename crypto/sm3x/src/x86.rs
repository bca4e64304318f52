//! The AVX-512 backend: sixteen messages per pass, one per 32-bit lane of a `zmm` register.
//!
//! Per block index `j` of a group: every active lane's block `j` is built in a register with
//! masked byte loads ([`build_row`]) and kept in its 64-byte row of [`Scratch::blocks`]; the
//! rows are byte-swapped and transposed in registers into `W0..W15` (one register per word,
//! one lane per message), expanded to `W0..W67` in [`Scratch::w`] four words ahead of the
//! rounds, and the rounds update the chaining value of the lanes whose messages are that long
//! (a masked feed-forward leaves the others unchanged).

use core::arch::x86_64::*;

use zeroize::Zeroize;

use crate::block_count;

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

/// The stack buffers that hold message bytes and message words; zeroized (with 64-byte
/// volatile stores) before [`digest_many`] returns. The chaining values stay in registers
/// and are written straight to the caller's output.
struct Scratch {
    /// Block `j` of each lane, one 64-byte row per lane.
    blocks: [__m512i; LANES],
    /// The expanded message `W0..W67`, one register per word: lane `i` of `w[k]` is word
    /// `k` of message `i`.
    w: [__m512i; 68],
}

/// `out[i] = SM3(prefix ‖ msgs[i])`, sixteen messages per pass.
///
/// # Safety
///
/// The CPU must have AVX-512 F and BW (checked by [`avx512_available`]).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn digest_many(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    debug_assert_eq!(msgs.len(), out.len());
    let zero = _mm512_setzero_si512();
    let mut s = Scratch { blocks: [zero; LANES], w: [zero; 68] };
    for (m, o) in msgs.chunks(LANES).zip(out.chunks_mut(LANES)) {
        group(prefix, m, o, &mut s);
    }
    s.blocks.zeroize();
    s.w.zeroize();
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
                s.blocks[lane] = build_row(prefix, m, j, n);
            }
        }
        // Lanes not active keep stale bytes in their rows; their results are masked off.
        load_words(&s.blocks, &mut s.w);
        compress(&mut v, &mut s.w, active);
    }
    // Transposed back, row `i` holds the eight big-endian words of digest `i` (and zeros).
    let zero = _mm512_setzero_si512();
    let mut r = [zero; LANES];
    for (x, vk) in r.iter_mut().zip(v) {
        *x = bswap32(vk);
    }
    let rows = transpose(r);
    for (o, row) in out.iter_mut().zip(rows) {
        // SAFETY: `o` is 32 writable bytes and the mask enables the 8 low 32-bit elements
        // (bytes 0..32) only; `storeu` has no alignment requirement.
        unsafe { _mm512_mask_storeu_epi32(o.as_mut_ptr().cast(), 0x00ff, row) };
    }
}

/// Block `j` of the padded stream `prefix ‖ msg ‖ 0x80 ‖ 0…0 ‖ bit length (64-bit
/// big-endian)` of `nblocks = block_count(prefix.len() + msg.len())` blocks, built in a
/// register with masked byte loads (no calls to `memcpy`, no reads outside the slices).
///
/// Branches only on lengths and `j`, never on the bytes.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn build_row(prefix: &[u8], msg: &[u8], j: usize, nblocks: usize) -> __m512i {
    let start = 64 * j;
    let end = start + 64;
    let p = prefix.len();
    let len = p + msg.len();
    let mut row = _mm512_setzero_si512();
    if start < p {
        let count = (p - start).min(64);
        // SAFETY: only the `count` bytes enabled by the mask are read, `prefix[start..start +
        // count]`, which is in bounds; masked-off bytes are not accessed (and cannot fault).
        row = unsafe { _mm512_maskz_loadu_epi8(low_bits(count), prefix.as_ptr().add(start).cast()) };
    }
    let (from, to) = (start.max(p), len.min(end));
    if from < to {
        // Row bytes `from - start..to - start` are message bytes `from - p..to - p`.
        let offset = from - start;
        let mask = low_bits(to - from) << offset;
        // `base + offset` is `&msg[from - p]`; `base` itself may lie before `msg`, so it is
        // formed with `wrapping_sub` and never dereferenced.
        let base = msg[from - p..].as_ptr().wrapping_sub(offset);
        // SAFETY: only the bytes enabled by `mask` are read, at `base + offset ..
        // base + offset + (to - from)`, which is `msg[from - p..to - p]`, in bounds; masked-off
        // bytes are not accessed (and cannot fault).
        row = unsafe { _mm512_mask_loadu_epi8(row, mask, base.cast()) };
    }
    if (start..end).contains(&len) {
        row = _mm512_mask_mov_epi8(row, 1 << (len - start), _mm512_set1_epi8(0x80u8 as i8));
    }
    if j + 1 == nblocks {
        // Bytes 56..64 (the last 64-bit element), big-endian.
        let bits = (len as u64).wrapping_mul(8).swap_bytes();
        row = _mm512_mask_mov_epi64(row, 0x80, _mm512_set1_epi64(bits as i64));
    }
    row
}

/// [`build_row`] for the tests, `None` if this CPU lacks AVX-512 F and BW.
#[cfg(test)]
pub(crate) fn padded_block(prefix: &[u8], msg: &[u8], j: usize, nblocks: usize) -> Option<[u8; 64]> {
    if !avx512_available() {
        return None;
    }
    let mut out = [0u8; 64];
    // SAFETY: `avx512_available()` returned true: the CPU has AVX-512 F and BW, the features
    // `build_row` enables; `out` is 64 writable bytes and `storeu` has no alignment
    // requirement.
    unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), build_row(prefix, msg, j, nblocks)) };
    Some(out)
}

/// A mask of the `count` low bits, `count <= 64`.
#[inline]
fn low_bits(count: usize) -> u64 {
    if count >= 64 { u64::MAX } else { (1u64 << count) - 1 }
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

/// Reverses the bytes of each 32-bit element (SM3 words are big-endian).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn bswap32(x: __m512i) -> __m512i {
    // `vpshufb` indices, per 128-bit lane.
    _mm512_shuffle_epi8(x, _mm512_set4_epi32(0x0c0d0e0f, 0x08090a0b, 0x04050607, 0x00010203))
}

/// Transposes a 16×16 matrix of 32-bit elements: element `k` of output `i` is element `i` of
/// input `k`.
#[target_feature(enable = "avx512f")]
#[inline]
fn transpose(r: [__m512i; LANES]) -> [__m512i; LANES] {
    // 32-bit interleave: t[2i], 128-bit lane q = (r[2i][4q], r[2i+1][4q], r[2i][4q+1],
    // r[2i+1][4q+1]), and t[2i+1] the same with 4q+2, 4q+3.
    let mut t = r;
    for i in 0..LANES / 2 {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // 64-bit interleave: u[4i + k], 128-bit lane q = element 4q + k of inputs 4i..4i+3.
    let mut u = t;
    for i in 0..LANES / 4 {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // 4×4 transposition of 128-bit lanes among u[k], u[4+k], u[8+k], u[12+k]: output
    // 4q + k takes lane q of each, in input order.
    let mut out = u;
    for k in 0..4 {
        let (a, b, c, d) = (u[k], u[4 + k], u[8 + k], u[12 + k]);
        let ab_lo = _mm512_shuffle_i32x4::<0x44>(a, b); // a0 a1 b0 b1
        let ab_hi = _mm512_shuffle_i32x4::<0xee>(a, b); // a2 a3 b2 b3
        let cd_lo = _mm512_shuffle_i32x4::<0x44>(c, d); // c0 c1 d0 d1
        let cd_hi = _mm512_shuffle_i32x4::<0xee>(c, d); // c2 c3 d2 d3
        out[k] = _mm512_shuffle_i32x4::<0x88>(ab_lo, cd_lo); // a0 b0 c0 d0
        out[4 + k] = _mm512_shuffle_i32x4::<0xdd>(ab_lo, cd_lo); // a1 b1 c1 d1
        out[8 + k] = _mm512_shuffle_i32x4::<0x88>(ab_hi, cd_hi); // a2 b2 c2 d2
        out[12 + k] = _mm512_shuffle_i32x4::<0xdd>(ab_hi, cd_hi); // a3 b3 c3 d3
    }
    out
}

/// The sixteen 64-byte rows (one block per lane) to `W0..W15`: big-endian words, word `k` of
/// every lane in `w[k]`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn load_words(blocks: &[__m512i; LANES], w: &mut [__m512i; 68]) {
    let mut r = *blocks;
    for x in &mut r {
        *x = bswap32(*x);
    }
    w[..LANES].copy_from_slice(&transpose(r));
}

/// The message expansion (GB/T 32905 §5.3.2) of `W_from..W_{from+4}` from the sixteen words
/// before. (`W'_j = W_j ^ W_{j+4}` is computed in the rounds.)
#[target_feature(enable = "avx512f")]
#[inline]
fn expand4(w: &mut [__m512i; 68], from: usize) {
    for j in from..from + 4 {
        let x = tern::<XOR3>(w[j - 16], w[j - 9], rol::<15>(w[j - 3]));
        w[j] = tern::<XOR3>(p1(x), rol::<7>(w[j - 13]), w[j - 6]);
    }
}

/// One round `j` of the compression function in place, with the boolean functions `FF` and
/// `GG` given as `vpternlogd` truth tables: the new `A` goes to `d` and the new `E` to `h`,
/// `b` and `f` are rotated, so the next round takes `(d, a, b, c, h, e, f, g)`.
macro_rules! round {
    ($w:ident, $j:expr, $ff:expr, $gg:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        let j = $j;
        let a12 = rol::<12>($a);
        let ss1 = rol::<7>(add(add(a12, _mm512_set1_epi32(T[j] as i32)), $e));
        let ss2 = _mm512_xor_si512(ss1, a12);
        let wj = $w[j];
        let wj4 = $w[j + 4];
        $d = add(add(tern::<$ff>($a, $b, $c), $d), add(ss2, _mm512_xor_si512(wj, wj4)));
        let tt2 = add(add(tern::<$gg>($e, $f, $g), $h), add(ss1, wj));
        $h = p0(tt2);
        $b = rol::<9>($b);
        $f = rol::<19>($f);
    }};
}

/// Four rounds from `j`, after which the names are back in place.
macro_rules! rounds4 {
    ($w:ident, $j:expr, $ff:expr, $gg:expr, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        let j = $j;
        round!($w, j, $ff, $gg, $a, $b, $c, $d, $e, $f, $g, $h);
        round!($w, j + 1, $ff, $gg, $d, $a, $b, $c, $h, $e, $f, $g);
        round!($w, j + 2, $ff, $gg, $c, $d, $a, $b, $g, $h, $e, $f);
        round!($w, j + 3, $ff, $gg, $b, $c, $d, $a, $f, $g, $h, $e);
    }};
}

/// The compression function (GB/T 32905 §5.3.3) on the lanes set in `active`; the others
/// keep their chaining value. `w` holds `W0..W15`; the expansion to `W67` is interleaved
/// with the rounds (four words ahead of each four rounds) so that its dependency chain
/// overlaps theirs.
#[target_feature(enable = "avx512f")]
#[inline]
fn compress(v: &mut [__m512i; 8], w: &mut [__m512i; 68], active: __mmask16) {
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *v;
    for j in (0..16).step_by(4) {
        // Before rounds j..j+4 (which read up to W_{j+7}), W0..W_{j+16} exist.
        expand4(w, j + 16);
        rounds4!(w, j, XOR3, XOR3, a, b, c, d, e, f, g, h);
    }
    for j in (16..64).step_by(4) {
        if j + 16 < 68 {
            expand4(w, j + 16);
        }
        rounds4!(w, j, MAJ, CHOOSE, a, b, c, d, e, f, g, h);
    }
    for (vi, xi) in v.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *vi = _mm512_mask_xor_epi32(*vi, active, xi, *vi);
    }
}

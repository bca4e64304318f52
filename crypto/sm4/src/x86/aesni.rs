//! SM4 with AES-NI and SSSE3: the S-box is an affine map (two 16-entry nibble lookups with
//! `pshufb`), `aesenclast` with a zero round key (the AES S-box, after undoing its ShiftRows
//! with a byte shuffle), and another affine map by nibble lookups. `pshufb` selects bytes of a
//! register, so the lookups touch no memory. Eight blocks per batch (two interleaved sets of
//! four, one block per `xmm` register before transposition).

use cipher::consts::U8;
use cipher::{BlockCipherDecClosure, BlockCipherEncClosure};
use core::arch::x86_64::*;

use super::{BSWAP32, load128, m128, store128, transpose4, word_broadcast};
use crate::consts::{Affine, POST_AES, PRE};

/// Blocks per batch.
const PAR: usize = 8;

/// Round keys, as a cipher backend. Built only inside [`encrypt`] and [`decrypt`], so a value
/// exists only while code compiled for AES-NI and SSSE3 runs on a CPU that has them.
pub(crate) struct Keys<'a>(&'a [u32; 32]);

impl_block_backend!(Keys, U8, PAR);

/// Run `f` with this backend.
#[target_feature(enable = "aes,ssse3")]
pub(crate) fn encrypt(rk: &[u32; 32], f: impl BlockCipherEncClosure<BlockSize = cipher::consts::U16>) {
    f.call(&Keys(rk));
}

/// Run `f` with this backend.
#[target_feature(enable = "aes,ssse3")]
pub(crate) fn decrypt(rk: &[u32; 32], f: impl BlockCipherDecClosure<BlockSize = cipher::consts::U16>) {
    f.call(&Keys(rk));
}

impl Keys<'_> {
    #[inline(always)]
    fn one<const DEC: bool>(&self, block: &mut [u8; 16]) {
        // SAFETY: a `Keys` exists only inside `encrypt` / `decrypt`, which the dispatcher calls
        // only after detecting the features `one` enables.
        unsafe { one::<DEC>(self.0, block) }
    }

    #[inline(always)]
    fn par<const DEC: bool>(&self, blocks: &mut [[u8; 16]; PAR]) {
        // SAFETY: as in `one`.
        unsafe { batch::<DEC, 2>(self.0, blocks) }
    }

    #[inline(always)]
    fn tail<const DEC: bool>(&self, blocks: &mut [[u8; 16]; PAR], n: usize) {
        // SAFETY: as in `one`.
        unsafe {
            match n {
                0 => {}
                1 => one::<DEC>(self.0, &mut blocks[0]),
                2..=4 => batch::<DEC, 1>(self.0, &mut blocks[..4]),
                _ => batch::<DEC, 2>(self.0, blocks),
            }
        }
    }
}

/// `pshufb` mask undoing AES ShiftRows (state byte `r + 4c` is row `r`, column `c`).
const INV_SHIFT_ROWS: [u8; 16] = {
    let mut m = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        let (r, c) = (j % 4, j / 4);
        m[j] = (r + 4 * ((c + 4 - r) % 4)) as u8;
        j += 1;
    }
    m
};

/// `pshufb` mask rotating each 32-bit word left by `8·k` bits.
const fn rotl_bytes(k: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    let mut j = 0;
    while j < 16 {
        m[j] = (j / 4 * 4 + (j % 4 + 4 - k) % 4) as u8;
        j += 1;
    }
    m
}

/// The registers the S-box and the linear transform need.
#[derive(Clone, Copy)]
struct Tables {
    low_nibbles: __m128i,
    pre: [__m128i; 2],
    post: [__m128i; 2],
    inv_shift_rows: __m128i,
    rot8: __m128i,
    rot16: __m128i,
    rot24: __m128i,
}

#[target_feature(enable = "aes,ssse3")]
#[inline]
fn tables() -> Tables {
    let nib = |a: &Affine| {
        let t = a.nibble_tables();
        [m128(t[0]), m128(t[1])]
    };
    Tables {
        low_nibbles: _mm_set1_epi8(0x0f),
        pre: nib(&PRE),
        post: nib(&POST_AES),
        inv_shift_rows: m128(INV_SHIFT_ROWS),
        rot8: m128(rotl_bytes(1)),
        rot16: m128(rotl_bytes(2)),
        rot24: m128(rotl_bytes(3)),
    }
}

/// An affine map on each byte as two nibble lookups.
#[target_feature(enable = "aes,ssse3")]
#[inline]
fn affine(x: __m128i, t: &[__m128i; 2], low_nibbles: __m128i) -> __m128i {
    let lo = _mm_and_si128(x, low_nibbles);
    let hi = _mm_and_si128(_mm_srli_epi32::<4>(x), low_nibbles);
    _mm_xor_si128(_mm_shuffle_epi8(t[0], lo), _mm_shuffle_epi8(t[1], hi))
}

/// The SM4 S-box on each byte.
#[target_feature(enable = "aes,ssse3")]
#[inline]
fn sbox(x: __m128i, t: &Tables) -> __m128i {
    let y = _mm_shuffle_epi8(affine(x, &t.pre, t.low_nibbles), t.inv_shift_rows);
    affine(_mm_aesenclast_si128(y, _mm_setzero_si128()), &t.post, t.low_nibbles)
}

/// One block, each word broadcast across a register.
#[target_feature(enable = "aes,ssse3")]
fn one<const DEC: bool>(rk: &[u32; 32], block: &mut [u8; 16]) {
    let v = load128(block);
    let mut x = [[
        _mm_shuffle_epi8(v, m128(word_broadcast(0))),
        _mm_shuffle_epi8(v, m128(word_broadcast(1))),
        _mm_shuffle_epi8(v, m128(word_broadcast(2))),
        _mm_shuffle_epi8(v, m128(word_broadcast(3))),
    ]];
    rounds::<DEC, 1>(rk, &mut x);
    let [s0, s1, s2, s3] = x[0];
    let out = _mm_unpacklo_epi64(_mm_unpacklo_epi32(s3, s2), _mm_unpacklo_epi32(s1, s0));
    store128(block, _mm_shuffle_epi8(out, m128(BSWAP32)));
}

/// `4·N` blocks, transposed so register `j` of a set holds word `j` of four blocks.
#[target_feature(enable = "aes,ssse3")]
#[inline]
fn batch<const DEC: bool, const N: usize>(rk: &[u32; 32], blocks: &mut [[u8; 16]]) {
    assert_eq!(blocks.len(), 4 * N);
    let bswap = m128(BSWAP32);
    let mut x = [[_mm_setzero_si128(); 4]; N];
    for (x, b) in x.iter_mut().zip(blocks.chunks_exact(4)) {
        let r = [
            _mm_shuffle_epi8(load128(&b[0]), bswap),
            _mm_shuffle_epi8(load128(&b[1]), bswap),
            _mm_shuffle_epi8(load128(&b[2]), bswap),
            _mm_shuffle_epi8(load128(&b[3]), bswap),
        ];
        *x = transpose4!(r, _mm_unpacklo_epi32, _mm_unpackhi_epi32, _mm_unpacklo_epi64, _mm_unpackhi_epi64);
    }
    rounds::<DEC, N>(rk, &mut x);
    for (x, b) in x.iter().zip(blocks.chunks_exact_mut(4)) {
        let [s0, s1, s2, s3] = *x;
        let r = transpose4!(
            [s3, s2, s1, s0],
            _mm_unpacklo_epi32,
            _mm_unpackhi_epi32,
            _mm_unpacklo_epi64,
            _mm_unpackhi_epi64
        );
        for (b, v) in b.iter_mut().zip(r) {
            store128(b, _mm_shuffle_epi8(v, bswap));
        }
    }
}

#[target_feature(enable = "aes,ssse3")]
#[inline]
fn rounds<const DEC: bool, const N: usize>(rk: &[u32; 32], x: &mut [[__m128i; 4]; N]) {
    let t = tables();
    for i in 0..8 {
        for j in 0..4 {
            let r = 4 * i + j;
            let k = _mm_set1_epi32(rk[if DEC { 31 - r } else { r }] as i32);
            for s in x.iter_mut() {
                let b = _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(s[(j + 1) % 4], s[(j + 2) % 4]), k), s[(j + 3) % 4]);
                let y = sbox(b, &t);
                // L(y) = y ^ (y <<< 24) ^ ((y ^ (y <<< 8) ^ (y <<< 16)) <<< 2)
                let u = _mm_xor_si128(_mm_xor_si128(y, _mm_shuffle_epi8(y, t.rot8)), _mm_shuffle_epi8(y, t.rot16));
                let u2 = _mm_or_si128(_mm_slli_epi32::<2>(u), _mm_srli_epi32::<30>(u));
                let l = _mm_xor_si128(_mm_xor_si128(y, _mm_shuffle_epi8(y, t.rot24)), u2);
                s[j] = _mm_xor_si128(s[j], l);
            }
        }
    }
}

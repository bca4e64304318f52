//! SM4 with GFNI and AVX-512 (F, BW, VL): the S-box is `gf2p8affineqb` then
//! `gf2p8affineinvqb`, the rotations of the linear transform are `vprold`, and three-way
//! XORs are `vpternlogd`. Sixteen blocks per batch in `zmm` registers; short tails use `xmm`
//! or `ymm`; a single block broadcasts each of its words across an `xmm` register.

use cipher::consts::U16;
use cipher::{BlockCipherDecClosure, BlockCipherEncClosure};
use core::arch::x86_64::*;

use super::{BSWAP32, load128, m128, store128, transpose4, word_broadcast};
use crate::consts::{POST_INV, PRE};

/// Blocks per batch.
const PAR: usize = 16;
const PRE_C: i32 = PRE.c as i32;
const POST_C: i32 = POST_INV.c as i32;

/// Round keys, as a cipher backend. Built only inside [`encrypt`] and [`decrypt`], so a value
/// exists only while code compiled for GFNI and AVX-512 runs on a CPU that has them.
pub(crate) struct Keys<'a>(&'a [u32; 32]);

impl_block_backend!(Keys, U16, PAR);

/// Run `f` with this backend.
#[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
pub(crate) fn encrypt(rk: &[u32; 32], f: impl BlockCipherEncClosure<BlockSize = U16>) {
    f.call(&Keys(rk));
}

/// Run `f` with this backend.
#[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
pub(crate) fn decrypt(rk: &[u32; 32], f: impl BlockCipherDecClosure<BlockSize = U16>) {
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
        unsafe { batch512::<DEC, 1>(self.0, blocks.as_chunks_mut::<4>().0) }
    }

    #[inline(always)]
    fn tail<const DEC: bool>(&self, blocks: &mut [[u8; 16]; PAR], n: usize) {
        // SAFETY: as in `one`.
        unsafe {
            match n {
                0 => {}
                1 => one::<DEC>(self.0, &mut blocks[0]),
                2..=4 => batch128::<DEC, 1>(self.0, blocks[..4].as_chunks_mut::<1>().0),
                5..=8 => batch256::<DEC, 1>(self.0, blocks[..8].as_chunks_mut::<2>().0),
                _ => batch512::<DEC, 1>(self.0, blocks.as_chunks_mut::<4>().0),
            }
        }
    }
}

/// The key schedule (GB/T 32907 §7.3) with the S-box on GFNI: 32 dependent rounds of one
/// S-box word each, which on the portable bitsliced S-box cost about 3 µs per key and
/// dominated short messages (every request keys its cipher anew).
#[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
pub(crate) fn expand_key(key: &[u8; 16]) -> [u32; 32] {
    let pre = _mm_set1_epi64x(PRE.gfni_matrix());
    let post = _mm_set1_epi64x(POST_INV.gfni_matrix());
    let mut k = [0u32; 4];
    for (i, (w, bytes)) in k.iter_mut().zip(key.chunks_exact(4)).enumerate() {
        *w = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) ^ crate::consts::FK[i];
    }
    let mut rk = [0u32; 32];
    for (i, r) in rk.iter_mut().enumerate() {
        let b = k[(i + 1) % 4] ^ k[(i + 2) % 4] ^ k[(i + 3) % 4] ^ crate::consts::CK[i];
        // The S-box acts on each byte alone, so the word's byte order in the register does
        // not matter; the other twelve bytes are zeros and are dropped.
        let v = _mm_cvtsi32_si128(b as i32);
        let t = _mm_cvtsi128_si32(_mm_gf2p8affineinv_epi64_epi8::<POST_C>(
            _mm_gf2p8affine_epi64_epi8::<PRE_C>(v, pre),
            post,
        )) as u32;
        k[i % 4] ^= t ^ t.rotate_left(13) ^ t.rotate_left(23);
        *r = k[i % 4];
    }
    k = [0; 4];
    core::hint::black_box(&k);
    rk
}

/// One block: word `j` broadcast across register `j`, so each round is one S-box evaluation
/// on the latency-critical path (CBC encryption and CMAC are serial).
#[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
fn one<const DEC: bool>(rk: &[u32; 32], block: &mut [u8; 16]) {
    let v = load128(block);
    let mut x = [[
        _mm_shuffle_epi8(v, m128(word_broadcast(0))),
        _mm_shuffle_epi8(v, m128(word_broadcast(1))),
        _mm_shuffle_epi8(v, m128(word_broadcast(2))),
        _mm_shuffle_epi8(v, m128(word_broadcast(3))),
    ]];
    rounds128::<DEC, 1>(rk, &mut x);
    let [s0, s1, s2, s3] = x[0];
    let out = _mm_unpacklo_epi64(_mm_unpacklo_epi32(s3, s2), _mm_unpacklo_epi32(s1, s0));
    store128(block, _mm_shuffle_epi8(out, m128(BSWAP32)));
}

/// Defines `$batch`, which encrypts (or with `DEC`, decrypts) `4·N` registers of `$v`, each
/// holding one or more blocks, and `$rounds`, the 32 rounds on transposed state.
macro_rules! width {
    ($batch:ident, $rounds:ident, $v:ty, $lanes:expr, $load:ident, $store:ident, $bswap:expr,
     $shuf:ident, $ul32:ident, $uh32:ident, $ul64:ident, $uh64:ident,
     $s32:ident, $s64:ident, $xor:ident, $tern:ident, $rol:ident, $aff:ident, $affinv:ident) => {
        #[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
        #[inline]
        fn $batch<const DEC: bool, const N: usize>(rk: &[u32; 32], blocks: &mut [[[u8; 16]; $lanes]]) {
            assert_eq!(blocks.len(), 4 * N);
            let bswap = $bswap;
            let mut x = [[$s32(0); 4]; N];
            for (x, regs) in x.iter_mut().zip(blocks.chunks_exact(4)) {
                let r = [
                    $shuf($load(&regs[0]), bswap),
                    $shuf($load(&regs[1]), bswap),
                    $shuf($load(&regs[2]), bswap),
                    $shuf($load(&regs[3]), bswap),
                ];
                *x = transpose4!(r, $ul32, $uh32, $ul64, $uh64);
            }
            $rounds::<DEC, N>(rk, &mut x);
            for (x, regs) in x.iter().zip(blocks.chunks_exact_mut(4)) {
                let [a, b, c, d] = *x;
                let r = transpose4!([d, c, b, a], $ul32, $uh32, $ul64, $uh64);
                for (reg, v) in regs.iter_mut().zip(r) {
                    $store(reg, $shuf(v, bswap));
                }
            }
        }

        #[target_feature(enable = "gfni,avx2,avx512f,avx512bw,avx512vl")]
        #[inline]
        fn $rounds<const DEC: bool, const N: usize>(rk: &[u32; 32], x: &mut [[$v; 4]; N]) {
            let pre = $s64(PRE.gfni_matrix());
            let post = $s64(POST_INV.gfni_matrix());
            for i in 0..8 {
                for j in 0..4 {
                    let r = 4 * i + j;
                    let k = $s32(rk[if DEC { 31 - r } else { r }] as i32);
                    for s in x.iter_mut() {
                        // X_{r+4} = X_r ^ L(S(X_{r+1} ^ X_{r+2} ^ X_{r+3} ^ rk_r)), with the
                        // newest word last so the older ones are combined off the critical path.
                        let b = $tern::<0x96>($xor(s[(j + 1) % 4], s[(j + 2) % 4]), k, s[(j + 3) % 4]);
                        let t = $affinv::<POST_C>($aff::<PRE_C>(b, pre), post);
                        let a = $tern::<0x96>(s[j], t, $rol::<2>(t));
                        let c = $tern::<0x96>($rol::<10>(t), $rol::<18>(t), $rol::<24>(t));
                        s[j] = $xor(a, c);
                    }
                }
            }
        }
    };
}

#[target_feature(enable = "sse2")]
#[inline]
fn load1(b: &[[u8; 16]; 1]) -> __m128i {
    load128(&b[0])
}

#[target_feature(enable = "sse2")]
#[inline]
fn store1(b: &mut [[u8; 16]; 1], v: __m128i) {
    store128(&mut b[0], v)
}

#[target_feature(enable = "avx2")]
#[inline]
fn load256(b: &[[u8; 16]; 2]) -> __m256i {
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx2")]
#[inline]
fn store256(b: &mut [[u8; 16]; 2], v: __m256i) {
    // SAFETY: `b` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(b.as_mut_ptr().cast(), v) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn load512(b: &[[u8; 16]; 4]) -> __m512i {
    // SAFETY: `b` is 64 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
}

#[target_feature(enable = "avx512f")]
#[inline]
fn store512(b: &mut [[u8; 16]; 4], v: __m512i) {
    // SAFETY: `b` is 64 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm512_storeu_si512(b.as_mut_ptr().cast(), v) }
}

width!(
    batch128,
    rounds128,
    __m128i,
    1,
    load1,
    store1,
    m128(BSWAP32),
    _mm_shuffle_epi8,
    _mm_unpacklo_epi32,
    _mm_unpackhi_epi32,
    _mm_unpacklo_epi64,
    _mm_unpackhi_epi64,
    _mm_set1_epi32,
    _mm_set1_epi64x,
    _mm_xor_si128,
    _mm_ternarylogic_epi32,
    _mm_rol_epi32,
    _mm_gf2p8affine_epi64_epi8,
    _mm_gf2p8affineinv_epi64_epi8
);
width!(
    batch256,
    rounds256,
    __m256i,
    2,
    load256,
    store256,
    _mm256_broadcastsi128_si256(m128(BSWAP32)),
    _mm256_shuffle_epi8,
    _mm256_unpacklo_epi32,
    _mm256_unpackhi_epi32,
    _mm256_unpacklo_epi64,
    _mm256_unpackhi_epi64,
    _mm256_set1_epi32,
    _mm256_set1_epi64x,
    _mm256_xor_si256,
    _mm256_ternarylogic_epi32,
    _mm256_rol_epi32,
    _mm256_gf2p8affine_epi64_epi8,
    _mm256_gf2p8affineinv_epi64_epi8
);
width!(
    batch512,
    rounds512,
    __m512i,
    4,
    load512,
    store512,
    _mm512_broadcast_i32x4(m128(BSWAP32)),
    _mm512_shuffle_epi8,
    _mm512_unpacklo_epi32,
    _mm512_unpackhi_epi32,
    _mm512_unpacklo_epi64,
    _mm512_unpackhi_epi64,
    _mm512_set1_epi32,
    _mm512_set1_epi64,
    _mm512_xor_si512,
    _mm512_ternarylogic_epi32,
    _mm512_rol_epi32,
    _mm512_gf2p8affine_epi64_epi8,
    _mm512_gf2p8affineinv_epi64_epi8
);

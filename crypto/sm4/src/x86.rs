//! The x86-64 SIMD backends and what they share: CPU detection, block loads and stores, and
//! the 4×4 word transposition that puts word `j` of four blocks in one register.

use core::arch::x86_64::*;

pub(crate) mod aesni;
pub(crate) mod gfni;

// `avx2` is implied by `avx512f` when enabling features, so it is checked as well.
cpufeatures::new!(cpuid_gfni, "gfni", "avx2", "avx512f", "avx512bw", "avx512vl");
cpufeatures::new!(cpuid_aesni, "aes", "ssse3");

pub(crate) fn gfni_available() -> bool {
    cpuid_gfni::get()
}

pub(crate) fn aesni_available() -> bool {
    cpuid_aesni::get()
}

/// A 16-byte constant as a register (SSE2 is part of x86-64).
#[target_feature(enable = "sse2")]
#[inline]
pub(crate) fn m128(b: [u8; 16]) -> __m128i {
    let lo = i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let hi = i64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]]);
    _mm_set_epi64x(hi, lo)
}

/// `pshufb` mask reversing the bytes of each 32-bit word (SM4 words are big-endian).
pub(crate) const BSWAP32: [u8; 16] = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

/// `pshufb` mask filling all four words with big-endian word `j` of a block.
pub(crate) const fn word_broadcast(j: usize) -> [u8; 16] {
    let mut m = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        m[i] = (4 * j + 3 - i % 4) as u8;
        i += 1;
    }
    m
}

#[target_feature(enable = "sse2")]
#[inline]
pub(crate) fn load128(b: &[u8; 16]) -> __m128i {
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

#[target_feature(enable = "sse2")]
#[inline]
pub(crate) fn store128(b: &mut [u8; 16], v: __m128i) {
    // SAFETY: `b` is 16 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(b.as_mut_ptr().cast(), v) }
}

/// Transpose a 4×4 matrix of 32-bit words in each 128-bit lane (its own inverse).
macro_rules! transpose4 {
    ($r:expr, $ul32:ident, $uh32:ident, $ul64:ident, $uh64:ident) => {{
        let [a, b, c, d] = $r;
        let t0 = $ul32(a, b);
        let t1 = $ul32(c, d);
        let t2 = $uh32(a, b);
        let t3 = $uh32(c, d);
        [$ul64(t0, t1), $uh64(t0, t1), $ul64(t2, t3), $uh64(t2, t3)]
    }};
}
pub(crate) use transpose4;

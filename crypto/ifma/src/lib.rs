//! Constant-time modular exponentiation modulo a 1024-, 1536- or 2048-bit odd number with
//! AVX-512 IFMA, chosen at run time: the two half exponentiations of an RSA-2048, RSA-3072 or
//! RSA-4096 private operation by the CRT ([`ModExp1024`], [`ModExp1536`], [`ModExp2048`], one
//! generic [`ModExp`] on one generic kernel).
//!
//! # Why by hand
//!
//! No crate offers a constant-time exponentiation on IFMA: crypto-bigint and num-bigint use
//! 64-bit scalar limbs, `ring` and `aws-lc-rs` keep theirs behind their own RSA key types.
//! OpenSSL 3's `rsaz-2k-avx512` shows the gain: about 3,700 RSA-2048 signatures per second on a
//! Zen 4 core with IFMA, 1,450 without. This crate does the same arithmetic in Rust intrinsics.
//!
//! # Algorithm
//!
//! Numbers are L limbs of 52 bits: 20 (1040 bits) for 1024-bit moduli, in two 512-bit
//! registers and one 256-bit one; 30 (1560 bits) for 1536-bit moduli, in four 512-bit
//! registers (two lanes zero); 40 (2080 bits) for 2048-bit moduli, in five. The text below
//! speaks of the 1024-bit case; the others are the same with R = 2^(52·L) and 64·W exponent
//! bits (W = 24, 32 words), and 4m < 2^(64·W+2) ≤ R holds for each. `vpmadd52luq` / `vpmadd52huq` add the low /
//! high 52 bits of a 52×52-bit product to a 64-bit lane, so products accumulate without
//! carries and are normalized once per multiplication (a carry ripple done on bit masks).
//!
//! Multiplication is *almost* Montgomery (AMM, Gueron–Krasnov): with R = 2^1040 and
//! k0 = −m^−1 mod 2^52, AMM(a, b) = (a·b + y·m)/R for the y < R that makes the division
//! exact, **without** the final conditional subtraction. The bound: if a, b < 2m and
//! 4m ≤ R then AMM(a, b) < (4m² + R·m)/R = m·(4m/R + 1) ≤ 2m. Here m < 2^1024, so
//! 4m < 2^1026 ≤ R with room to spare, and every value of the exponentiation stays below 2m
//! (which fits the 20 limbs) without any subtraction. At the end AMM(acc, 1) =
//! (acc + y·m)/R < (2m + R·m)/R < m + 1, so the result is at most m, and one constant-time
//! subtraction of m (kept or not through a mask) gives the fully reduced value.
//!
//! [`ModExp1024::pow`] converts base (< m) into the domain with AMM(base, R² mod m), builds a
//! table of base^0..31 (times R), runs fixed 5-bit windows over all 1024 exponent bits (one
//! top window of 4 bits, then 204 windows of five squarings and one multiplication), leaves
//! the domain with AMM(acc, 1) and reduces fully. R² mod m and k0 are computed once per
//! modulus in [`ModExp::new`] (about 60 µs; 130 µs and 230 µs for 1536 and 2048 bits).
//! Squarings are AMM(a, a).
//!
//! One AMM is a chain of 20 dependent steps, so a single exponentiation leaves the multiplier
//! idle much of the time; [`ModExp::pow2`] runs the two CRT halves in lockstep, their
//! instructions interleaved. Measured on a Zen 4 EPYC: one exponentiation about 168 µs, a pair
//! about 246 µs (the portable 64-bit CIOS path of the firmware: about 450 µs each); 1536 bits:
//! 425 µs, pair 685 µs; 2048 bits: 826 µs, pair 1520 µs (there the operands of two
//! interleaved multiplications no longer fit the 32 registers, so the pair gains little).
//!
//! # Constant time
//!
//! Nothing branches on or indexes memory with the base, the exponent or the modulus: the
//! loops have fixed counts (20 limbs, 1024 exponent bits), every window reads all 32 table
//! entries and keeps one with a compare mask and a masked move (`vpblendmq`), the carry
//! ripple of normalization is arithmetic on bit masks, and the conversions between 64- and
//! 52-bit limbs and the final subtraction are straight-line word arithmetic. R² mod m is
//! 2080 modular doublings of 1, each with a masked subtraction. The IFMA instructions, like
//! other integer multiplications on the CPUs that have them, take a fixed time.
//!
//! # Safety
//!
//! `unsafe` appears only (a) where the `#[target_feature(enable = "avx512f,avx512vl,avx512ifma")]`
//! kernel is called, which happens only from a [`ModExp`], and one exists only after
//! `cpufeatures` found all three features; and (b) for unaligned 512- and 256-bit loads and
//! stores from and to `[u64; 8]` and `[u64; 4]` arrays in scope. Each block says why it is sound.
//!
//! # Secrets
//!
//! The modulus (a prime factor), its constants, and the scratch space of [`ModExp::pow`]
//! (the table of powers, the accumulator) are zeroized on drop / before `pow` returns. Values
//! the compiler spills from registers to the stack are not reachable to clear.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use core::sync::atomic::{AtomicBool, Ordering};
use zeroize::{Zeroize, Zeroizing};

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

const MASK52: u64 = (1 << 52) - 1;
/// Window width of the exponentiation: a table of 32 powers.
const WINDOW: usize = 5;

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Allow (the default) or forbid the IFMA path for the [`ModExp`] built afterwards, so a
/// benchmark can compare a caller's portable fallback on the same machine. Process-wide: not
/// for tests that run in parallel with others relying on the IFMA path.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether this CPU has AVX-512 F, VL and IFMA (and the path is not disabled by
/// [`set_enabled`]).
pub fn is_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ENABLED.load(Ordering::Relaxed) && x86::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The lanes of Z 512-bit registers and one 256-bit register, in memory: 52-bit limbs, least
/// significant first, unused lanes zero.
#[derive(Clone, Copy)]
struct Lanes<const Z: usize> {
    z: [[u64; 8]; Z],
    t: [u64; 4],
}

impl<const Z: usize> Lanes<Z> {
    const ZERO: Self = Lanes { z: [[0; 8]; Z], t: [0; 4] };

    /// Lane i (a public index).
    fn get(&self, i: usize) -> u64 {
        if i < 8 * Z { self.z[i / 8][i % 8] } else { self.t[i - 8 * Z] }
    }

    fn set(&mut self, i: usize, v: u64) {
        if i < 8 * Z {
            self.z[i / 8][i % 8] = v;
        } else {
            self.t[i - 8 * Z] = v;
        }
    }
}

impl<const Z: usize> Zeroize for Lanes<Z> {
    fn zeroize(&mut self) {
        self.z.zeroize();
        self.t.zeroize();
    }
}

/// Working memory of one exponentiation (zeroized by its owner, a `Zeroizing`).
struct Scratch<const Z: usize> {
    table: [Lanes<Z>; 1 << WINDOW],
    base: Lanes<Z>,
    tmp: Lanes<Z>,
    out: Lanes<Z>,
}

impl<const Z: usize> Zeroize for Scratch<Z> {
    fn zeroize(&mut self) {
        self.table.iter_mut().for_each(Zeroize::zeroize);
        self.base.zeroize();
        self.tmp.zeroize();
        self.out.zeroize();
    }
}

/// base^exp mod m for a fixed odd 1024-bit (or shorter) m: 16 words, 20 limbs of 52 bits in
/// two `zmm` and one `ymm`.
pub type ModExp1024 = ModExp<16, 20, 2>;
/// base^exp mod m for a fixed odd 1536-bit (or shorter) m: 24 words, 30 limbs of 52 bits in
/// four `zmm` (two lanes unused).
pub type ModExp1536 = ModExp<24, 30, 4>;
/// base^exp mod m for a fixed odd 2048-bit (or shorter) m: 32 words, 40 limbs of 52 bits in
/// five `zmm`.
pub type ModExp2048 = ModExp<32, 40, 5>;

/// base^exp mod m for a fixed odd m of at most 64·W bits (W 64-bit words), on AVX-512 IFMA,
/// with L limbs of 52 bits (52·L ≥ 64·W + 2, so that 4m ≤ R = 2^(52·L)) held in Z `zmm`
/// registers and, if L > 8·Z, one `ymm`. Use the aliases [`ModExp1024`], [`ModExp1536`],
/// [`ModExp2048`]. Exists only on a CPU that has IFMA. Its fields are secret when m is a
/// prime factor: zeroized on drop.
pub struct ModExp<const W: usize, const L: usize, const Z: usize> {
    /// m, 64-bit limbs (for the final subtraction).
    m: [u64; W],
    /// m, 52-bit limbs.
    m52: Lanes<Z>,
    /// 2^(2·52·L) mod m (R² for R = 2^(52·L)), 52-bit limbs.
    rr: Lanes<Z>,
    /// −m^−1 mod 2^52.
    k0: u64,
}

impl<const W: usize, const L: usize, const Z: usize> Drop for ModExp<W, L, Z> {
    fn drop(&mut self) {
        self.m.zeroize();
        self.m52.zeroize();
        self.rr.zeroize();
        self.k0.zeroize();
    }
}

impl<const W: usize, const L: usize, const Z: usize> ModExp<W, L, Z> {
    /// The shape checks, at compile time: R = 2^(52·L) ≥ 4m for every m < 2^(64·W), the L
    /// limbs fit the registers, and the lanes above them are few (the loops run L steps).
    const SHAPE: () = assert!(52 * L >= 64 * W + 2 && L <= 8 * Z + 4 && L + 8 > 8 * Z && Z >= 1);

    /// The constants for the odd modulus `m` (64-bit limbs, least significant first), or
    /// `None` if this CPU lacks AVX-512 IFMA (or it is disabled) or m is even or 1. Time
    /// independent of m's value.
    pub fn new(m: &[u64; W]) -> Option<Self> {
        const { Self::SHAPE };
        let above_one = m[1..].iter().fold(m[0] >> 1, |a, &l| a | l) != 0;
        if !is_available() || m[0] & 1 == 0 || !above_one {
            return None;
        }
        let mut x = Zeroizing::new([0u64; W]);
        x[0] = 1;
        for _ in 0..2 * 52 * L {
            let mut carry = 0;
            for limb in x.iter_mut() {
                let next = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            sub_if_ge(carry, &mut x, m);
        }
        let mut inv = 1u64;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m[0].wrapping_mul(inv)));
        }
        Some(ModExp { m: *m, m52: to52::<W, L, Z>(m), rr: to52::<W, L, Z>(&x), k0: inv.wrapping_neg() & MASK52 })
    }

    /// out = base^exp mod m for base < m, in constant time (the exponent's length is taken as
    /// 64·W bits whatever its value). `out` is fully reduced; for base ≥ m it is still
    /// base^exp mod m as long as base < 2m.
    pub fn pow(&self, base: &[u64; W], exp: &[u64; W], out: &mut [u64; W]) {
        Self::run([self], [base], [exp], [out]);
    }

    /// `outs[k] = bases[k]^exps[k] mod ms[k]` for k = 0, 1 (the two halves of an RSA CRT
    /// operation), with the same conditions as [`Self::pow`]. The two run interleaved, each
    /// filling the other's pipeline stalls: about 1.4 times faster than one after the other.
    pub fn pow2(ms: [&Self; 2], bases: [&[u64; W]; 2], exps: [&[u64; W]; 2], outs: [&mut [u64; W]; 2]) {
        Self::run(ms, bases, exps, outs);
    }

    fn run<const K: usize>(ms: [&Self; K], bases: [&[u64; W]; K], exps: [&[u64; W]; K], outs: [&mut [u64; W]; K]) {
        let mut s = Zeroizing::new(core::array::from_fn::<_, K, _>(|k| Scratch {
            table: [Lanes::ZERO; 1 << WINDOW],
            base: to52::<W, L, Z>(bases[k]),
            tmp: Lanes::ZERO,
            out: Lanes::ZERO,
        }));
        #[cfg(target_arch = "x86_64")]
        {
            let moduli = ms.map(|m| x86::Modulus { m: &m.m52, rr: &m.rr, k0: m.k0 });
            // SAFETY: a `ModExp` is built only after `is_available()` found AVX-512 F, VL
            // and IFMA, the features `x86::pow` is compiled for.
            unsafe { x86::pow::<W, L, Z, K>(moduli, exps, &mut s) };
        }
        // No `ModExp` can exist elsewhere (`is_available()` is false).
        #[cfg(not(target_arch = "x86_64"))]
        let _ = exps;
        for ((out, s), m) in outs.into_iter().zip(s.iter()).zip(ms) {
            *out = from52::<W, L, Z>(&s.out);
            // The value is at most m: subtract m once unless it is below.
            sub_if_ge(0, out, &m.m);
        }
    }
}

/// x ← x − m if hi·2^(64·W) + x ≥ m, for hi·2^(64·W) + x < 2m; constant time.
fn sub_if_ge<const W: usize>(hi: u64, x: &mut [u64; W], m: &[u64; W]) {
    let mut d = [0u64; W];
    let mut borrow = 0u64;
    for ((d, &x), &m) in d.iter_mut().zip(x.iter()).zip(m) {
        let t = (x as u128).wrapping_sub(m as u128 + borrow as u128);
        *d = t as u64;
        borrow = (t >> 127) as u64;
    }
    // hi = 1: the value exceeds 2^(64·W) > m and the subtraction borrowed; hi = 0: keep the
    // difference iff it did not borrow. Either way: keep it iff borrow == hi.
    let keep = core::hint::black_box(((borrow ^ hi) ^ 1).wrapping_neg());
    for (x, d) in x.iter_mut().zip(&d) {
        *x ^= keep & (*x ^ *d);
    }
    d.zeroize();
}

/// 64·W bits in 64-bit limbs → L limbs of 52 bits (and zero lanes above).
fn to52<const W: usize, const L: usize, const Z: usize>(x: &[u64; W]) -> Lanes<Z> {
    let mut r = Lanes::ZERO;
    for i in 0..L {
        let (w, off) = (52 * i / 64, 52 * i % 64);
        if w >= W {
            break;
        }
        let mut v = x[w] >> off;
        if off > 12 && w + 1 < W {
            v |= x[w + 1] << (64 - off);
        }
        r.set(i, v & MASK52);
    }
    r
}

/// L canonical 52-bit limbs of a value below 2^(64·W) → 64-bit limbs.
fn from52<const W: usize, const L: usize, const Z: usize>(x: &Lanes<Z>) -> [u64; W] {
    let mut r = [0u64; W];
    for i in 0..L {
        let (w, off) = (52 * i / 64, 52 * i % 64);
        if w >= W {
            break;
        }
        let l = x.get(i);
        r[w] |= l << off;
        if off > 12 && w + 1 < W {
            r[w + 1] |= l >> (64 - off);
        }
    }
    r
}

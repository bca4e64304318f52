//! Constant-time elliptic-curve multiplication for **eight secret scalars at once** with
//! AVX-512 IFMA, chosen at run time, on the SM2 curve and on NIST P-256:
//!
//! * fixed base ([`CombTable::mul8`]): the expensive half of a nonce-pool refill (\[k\]G for
//!   a batch of fresh nonces k) in the card firmware, for SM2 signatures and ECDSA P-256
//!   signatures;
//! * variable base ([`varbase_mul8`]): eight independent \[k_l\]P_l, each lane with its own
//!   point, e.g. \[dB\]C1 for eight SM2 ciphertexts being decrypted at once.
//!
//! # Why by hand
//!
//! No crate vectorizes short-Weierstrass arithmetic across independent scalars: the
//! RustCrypto `sm2` and `p256` crates and the firmware's own 64-bit SM2 field (`sm2_fast`) run
//! one scalar per chain of dependent `mul` instructions, about 240 instructions per field
//! multiplication. `vpmadd52luq` / `vpmadd52huq` multiply eight 52-bit limbs per instruction,
//! so eight field multiplications — one per lane, one lane per nonce — cost about 100 IFMA
//! instructions together. The firmware forbids `unsafe`, which target-feature code needs, so
//! the kernel lives here, as the AVX-512 code of SM4 (`gmhsm-sm4`) and RSA (`gmhsm-ifma`) does.
//!
//! # What it computes
//!
//! The caller supplies the comb table (`CombTable::new`: for window i and entry j the affine
//! point (j + 1) · 2^(w·i) · G, any window width w) and, per call, every lane's signed digits
//! d_i with |d_i| ≤ entries (`CombTable::mul8`). The result per lane is
//! Σ d_i · 2^(w·i) · G in Jacobian coordinates (x = X/Z², y = Y/Z³), as canonical big-endian
//! integers, with **Z = 0 when the lane's sum met an exceptional case** of the mixed-addition
//! formula (adding a point to itself or to its negative) — the caller then redoes that lane
//! another way — or when all its digits are zero. The recoding of scalars into digits, and
//! the argument that the exceptional case does not occur for scalars below the group order,
//! stay with the caller (the firmware's `sm2_fast::table`).
//!
//! For the variable base ([`varbase_mul8`]) the caller supplies, per lane l, the affine
//! multiples P_l, 2P_l, …, 8P_l ([`VARBASE_ENTRIES`]) of that lane's public point and the
//! lane's 65 signed base-16 digits d_i ∈ [−8, 8] ([`VARBASE_DIGITS`]), least significant first.
//! The result per lane is Σ d_i · 16^i · P_l, computed as the firmware's one-lane
//! `sm2_fast::varbase::mul` does — from the top digit down, four doublings (dbl-2001-b, a = −3)
//! and one mixed addition of the digit's signed multiple — in the same Jacobian form and with
//! the **same Z = 0 convention**: Z = 0 when the lane met an exceptional case of the mixed
//! addition (the running multiple equal to the digit's multiple or to its negative) or its sum
//! is the identity. Z = 0 is absorbing (a doubling gives Z3 = 2YZ, a mixed addition
//! Z3 = 2·Z1·H), so an exceptional step anywhere shows in the output; the caller redoes such
//! a lane another way. With the firmware's recoding, the exceptional case needs a scalar
//! within 16 of the group order.
//!
//! # Arithmetic
//!
//! Field elements are five 52-bit limbs (R = 2^260) in Montgomery form, one lane per scalar.
//! Montgomery multiplication runs five rounds of "add a·b_i, add m·p, shift a limb", and
//! −p^−1 ≡ 1 (mod 2^52) because both primes are ≡ −1 (mod 2^64), so m is simply the low
//! limb. Values are kept *below 2^257, not reduced*: a product of two such values is below
//! (2^514 + R·p)/R < 1.25 p. Additions and subtractions (a + 8p − b) are followed by one
//! *fold* of the bits at and above 2^256 through 2^256 mod p (SM2: 2^224 + 2^96 − 2^64 + 1;
//! P-256: 2^224 − 2^192 − 2^96 + 1), which brings any value below 2^271 back below 2^257 with
//! shifts and adds. Limbs are normalized (signed carry ripple) before every multiplication,
//! since IFMA reads only the low 52 bits of each operand. Only the outputs are reduced fully
//! (one constant-time subtraction of p). The mixed addition (madd-2007-bl) does not use the
//! curve coefficients, so the two curves differ only in their prime.
//!
//! # Constant time
//!
//! Nothing branches on or indexes memory with a digit or a coordinate: every window reads all
//! of its table entries and keeps the wanted one per lane with a compare mask and a masked
//! move, the sign of a digit selects −y by a masked move, and "digit zero" and "accumulator
//! still empty" are lane masks applied by masked moves. The loop counts depend only on the
//! table's shape. The conversions in and out are straight-line word arithmetic.
//!
//! # Safety
//!
//! `unsafe` appears only where the `#[target_feature(enable = "avx512f,avx512ifma")]` kernels
//! are called — the comb only from a [`CombTable`], which exists only after `cpufeatures`
//! found both features, the variable base only after [`varbase_mul8`] checked
//! [`is_available`] — and for unaligned 512-bit loads and stores from and to `[u64; 8]` arrays in
//! scope. Each block says why it is sound.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use zeroize::Zeroize;

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

/// Scalars per [`CombTable::mul8`] call: one per 64-bit lane of a 512-bit register.
pub const LANES: usize = 8;

/// Signed base-16 digits per scalar of [`varbase_mul8`] (64 nibbles and a final carry),
/// least significant first.
pub const VARBASE_DIGITS: usize = 65;

/// Multiples per lane table of [`varbase_mul8`]: P, 2P, …, 8P.
pub const VARBASE_ENTRIES: usize = 8;

const MASK52: u64 = (1 << 52) - 1;

mod sealed {
    pub trait Sealed {}
}

/// A curve the kernel supports: its field prime p (≡ −1 mod 2^64) and constants derived from
/// it (checked against p in the tests).
pub trait Curve: sealed::Sealed {
    /// p in 52-bit limbs, least significant first.
    const P52: [u64; 5];
    /// 8p in 52-bit limbs (the offset that keeps a − b positive for b < 2^257 < 8p).
    const P8_52: [u64; 5];
    /// R² mod p, R = 2^260.
    const R2_52: [u64; 5];
    /// R mod p: one in Montgomery form.
    const ONE_52: [u64; 5];
    /// p in 64-bit limbs, least significant first.
    const P64: [u64; 4];
    /// 2^256 mod p as four signed powers of two 2^(52·limb + shift): (limb, shift, negative).
    const FOLD: [(usize, u64, bool); 4];
}

/// The SM2 curve (GB/T 32918.5): p = 2^256 − 2^224 − 2^96 + 2^64 − 1.
#[derive(Debug, Clone, Copy)]
pub struct Sm2;

impl sealed::Sealed for Sm2 {}
impl Curve for Sm2 {
    const P52: [u64; 5] = [0xfffffffffffff, 0xff00000000fff, 0xfffffffffffff, 0xfffffffffffff, 0xfffffffeffff];
    const P8_52: [u64; 5] = [0xffffffffffff8, 0xf800000007fff, 0xfffffffffffff, 0xfffffffffffff, 0x7fffffff7ffff];
    const R2_52: [u64; 5] = [0x0020000000300, 0xffffffff00000, 0x0000100000002, 0x0200000001000, 0x4000000];
    const ONE_52: [u64; 5] = [0x0000000000010, 0x0ffffffff0000, 0, 0, 0x100000];
    const P64: [u64; 4] = [0xffffffffffffffff, 0xffffffff00000000, 0xffffffffffffffff, 0xfffffffeffffffff];
    // 2^224 + 2^96 − 2^64 + 1.
    const FOLD: [(usize, u64, bool); 4] = [(4, 16, false), (1, 44, false), (1, 12, true), (0, 0, false)];
}

/// NIST P-256 (FIPS 186-5): p = 2^256 − 2^224 + 2^192 + 2^96 − 1.
#[derive(Debug, Clone, Copy)]
pub struct P256;

impl sealed::Sealed for P256 {}
impl Curve for P256 {
    const P52: [u64; 5] = [0xfffffffffffff, 0x00fffffffffff, 0, 0x0001000000000, 0xffffffff0000];
    const P8_52: [u64; 5] = [0xffffffffffff8, 0x07fffffffffff, 0, 0x0008000000000, 0x7fffffff80000];
    const R2_52: [u64; 5] = [0x0000000000300, 0xffffffff00000, 0xffffefffffffb, 0xfdfffffffffff, 0x4ffffff];
    const ONE_52: [u64; 5] = [0x0000000000010, 0xf000000000000, 0xfffffffffffff, 0xffeffffffffff, 0xfffff];
    const P64: [u64; 4] = [0xffffffffffffffff, 0x00000000ffffffff, 0, 0xffffffff00000001];
    // 2^224 − 2^192 − 2^96 + 1.
    const FOLD: [(usize, u64, bool); 4] = [(4, 16, false), (3, 36, true), (1, 44, true), (0, 0, false)];
}

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Allow (the default) or forbid the IFMA path for tables built afterwards, so a benchmark or a
/// test can measure the caller's portable path on the same machine. Process-wide.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether this CPU has AVX-512 F and IFMA (and the path is not disabled by [`set_enabled`]).
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

/// A point in Jacobian coordinates (x = X/Z², y = Y/Z³), each coordinate a canonical
/// big-endian integer below p. Z = 0: see the crate documentation. Secret (the multiple of a
/// secret scalar): zeroized on drop, hidden from `Debug`.
#[derive(Clone, Default)]
pub struct Jacobian {
    /// X.
    pub x: [u8; 32],
    /// Y.
    pub y: [u8; 32],
    /// Z.
    pub z: [u8; 32],
}

impl Drop for Jacobian {
    fn drop(&mut self) {
        self.x.zeroize();
        self.y.zeroize();
        self.z.zeroize();
    }
}

impl core::fmt::Debug for Jacobian {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Jacobian(..)")
    }
}

impl Jacobian {
    /// Whether Z = 0 (an exceptional case was met, or every digit was zero). Constant time.
    pub fn z_is_zero(&self) -> bool {
        self.z.iter().fold(0u8, |acc, b| acc | b) == 0
    }
}

/// A comb table in the kernel's form for curve C: for window i and entry j, the affine point
/// (j + 1) · 2^(w·i) · G as ten 52-bit limbs (x then y, Montgomery form, fully reduced).
/// Public data (multiples of the generator), ~110 KiB with w = 6.
pub struct CombTable<C: Curve> {
    windows: usize,
    entries: usize,
    limbs: Vec<u64>,
    curve: core::marker::PhantomData<C>,
}

impl<C: Curve> core::fmt::Debug for CombTable<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CombTable {{ windows: {}, entries: {} }}", self.windows, self.entries)
    }
}

/// Limbs of one table entry: x and y, five each.
const ENTRY_LIMBS: usize = 10;

impl<C: Curve> CombTable<C> {
    /// The table of `windows` × `entries` affine points, `point(i, j)` giving the big-endian
    /// (x, y) of (j + 1) · 2^(w·i) · G. `None` if this CPU lacks AVX-512 IFMA (or it is
    /// disabled), if `entries` is 0 or above 127, or if a coordinate is not below p.
    pub fn new(
        windows: usize,
        entries: usize,
        mut point: impl FnMut(usize, usize) -> ([u8; 32], [u8; 32]),
    ) -> Option<CombTable<C>> {
        if !is_available() || entries == 0 || entries > 127 || windows == 0 {
            return None;
        }
        // Every coordinate in 52-bit limbs, then into Montgomery form eight at a time.
        let n = windows * entries * 2;
        let mut plain = Vec::with_capacity(n);
        for i in 0..windows {
            for j in 0..entries {
                let (x, y) = point(i, j);
                plain.push(to_limbs52(&below_p::<C>(&x)?));
                plain.push(to_limbs52(&below_p::<C>(&y)?));
            }
        }
        let mut limbs = alloc::vec![0u64; n * 5];
        for (c, chunk) in plain.chunks(LANES).enumerate() {
            let mut input = [[0u64; LANES]; 5];
            for (l, v) in chunk.iter().enumerate() {
                for t in 0..5 {
                    input[t][l] = v[t];
                }
            }
            let out = to_montgomery::<C>(&input);
            for l in 0..chunk.len() {
                let v = limbs52(&reduce_once::<C>(&[out[0][l], out[1][l], out[2][l], out[3][l], out[4][l]]));
                limbs[(c * LANES + l) * 5..(c * LANES + l + 1) * 5].copy_from_slice(&v);
            }
        }
        Some(CombTable { windows, entries, limbs, curve: core::marker::PhantomData })
    }

    /// Windows of the table.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Entries per window.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// Σ_i digits\[i\]\[l\] · 2^(w·i) · G for each lane l, in constant time. `digits` has one
    /// row per window, least significant first; every digit must satisfy |d| ≤ entries
    /// (checked; a violation panics without saying which digit).
    pub fn mul8(&self, digits: &[[i8; LANES]]) -> [Jacobian; LANES] {
        assert_eq!(digits.len(), self.windows, "one row of digits per window");
        // Branch-free range check over all (secret) digits.
        let mut out_of_range = 0u32;
        for row in digits {
            for &d in row {
                let abs = u32::from(d.unsigned_abs());
                out_of_range |= (self.entries as u32).wrapping_sub(abs) >> 31;
            }
        }
        assert!(out_of_range == 0, "a digit exceeds the table");
        let mut raw = [[[0u64; LANES]; 5]; 3];
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: a CombTable exists only when `is_available()` found AVX-512 F and IFMA
            // (checked in `new`), the kernel's target features; `limbs` holds windows ×
            // entries × 10 limbs and `digits` one row per window, as the kernel reads them.
            unsafe { x86::comb8::<C>(&self.limbs, self.windows, self.entries, digits, &mut raw) };
        }
        let out = core::array::from_fn(|l| jacobian_of_lane::<C>(&raw, l));
        raw.zeroize();
        out
    }
}

/// Lane l of a kernel's output (X, Y, Z limb-major, each below 2p) as canonical big-endian
/// coordinates.
fn jacobian_of_lane<C: Curve>(raw: &[[[u64; LANES]; 5]; 3], l: usize) -> Jacobian {
    let coord = |c: usize| {
        let mut v = reduce_once::<C>(&[raw[c][0][l], raw[c][1][l], raw[c][2][l], raw[c][3][l], raw[c][4][l]]);
        let b = to_bytes(&v);
        v.zeroize();
        b
    };
    Jacobian { x: coord(0), y: coord(1), z: coord(2) }
}

/// For every lane l < n (n = `tables.len()` = `digits.len()`, 1 ≤ n ≤ [`LANES`]):
/// Σ_i `digits[l][i]` · 16^i · P_l, in constant time in the digits and the points, where
/// `tables[l][j]` = (x, y) of (j + 1) · P_l as canonical big-endian integers below p (affine,
/// public, supplied by the caller) and every digit is in [−8, 8]. Jacobian results as in
/// [`CombTable::mul8`] (canonical big-endian X, Y, Z), Z = 0 when the lane met an exceptional
/// case of the mixed addition (the caller then redoes that lane another way) or its sum is
/// the identity (see the crate documentation).
///
/// `None` when IFMA is not available ([`is_available`]), so the caller uses its portable
/// path. Panics — whether or not IFMA is available — on n = 0, n > [`LANES`], mismatched
/// lengths, a coordinate not below p, or a digit outside [−8, 8] (without saying which).
/// Lanes beyond n run on copies of lane 0's table with zero digits; their results are dropped,
/// so a call costs the same for any n (about 99 µs on a Zen 4 core, for either curve).
pub fn varbase_mul8<C: Curve>(
    tables: &[[[[u8; 32]; 2]; VARBASE_ENTRIES]],
    digits: &[[i8; VARBASE_DIGITS]],
) -> Option<Vec<Jacobian>> {
    let n = tables.len();
    assert!((1..=LANES).contains(&n), "between 1 and {LANES} lanes");
    assert_eq!(digits.len(), n, "one row of digits per table");
    // The multiples (public) in 52-bit limbs: entry j, coordinate c, limb t, lane l.
    let mut plain = [[[[0u64; LANES]; 5]; 2]; VARBASE_ENTRIES];
    for l in 0..LANES {
        let table = &tables[if l < n { l } else { 0 }];
        for (entry, point) in plain.iter_mut().zip(table) {
            for (coord, bytes) in entry.iter_mut().zip(point) {
                let v = to_limbs52(&below_p::<C>(bytes).expect("a coordinate is not below p"));
                for (limb, v) in coord.iter_mut().zip(v) {
                    limb[l] = v;
                }
            }
        }
    }
    // The digits (secret), idle lanes zero, with a branch-free range check.
    let mut lanes = [[0i8; VARBASE_DIGITS]; LANES];
    let mut out_of_range = 0u32;
    for (lane, row) in lanes.iter_mut().zip(digits) {
        for (d, &s) in lane.iter_mut().zip(row) {
            out_of_range |= (VARBASE_ENTRIES as u32).wrapping_sub(u32::from(s.unsigned_abs())) >> 31;
            *d = s;
        }
    }
    if out_of_range != 0 {
        lanes.zeroize();
        panic!("a digit is outside [-8, 8]");
    }
    if !is_available() {
        lanes.zeroize();
        return None;
    }
    let mut raw = [[[0u64; LANES]; 5]; 3];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `is_available()` just found AVX-512 F and IFMA, the kernel's target
        // features; every coordinate of `plain` passed `below_p` and every digit the range
        // check above, as the kernel requires; the arrays have the kernel's fixed shapes.
        unsafe { x86::varbase8::<C>(&plain, &lanes, &mut raw) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = &plain;
    lanes.zeroize();
    let out = (0..n).map(|l| jacobian_of_lane::<C>(&raw, l)).collect();
    raw.zeroize();
    Some(out)
}

/// x · R mod p (not fully reduced) for eight values in 52-bit limbs, lane-major.
fn to_montgomery<C: Curve>(input: &[[u64; LANES]; 5]) -> [[u64; LANES]; 5] {
    let mut out = [[0u64; LANES]; 5];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: only called from `CombTable::new` after `is_available()` found AVX-512 F and
        // IFMA, the kernel's target features.
        unsafe { x86::to_montgomery8::<C>(input, &mut out) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = input;
    out
}

/// The bytes if they are a canonical field element (below p).
fn below_p<C: Curve>(b: &[u8; 32]) -> Option<[u8; 32]> {
    let v = from_bytes(b);
    let (_, borrow) = sub_p::<C>(&v);
    (borrow == 1).then_some(*b)
}

/// Big-endian bytes → 64-bit limbs, least significant first.
fn from_bytes(b: &[u8; 32]) -> [u64; 4] {
    core::array::from_fn(|i| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[32 - 8 * (i + 1)..32 - 8 * i]);
        u64::from_be_bytes(w)
    })
}

fn to_bytes(v: &[u64; 4]) -> [u8; 32] {
    let mut b = [0u8; 32];
    for i in 0..4 {
        b[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&v[i].to_be_bytes());
    }
    b
}

/// A canonical 256-bit value in five 52-bit limbs.
fn to_limbs52(b: &[u8; 32]) -> [u64; 5] {
    limbs52(&from_bytes(b))
}

/// 64-bit limbs → 52-bit limbs.
fn limbs52(v: &[u64; 4]) -> [u64; 5] {
    [
        v[0] & MASK52,
        ((v[0] >> 52) | (v[1] << 12)) & MASK52,
        ((v[1] >> 40) | (v[2] << 24)) & MASK52,
        ((v[2] >> 28) | (v[3] << 36)) & MASK52,
        v[3] >> 16,
    ]
}

/// v − p with the final borrow (1 if v < p).
fn sub_p<C: Curve>(v: &[u64; 4]) -> ([u64; 4], u64) {
    let mut out = [0u64; 4];
    let mut borrow = 0u64;
    for i in 0..4 {
        let (d, b1) = v[i].overflowing_sub(C::P64[i]);
        let (d, b2) = d.overflowing_sub(borrow);
        out[i] = d;
        borrow = u64::from(b1 | b2);
    }
    (out, borrow)
}

/// A value below 2p in normalized 52-bit limbs → 64-bit limbs, fully reduced (one
/// constant-time subtraction of p).
fn reduce_once<C: Curve>(l: &[u64; 5]) -> [u64; 4] {
    // 52 · 5 = 260 bits; the value is below 2p < 2^257, so bit 256 is `top`.
    let v =
        [l[0] | (l[1] << 52), (l[1] >> 12) | (l[2] << 40), (l[2] >> 24) | (l[3] << 28), (l[3] >> 36) | (l[4] << 16)];
    let top = l[4] >> 48;
    let (d, borrow) = sub_p::<C>(&v);
    // Keep v − p unless it borrowed past the top bit: (top, v) − p < 0 ⟺ borrow > top.
    let keep_v = (borrow & !top & 1).wrapping_neg();
    core::array::from_fn(|i| (v[i] & keep_v) | (d[i] & !keep_v))
}

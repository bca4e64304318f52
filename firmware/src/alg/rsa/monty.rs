//! Fixed-size Montgomery arithmetic modulo an odd number of `L` 64-bit limbs: the engine of
//! the RSA private operation ([`super::crt`]).
//!
//! Numbers are `[u64; L]`, least significant limb first; a value `x` in Montgomery form is
//! stored as x·R mod m with R = 2^(64·L). Multiplication is CIOS (coarsely integrated operand
//! scanning, Koç–Acar–Kaliski 1996) with u64 limbs and u128 products; squaring computes the
//! 2L-limb square once (each cross product a_i·a_j once, then doubled) and reduces it with a
//! separate Montgomery reduction: a quarter fewer multiplications, though measured at 16 limbs
//! it is only a few per cent faster than `mul` (short variable-length rows). Product scanning
//! (FIPS) was tried for both and measured slower with u128 arithmetic.
//!
//! Constant time: every function runs the same instructions and touches the same addresses
//! whatever the values of its operands and of the modulus. There is no branch on data: the
//! final conditional subtraction of each reduction computes x − m and keeps it or x through a
//! mask (passed through [`core::hint::black_box`] so the compiler cannot turn it back into a
//! branch); [`Field::pow`] uses a fixed window of [`WINDOW`] bits over all 64·L exponent bits
//! whatever the exponent's actual length, and reads every table entry for every window,
//! keeping the wanted one with a mask. Only [`Field::pow_public`] (for the public exponent e)
//! branches on its exponent.

use core::hint::black_box;
use zeroize::Zeroize;

/// Window width of [`Field::pow`]: 5 bits, a table of 32 powers. Not tuned by measurement:
/// the ~64·L squarings dominate whatever the window; 6 would save ~30 multiplications per
/// 1024-bit exponentiation and double the table scanned per window.
pub const WINDOW: usize = 5;

/// a + b·c + carry as (low, high); cannot overflow: (2^64−1) + (2^64−1)² + (2^64−1) < 2^128.
#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 * c as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

/// a + b + carry as (sum, carry out); carry in 0 or 1.
#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

/// a − b − borrow as (difference, borrow out); borrow in 0 or 1.
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128 + borrow as u128);
    (t as u64, (t >> 127) as u64)
}

/// All ones if a == b, else zero, without a branch.
#[inline(always)]
pub(super) fn eq_mask(a: u64, b: u64) -> u64 {
    let x = a ^ b;
    black_box(((x | x.wrapping_neg()) >> 63).wrapping_sub(1))
}

/// r ← a if mask is all ones, r unchanged if mask is zero.
#[inline(always)]
fn assign_masked<const L: usize>(r: &mut [u64; L], a: &[u64; L], mask: u64) {
    for (r, a) in r.iter_mut().zip(a) {
        *r ^= mask & (*r ^ *a);
    }
}

/// -m^-1 mod 2^64 for odd m (Newton's iteration, 6 steps double 1 correct bit to 64).
fn neg_inv(m0: u64) -> u64 {
    let mut inv = 1u64;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
    }
    inv.wrapping_neg()
}

/// Arithmetic modulo an odd m < 2^(64·L), with its Montgomery constants. Zeroized on drop
/// (for a prime factor every field is secret).
pub struct Field<const L: usize> {
    m: [u64; L],
    /// -m^-1 mod 2^64.
    m_inv: u64,
    /// R mod m: 1 in Montgomery form.
    one: [u64; L],
    /// R² mod m: converts into Montgomery form.
    r2: [u64; L],
    /// R³ mod m: converts a 2L-limb number into Montgomery form after one reduction.
    r3: [u64; L],
}

impl<const L: usize> Drop for Field<L> {
    fn drop(&mut self) {
        self.m.zeroize();
        self.m_inv.zeroize();
        self.one.zeroize();
        self.r2.zeroize();
        self.r3.zeroize();
    }
}

impl<const L: usize> Field<L> {
    /// The constants for an odd modulus `m` (not checked to be odd: the caller's job). Time
    /// independent of `m`: R² mod m by 128·L modular doublings of 1.
    pub fn new(m: &[u64; L]) -> Self {
        let mut f = Field { m: *m, m_inv: neg_inv(m[0]), one: [0; L], r2: [0; L], r3: [0; L] };
        let mut x = [0u64; L];
        x[0] = 1;
        // 1 < m unless m = 1, and then everything is 0 mod m anyway.
        f.sub_if_ge(0, &mut x);
        for _ in 0..128 * L {
            let mut carry = 0;
            for limb in x.iter_mut() {
                let next = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            f.sub_if_ge(carry, &mut x);
        }
        f.r2 = x;
        f.one = f.mul(&f.r2, &unit());
        f.r3 = f.mul(&f.r2, &f.r2);
        x.zeroize();
        f
    }

    pub fn modulus(&self) -> &[u64; L] {
        &self.m
    }

    /// R mod m (1 in Montgomery form).
    #[cfg(test)]
    pub fn one(&self) -> &[u64; L] {
        &self.one
    }

    /// R² mod m.
    #[cfg(test)]
    pub fn r2(&self) -> &[u64; L] {
        &self.r2
    }

    /// x ← x − m if hi·R + x ≥ m, for hi·R + x < 2m; constant time.
    #[inline(always)]
    fn sub_if_ge(&self, hi: u64, x: &mut [u64; L]) {
        let mut d = [0u64; L];
        let mut borrow = 0;
        for ((d, &x), &m) in d.iter_mut().zip(x.iter()).zip(&self.m) {
            (*d, borrow) = sbb(x, m, borrow);
        }
        // hi = 1: the value is ≥ R > m and x < m, so the subtraction borrowed. hi = 0: keep the
        // difference iff it did not borrow. Either way: keep it iff borrow == hi.
        assign_masked(x, &d, eq_mask(borrow, hi));
    }

    /// a·b·R^-1 mod m, fully reduced, for a < R and b < m: CIOS, one row a·b_i then one
    /// reduction row q·m per limb of b, in L + 1 limbs.
    #[inline]
    pub fn mul(&self, a: &[u64; L], b: &[u64; L]) -> [u64; L] {
        let m = &self.m;
        let mut t = [0u64; L];
        let mut t_hi = 0u64;
        for &bi in b.iter() {
            let mut c = 0;
            for (t, &aj) in t.iter_mut().zip(a.iter()) {
                (*t, c) = mac(*t, aj, bi, c);
            }
            let (s, c2) = adc(t_hi, c, 0);
            let q = t[0].wrapping_mul(self.m_inv);
            let (_, mut c) = mac(t[0], q, m[0], 0);
            for j in 1..L {
                (t[j - 1], c) = mac(t[j], q, m[j], c);
            }
            let (s, c3) = adc(s, c, 0);
            t[L - 1] = s;
            t_hi = c2 + c3;
        }
        self.sub_if_ge(t_hi, &mut t);
        t
    }

    /// a²·R^-1 mod m, fully reduced, for a < m: the 2L-limb square (each cross product
    /// a_i·a_j, i < j, once, then doubled, plus the diagonal a_i²), then [`Self::redc`].
    #[inline]
    pub fn sqr(&self, a: &[u64; L]) -> [u64; L] {
        let mut w = [[0u64; L]; 2];
        let t = w.as_flattened_mut();
        for i in 0..L - 1 {
            let mut c = 0;
            for j in i + 1..L {
                (t[i + j], c) = mac(t[i + j], a[i], a[j], c);
            }
            t[i + L] = c;
        }
        let mut top = 0;
        for limb in t.iter_mut() {
            let next = *limb >> 63;
            *limb = (*limb << 1) | top;
            top = next;
        }
        let mut c = 0;
        for (i, &ai) in a.iter().enumerate() {
            let sq = ai as u128 * ai as u128;
            (t[2 * i], c) = adc(t[2 * i], sq as u64, c);
            (t[2 * i + 1], c) = adc(t[2 * i + 1], (sq >> 64) as u64, c);
        }
        self.redc(&mut w)
    }

    /// t·R^-1 mod m for a 2L-limb t < m·R (low half first), fully reduced; zeroizes t.
    #[inline(always)]
    fn redc(&self, w: &mut [[u64; L]; 2]) -> [u64; L] {
        let t = w.as_flattened_mut();
        let mut hi = 0;
        for i in 0..L {
            let q = t[i].wrapping_mul(self.m_inv);
            let mut c = 0;
            for j in 0..L {
                (t[i + j], c) = mac(t[i + j], q, self.m[j], c);
            }
            (t[i + L], hi) = adc(t[i + L], c, hi);
        }
        let mut r = w[1];
        w.zeroize();
        self.sub_if_ge(hi, &mut r);
        r
    }

    /// Montgomery form of a 2L-limb t < m·R (in particular of any t < m·m' with m' ≤ R):
    /// redc(t) = t·R^-1, times R³ in Montgomery form = t·R.
    pub fn to_mont_wide(&self, t: &[u64]) -> [u64; L] {
        let mut w = [[0u64; L]; 2];
        w.as_flattened_mut().copy_from_slice(&t[..2 * L]);
        let mut r = self.redc(&mut w);
        let out = self.mul(&r, &self.r3);
        r.zeroize();
        out
    }

    /// Montgomery form of a < R: a·R mod m.
    pub fn to_mont(&self, a: &[u64; L]) -> [u64; L] {
        self.mul(a, &self.r2)
    }

    /// The ordinary value of a Montgomery-form a < m.
    pub fn retrieve(&self, a: &[u64; L]) -> [u64; L] {
        self.mul(a, &unit())
    }

    /// a − b mod m for a, b < m (in either form: the map is linear).
    pub fn sub(&self, a: &[u64; L], b: &[u64; L]) -> [u64; L] {
        let mut r = [0u64; L];
        let mut borrow = 0;
        for ((r, &a), &b) in r.iter_mut().zip(a).zip(b) {
            (*r, borrow) = sbb(a, b, borrow);
        }
        // Add m back iff it borrowed.
        let mask = borrow.wrapping_neg();
        let mut c = 0;
        for (r, &m) in r.iter_mut().zip(&self.m) {
            (*r, c) = adc(*r, m & mask, c);
        }
        r
    }

    /// base^exp with base and result in Montgomery form; constant time in base, exp and m.
    /// Fixed window of [`WINDOW`] bits over all 64·L bits of `exp`: ⌈64L/5⌉ − 1 windows of
    /// five squarings and one multiplication by a table entry chosen by a full masked scan.
    pub fn pow(&self, base: &[u64; L], exp: &[u64; L]) -> [u64; L] {
        let mut table = [[0u64; L]; 1 << WINDOW];
        table[0] = self.one;
        table[1] = *base;
        for i in 2..table.len() {
            table[i] = if i % 2 == 0 { self.sqr(&table[i / 2]) } else { self.mul(&table[i - 1], base) };
        }
        let bits = 64 * L;
        let top = match bits % WINDOW {
            0 => WINDOW,
            r => r,
        };
        let mut pos = bits - top;
        let mut acc = select(&table, window(exp, pos, top));
        let mut entry;
        while pos > 0 {
            pos -= WINDOW;
            for _ in 0..WINDOW {
                acc = self.sqr(&acc);
            }
            entry = select(&table, window(exp, pos, WINDOW));
            acc = self.mul(&acc, &entry);
            entry.zeroize();
        }
        table.zeroize();
        acc
    }

    /// base^exp for a public exponent (little-endian limbs), base and result in Montgomery
    /// form: left-to-right square and multiply, variable time in `exp` only.
    pub fn pow_public(&self, base: &[u64; L], exp: &[u64]) -> [u64; L] {
        let mut acc = self.one;
        let mut started = false;
        for bit in (0..64 * exp.len()).rev() {
            if started {
                acc = self.sqr(&acc);
            }
            if exp[bit / 64] >> (bit % 64) & 1 == 1 {
                acc = if started { self.mul(&acc, base) } else { *base };
                started = true;
            }
        }
        acc
    }
}

/// 1 as a plain number.
fn unit<const L: usize>() -> [u64; L] {
    let mut one = [0u64; L];
    one[0] = 1;
    one
}

/// `width` bits of `exp` from bit `pos` up (pos and width are public; width ≤ 64 − 1).
#[inline(always)]
fn window<const L: usize>(exp: &[u64; L], pos: usize, width: usize) -> u64 {
    let (limb, off) = (pos / 64, pos % 64);
    let mut v = exp[limb] >> off;
    if off + width > 64 && limb + 1 < L {
        v |= exp[limb + 1] << (64 - off);
    }
    v & ((1 << width) - 1)
}

/// table[idx], reading every entry and keeping one with a mask.
#[inline(always)]
fn select<const L: usize, const T: usize>(table: &[[u64; L]; T], idx: u64) -> [u64; L] {
    let mut r = [0u64; L];
    for (i, entry) in table.iter().enumerate() {
        let mask = eq_mask(i as u64, idx);
        for (r, &e) in r.iter_mut().zip(entry) {
            *r |= e & mask;
        }
    }
    r
}

/// a·b as 2L limbs (schoolbook, constant time), into `out[..2L]`.
pub fn mul_wide<const L: usize>(a: &[u64; L], b: &[u64; L], out: &mut [u64]) {
    let out = &mut out[..2 * L];
    out.fill(0);
    for (i, &bi) in b.iter().enumerate() {
        let mut c = 0;
        for (o, &aj) in out[i..i + L].iter_mut().zip(a) {
            (*o, c) = mac(*o, aj, bi, c);
        }
        out[i + L] = c;
    }
}

/// a ← a + b (a of any length ≥ b's), returning the carry out; constant time.
pub fn add_into(a: &mut [u64], b: &[u64]) -> u64 {
    let mut c = 0;
    for (i, a) in a.iter_mut().enumerate() {
        (*a, c) = adc(*a, b.get(i).copied().unwrap_or(0), c);
    }
    c
}

/// Big-endian bytes into little-endian limbs; `None` if the value does not fit in L limbs
/// (leading bytes beyond 8·L must be zero). Time depends on the length only.
pub fn from_be<const L: usize>(bytes: &[u8]) -> Option<[u64; L]> {
    let mut r = [0u64; L];
    let mut overflow = 0u8;
    for (i, &b) in bytes.iter().rev().enumerate() {
        if i < 8 * L {
            r[i / 8] |= (b as u64) << (8 * (i % 8));
        } else {
            overflow |= b;
        }
    }
    if overflow == 0 {
        Some(r)
    } else {
        r.zeroize();
        None
    }
}

/// Little-endian limbs into `out.len()` big-endian bytes (the low bytes of the value).
pub fn to_be(limbs: &[u64], out: &mut [u8]) {
    for (i, o) in out.iter_mut().rev().enumerate() {
        *o = limbs.get(i / 8).map_or(0, |l| (l >> (8 * (i % 8))) as u8);
    }
}

/// a < b for equal-length little-endian numbers (variable time: public values only).
pub fn lt_public(a: &[u64], b: &[u64]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

#[cfg(test)]
#[path = "monty_tests.rs"]
mod tests;

//! Arithmetic modulo the SM2 prime p = 2^256 − 2^224 − 2^96 + 2^64 − 1, written for speed.
//!
//! Montgomery form (R = 2^256) in four little-endian 64-bit limbs, always fully reduced.
//! p ≡ −1 (mod 2^64), so the Montgomery factor of each reduction round is the low limb
//! itself and (t + m·p) / 2^64 = t / 2^64 + m·c with c = (p + 1) / 2^64 (three limbs).
//!
//! Every operation is constant time: no branch and no memory access depends on a value;
//! carries and the final subtraction are masks. Inversion is Fermat's a^(p−2) over a fixed
//! addition chain. Checked against the `sm2` crate's field in the tests.

use ::sm2::elliptic_curve::subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

const P: [u64; 4] = [0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFF_0000_0000, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF];
/// R^2 mod p, to enter the Montgomery domain.
const R2: [u64; 4] = [0x2_0000_0003, 0x2_FFFF_FFFF, 0x1_0000_0001, 0x4_0000_0002];

/// An element of GF(p), in Montgomery form.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fe([u64; 4]);

/// a + b + carry (carry 0 or 1) and the carry out. On x86-64 the `adc` intrinsic, so that
/// chains of these compile to one `add` and a run of `adc` instructions (with `u128`
/// arithmetic LLVM materializes every carry into a register, three times the instructions).
#[inline(always)]
fn adc(a: u64, b: u64, carry: u8) -> (u64, u8) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut out = 0;
        let c = core::arch::x86_64::_addcarry_u64(carry, a, b, &mut out);
        (out, c)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let t = a as u128 + b as u128 + carry as u128;
        (t as u64, (t >> 64) as u8)
    }
}

/// a − b − borrow (borrow 0 or 1) and the borrow out (0 or 1).
#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u8) -> (u64, u8) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut out = 0;
        let c = core::arch::x86_64::_subborrow_u64(borrow, a, b, &mut out);
        (out, c)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let t = (a as u128).wrapping_sub(b as u128 + borrow as u128);
        (t as u64, ((t >> 64) as u8) & 1)
    }
}

/// The 128-bit product as (low, high).
#[inline(always)]
fn mul_wide(a: u64, b: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128);
    (t as u64, (t >> 64) as u64)
}

/// All ones if `bit` (0 or 1) is set, else zero.
#[inline(always)]
fn mask(bit: u8) -> u64 {
    0u64.wrapping_sub(u64::from(bit))
}

/// t (four limbs plus a top carry `hi` ≤ 1, value < 2p) reduced to [0, p): u = t + (2^256 − p)
/// carries out of 256 bits (or `hi` is set) exactly when t ≥ p, and then u = t − p.
#[inline(always)]
fn sub_p_if_needed(t: [u64; 4], hi: u8) -> [u64; 4] {
    let (u0, c) = adc(t[0], 1, 0);
    let (u1, c) = adc(t[1], 0xFFFF_FFFF, c);
    let (u2, c) = adc(t[2], 0, c);
    let (u3, c) = adc(t[3], 0x1_0000_0000, c);
    let keep_u = mask(c | hi);
    [
        (u0 & keep_u) | (t[0] & !keep_u),
        (u1 & keep_u) | (t[1] & !keep_u),
        (u2 & keep_u) | (t[2] & !keep_u),
        (u3 & keep_u) | (t[3] & !keep_u),
    ]
}

/// Montgomery reduction t·2^−256 mod p of t < p·2^256. Round i cancels limb i: with
/// m = t_i (p ≡ −1 mod 2^64), t + m·p·2^(64i) = t − m·2^(64i) + m·C·2^(64(i+1)); the carry
/// out of limb i + 4 is deferred to the next round. C = (p + 1) / 2^64 = 2^192 − 2^160 − 2^32 + 1, so
/// m·C needs no multiplication: with lo = m << 32 and hi = m >> 32 it is the four limbs
/// (m, 0, 0, m) − (lo, hi, lo, hi), which never borrows out (m·C ≥ 0).
#[inline(always)]
fn reduce(mut t: [u64; 8]) -> [u64; 4] {
    let mut top = 0;
    for i in 0..4 {
        let m = t[i];
        let (lo, hi) = (m << 32, m >> 32);
        let (c0, b) = sbb(m, lo, 0);
        let (c1, b) = sbb(0, hi, b);
        let (c2, b) = sbb(0, lo, b);
        let (c3, _) = sbb(m, hi, b);
        let (x, c) = adc(t[i + 1], c0, 0);
        t[i + 1] = x;
        let (x, c) = adc(t[i + 2], c1, c);
        t[i + 2] = x;
        let (x, c) = adc(t[i + 3], c2, c);
        t[i + 3] = x;
        let (x, c) = adc(t[i + 4], c3, c);
        // The value stays below 2p·2^256, so the two carries are never both set.
        let (x, c2) = adc(x, 0, top);
        t[i + 4] = x;
        top = c | c2;
    }
    sub_p_if_needed([t[4], t[5], t[6], t[7]], top)
}

impl Fe {
    pub const ZERO: Fe = Fe([0; 4]);
    /// 1 in Montgomery form: 2^256 mod p.
    pub const ONE: Fe = Fe([1, 0xFFFF_FFFF, 0, 0x1_0000_0000]);

    /// From 32 big-endian bytes; `None` if the value is not below p.
    pub fn from_bytes(bytes: &[u8; 32]) -> Option<Fe> {
        let mut l = [0u64; 4];
        for (i, limb) in l.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[32 - 8 * (i + 1)..32 - 8 * i]);
            *limb = u64::from_be_bytes(b);
        }
        let (_, b) = sbb(l[0], P[0], 0);
        let (_, b) = sbb(l[1], P[1], b);
        let (_, b) = sbb(l[2], P[2], b);
        let (_, b) = sbb(l[3], P[3], b);
        if b == 0 {
            return None;
        }
        Some(Fe(l).mul(&Fe(R2)))
    }

    /// 32 big-endian bytes of the canonical value.
    pub fn to_bytes(self) -> [u8; 32] {
        let l = self.mul(&Fe([1, 0, 0, 0])).0;
        let mut out = [0u8; 32];
        for (i, limb) in l.iter().enumerate() {
            out[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    #[inline(always)]
    pub fn mul(&self, rhs: &Fe) -> Fe {
        let (a, b) = (&self.0, &rhs.0);
        // Interleaved (CIOS): add a·b_i, then cancel the low limb and shift, so that at most
        // six limbs are live at once (the separated product keeps eight and spills).
        let mut t = [0u64; 5];
        let mut top = 0u8;
        for &bi in b.iter() {
            let (l0, h0) = mul_wide(a[0], bi);
            let (l1, h1) = mul_wide(a[1], bi);
            let (l2, h2) = mul_wide(a[2], bi);
            let (l3, h3) = mul_wide(a[3], bi);
            let (r1, c) = adc(l1, h0, 0);
            let (r2, c) = adc(l2, h1, c);
            let (r3, c) = adc(l3, h2, c);
            let (r4, _) = adc(h3, 0, c);
            let (t0, c) = adc(t[0], l0, 0);
            let (t1, c) = adc(t[1], r1, c);
            let (t2, c) = adc(t[2], r2, c);
            let (t3, c) = adc(t[3], r3, c);
            let (t4, c) = adc(t[4], r4, c);
            let (t5, _) = adc(u64::from(top), 0, c);
            // m = t0; (t + m·p) / 2^64 = t[1..] + m·C.
            let m = t0;
            let (lo, hi) = (m << 32, m >> 32);
            let (c0, bw) = sbb(m, lo, 0);
            let (c1, bw) = sbb(0, hi, bw);
            let (c2, bw) = sbb(0, lo, bw);
            let (c3, _) = sbb(m, hi, bw);
            let (x0, c) = adc(t1, c0, 0);
            let (x1, c) = adc(t2, c1, c);
            let (x2, c) = adc(t3, c2, c);
            let (x3, c) = adc(t4, c3, c);
            let (x4, c) = adc(t5, 0, c);
            t = [x0, x1, x2, x3, x4];
            top = c;
        }
        // t < 2p: t[4] is 0 or 1.
        Fe(sub_p_if_needed([t[0], t[1], t[2], t[3]], t[4] as u8 | top))
    }

    /// self = other where `mask` is all ones, unchanged where it is zero (branch-free).
    #[inline(always)]
    pub fn cmov(&mut self, other: &Fe, mask: u64) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a ^= (*a ^ *b) & mask;
        }
    }

    /// self²: the six cross products once, doubled by a shift, plus the four squares.
    #[inline(always)]
    pub fn square(&self) -> Fe {
        let a = &self.0;
        // Cross products a_i·a_j (i < j) at limbs 1 … 6.
        let (l01, h01) = mul_wide(a[0], a[1]);
        let (l02, h02) = mul_wide(a[0], a[2]);
        let (l03, h03) = mul_wide(a[0], a[3]);
        let (l12, h12) = mul_wide(a[1], a[2]);
        let (l13, h13) = mul_wide(a[1], a[3]);
        let (l23, h23) = mul_wide(a[2], a[3]);
        let t1 = l01;
        let (t2, c) = adc(l02, h01, 0);
        let (t3, c) = adc(l03, h02, c);
        let (t4, _) = adc(h03, 0, c);
        let (r4, c) = adc(l13, h12, 0);
        let (r5, _) = adc(h13, 0, c);
        let (t3, c) = adc(t3, l12, 0);
        let (t4, c) = adc(t4, r4, c);
        let (t5, c) = adc(r5, 0, c);
        let t6 = u64::from(c);
        let (t5, c) = adc(t5, l23, 0);
        let (t6, _) = adc(t6, h23, c);
        let t7 = t6 >> 63;
        let t6 = (t6 << 1) | (t5 >> 63);
        let t5 = (t5 << 1) | (t4 >> 63);
        let t4 = (t4 << 1) | (t3 >> 63);
        let t3 = (t3 << 1) | (t2 >> 63);
        let t2 = (t2 << 1) | (t1 >> 63);
        let t1 = t1 << 1;
        let (t0, s1) = mul_wide(a[0], a[0]);
        let (s2, s3) = mul_wide(a[1], a[1]);
        let (s4, s5) = mul_wide(a[2], a[2]);
        let (s6, s7) = mul_wide(a[3], a[3]);
        let (t1, c) = adc(t1, s1, 0);
        let (t2, c) = adc(t2, s2, c);
        let (t3, c) = adc(t3, s3, c);
        let (t4, c) = adc(t4, s4, c);
        let (t5, c) = adc(t5, s5, c);
        let (t6, c) = adc(t6, s6, c);
        let (t7, _) = adc(t7, s7, c);
        Fe(reduce([t0, t1, t2, t3, t4, t5, t6, t7]))
    }

    /// Square n times.
    pub fn sqn(&self, n: usize) -> Fe {
        let mut x = *self;
        for _ in 0..n {
            x = x.square();
        }
        x
    }

    #[inline]
    pub fn add(&self, rhs: &Fe) -> Fe {
        let (a, b) = (&self.0, &rhs.0);
        let (s0, c) = adc(a[0], b[0], 0);
        let (s1, c) = adc(a[1], b[1], c);
        let (s2, c) = adc(a[2], b[2], c);
        let (s3, c) = adc(a[3], b[3], c);
        Fe(sub_p_if_needed([s0, s1, s2, s3], c))
    }

    #[inline]
    pub fn sub(&self, rhs: &Fe) -> Fe {
        let (a, b) = (&self.0, &rhs.0);
        let (d0, bw) = sbb(a[0], b[0], 0);
        let (d1, bw) = sbb(a[1], b[1], bw);
        let (d2, bw) = sbb(a[2], b[2], bw);
        let (d3, bw) = sbb(a[3], b[3], bw);
        // On underflow add p back.
        let bw = mask(bw);
        let (d0, c) = adc(d0, P[0] & bw, 0);
        let (d1, c) = adc(d1, P[1] & bw, c);
        let (d2, c) = adc(d2, P[2] & bw, c);
        let (d3, _) = adc(d3, P[3] & bw, c);
        Fe([d0, d1, d2, d3])
    }

    #[inline]
    pub fn double(&self) -> Fe {
        self.add(self)
    }

    #[inline]
    pub fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    pub fn is_zero(&self) -> Choice {
        self.ct_eq(&Fe::ZERO)
    }

    /// a^(p−2) (= a^−1, and 0 for 0). p − 2 in binary: 31 ones, 0, 128 ones, 32 zeros,
    /// 62 ones, 0, 1.
    pub fn invert(&self) -> Fe {
        let x1 = *self;
        let x2 = x1.sqn(1).mul(&x1);
        let x3 = x2.sqn(1).mul(&x1);
        let x6 = x3.sqn(3).mul(&x3);
        let x12 = x6.sqn(6).mul(&x6);
        let x15 = x12.sqn(3).mul(&x3);
        let x30 = x15.sqn(15).mul(&x15);
        let x31 = x30.sqn(1).mul(&x1);
        let x32 = x31.sqn(1).mul(&x1);
        let mut t = x31.sqn(1);
        for _ in 0..4 {
            t = t.sqn(32).mul(&x32);
        }
        t = t.sqn(32);
        t = t.sqn(32).mul(&x32);
        t = t.sqn(30).mul(&x30);
        t.sqn(2).mul(&x1)
    }
}

impl ConditionallySelectable for Fe {
    #[inline(always)]
    fn conditional_select(a: &Self, b: &Self, choice: Choice) -> Self {
        Fe([
            u64::conditional_select(&a.0[0], &b.0[0], choice),
            u64::conditional_select(&a.0[1], &b.0[1], choice),
            u64::conditional_select(&a.0[2], &b.0[2], choice),
            u64::conditional_select(&a.0[3], &b.0[3], choice),
        ])
    }
}

impl ConstantTimeEq for Fe {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl zeroize::DefaultIsZeroes for Fe {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alg::testrng::CounterRng;
    use ::sm2::Sm2;
    use ::sm2::elliptic_curve::ff::{Field, PrimeField};
    use ::sm2::elliptic_curve::hazmat::FieldArithmetic;

    type Ref = <Sm2 as FieldArithmetic>::FieldElement;

    fn both(rng: &mut CounterRng) -> (Fe, Ref) {
        let r = Ref::try_random(rng).unwrap();
        let bytes: [u8; 32] = r.to_repr().into();
        (Fe::from_bytes(&bytes).unwrap(), r)
    }

    fn same(a: Fe, r: Ref) {
        let want: [u8; 32] = r.to_repr().into();
        assert_eq!(a.to_bytes(), want);
    }

    #[test]
    fn agrees_with_the_crate_field() {
        let mut rng = CounterRng::new(b"fe");
        let minus_one = Ref::ONE.neg();
        let edge = [Ref::ZERO, Ref::ONE, minus_one, minus_one.double()];
        let mut vals: alloc::vec::Vec<(Fe, Ref)> =
            edge.iter().map(|r| (Fe::from_bytes(&r.to_repr().into()).unwrap(), *r)).collect();
        vals.extend((0..40).map(|_| both(&mut rng)));
        for (a, ra) in &vals {
            same(*a, *ra);
            same(a.square(), ra.square());
            same(a.neg(), -*ra);
            same(a.double(), ra.double());
            same(a.invert(), ra.invert().unwrap_or(Ref::ZERO));
            for (b, rb) in vals.iter().take(8) {
                same(a.mul(b), *ra * rb);
                same(a.add(b), *ra + rb);
                same(a.sub(b), *ra - rb);
            }
        }
        assert!(Fe::from_bytes(&[0xff; 32]).is_none());
        same(Fe::ONE, Ref::ONE);
        assert!(bool::from(Fe::ZERO.is_zero()) && !bool::from(Fe::ONE.is_zero()));
    }
}

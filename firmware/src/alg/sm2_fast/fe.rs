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
/// (p + 1) / 2^64 = 2^192 − 2^160 − 2^32 + 1.
const C: [u64; 3] = [0xFFFF_FFFF_0000_0001, 0xFFFF_FFFF_FFFF_FFFF, 0xFFFF_FFFE_FFFF_FFFF];
/// R^2 mod p, to enter the Montgomery domain.
const R2: [u64; 4] = [0x2_0000_0003, 0x2_FFFF_FFFF, 0x1_0000_0001, 0x4_0000_0002];

/// An element of GF(p), in Montgomery form.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fe([u64; 4]);

#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128 + (borrow >> 63) as u128);
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + (b as u128) * (c as u128) + carry as u128;
    (t as u64, (t >> 64) as u64)
}

/// t (four limbs plus a top carry `hi` ≤ 1, value < 2p) reduced to [0, p): u = t + (2^256 − p)
/// carries out of 256 bits (or `hi` is set) exactly when t ≥ p, and then u = t − p.
#[inline(always)]
fn sub_p_if_needed(t: [u64; 4], hi: u64) -> [u64; 4] {
    let (u0, c) = adc(t[0], 1, 0);
    let (u1, c) = adc(t[1], 0xFFFF_FFFF, c);
    let (u2, c) = adc(t[2], 0, c);
    let (u3, c) = adc(t[3], 0x1_0000_0000, c);
    let keep_u = 0u64.wrapping_sub(c | hi);
    [
        (u0 & keep_u) | (t[0] & !keep_u),
        (u1 & keep_u) | (t[1] & !keep_u),
        (u2 & keep_u) | (t[2] & !keep_u),
        (u3 & keep_u) | (t[3] & !keep_u),
    ]
}

/// Montgomery reduction t·2^−256 mod p of t < p·2^256. Round i cancels limb i: with
/// m = t_i (p ≡ −1 mod 2^64), t + m·p·2^(64i) = t − m·2^(64i) + m·C·2^(64(i+1)); the carry
/// out of limb i + 4 is deferred to the next round.
#[inline(always)]
fn reduce(mut t: [u64; 8]) -> [u64; 4] {
    let mut top = 0;
    for i in 0..4 {
        let m = t[i];
        let (x, c) = mac(t[i + 1], m, C[0], 0);
        t[i + 1] = x;
        let (x, c) = mac(t[i + 2], m, C[1], c);
        t[i + 2] = x;
        let (x, c) = mac(t[i + 3], m, C[2], c);
        t[i + 3] = x;
        let (x, c2) = adc(t[i + 4], c, top);
        t[i + 4] = x;
        top = c2;
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

    #[inline]
    pub fn mul(&self, rhs: &Fe) -> Fe {
        let (a, b) = (&self.0, &rhs.0);
        // Product (operand scanning), 512 bits.
        let mut t = [0u64; 8];
        for i in 0..4 {
            let mut c = 0;
            for j in 0..4 {
                (t[i + j], c) = mac(t[i + j], a[i], b[j], c);
            }
            t[i + 4] = c;
        }
        Fe(reduce(t))
    }

    /// self = other where `mask` is all ones, unchanged where it is zero (branch-free).
    #[inline(always)]
    pub fn cmov(&mut self, other: &Fe, mask: u64) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a ^= (*a ^ *b) & mask;
        }
    }

    /// self²: the six cross products once, doubled by a shift, plus the four squares.
    #[inline]
    pub fn square(&self) -> Fe {
        let a = &self.0;
        let (t1, c) = mac(0, a[0], a[1], 0);
        let (t2, c) = mac(0, a[0], a[2], c);
        let (t3, t4) = mac(0, a[0], a[3], c);
        let (t3, c) = mac(t3, a[1], a[2], 0);
        let (t4, t5) = mac(t4, a[1], a[3], c);
        let (t5, t6) = mac(t5, a[2], a[3], 0);
        let t7 = t6 >> 63;
        let t6 = (t6 << 1) | (t5 >> 63);
        let t5 = (t5 << 1) | (t4 >> 63);
        let t4 = (t4 << 1) | (t3 >> 63);
        let t3 = (t3 << 1) | (t2 >> 63);
        let t2 = (t2 << 1) | (t1 >> 63);
        let t1 = t1 << 1;
        let (t0, s1) = mac(0, a[0], a[0], 0);
        let (s2, s3) = mac(0, a[1], a[1], 0);
        let (s4, s5) = mac(0, a[2], a[2], 0);
        let (s6, s7) = mac(0, a[3], a[3], 0);
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
        // bw = all ones on underflow: add p back.
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

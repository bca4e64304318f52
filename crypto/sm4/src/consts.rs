//! SM4's constants, and the byte-wise affine maps that let AES hardware compute its S-box,
//! derived at compile time from the S-box's algebraic definition.
//!
//! The SM4 S-box is `S(x) = A·inv(A·x + C) + C` with `inv` the inverse in GF(2⁸) modulo
//! `x⁸+x⁷+x⁶+x⁵+x⁴+x²+1` (0 ↦ 0), `A` the circulant matrix whose row `i` is `0xa7` rotated left
//! by `i`, and `C = 0xd3` (Liu et al., "Small Scale Variants of the Block Cipher SM4"; the
//! standard's table is checked against this in the tests). That field is isomorphic to the
//! AES field (modulo `x⁸+x⁴+x³+x+1`) through a linear map `T`, so
//! `S(x) = (A·T⁻¹)·inv_aes(T·A·x + T·C) + C`: an affine map, the AES inversion, an affine map.
//! GFNI does that in two instructions; `aesenclast` and the bitsliced AES circuit compute the
//! AES S-box `M·inv_aes(y) + 0x63`, whose affine part the second map then undoes.

/// The system parameter FK (GB/T 32907 §7.3).
pub(crate) const FK: [u32; 4] = [0xa3b1bac6, 0x56aa3350, 0x677d9197, 0xb27022dc];

/// The fixed parameters CK: byte `j` of `CK[i]` is `(4i + j)·7 mod 256` (GB/T 32907 §7.3).
pub(crate) const CK: [u32; 32] = {
    let mut ck = [0u32; 32];
    let mut i = 0;
    while i < 32 {
        let mut j = 0;
        while j < 4 {
            ck[i] = (ck[i] << 8) | ((4 * i + j) * 7 % 256) as u32;
            j += 1;
        }
        i += 1;
    }
    ck
};

/// An affine map on bytes: bit `i` of the image of `x` is `parity(rows[i] & x) ^ bit i of c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Affine {
    pub(crate) rows: [u8; 8],
    pub(crate) c: u8,
}

impl Affine {
    /// The circulant linear map whose row `i` is `row` rotated left by `i`, plus `c`.
    const fn circulant(row: u8, c: u8) -> Self {
        let mut rows = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            rows[i] = row.rotate_left(i as u32);
            i += 1;
        }
        Affine { rows, c }
    }

    /// The linear map sending bit `j` to `cols[j]`.
    const fn from_columns(cols: [u8; 8]) -> Self {
        let mut rows = [0u8; 8];
        let mut i = 0;
        while i < 8 {
            let mut j = 0;
            while j < 8 {
                rows[i] |= ((cols[j] >> i) & 1) << j;
                j += 1;
            }
            i += 1;
        }
        Affine { rows, c: 0 }
    }

    pub(crate) const fn apply(&self, x: u8) -> u8 {
        let mut y = self.c;
        let mut i = 0;
        while i < 8 {
            y ^= (((self.rows[i] & x).count_ones() & 1) as u8) << i;
            i += 1;
        }
        y
    }

    /// `self ∘ inner`: first `inner`, then `self`.
    const fn after(&self, inner: &Affine) -> Self {
        let lin = Affine { rows: self.rows, c: 0 };
        let mut cols = [0u8; 8];
        let mut j = 0;
        while j < 8 {
            let inner_col = inner.apply(1 << j) ^ inner.c;
            cols[j] = lin.apply(inner_col);
            j += 1;
        }
        Affine { c: self.apply(inner.c), ..Affine::from_columns(cols) }
    }

    /// The inverse of an invertible affine map.
    const fn inverse(&self) -> Self {
        let mut table = [0u8; 256];
        let mut x = 0;
        while x < 256 {
            table[self.apply(x as u8) as usize] = x as u8;
            x += 1;
        }
        let c = table[0];
        let mut cols = [0u8; 8];
        let mut j = 0;
        while j < 8 {
            cols[j] = table[1 << j] ^ c;
            j += 1;
        }
        Affine { c, ..Affine::from_columns(cols) }
    }

    /// The matrix operand of `gf2p8affineqb` / `gf2p8affineinvqb`: row `i` in byte `7 - i`.
    pub(crate) const fn gfni_matrix(&self) -> i64 {
        let mut m = 0u64;
        let mut i = 0;
        while i < 8 {
            m |= (self.rows[i] as u64) << (8 * (7 - i));
            i += 1;
        }
        m as i64
    }

    /// Lookup tables of the low and high nibble: `apply(x) = lo[x & 15] ^ hi[x >> 4]`.
    pub(crate) const fn nibble_tables(&self) -> [[u8; 16]; 2] {
        let mut t = [[0u8; 16]; 2];
        let mut n = 0;
        while n < 16 {
            t[0][n] = self.apply(n as u8);
            t[1][n] = self.apply((n as u8) << 4) ^ self.c;
            n += 1;
        }
        t
    }
}

/// Product in GF(2⁸) modulo `poly`.
const fn gf_mul(mut a: u8, mut b: u8, poly: u16) -> u8 {
    let mut r = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            r ^= a;
        }
        b >>= 1;
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= poly as u8;
        }
    }
    r
}

const SM4_POLY: u16 = 0x1f5;
const AES_POLY: u16 = 0x11b;
/// The affine maps of the SM4 S-box (both the same: `A`, `C`).
const SM4_AFFINE: Affine = Affine::circulant(0xa7, 0xd3);
/// The affine map of the AES S-box.
const AES_AFFINE: Affine = Affine::circulant(0xf1, 0x63);

/// The isomorphism `T` from the SM4 field to the AES field: `x ↦ β` for the smallest root `β`
/// of the SM4 field polynomial in the AES field.
const ISO: Affine = {
    let mut beta = 2u16;
    loop {
        // Evaluate the SM4 field polynomial at beta by Horner's rule.
        let mut v = 0u8;
        let mut k = 8i32;
        while k >= 0 {
            v = gf_mul(v, beta as u8, AES_POLY) ^ ((SM4_POLY >> k) & 1) as u8;
            k -= 1;
        }
        if v == 0 {
            break;
        }
        beta += 1;
    }
    let mut cols = [0u8; 8];
    let mut p = 1u8;
    let mut j = 0;
    while j < 8 {
        cols[j] = p;
        p = gf_mul(p, beta as u8, AES_POLY);
        j += 1;
    }
    Affine::from_columns(cols)
};

/// Before the AES-field inversion: `x ↦ T·(A·x + C)` (all backends).
pub(crate) const PRE: Affine = ISO.after(&SM4_AFFINE);
/// After the AES-field inversion (`gf2p8affineinvqb`): `y ↦ A·T⁻¹·y + C`.
pub(crate) const POST_INV: Affine = SM4_AFFINE.after(&ISO.inverse());
/// After the whole AES S-box (`aesenclast`): undoes the AES affine map, then [`POST_INV`].
pub(crate) const POST_AES: Affine = POST_INV.after(&AES_AFFINE.inverse());
/// After the bitsliced AES circuit, which leaves out the constant 0x63.
pub(crate) const POST_AES_LINEAR: Affine = POST_INV.after(&Affine { rows: AES_AFFINE.inverse().rows, c: 0 });

/// SM4's field inversion and S-box by their definition, for the tests.
#[cfg(test)]
pub(crate) mod reference {
    use super::*;

    pub(crate) fn sm4_field_inv(x: u8) -> u8 {
        (1..=255u8).find(|&y| gf_mul(x, y, SM4_POLY) == 1).unwrap_or(0)
    }

    pub(crate) fn aes_field_inv(x: u8) -> u8 {
        (1..=255u8).find(|&y| gf_mul(x, y, AES_POLY) == 1).unwrap_or(0)
    }

    pub(crate) fn sbox_by_definition(x: u8) -> u8 {
        SM4_AFFINE.apply(sm4_field_inv(SM4_AFFINE.apply(x)))
    }

    pub(crate) fn sbox_through_aes_field(x: u8) -> u8 {
        POST_INV.apply(aes_field_inv(PRE.apply(x)))
    }

    pub(crate) fn sbox_through_aes_sbox(x: u8) -> u8 {
        POST_AES.apply(AES_AFFINE.apply(aes_field_inv(PRE.apply(x))))
    }

    pub(crate) fn iso(x: u8) -> u8 {
        ISO.apply(x)
    }
}

//! Portable constant-time SM4: the S-box as a bitsliced boolean circuit, no `unsafe`.
//!
//! Each round gathers the S-box inputs of up to 16 blocks (64 bytes), transposes them into 8
//! bit planes of 64 bits (plane `j` holds bit `j` of every byte), runs the circuit once for all
//! 64 bytes, and transposes back. The circuit is the AES-field inversion of Boyar, Peralta
//! and Calik (113 gates) between the affine maps of `consts.rs`, written as XORs of planes.
//! Only AND, XOR, NOT, shifts and rotations touch secret data.

use crate::consts::{Affine, POST_AES_LINEAR, PRE};

/// Blocks per batch (4 S-box bytes each fill the 64 lanes).
pub(crate) const PAR: usize = 16;

/// Round keys, as a cipher backend.
pub(crate) struct Keys<'a>(pub(crate) &'a [u32; 32]);

impl_block_backend!(Keys, cipher::consts::U16, PAR);

impl Keys<'_> {
    #[inline(always)]
    fn one<const DEC: bool>(&self, block: &mut [u8; 16]) {
        let mut b = [*block];
        crypt::<DEC, 1>(self.0, &mut b);
        *block = b[0];
    }

    #[inline(always)]
    fn par<const DEC: bool>(&self, blocks: &mut [[u8; 16]; PAR]) {
        crypt::<DEC, PAR>(self.0, blocks);
    }

    #[inline(always)]
    fn tail<const DEC: bool>(&self, blocks: &mut [[u8; 16]; PAR], n: usize) {
        if n == 1 {
            self.one::<DEC>(&mut blocks[0]);
        } else if n > 1 {
            crypt::<DEC, PAR>(self.0, blocks);
        }
    }
}

/// Encrypt (or with `DEC`, decrypt) `N ≤ 16` blocks in place.
fn crypt<const DEC: bool, const N: usize>(rk: &[u32; 32], blocks: &mut [[u8; 16]; N]) {
    let mut x = [[0u32; 4]; N];
    for (x, b) in x.iter_mut().zip(blocks.iter()) {
        for (w, c) in x.iter_mut().zip(b.chunks_exact(4)) {
            *w = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    for i in 0..32 {
        let k = rk[if DEC { 31 - i } else { i }];
        let mut b = [0u32; PAR];
        for (b, x) in b.iter_mut().zip(x.iter()) {
            *b = x[(i + 1) % 4] ^ x[(i + 2) % 4] ^ x[(i + 3) % 4] ^ k;
        }
        let s = tau_x16(b);
        for (x, s) in x.iter_mut().zip(s.iter()) {
            x[i % 4] ^= s ^ s.rotate_left(2) ^ s.rotate_left(10) ^ s.rotate_left(18) ^ s.rotate_left(24);
        }
    }
    for (b, x) in blocks.iter_mut().zip(x.iter()) {
        for (c, w) in b.chunks_exact_mut(4).zip(x.iter().rev()) {
            c.copy_from_slice(&w.to_be_bytes());
        }
    }
}

/// The nonlinear transform τ (the S-box on each byte) of one word.
pub(crate) fn tau(a: u32) -> u32 {
    let mut b = [0u32; PAR];
    b[0] = a;
    tau_x16(b)[0]
}

/// τ of 16 words at once.
fn tau_x16(b: [u32; PAR]) -> [u32; PAR] {
    let mut w = [0u64; 8];
    for (w, pair) in w.iter_mut().zip(b.chunks_exact(2)) {
        *w = pair[0] as u64 | (pair[1] as u64) << 32;
    }
    transpose(&mut w);
    let mut s = sbox_planes(&w);
    transpose(&mut s);
    let mut out = [0u32; PAR];
    for (pair, s) in out.chunks_exact_mut(2).zip(s.iter()) {
        pair[0] = *s as u32;
        pair[1] = (*s >> 32) as u32;
    }
    out
}

/// Swap the bits of `a` at positions `m << n` with those of `b` at positions `m`.
#[inline(always)]
fn swap_move(a: &mut u64, b: &mut u64, n: u32, m: u64) {
    let t = ((*a >> n) ^ *b) & m;
    *b ^= t;
    *a ^= t << n;
}

/// Exchange the three bits of the word index with the three low bits of the bit position:
/// afterwards word `j` holds bit `j` of each of the 64 bytes. It is its own inverse.
#[inline(always)]
fn transpose(w: &mut [u64; 8]) {
    for (n, m) in [(1usize, 0x5555_5555_5555_5555u64), (2, 0x3333_3333_3333_3333), (4, 0x0f0f_0f0f_0f0f_0f0f)] {
        for k in 0..8 {
            if k & n == 0 {
                let (lo, hi) = w.split_at_mut(k + n);
                swap_move(&mut lo[k], &mut hi[0], n as u32, m);
            }
        }
    }
}

/// An affine map applied to bit planes. `m` is a public constant: the branches on its bits
/// are resolved at compile time.
#[inline(always)]
fn affine_planes(m: &Affine, x: &[u64; 8]) -> [u64; 8] {
    let mut y = [0u64; 8];
    for (i, y) in y.iter_mut().enumerate() {
        for (j, x) in x.iter().enumerate() {
            if (m.rows[i] >> j) & 1 == 1 {
                *y ^= x;
            }
        }
        if (m.c >> i) & 1 == 1 {
            *y = !*y;
        }
    }
    y
}

/// The SM4 S-box on 64 bytes in bit planes (plane `j` = bit `j`).
#[inline(always)]
fn sbox_planes(x: &[u64; 8]) -> [u64; 8] {
    affine_planes(&POST_AES_LINEAR, &aes_sbox_linear(&affine_planes(&PRE, x)))
}

/// The AES S-box without its constant 0x63 (`M·inv(x)` in the AES field), on bit planes:
/// the circuit of Boyar, Peralta and Calik
/// (<http://www.cs.yale.edu/homes/peralta/CircuitStuff/SLP_AES_113.txt>), as scheduled in the
/// RustCrypto `aes` crate's fixslice backend (MIT/Apache-2.0).
#[inline(always)]
fn aes_sbox_linear(state: &[u64; 8]) -> [u64; 8] {
    aes_sbox_bottom(&aes_sbox_middle(&aes_sbox_top(*state)))
}

/// The circuit's top linear layer: the 21 sums `y1..y21` of the input bits (returned after
/// `u7`, which the middle layer also takes).
#[inline(always)]
fn aes_sbox_top(u: [u64; 8]) -> [u64; 22] {
    let [u7, u6, u5, u4, u3, u2, u1, u0] = u;
    let y14 = u3 ^ u5;
    let y13 = u0 ^ u6;
    let y12 = y13 ^ y14;
    let t1 = u4 ^ y12;
    let y15 = t1 ^ u5;
    let y6 = y15 ^ u7;
    let y20 = t1 ^ u1;
    let y9 = u0 ^ u3;
    let y11 = y20 ^ y9;
    let y7 = u7 ^ y11;
    let y8 = u0 ^ u5;
    let t0 = u1 ^ u2;
    let y10 = y15 ^ t0;
    let y17 = y10 ^ y11;
    let y19 = y10 ^ y8;
    let y16 = t0 ^ y11;
    let y21 = y13 ^ y16;
    let y18 = u0 ^ y16;
    let y1 = t0 ^ u7;
    let y4 = y1 ^ u3;
    let y2 = y1 ^ u0;
    let y5 = y1 ^ u6;
    let y3 = y5 ^ y8;
    [u7, y1, y2, y3, y4, y5, y6, y7, y8, y9, y10, y11, y12, y13, y14, y15, y16, y17, y18, y19, y20, y21]
}

/// The circuit's nonlinear middle: the inversion in GF(2^8) as products `z0..z17` of the
/// top layer's sums.
#[inline(always)]
fn aes_sbox_middle(y: &[u64; 22]) -> [u64; 18] {
    let [u7, y1, y2, y3, y4, y5, y6, y7, y8, y9, y10, y11, y12, y13, y14, y15, y16, y17, y18, y19, y20, y21] = *y;
    let t2 = y12 & y15;
    let t12 = y9 & y11;
    let t13 = y14 & y17;
    let t14 = t13 ^ t12;
    let t15 = y8 & y10;
    let t16 = t15 ^ t12;
    let t7 = y13 & y16;
    let t5 = y4 & u7;
    let t6 = t5 ^ t2;
    let t18 = t6 ^ t16;
    let t22 = t18 ^ y19;
    let t10 = y2 & y7;
    let t11 = t10 ^ t7;
    let t20 = t11 ^ t16;
    let t24 = t20 ^ y18;
    let t8 = y5 & y1;
    let t9 = t8 ^ t7;
    let t19 = t9 ^ t14;
    let t23 = t19 ^ y21;
    let t3 = y3 & y6;
    let t4 = t3 ^ t2;
    let t17 = t4 ^ y20;
    let t21 = t17 ^ t14;
    let t26 = t21 & t23;
    let t27 = t24 ^ t26;
    let t31 = t22 ^ t26;
    let t25 = t21 ^ t22;
    let t28 = t25 & t27;
    let t29 = t28 ^ t22;
    let z14 = t29 & y2;
    let z5 = t29 & y7;
    let t30 = t23 ^ t24;
    let t32 = t31 & t30;
    let t33 = t32 ^ t24;
    let t35 = t27 ^ t33;
    let t36 = t24 & t35;
    let t38 = t27 ^ t36;
    let t39 = t29 & t38;
    let t40 = t25 ^ t39;
    let t43 = t29 ^ t40;
    let z3 = t43 & y16;
    let z12 = t43 & y13;
    let z13 = t40 & y5;
    let z4 = t40 & y1;
    let t34 = t23 ^ t33;
    let t37 = t36 ^ t34;
    let t41 = t40 ^ t37;
    let z8 = t41 & y10;
    let z17 = t41 & y8;
    let t44 = t33 ^ t37;
    let z0 = t44 & y15;
    let z9 = t44 & y12;
    let z10 = t37 & y3;
    let z1 = t37 & y6;
    let z11 = t33 & y4;
    let t42 = t29 ^ t33;
    let t45 = t42 ^ t41;
    let z7 = t45 & y17;
    let z16 = t45 & y14;
    let z6 = t42 & y11;
    let z15 = t42 & y9;
    let z2 = t33 & u7;
    [z0, z1, z2, z3, z4, z5, z6, z7, z8, z9, z10, z11, z12, z13, z14, z15, z16, z17]
}

/// The circuit's bottom linear layer: the output bits from the middle's products, in the
/// plane order of the input (`s7` first).
#[inline(always)]
fn aes_sbox_bottom(z: &[u64; 18]) -> [u64; 8] {
    let [z0, z1, z2, z3, z4, z5, z6, z7, z8, z9, z10, z11, z12, z13, z14, z15, z16, z17] = *z;
    let tc12 = z3 ^ z5;
    let tc6 = z3 ^ z4;
    let tc5 = z1 ^ z0;
    let tc11 = tc6 ^ tc5;
    let tc8 = z7 ^ tc6;
    let tc16 = z6 ^ tc8;
    let tc20 = z15 ^ tc16;
    let tc1 = z15 ^ z16;
    let tc2 = z10 ^ tc1;
    let tc21 = tc2 ^ z11;
    let tc3 = z9 ^ tc2;
    let s0 = tc3 ^ tc16;
    let s3 = tc3 ^ tc11;
    let s1 = s3 ^ tc16;
    let tc13 = z13 ^ tc1;
    let tc4 = z0 ^ z2;
    let tc7 = z12 ^ tc4;
    let tc9 = z8 ^ tc7;
    let tc10 = tc8 ^ tc9;
    let tc17 = z14 ^ tc10;
    let s5 = tc21 ^ tc17;
    let tc26 = tc17 ^ tc20;
    let s2 = tc26 ^ z17;
    let tc14 = tc4 ^ tc12;
    let tc18 = tc13 ^ tc14;
    let s6 = tc10 ^ tc18;
    let s7 = z12 ^ tc18;
    let s4 = tc14 ^ s3;
    [s7, s6, s5, s4, s3, s2, s1, s0]
}

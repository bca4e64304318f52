//! Constant-time SM4 (GB/T 32907) block cipher with backends chosen at run time.
//!
//! # Why by hand
//!
//! The RustCrypto `sm4` crate looks the S-box up in a 256-byte table with the secret byte as
//! the index, so which cache lines it touches depends on the key and the data, and it runs at
//! about 100 MB/s. OpenSSL 3.0 on x86 is also table-based (about 115 MB/s). This crate
//! computes the S-box without tables and is a drop-in replacement for `sm4::Sm4` under the
//! cipher 0.5 traits (`ecb`, `cbc`, `cfb-mode`, `ofb`, `ctr`, `cmac`, `aes-gcm`).
//!
//! # Backends
//!
//! The SM4 S-box is an affine map, an inversion in GF(2⁸), and an affine map, and its field
//! is isomorphic to the AES field (see `consts.rs`, where the maps are derived at compile
//! time and the tests check them against the standard's table). So:
//!
//! - [`Backend::Gfni`] (GFNI with AVX-512 F/BW/VL): the S-box is `gf2p8affineqb` then
//!   `gf2p8affineinvqb`; rotations are `vprold`. Sixteen blocks per batch in `zmm` registers,
//!   fewer in `xmm`/`ymm` for short inputs.
//! - [`Backend::AesNi`] (AES-NI with SSSE3): the affine maps are two 16-entry nibble lookups
//!   with `pshufb` around `aesenclast` (which computes the AES S-box). Eight blocks per batch.
//! - [`Backend::Portable`]: no `unsafe`; the S-box is the Boyar–Peralta bitsliced AES circuit
//!   between the two affine maps as XORs of bit planes, 64 S-boxes (16 blocks) per
//!   evaluation. The key schedule always uses it.
//!
//! [`Backend::detect`] picks the first available in that order, once per key (the CPU check
//! itself is cached by `cpufeatures`). Every block of a call goes through the same backend.
//!
//! # Constant time
//!
//! No backend branches on or indexes memory with key- or data-dependent values: the SIMD
//! backends use only register-to-register instructions whose timing does not depend on their
//! operands (`pshufb` selects bytes of a register, not of memory), and the portable one uses
//! only AND, XOR, NOT, shifts and rotations on whole words. Branches and indices depend only
//! on public values: the round number, the direction, the number of blocks.
//!
//! # Forcing a backend
//!
//! [`Sm4::new_with_backend`] builds a cipher on a given backend, or `None` if this CPU lacks
//! it; the tests run every backend this way. `RUSTFLAGS='--cfg gmhsm_sm4_backend="portable"'`
//! (or `"aesni"`) caps what [`Backend::detect`] may choose, for a whole build.
//!
//! # Safety
//!
//! `unsafe` appears only (a) where a `#[target_feature]` function is called, which happens
//! only on a backend that was checked to be available, and (b) for unaligned SIMD loads and
//! stores from and to arrays in scope. Each block says why it is sound.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use cipher;

use cipher::consts::U16;
use cipher::{
    AlgorithmName, BlockCipherDecClosure, BlockCipherDecrypt, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser,
    Key, KeyInit, KeySizeUser,
};
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use zeroize::{Zeroize, ZeroizeOnDrop};

#[macro_use]
mod backend;
mod consts;
mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

/// Which implementation computes the cipher.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// GFNI affine instructions with AVX-512 F, BW and VL (x86).
    Gfni,
    /// AES-NI `aesenclast` with SSSE3 `pshufb` (x86).
    AesNi,
    /// Bitsliced boolean circuit in plain Rust (everywhere).
    Portable,
}

impl Backend {
    /// Every backend, fastest first.
    pub const ALL: [Backend; 3] = [Backend::Gfni, Backend::AesNi, Backend::Portable];

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Gfni => x86::gfni_available(),
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi => x86::aesni_available(),
            Backend::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest available backend allowed by the `gmhsm_sm4_backend` cfg and
    /// [`set_gfni_enabled`].
    pub fn detect() -> Backend {
        let allowed: &[Backend] = if cfg!(gmhsm_sm4_backend = "portable") {
            &[Backend::Portable]
        } else if cfg!(gmhsm_sm4_backend = "aesni") {
            &[Backend::AesNi, Backend::Portable]
        } else {
            &Backend::ALL
        };
        let gfni = GFNI_ENABLED.load(Ordering::Relaxed);
        allowed.iter().copied().find(|&b| b.is_available() && (gfni || b != Backend::Gfni)).unwrap_or(Backend::Portable)
    }
}

static GFNI_ENABLED: AtomicBool = AtomicBool::new(true);

/// Allow (the default) or forbid [`Backend::detect`] to choose the GFNI + AVX-512 backend for
/// ciphers made afterwards, so a benchmark can run a whole appliance as it runs on a CPU without
/// AVX-512 (AES-NI is then chosen where the CPU has it). Process-wide.
pub fn set_gfni_enabled(enabled: bool) {
    GFNI_ENABLED.store(enabled, Ordering::Relaxed);
}

/// The SM4 block cipher (128-bit key, 128-bit block).
///
/// The round keys are zeroized on drop; `Debug` shows only the backend.
#[derive(Clone)]
pub struct Sm4 {
    rk: [u32; 32],
    /// Only ever a backend whose `is_available()` returned true: the `unsafe` dispatch below
    /// relies on it.
    backend: Backend,
}

impl Sm4 {
    /// A cipher on `backend`, or `None` if this CPU cannot run it.
    pub fn new_with_backend(key: &Key<Self>, backend: Backend) -> Option<Self> {
        backend.is_available().then(|| Sm4 { rk: expand_key(key.as_ref(), backend), backend })
    }

    /// The backend this cipher runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// The key schedule (GB/T 32907 §7.3): on GFNI when `backend` is (about 20 times faster),
/// else with the portable S-box.
fn expand_key(key: &[u8; 16], backend: Backend) -> [u32; 32] {
    #[cfg(target_arch = "x86_64")]
    if backend == Backend::Gfni {
        // SAFETY: a `Backend::Gfni` reaches here only from `detect` or `new_with_backend`,
        // which check `is_available()`: the CPU has every feature `expand_key` enables.
        return unsafe { x86::gfni::expand_key(key) };
    }
    let _ = backend;
    portable_expand_key(key)
}

/// The key schedule with the portable S-box.
fn portable_expand_key(key: &[u8; 16]) -> [u32; 32] {
    let mut k = [0u32; 4];
    for (i, (w, bytes)) in k.iter_mut().zip(key.chunks_exact(4)).enumerate() {
        *w = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) ^ consts::FK[i];
    }
    let mut rk = [0u32; 32];
    for (i, r) in rk.iter_mut().enumerate() {
        let t = portable::tau(k[(i + 1) % 4] ^ k[(i + 2) % 4] ^ k[(i + 3) % 4] ^ consts::CK[i]);
        k[i % 4] ^= t ^ t.rotate_left(13) ^ t.rotate_left(23);
        *r = k[i % 4];
    }
    k.zeroize();
    rk
}

impl KeySizeUser for Sm4 {
    type KeySize = U16;
}

impl KeyInit for Sm4 {
    fn new(key: &Key<Self>) -> Self {
        let backend = Backend::detect();
        Sm4 { rk: expand_key(key.as_ref(), backend), backend }
    }
}

impl BlockSizeUser for Sm4 {
    type BlockSize = U16;
}

impl BlockCipherEncrypt for Sm4 {
    #[inline]
    fn encrypt_with_backend(&self, f: impl BlockCipherEncClosure<BlockSize = U16>) {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `self.backend` is `Gfni` only if `Backend::is_available` found GFNI and
            // AVX-512 F/BW/VL on this CPU, the features `x86::gfni::encrypt` enables.
            Backend::Gfni => unsafe { x86::gfni::encrypt(&self.rk, f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `self.backend` is `AesNi` only if `Backend::is_available` found AES-NI and
            // SSSE3 on this CPU, the features `x86::aesni::encrypt` enables.
            Backend::AesNi => unsafe { x86::aesni::encrypt(&self.rk, f) },
            _ => f.call(&portable::Keys(&self.rk)),
        }
    }
}

impl BlockCipherDecrypt for Sm4 {
    #[inline]
    fn decrypt_with_backend(&self, f: impl BlockCipherDecClosure<BlockSize = U16>) {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `encrypt_with_backend`.
            Backend::Gfni => unsafe { x86::gfni::decrypt(&self.rk, f) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as in `encrypt_with_backend`.
            Backend::AesNi => unsafe { x86::aesni::decrypt(&self.rk, f) },
            _ => f.call(&portable::Keys(&self.rk)),
        }
    }
}

impl fmt::Debug for Sm4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm4").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl AlgorithmName for Sm4 {
    fn write_alg_name(f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sm4")
    }
}

impl Drop for Sm4 {
    fn drop(&mut self) {
        self.rk.zeroize();
    }
}

impl ZeroizeOnDrop for Sm4 {}

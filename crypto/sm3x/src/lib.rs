//! Multi-buffer SM3 (GB/T 32905): the digests of many independent messages in one call.
//!
//! [`digest_many`] computes `out[i] = SM3(prefix ‖ msgs[i])` for every `i`. The messages may
//! have any lengths, different from one another, and the shared `prefix` (for example the `Z`
//! of an SM2 signature, `e = SM3(Z ‖ M)`) is never concatenated in memory: each padded block
//! is built on the fly from the prefix, the message and the padding.
//!
//! # Why by hand
//!
//! The card firmware hashes many short messages that do not depend on one another: the SM3
//! Hash_DRBG's hashgen (one 55-byte block per 32 output bytes, for the data `V`, `V+1`,
//! `V+2`, …) and `e_i = SM3(Z ‖ M_i)` for every message of a signing batch. The RustCrypto
//! `sm3` crate hashes one message at a time (about 300 MB/s, 650–750 cycles a block): SM3's
//! rounds form one long dependency chain, so a single message cannot use the width of the
//! vector units. No crate offers multi-buffer SM3, so this one does it: one message per
//! 32-bit lane, sixteen lanes per `zmm` register.
//!
//! # Backends
//!
//! - [`Backend::Avx512`] (AVX-512 F and BW, x86-64): messages go in groups of sixteen, one
//!   per lane (the last group may have fewer). For each block index, every lane's block is
//!   built in a register from masked byte loads of the prefix and the message plus the
//!   padding, and kept in a 64-byte row on the stack; the sixteen rows are byte-swapped to
//!   big-endian words (`vpshufb`) and transposed in registers (unpacks and `vshufi32x4`, no
//!   gathers) so that register `k` holds word `k` of all sixteen blocks. The message
//!   expansion (interleaved with the rounds) and the 64 rounds then run on all lanes at once,
//!   with `vprold` for the rotations and `vpternlogd` for FF, GG, P0, P1 and the three-way
//!   XORs. A lane whose message has fewer blocks than the longest of its group keeps its
//!   state: the feed-forward is a masked XOR. The digests are transposed back in registers.
//!   About 90 cycles a block on Zen 4 (eight times the `sm3` crate) when all sixteen lanes
//!   are busy; a group of one message costs as much as a group of sixteen.
//! - [`Backend::Portable`]: the RustCrypto `sm3` crate, one message at a time.
//!
//! [`Backend::detect`] picks AVX-512 when the CPU has it (the CPU check is cached by
//! `cpufeatures`); [`digest_many_with`] runs a given backend, the tests run both this way.
//! Both give the same digests.
//!
//! # Constant time
//!
//! SM3 uses only additions, XORs, ANDs, ORs, NOTs and fixed rotations on 32-bit words, and the
//! AVX-512 backend adds only register shuffles with fixed patterns and masked moves whose
//! masks come from message lengths. Nothing branches on, or indexes memory with, the contents
//! of the prefix or the messages; branches and indices depend only on the lengths and the
//! number of messages, which are public.
//!
//! # Secrets
//!
//! The messages may be secret (the DRBG state). The stack buffers of the AVX-512 backend that
//! hold message bytes and expanded message words are zeroized with the `zeroize` crate before
//! [`digest_many_with`] returns. The chaining values and the digests are kept in vector
//! variables, which the compiler may spill to the stack unwiped; those copies, and the `sm3`
//! crate's internal state, are outside this crate's reach.
//!
//! # Safety
//!
//! `unsafe` appears only (a) where the `#[target_feature]` entry point of the AVX-512 backend
//! is called, which happens only after `cpufeatures` found AVX-512 F and BW on this CPU, and
//! (b) for masked SIMD loads from the caller's slices and stores to `out`, whose masks enable
//! only bytes inside them. Each block says why it is sound.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use core::sync::atomic::{AtomicBool, Ordering};

use sm3::{Digest, Sm3};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Allow (the default) or forbid [`Backend::detect`] to choose the AVX-512 backend, so a
/// benchmark can run a whole appliance as it runs on a CPU without AVX-512. Process-wide;
/// [`digest_many_with`] still runs any backend the CPU has.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

#[cfg(target_arch = "x86_64")]
mod x86;

#[cfg(test)]
mod tests;

/// Which implementation computes the digests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Sixteen messages per pass in AVX-512 registers (AVX-512 F and BW, x86-64).
    Avx512,
    /// The RustCrypto `sm3` crate, one message at a time (everywhere).
    Portable,
}

impl Backend {
    /// The fastest backend this CPU can run.
    pub fn detect() -> Backend {
        if ENABLED.load(Ordering::Relaxed) && Backend::Avx512.available() { Backend::Avx512 } else { Backend::Portable }
    }

    /// Whether this CPU can run the backend.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => x86::avx512_available(),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx512 => false,
            Backend::Portable => true,
        }
    }
}

/// Messages from which [`digest_many`] uses the multi-buffer backend: a pass costs the same
/// for one lane as for sixteen, about 2.6 single hashes of one block, so one or two messages
/// are hashed one at a time.
pub const MIN_MULTI: usize = 3;

/// `out[i] = SM3(prefix ‖ msgs[i])` for every `i`, on the fastest backend of this CPU (the
/// portable one for fewer than [`MIN_MULTI`] messages).
///
/// Any number of messages, of any lengths (they may differ within one call).
///
/// # Panics
///
/// If `msgs.len() != out.len()`.
pub fn digest_many(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    let backend = if msgs.len() < MIN_MULTI { Backend::Portable } else { Backend::detect() };
    // `detect` returns only an available backend, and `Portable` always is.
    let done = digest_many_with(backend, prefix, msgs, out);
    debug_assert!(done.is_some());
}

/// The same as [`digest_many`] on a given backend; `None` (and `out` untouched) if this CPU
/// cannot run it.
///
/// # Panics
///
/// If `msgs.len() != out.len()`.
pub fn digest_many_with(backend: Backend, prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]]) -> Option<()> {
    assert_eq!(msgs.len(), out.len(), "one output digest per message");
    if !backend.available() {
        return None;
    }
    match backend {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `backend.available()` returned true just above, so `cpufeatures` found
        // AVX-512 F and BW on this CPU, the features `x86::digest_many` enables.
        Backend::Avx512 => unsafe { x86::digest_many(prefix, msgs, out) },
        _ => portable(prefix, msgs, out),
    }
    Some(())
}

/// One message at a time with the `sm3` crate.
fn portable(prefix: &[u8], msgs: &[&[u8]], out: &mut [[u8; 32]]) {
    for (m, o) in msgs.iter().zip(out.iter_mut()) {
        o.copy_from_slice(&Sm3::new().chain_update(prefix).chain_update(m).finalize());
    }
}

/// The number of 64-byte blocks of the padded message of `len` bytes (at least 9 bytes of
/// padding: `0x80` and the 64-bit length).
pub(crate) fn block_count(len: usize) -> usize {
    (len + 9).div_ceil(64)
}

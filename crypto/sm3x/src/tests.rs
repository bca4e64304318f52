//! Both backends against the `sm3` crate, one message at a time: the standard's examples,
//! every length 0..=200 with and without a prefix, many message counts, mixed lengths within
//! one call (lanes finishing at different blocks), prefixes around block boundaries.

extern crate std;

use std::println;
use std::vec::Vec;

use sm3::{Digest, Sm3};

use crate::{Backend, block_count, digest_many, digest_many_with};

const BACKENDS: [Backend; 2] = [Backend::Avx512, Backend::Portable];

/// A backend this CPU lacks: say so; a failure when `GMHSM_REQUIRE_AVX512=1` (CI sets it on a
/// machine with AVX-512 BW, where skipping would hide a broken detection).
fn not_tested(what: &str) {
    println!("!!! {what} NOT TESTED: this CPU lacks it !!!");
    assert!(std::env::var("GMHSM_REQUIRE_AVX512").as_deref() != Ok("1"), "{what}: AVX-512 required but missing");
}

fn reference(prefix: &[u8], msg: &[u8]) -> [u8; 32] {
    Sm3::new().chain_update(prefix).chain_update(msg).finalize().into()
}

/// Deterministic test bytes.
fn bytes(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Checks `digest_many_with` on `backend` against the reference; false (after saying so) if
/// the CPU lacks the backend.
fn check(backend: Backend, prefix: &[u8], msgs: &[&[u8]], what: &str) -> bool {
    let mut out = std::vec![[0u8; 32]; msgs.len()];
    if digest_many_with(backend, prefix, msgs, &mut out).is_none() {
        assert!(!backend.available());
        not_tested(&std::format!("{backend:?} ({what})"));
        return false;
    }
    for (i, (m, o)) in msgs.iter().zip(&out).enumerate() {
        assert_eq!(
            *o,
            reference(prefix, m),
            "{backend:?}, {what}: message {i} of {}, length {}, prefix length {}",
            msgs.len(),
            m.len(),
            prefix.len()
        );
    }
    true
}

/// Runs `f` on every backend, and fails if none but the portable one ran on an x86-64 CPU
/// that has AVX-512 (it cannot silently skip there).
fn on_every_backend(mut f: impl FnMut(Backend) -> bool) {
    for b in BACKENDS {
        let ran = f(b);
        assert_eq!(ran, b.available(), "{b:?}");
    }
}

#[test]
fn detect_picks_an_available_backend() {
    let b = Backend::detect();
    assert!(b.available());
    assert!(Backend::Portable.available());
    println!("detected backend: {b:?} (AVX-512 available: {})", Backend::Avx512.available());
    if Backend::Avx512.available() {
        assert_eq!(b, Backend::Avx512);
    }
}

#[test]
fn standard_examples() {
    let abc = hex::decode("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0").unwrap();
    let abcd16 = hex::decode("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732").unwrap();
    let long = b"abcd".repeat(16);
    on_every_backend(|b| {
        let mut out = [[0u8; 32]; 2];
        if digest_many_with(b, b"", &[b"abc", &long], &mut out).is_none() {
            not_tested(&std::format!("{b:?} (standard examples)"));
            return false;
        }
        assert_eq!(out[0][..], abc[..], "{b:?} abc");
        assert_eq!(out[1][..], abcd16[..], "{b:?} abcd×16");
        // The same with the message split between prefix and message.
        digest_many_with(b, b"ab", &[b"c", b"c"], &mut out).unwrap();
        assert_eq!(out[0][..], abc[..], "{b:?} ab ‖ c");
        digest_many_with(b, &long[..33], &[&long[33..]], &mut out[..1]).unwrap();
        assert_eq!(out[0][..], abcd16[..], "{b:?} split abcd×16");
        true
    });
    let mut out = [[0u8; 32]; 1];
    digest_many(b"", &[b"abc"], &mut out);
    assert_eq!(out[0][..], abc[..]);
}

#[test]
fn every_length_up_to_200() {
    let data: Vec<Vec<u8>> = (0..=200).map(|len| bytes(len as u32, len)).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| &m[..]).collect();
    let prefix = bytes(999, 32);
    on_every_backend(|b| {
        // All lengths in one call (201 messages: 12 full groups and a partial one, with
        // lengths differing inside each group) and each length alone.
        let ran = check(b, b"", &msgs, "lengths 0..=200, no prefix")
            && check(b, &prefix, &msgs, "lengths 0..=200, 32-byte prefix");
        if ran {
            for m in &msgs {
                check(b, b"", &[m], "one message, no prefix");
                check(b, &prefix, &[m], "one message, 32-byte prefix");
                // Sixteen copies: a full group where every lane has the same length.
                check(b, &prefix, &[*m; 16], "sixteen of the same length");
            }
        }
        ran
    });
}

#[test]
fn message_counts() {
    let data: Vec<Vec<u8>> = (0..40).map(|i| bytes(100 + i, 55)).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| &m[..]).collect();
    let prefix = bytes(7, 32);
    on_every_backend(|b| {
        let mut ran = true;
        for n in [0, 1, 2, 15, 16, 17, 31, 32, 33, 40] {
            ran &= check(b, b"", &msgs[..n], "55-byte messages, no prefix");
            ran &= check(b, &prefix, &msgs[..n], "55-byte messages, 32-byte prefix");
        }
        ran
    });
}

#[test]
fn mixed_lengths_finish_at_different_blocks() {
    // Lanes of 1 to 9 blocks in one group, in an order that is not sorted, and a long
    // message after many short ones.
    let lens = [0usize, 500, 55, 56, 64, 119, 3, 300, 1, 128, 63, 200, 9, 447, 64, 65, 1000, 31, 2, 190];
    let data: Vec<Vec<u8>> = lens.iter().enumerate().map(|(i, &len)| bytes(i as u32, len)).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| &m[..]).collect();
    let prefix = bytes(3, 32);
    on_every_backend(|b| {
        let mut ran = check(b, b"", &msgs, "mixed lengths, no prefix");
        ran &= check(b, &prefix, &msgs, "mixed lengths, 32-byte prefix");
        for start in 0..lens.len() {
            ran &= check(b, &prefix, &msgs[start..], "mixed lengths, suffix of the list");
        }
        ran
    });
}

#[test]
fn prefixes_across_block_boundaries() {
    let data: Vec<Vec<u8>> = (0..70).map(|len| bytes(50 + len as u32, len)).collect();
    let msgs: Vec<&[u8]> = data.iter().map(|m| &m[..]).collect();
    on_every_backend(|b| {
        let mut ran = true;
        for plen in [1, 31, 32, 54, 55, 56, 63, 64, 65, 119, 120, 127, 128, 129, 200] {
            let prefix = bytes(plen as u32, plen);
            ran &= check(b, &prefix, &msgs, "prefix lengths around block boundaries");
        }
        ran
    });
}

#[test]
fn avx512_padded_blocks() {
    // The blocks the AVX-512 backend builds in registers, one by one, equal the standard's
    // padding of the concatenation.
    #[cfg(target_arch = "x86_64")]
    if Backend::Avx512.available() {
        for plen in [0usize, 5, 63, 64, 70, 128, 130] {
            for mlen in 0..200 {
                let prefix = bytes(1 + plen as u32, plen);
                let msg = bytes(2 + mlen as u32, mlen);
                let len = plen + mlen;
                let mut want = [&prefix[..], &msg[..]].concat();
                want.push(0x80);
                while want.len() % 64 != 56 {
                    want.push(0);
                }
                want.extend_from_slice(&(8 * len as u64).to_be_bytes());
                let n = block_count(len);
                assert_eq!(want.len(), 64 * n);
                for (j, block) in want.chunks_exact(64).enumerate() {
                    let got = crate::x86::padded_block(&prefix, &msg, j, n).unwrap();
                    assert_eq!(got[..], block[..], "prefix {plen}, message {mlen}, block {j}");
                }
            }
        }
        return;
    }
    not_tested("AVX-512 padding");
}

#[test]
#[should_panic(expected = "one output digest per message")]
fn length_mismatch_panics() {
    let mut out = [[0u8; 32]; 1];
    digest_many(b"", &[b"a", b"b"], &mut out);
}

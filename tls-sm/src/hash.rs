//! SM3, HMAC-SM3 and HKDF-SM3 behind rustls' `hash`, `hmac` and `tls13::Hkdf` traits.
//!
//! The TLS 1.3 key schedule of `TLS_SM4_GCM_SM3` is the RFC 8446 one with SM3 in place of
//! SHA-256 (RFC 8998 §3.1): the transcript hash is SM3, and HKDF (RFC 5869) runs over
//! HMAC-SM3. rustls builds HKDF from any [`Hmac`] with [`HkdfUsingHmac`], so only the hash and
//! the HMAC are written here.

use hmac::{KeyInit, Mac};
use rustls::crypto::hash::{self, HashAlgorithm};
use rustls::crypto::hmac::{self as rhmac, Hmac, Tag};
use rustls::crypto::tls13::HkdfUsingHmac;
use sm3::{Digest, Sm3};

/// Length of an SM3 digest in bytes.
pub const SM3_LEN: usize = 32;

/// rustls tells hashes apart with the TLS 1.2 `HashAlgorithm` registry, which has no entry for
/// SM3. This private value (the hash octet of `sm2sig_sm3` = 0x0708) is only compared inside
/// rustls, e.g. to refuse resuming an SM3 session under a SHA-256 suite; it never goes on the
/// wire.
pub const SM3_HASH_ALGORITHM: HashAlgorithm = HashAlgorithm::Unknown(0x07);

/// SM3 (GB/T 32905) as a rustls [`hash::Hash`].
#[derive(Debug)]
pub struct Sm3Hash;

/// The one SM3 hash provider.
pub static SM3: Sm3Hash = Sm3Hash;

impl hash::Hash for Sm3Hash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(Sm3::new()))
    }

    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(&Sm3::digest(data))
    }

    fn output_len(&self) -> usize {
        SM3_LEN
    }

    fn algorithm(&self) -> HashAlgorithm {
        SM3_HASH_ALGORITHM
    }
}

/// A running SM3 over the handshake transcript.
struct Sm3Context(Sm3);

impl hash::Context for Sm3Context {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(&self.0.clone().finalize())
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(Sm3Context(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(&self.0.finalize())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// HMAC (RFC 2104) over SM3 as a rustls [`Hmac`].
#[derive(Debug)]
pub struct HmacSm3;

/// The one HMAC-SM3 provider.
pub static HMAC_SM3: HmacSm3 = HmacSm3;

/// HKDF (RFC 5869) over HMAC-SM3, for the TLS 1.3 key schedule.
pub static HKDF_SM3: HkdfUsingHmac<'static> = HkdfUsingHmac(&HMAC_SM3);

impl Hmac for HmacSm3 {
    fn with_key(&self, key: &[u8]) -> Box<dyn rhmac::Key> {
        // HMAC takes keys of any length (longer ones are hashed first), so this cannot fail.
        let mac = <hmac::Hmac<Sm3> as KeyInit>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        Box::new(HmacSm3Key(mac))
    }

    fn hash_output_len(&self) -> usize {
        SM3_LEN
    }
}

/// An HMAC-SM3 state keyed once; every tag starts from a clone of it. The inner and outer
/// padded key blocks it holds are zeroized by `hmac` when dropped.
struct HmacSm3Key(hmac::Hmac<Sm3>);

impl rhmac::Key for HmacSm3Key {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut mac = self.0.clone();
        mac.update(first);
        for part in middle {
            mac.update(part);
        }
        mac.update(last);
        Tag::new(&mac.finalize().into_bytes())
    }

    fn tag_len(&self) -> usize {
        SM3_LEN
    }
}

#[cfg(test)]
mod tests {
    //! Known answers. SM3("abc") is GB/T 32905 Appendix A.1. The HMAC-SM3 values use the
    //! RFC 4231 test-case 1 and 2 inputs; the same tags are published by GmSSL-derived test
    //! suites and are what `openssl mac -digest SM3 ... HMAC` prints (OpenSSL 3.0.19). The
    //! HKDF-SM3 values use the RFC 5869 test-case 1 inputs with SM3 in place of SHA-256, as
    //! printed by `openssl kdf -kdfopt digest:SM3 ... HKDF`. `tests/openssl.rs` repeats the
    //! comparison live on random inputs.
    use super::*;
    use rustls::crypto::hash::Hash as _;
    use rustls::crypto::tls13::Hkdf;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex")).collect()
    }

    #[test]
    fn sm3_abc_and_transcript_forks() {
        let want = hex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
        assert_eq!(SM3.hash(b"abc").as_ref(), &want[..]);
        let mut ctx = SM3.start();
        ctx.update(b"a");
        let fork = ctx.fork();
        ctx.update(b"bc");
        assert_eq!(ctx.fork_finish().as_ref(), &want[..]);
        assert_eq!(fork.finish().as_ref(), SM3.hash(b"a").as_ref());
        assert_eq!(ctx.finish().as_ref(), &want[..]);
    }

    #[test]
    fn hmac_sm3_rfc4231_inputs() {
        let key = HMAC_SM3.with_key(&[0x0b; 20]);
        assert_eq!(
            key.sign(&[b"Hi ", b"There"]).as_ref(),
            &hex("51b00d1fb49832bfb01c3ce27848e59f871d9ba938dc563b338ca964755cce70")[..]
        );
        let key = HMAC_SM3.with_key(b"Jefe");
        assert_eq!(
            key.sign_concat(b"what do ya", &[b" want "], b"for nothing?").as_ref(),
            &hex("2e87f1d16862e6d964b50a5200bf2b10b764faa9680a296a2405f24bec39f882")[..]
        );
        assert_eq!(key.tag_len(), 32);
    }

    #[test]
    fn hkdf_sm3_rfc5869_case1_inputs() {
        let ikm = [0x0b; 22];
        let salt = hex("000102030405060708090a0b0c");
        let info = hex("f0f1f2f3f4f5f6f7f8f9");
        // RFC 5869 §2.2: PRK = HMAC-Hash(salt, IKM).
        let prk = HMAC_SM3.with_key(&salt).sign(&[&ikm]);
        assert_eq!(prk.as_ref(), &hex("e0d6f7b0bd056327b7659f1f39ad850561fbcf4fb10fb58e88eafa55cf7cd01e")[..]);
        let expander = HKDF_SM3.extract_from_secret(Some(&salt), &ikm);
        let mut okm = [0u8; 42];
        expander.expand_slice(&[&info[..4], &info[4..]], &mut okm).expect("42 <= 255 * 32");
        assert_eq!(
            okm.to_vec(),
            hex(concat!("c69fe91b7aaee2dd5718d72dcaee0cce93f1b8e41f792da51261b6a517e68b36", "ed2c595572b01dfa359b"))
        );
        // RFC 5869 §2.3: T(1) = HMAC-Hash(PRK, info | 0x01).
        let t1 = HMAC_SM3.with_key(prk.as_ref()).sign(&[&info, &[1]]);
        assert_eq!(t1.as_ref(), &okm[..32]);
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert!(expander.expand_slice(&[&info], &mut too_long).is_err());
    }
}

//! What each capability lets a request do with a stored key: the capabilities a cipher
//! operation needs for its mechanism and direction, the rule that keeps MACs and ciphers on
//! different SM4 keys, and the capability sets a key may be generated with.
//!
//! The rules close the oracles a capability would otherwise open onto another one
//! (`docs/protocol.md`, §Capabilities):
//! * The card chooses every IV and GCM nonce it encrypts or wraps with (`…CardIv`,
//!   `Sm4GcmCardNonce`); a caller's IV or nonce on encryption is [`C::CALLER_IV`], which only
//!   the key's owner grants: with it, nonces can repeat and the raw cipher is one request away.
//! * Modes that compute the forward cipher on blocks the caller chooses need
//!   [`C::CALLER_IV`] whatever the IV: ECB both ways, CFB / OFB / CTR decryption (the IV and,
//!   for CFB, every ciphertext block go through E_K: decrypting zeros under IV x answers
//!   E_K(x), which decrypts CTR and GCM data and yields the GHASH key), and multi-part CBC
//!   encryption (each `OpUpdate` shows the last ciphertext block before the next plaintext
//!   block is chosen). CBC decryption computes only the inverse cipher, and GCM decryption
//!   answers nothing until the tag verifies: DECRYPT alone.
//! * Raw RSA with the private key is a signing oracle: [`C::RAW_RSA`].
//! * CBC-MAC of one block is E_K(block) and CMAC is built on E_K: an SM4 key computes MACs
//!   only when it has none of ENCRYPT, DECRYPT, WRAP, UNWRAP (refused at generation, and at
//!   use for a record that has both).
//!
//! Session keys (`KeyRef::Session`) are outside these rules: they are the caller's own
//! (it can have one wrapped to a public key of its choosing and so know it), live only in
//! its session, and serve SDF's ECB, CBC and CBC-MAC with caller IVs.

use gmhsm_proto::{Capabilities as C, CipherMech, KeyAlg, MacMech, Sm4Mode};

use crate::alg::sm4::Direction;
use crate::error::Error;
use crate::keys;

/// The SM4 capabilities that use the key as a cipher.
const CIPHER: C = C(C::ENCRYPT.0 | C::DECRYPT.0 | C::WRAP.0 | C::UNWRAP.0);

/// How an operation runs: one request, or `OpInit` / `OpUpdate` / `OpFinal`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    OneShot,
    MultiPart,
}

/// The capabilities an operation with `mechanism` in direction `dir` needs: `base` (ENCRYPT,
/// DECRYPT, WRAP or UNWRAP) and whatever the mechanism adds.
pub(super) fn cipher_need(base: C, mechanism: &CipherMech, dir: Direction, shape: Shape) -> C {
    let encrypt = dir == Direction::Encrypt;
    let raw_block = match mechanism {
        CipherMech::RsaRaw => return if encrypt { base } else { base | C::RAW_RSA },
        CipherMech::Sm4Gcm { .. } => encrypt,
        CipherMech::Sm4 { mode, .. } => match mode {
            Sm4Mode::Ecb => true,
            m if encrypt && m.caller_iv().is_some() => true,
            Sm4Mode::Cbc { .. } | Sm4Mode::CbcCardIv => encrypt && shape == Shape::MultiPart,
            _ => !encrypt,
        },
        _ => false,
    };
    if raw_block { base | C::CALLER_IV } else { base }
}

/// The capabilities a MAC with `mechanism` needs.
pub(super) fn mac_need(mechanism: MacMech) -> Result<C, Error> {
    match mechanism {
        MacMech::Sm4CbcMac { iv } if iv != [0; 16] => Err(Error::Invalid("CBC-MAC IV")),
        _ => Ok(C::MAC),
    }
}

/// May a stored key of `alg` with the capabilities `caps` (the key's own, not the caller's
/// share of them) do what `need` asks beyond its capability bits? Refuses a MAC with an SM4
/// key that is also a cipher key (`AccessDenied`).
pub(super) fn check_key(alg: KeyAlg, caps: C, need: C) -> Result<(), Error> {
    let sm4_mac = alg == KeyAlg::Sm4 && need.contains(C::MAC);
    if sm4_mac && caps.0 & CIPHER.0 != 0 {
        return Err(Error::AccessDenied);
    }
    Ok(())
}

/// The capabilities a key of `alg` is generated with when `caps` is asked: the natural set
/// for [`C::DEFAULT`], else `caps` if it is within what `alg` allows (its natural set,
/// EXPORT_WRAPPED, and for SM4 MAC and CALLER_IV, for RSA RAW_RSA) and gives no SM4 key both
/// MAC and a cipher capability. `InvalidArgument` otherwise.
pub(super) fn generation_caps(alg: KeyAlg, caps: C) -> Result<C, Error> {
    let natural = keys::default_caps(alg);
    if caps == C::DEFAULT {
        return Ok(natural);
    }
    let extra = match alg {
        KeyAlg::Sm4 => C::MAC | C::CALLER_IV,
        KeyAlg::Rsa2048 | KeyAlg::Rsa3072 | KeyAlg::Rsa4096 => C::RAW_RSA,
        _ => C::DEFAULT,
    };
    let allowed = natural | C::EXPORT_WRAPPED | extra;
    let mixed = alg == KeyAlg::Sm4 && caps.contains(C::MAC) && caps.0 & CIPHER.0 != 0;
    if !allowed.contains(caps) || mixed {
        return Err(Error::Invalid("capabilities"));
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sm4(mode: Sm4Mode) -> CipherMech {
        CipherMech::Sm4 { mode, pkcs7: false }
    }

    /// The table of `docs/protocol.md` §Capabilities, row by row.
    #[test]
    fn modes_need_caller_iv_where_they_are_raw_block_oracles() {
        use Direction::{Decrypt as D, Encrypt as E};
        use Shape::{MultiPart as M, OneShot as O};
        let iv = [5; 16];
        let gcm = CipherMech::Sm4Gcm { nonce: [1; 12], aad: Vec::new() };
        let card_gcm = CipherMech::Sm4GcmCardNonce { aad: Vec::new() };
        let plain = [
            (sm4(Sm4Mode::CbcCardIv), E, O),
            (sm4(Sm4Mode::CfbCardIv), E, M),
            (sm4(Sm4Mode::OfbCardIv), E, M),
            (sm4(Sm4Mode::CtrCardIv), E, M),
            (sm4(Sm4Mode::Cbc { iv }), D, M),
            (sm4(Sm4Mode::CbcCardIv), D, O),
            (gcm.clone(), D, M),
            (card_gcm.clone(), E, M),
            (card_gcm, D, O),
            (CipherMech::RsaRaw, E, O),
            (CipherMech::RsaOaepSha256, D, O),
        ];
        for (m, dir, shape) in plain {
            assert_eq!(cipher_need(C::ENCRYPT, &m, dir, shape), C::ENCRYPT, "{m:?} {dir:?}");
        }
        let raw = [
            (sm4(Sm4Mode::Ecb), E, O),
            (sm4(Sm4Mode::Ecb), D, O),
            (sm4(Sm4Mode::Cbc { iv }), E, O),
            (sm4(Sm4Mode::Ctr { iv }), E, O),
            (sm4(Sm4Mode::CbcCardIv), E, M),
            (sm4(Sm4Mode::Cfb { iv }), D, O),
            (sm4(Sm4Mode::OfbCardIv), D, O),
            (sm4(Sm4Mode::CtrCardIv), D, O),
            (sm4(Sm4Mode::Ctr { iv }), D, M),
            (gcm, E, O),
        ];
        for (m, dir, shape) in raw {
            assert_eq!(cipher_need(C::WRAP, &m, dir, shape), C::WRAP | C::CALLER_IV, "{m:?} {dir:?}");
        }
        assert_eq!(cipher_need(C::DECRYPT, &CipherMech::RsaRaw, D, O), C::DECRYPT | C::RAW_RSA);
        assert_eq!(cipher_need(C::UNWRAP, &CipherMech::RsaRaw, D, O), C::UNWRAP | C::RAW_RSA);
    }

    /// Guards finding 4: an SM4 key is a MAC key or a cipher key, never both; the new bits
    /// are never natural and only where they mean something.
    #[test]
    fn generation_keeps_uses_apart() {
        let natural = generation_caps(KeyAlg::Sm4, C::DEFAULT).unwrap();
        assert!(!natural.contains(C::MAC) && !natural.contains(C::CALLER_IV), "{natural:?}");
        for alg in [KeyAlg::Sm2, KeyAlg::Rsa2048, KeyAlg::Sm4, KeyAlg::HmacSm3, KeyAlg::EcdsaP256] {
            let n = generation_caps(alg, C::DEFAULT).unwrap();
            assert!(!n.contains(C::RAW_RSA) && !n.contains(C::CALLER_IV), "{alg:?}");
        }
        assert_eq!(generation_caps(KeyAlg::Sm4, C::MAC), Ok(C::MAC));
        assert_eq!(generation_caps(KeyAlg::Sm4, C::MAC | C::ENCRYPT), Err(Error::Invalid("capabilities")));
        assert_eq!(generation_caps(KeyAlg::Sm4, C::MAC | C::UNWRAP), Err(Error::Invalid("capabilities")));
        let sdf = C::ENCRYPT | C::DECRYPT | C::CALLER_IV;
        assert_eq!(generation_caps(KeyAlg::Sm4, sdf), Ok(sdf));
        let raw = C::DECRYPT | C::RAW_RSA;
        assert_eq!(generation_caps(KeyAlg::Rsa2048, raw), Ok(raw));
        assert_eq!(generation_caps(KeyAlg::Sm2, C::DECRYPT | C::RAW_RSA), Err(Error::Invalid("capabilities")));
        assert_eq!(generation_caps(KeyAlg::Sm2, C::DECRYPT | C::CALLER_IV), Err(Error::Invalid("capabilities")));
    }

    /// A stored record that has both MAC and a cipher capability (written before this rule)
    /// computes no MAC; a MAC-only key does.
    #[test]
    fn old_mixed_records_compute_no_mac() {
        let sm4 = KeyAlg::Sm4;
        assert_eq!(check_key(sm4, C::MAC | C::ENCRYPT, C::MAC), Err(Error::AccessDenied));
        assert_eq!(check_key(sm4, C::MAC | C::ENCRYPT, C::ENCRYPT), Ok(()));
        assert_eq!(check_key(sm4, C::MAC, C::MAC), Ok(()));
        assert_eq!(check_key(KeyAlg::HmacSm3, C::MAC | C::ENCRYPT, C::MAC), Ok(()));
        assert_eq!(mac_need(MacMech::Sm4CbcMac { iv: [1; 16] }), Err(Error::Invalid("CBC-MAC IV")));
        assert_eq!(mac_need(MacMech::Sm4CbcMac { iv: [0; 16] }), Ok(C::MAC));
    }
}

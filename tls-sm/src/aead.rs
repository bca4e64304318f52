//! SM4-GCM record protection for TLS 1.3 (RFC 8998 §3.1, the AEAD of `TLS_SM4_GCM_SM3`).
//!
//! SM4-GCM is GCM (NIST SP 800-38D) over the SM4 block cipher (GB/T 32907): a 16-byte key,
//! a 12-byte nonce and a 16-byte tag. The record layer is RFC 8446 §5.2 unchanged: the
//! per-record nonce is the static IV XOR the sequence number, the additional data is the
//! 5-byte record header, and the inner plaintext carries the content type at its end.

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::aead::{AeadInOut, KeyInit};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter, Nonce,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls13AeadAlgorithm, UnsupportedOperationError,
    make_tls13_aad,
};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion};

/// SM4 in Galois/Counter Mode with a 96-bit nonce.
pub type Sm4Gcm = aes_gcm::AesGcm<gmhsm_sm4::Sm4, U12>;

/// SM4 key length in bytes.
pub const KEY_LEN: usize = 16;
/// GCM tag length in bytes.
pub const TAG_LEN: usize = 16;

/// The AEAD of `TLS_SM4_GCM_SM3`.
#[derive(Debug)]
pub struct Sm4GcmAead;

/// The one SM4-GCM record protection algorithm.
pub static SM4_GCM: Sm4GcmAead = Sm4GcmAead;

impl Tls13AeadAlgorithm for Sm4GcmAead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Sm4GcmRecords::new(&key, iv))
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Sm4GcmRecords::new(&key, iv))
    }

    fn key_len(&self) -> usize {
        KEY_LEN
    }

    /// The kernel TLS offload (kTLS) has SM4-GCM, but rustls' `ConnectionTrafficSecrets` has no
    /// variant for it, so secrets cannot be extracted.
    fn extract_keys(&self, _key: AeadKey, _iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Err(UnsupportedOperationError)
    }
}

/// One direction of record protection. rustls hands over exactly `key_len()` bytes (an
/// `AeadKey` made outside rustls is always 32 bytes, of which the first 16 are the key).
/// `cipher` is `None` only if the key were shorter, which rustls never does; every record then
/// fails instead of panicking.
struct Sm4GcmRecords {
    cipher: Option<Sm4Gcm>,
    iv: Iv,
}

impl Sm4GcmRecords {
    fn new(key: &AeadKey, iv: Iv) -> Self {
        Self { cipher: key.as_ref().get(..KEY_LEN).and_then(|k| Sm4Gcm::new_from_slice(k).ok()), iv }
    }
}

impl MessageEncrypter for Sm4GcmRecords {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let cipher = self.cipher.as_ref().ok_or(Error::EncryptError)?;
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());

        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = cipher
            .encrypt_inout_detached(&nonce.into(), &aad, InOutBuf::from(payload.as_mut()))
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);

        // All TLS 1.3 protected records say ApplicationData / TLS 1.2 (RFC 8446 §5.1).
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for Sm4GcmRecords {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let cipher = self.cipher.as_ref().ok_or(Error::DecryptError)?;
        let payload = &mut msg.payload;
        let Some(body_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(payload.len());
        let (body, tag) = payload.split_at_mut(body_len);
        let tag = aes_gcm::Tag::try_from(&*tag).map_err(|_| Error::DecryptError)?;
        cipher
            .decrypt_inout_detached(&nonce.into(), &aad, InOutBuf::from(body), &tag)
            .map_err(|_| Error::DecryptError)?;
        payload.truncate(body_len);
        msg.into_tls13_unpadded_message()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("test hex")).collect()
    }

    /// RFC 8998 Appendix A.1, the SM4-GCM test vector (also in GmSSL, Nettle, Bouncy Castle).
    #[test]
    fn rfc8998_a1_sm4_gcm() {
        let key = hex("0123456789ABCDEFFEDCBA9876543210");
        let nonce = hex("00001234567800000000ABCD");
        let aad = hex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2");
        let plain = hex(concat!(
            "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD",
            "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA"
        ));
        let want_ct = hex(concat!(
            "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735",
            "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D"
        ));
        let want_tag = hex("83DE3541E4C2B58177E065A9BF7B62EC");

        let cipher = Sm4Gcm::new_from_slice(&key).expect("16-byte key");
        let nonce = aes_gcm::Nonce::<U12>::try_from(&nonce[..]).expect("12 bytes");
        let mut buf = plain.clone();
        let tag = cipher.encrypt_inout_detached(&nonce, &aad, InOutBuf::from(&mut buf[..])).expect("encrypt");
        assert_eq!(buf, want_ct);
        assert_eq!(tag.to_vec(), want_tag);

        cipher.decrypt_inout_detached(&nonce, &aad, InOutBuf::from(&mut buf[..]), &tag).expect("decrypt");
        assert_eq!(buf, plain);

        let mut bad_tag = tag;
        bad_tag[0] ^= 1;
        let mut buf = want_ct.clone();
        assert!(cipher.decrypt_inout_detached(&nonce, &aad, InOutBuf::from(&mut buf[..]), &bad_tag).is_err());
    }

    /// A record sealed by one direction opens in the other; a flipped bit, a wrong sequence
    /// number or a truncated record is refused.
    #[test]
    fn record_round_trip_and_tamper() {
        let mk = || (AeadKey::from([7u8; 32]), Iv::new([9u8; 12]));
        let (key, iv) = mk();
        let mut enc = SM4_GCM.encrypter(key, iv);
        let (key, iv) = mk();
        let mut dec = SM4_GCM.decrypter(key, iv);
        let chunks: [&[u8]; 1] = [b"hello sm4-gcm"];
        let plain = OutboundPlainMessage {
            typ: ContentType::ApplicationData,
            version: ProtocolVersion::TLSv1_3,
            payload: rustls::crypto::cipher::OutboundChunks::new(&chunks),
        };
        let sealed = enc.encrypt(plain, 5).expect("seal").encode();
        assert_eq!(sealed.len(), 5 + 13 + 1 + TAG_LEN);

        let open = |seq: u64, bytes: &mut Vec<u8>, dec: &mut Box<dyn MessageDecrypter>| {
            let msg =
                InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, &mut bytes[5..]);
            dec.decrypt(msg, seq).map(|m| (m.typ, m.payload.to_vec()))
        };
        let mut good = sealed.clone();
        let (typ, body) = open(5, &mut good, &mut dec).expect("open");
        assert_eq!(typ, ContentType::ApplicationData);
        assert_eq!(body, b"hello sm4-gcm");

        assert!(open(6, &mut sealed.clone(), &mut dec).is_err());
        let mut flipped = sealed.clone();
        flipped[7] ^= 0x80;
        assert!(open(5, &mut flipped, &mut dec).is_err());
        let mut short = sealed[..5 + TAG_LEN - 1].to_vec();
        assert!(open(5, &mut short, &mut dec).is_err());
    }
}

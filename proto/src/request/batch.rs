//! Batch limits, and the bounded readers that enforce them while decoding.

use alloc::vec::Vec;

#[cfg(doc)]
use super::Request;

/// Most ciphertexts in one [`Request::DecryptBatch`] (each decryption is a variable-base
/// multiplication: 32 hold the card for about a millisecond with AVX-512 IFMA, two without).
pub const MAX_DECRYPT_BATCH: usize = 32;

/// Most messages in one [`Request::SignBatch`]: the card executes requests one at a time, and
/// a batch of 256 SM2 or ECDSA signatures holds it for about a millisecond.
pub const MAX_SIGN_BATCH: usize = 256;

/// Most messages in a [`Request::SignBatch`] with an RSA key (an RSA-4096 signature costs the
/// card milliseconds).
pub const MAX_SIGN_BATCH_RSA: usize = 16;

/// A `SignBatch`'s messages, refused past [`MAX_SIGN_BATCH`] from the announced count (postcard
/// gives it before the elements) and again while reading: a hostile frame of a million empty
/// messages costs a failed decode, not a million-entry vector.
pub(super) fn bounded_messages<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<serde_bytes::ByteBuf>, D::Error> {
    d.deserialize_seq(Bounded(MAX_SIGN_BATCH))
}

/// A `DecryptBatch`'s ciphertexts, bounded as [`bounded_messages`] bounds messages.
pub(super) fn bounded_ciphertexts<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<serde_bytes::ByteBuf>, D::Error> {
    d.deserialize_seq(Bounded(MAX_DECRYPT_BATCH))
}

/// A sequence of byte strings of at most `.0` elements.
struct Bounded(usize);

impl<'de> serde::de::Visitor<'de> for Bounded {
    type Value = Vec<serde_bytes::ByteBuf>;
    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "at most {} byte strings", self.0)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let announced = seq.size_hint().unwrap_or(0);
        if announced > self.0 {
            return Err(serde::de::Error::invalid_length(announced, &self));
        }
        let mut items = Vec::with_capacity(announced);
        while let Some(m) = seq.next_element()? {
            if items.len() == self.0 {
                return Err(serde::de::Error::invalid_length(self.0 + 1, &self));
            }
            items.push(m);
        }
        Ok(items)
    }
}

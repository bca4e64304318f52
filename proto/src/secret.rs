//! Secrets in requests: key access passwords and PIN blocks, zeroed on drop and hidden from
//! `Debug`, with the same wire bytes as the plain types they replace (a password is a
//! length-prefixed byte string of at most [`MAX_PASSWORD`] bytes, a PIN block eight bytes).
//! Plaintexts in responses are [`crate::response::SecretBytes`].

use core::fmt;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// Longest key access password (bytes).
pub const MAX_PASSWORD: usize = 64;

/// A private-key access password (`SetKeyPassword`, `AuthorizeKey`): 0 to [`MAX_PASSWORD`]
/// bytes. Longer ones do not decode. The bytes are reached through [`Password::expose_secret`].
#[derive(Clone)]
pub struct Password {
    bytes: [u8; MAX_PASSWORD],
    len: u8,
}

impl Password {
    /// `None` when `bytes` is longer than [`MAX_PASSWORD`].
    pub fn new(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > MAX_PASSWORD {
            return None;
        }
        let mut p = Password { bytes: [0; MAX_PASSWORD], len: bytes.len() as u8 };
        p.bytes[..bytes.len()].copy_from_slice(bytes);
        Some(p)
    }

    /// The password itself.
    pub fn expose_secret(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

impl PartialEq for Password {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.expose_secret(), other.expose_secret())
    }
}

impl Eq for Password {}

impl Serialize for Password {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.expose_secret())
    }
}

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_bytes(PasswordVisitor)
    }
}

struct PasswordVisitor;

impl<'de> serde::de::Visitor<'de> for PasswordVisitor {
    type Value = Password;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at most {MAX_PASSWORD} bytes")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Password, E> {
        Password::new(v).ok_or_else(|| E::invalid_length(v.len(), &self))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Password, A::Error> {
        let mut p = Password { bytes: [0; MAX_PASSWORD], len: 0 };
        while let Some(b) = seq.next_element::<u8>()? {
            if p.len() == MAX_PASSWORD {
                return Err(serde::de::Error::invalid_length(MAX_PASSWORD + 1, &self));
            }
            p.bytes[p.len()] = b;
            p.len += 1;
        }
        Ok(p)
    }
}

/// An eight-byte PIN block (a new admin-card PIN for `AuthorizeUnblock`). Wire: the eight
/// bytes.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PinBlock([u8; 8]);

impl PinBlock {
    pub fn new(block: [u8; 8]) -> Self {
        PinBlock(block)
    }

    /// The block itself.
    pub fn expose_secret(&self) -> &[u8; 8] {
        &self.0
    }
}

impl Drop for PinBlock {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PinBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PinBlock(..)")
    }
}

impl PartialEq for PinBlock {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for PinBlock {}

/// Equal lengths and equal bytes, without an early exit on the first difference.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    /// Guards finding 9: `Debug` of a password or PIN block never shows the secret, and the
    /// wire bytes are those of the plain types they replaced.
    #[test]
    fn secrets_hide_and_keep_their_wire_form() {
        let p = Password::new(b"correct horse").unwrap();
        assert!(!format!("{p:?}").contains("correct"), "{p:?}");
        let plain: heapless::Vec<u8, 64> = heapless::Vec::from_slice(b"correct horse").unwrap();
        let bytes = postcard::to_allocvec(&p).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&plain).unwrap());
        assert_eq!(postcard::from_bytes::<Password>(&bytes).unwrap(), p);
        let long = postcard::to_allocvec(&serde_bytes::Bytes::new(&[7; 65])).unwrap();
        assert!(postcard::from_bytes::<Password>(&long).is_err(), "65 bytes decoded");
        assert!(Password::new(&[7; 65]).is_none());

        let pin = PinBlock::new(*b"123456\xff\xff");
        assert!(!format!("{pin:?}").contains("49"), "{pin:?}");
        assert!(!format!("{pin:?}").contains("123456"), "{pin:?}");
        let bytes = postcard::to_allocvec(&pin).unwrap();
        assert_eq!(bytes, b"123456\xff\xff");
        assert_eq!(postcard::from_bytes::<PinBlock>(&bytes).unwrap(), pin);
    }
}

//! A small BER-TLV reader and writer (ISO 7816-4 §5.2 / ISO 8825-1 subset): tags of one or
//! two bytes, definite lengths up to `82 xx xx` (65535). Enough for the admin-card data
//! objects; anything outside that subset is rejected, not guessed.

use alloc::vec::Vec;

/// Why bytes are not a TLV sequence of the supported subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlvError {
    /// A tag, length or value runs past the end of the input.
    Truncated,
    /// A tag of more than two bytes, an indefinite or over-long length, or padding.
    Unsupported,
}

/// Iterator over the top-level TLVs of a byte string: `(tag, value)`.
#[derive(Debug, Clone)]
pub struct Tlvs<'a> {
    rest: &'a [u8],
}

/// Iterate over `b` as a sequence of TLVs.
pub fn parse(b: &[u8]) -> Tlvs<'_> {
    Tlvs { rest: b }
}

fn split(b: &[u8]) -> Result<(u16, &[u8], &[u8]), TlvError> {
    let (&t0, b) = b.split_first().ok_or(TlvError::Truncated)?;
    if t0 == 0x00 || t0 == 0xFF {
        return Err(TlvError::Unsupported);
    }
    let (tag, b) = if t0 & 0x1F == 0x1F {
        let (&t1, b) = b.split_first().ok_or(TlvError::Truncated)?;
        if t1 & 0x80 != 0 {
            return Err(TlvError::Unsupported);
        }
        (u16::from_be_bytes([t0, t1]), b)
    } else {
        (u16::from(t0), b)
    };
    let (&l0, b) = b.split_first().ok_or(TlvError::Truncated)?;
    let (len, b) = match l0 {
        0x00..=0x7F => (usize::from(l0), b),
        0x81 => {
            let (&l, b) = b.split_first().ok_or(TlvError::Truncated)?;
            (usize::from(l), b)
        }
        0x82 => {
            let (l, b) = b.split_first_chunk::<2>().ok_or(TlvError::Truncated)?;
            (usize::from(u16::from_be_bytes(*l)), b)
        }
        _ => return Err(TlvError::Unsupported),
    };
    if b.len() < len {
        return Err(TlvError::Truncated);
    }
    let (value, rest) = b.split_at(len);
    Ok((tag, value, rest))
}

impl<'a> Iterator for Tlvs<'a> {
    type Item = Result<(u16, &'a [u8]), TlvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match split(self.rest) {
            Ok((tag, value, rest)) => {
                self.rest = rest;
                Some(Ok((tag, value)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// The value of the first `tag` in `b`, `Ok(None)` if absent; errors if `b` is malformed.
pub fn find(b: &[u8], tag: u16) -> Result<Option<&[u8]>, TlvError> {
    for item in parse(b) {
        let (t, v) = item?;
        if t == tag {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Check that `b` is well formed and holds only tags from `allowed`, each at most once.
pub fn check(b: &[u8], allowed: &[u16]) -> Result<(), TlvError> {
    let mut seen = 0u64;
    for item in parse(b) {
        let (t, _) = item?;
        let i = allowed.iter().position(|&a| a == t).ok_or(TlvError::Unsupported)?;
        if seen & (1 << i) != 0 {
            return Err(TlvError::Unsupported);
        }
        seen |= 1 << i;
    }
    Ok(())
}

/// Append `tag ‖ length ‖ value`. Values longer than 65535 bytes are a programming error of
/// the caller and are truncated to 65535 (no panic).
pub fn put(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    let value = &value[..value.len().min(0xFFFF)];
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xFF {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn roundtrip_and_find() {
        let mut v = Vec::new();
        put(&mut v, 0xC1, b"abc");
        put(&mut v, 0x7F49, &[4; 65]);
        put(&mut v, 0xD1, &vec![9; 300]);
        assert_eq!(&v[..5], &[0xC1, 3, b'a', b'b', b'c']);
        assert_eq!(&v[5..8], &[0x7F, 0x49, 65]);
        assert_eq!(find(&v, 0x7F49).unwrap().unwrap().len(), 65);
        assert_eq!(find(&v, 0xD1).unwrap().unwrap().len(), 300);
        assert_eq!(find(&v, 0xC2).unwrap(), None);
        assert!(check(&v, &[0xC1, 0x7F49, 0xD1]).is_ok());
        assert!(check(&v, &[0xC1, 0xD1]).is_err());
        let mut dup = v.clone();
        put(&mut dup, 0xC1, b"x");
        assert!(check(&dup, &[0xC1, 0x7F49, 0xD1]).is_err());
    }

    #[test]
    fn malformed() {
        for bad in [&[0xC1u8, 5, 1][..], &[0xC1, 0x83, 0, 0, 1], &[0x5F], &[0xC1], &[0x00, 0]] {
            assert!(parse(bad).any(|r| r.is_err()), "{bad:?}");
        }
    }
}

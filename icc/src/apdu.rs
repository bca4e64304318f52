//! ISO 7816-4 command and response APDUs: parsing untrusted bytes (`new_checked`) and
//! emitting them, short and extended length.
//!
//! Parsing never panics and never allocates: a [`Command`] borrows the bytes it was parsed
//! from. Emitting picks the short form when data and Le fit, the extended form otherwise.

use alloc::vec::Vec;
use core::fmt;

/// Largest Nc (command data length): 65535 (extended Lc).
pub const MAX_NC: usize = 65_535;
/// Largest Ne (expected response length): 65536 (extended Le = 0000).
pub const MAX_NE: usize = 65_536;

/// Why bytes are not an APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApduError {
    /// Fewer than 4 header bytes (command) or 2 status bytes (response).
    TooShort,
    /// The length fields do not match the number of bytes.
    BadLength,
    /// Data longer than [`MAX_NC`] or Ne larger than [`MAX_NE`] (emit only).
    TooLong,
}

impl fmt::Display for ApduError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApduError::TooShort => "APDU too short",
            ApduError::BadLength => "APDU length fields inconsistent",
            ApduError::TooLong => "APDU data or Le too long",
        })
    }
}

impl core::error::Error for ApduError {}

/// A command APDU: header, optional data (Nc = `data.len()`), optional Ne.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Command<'a> {
    pub cla: u8,
    pub ins: u8,
    pub p1: u8,
    pub p2: u8,
    pub data: &'a [u8],
    /// Ne, the maximum number of response data bytes expected: `None` = no Le field,
    /// `Some(1..=65536)` otherwise (a zero Le byte means 256 short / 65536 extended).
    pub ne: Option<usize>,
}

impl fmt::Debug for Command<'_> {
    // The data field may hold a PIN or a share: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command {{ {:02X} {:02X} {:02X} {:02X}, Nc {}, Ne {:?} }}",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.ne
        )
    }
}

impl<'a> Command<'a> {
    /// A command without data or Le (case 1).
    pub fn new(cla: u8, ins: u8, p1: u8, p2: u8) -> Self {
        Command { cla, ins, p1, p2, data: &[], ne: None }
    }

    pub fn with_data(mut self, data: &'a [u8]) -> Self {
        self.data = data;
        self
    }

    pub fn with_ne(mut self, ne: usize) -> Self {
        self.ne = Some(ne);
        self
    }

    /// Parse a C-APDU (ISO 7816-3 §12.1 cases 1, 2S/E, 3S/E, 4S/E).
    pub fn new_checked(b: &'a [u8]) -> Result<Self, ApduError> {
        let (header, body) = b.split_first_chunk::<4>().ok_or(ApduError::TooShort)?;
        let [cla, ins, p1, p2] = *header;
        let cmd = |data: &'a [u8], ne: Option<usize>| Command { cla, ins, p1, p2, data, ne };
        let short_ne = |x: u8| if x == 0 { 256 } else { usize::from(x) };
        let ext_ne = |hi: u8, lo: u8| match u16::from_be_bytes([hi, lo]) {
            0 => MAX_NE,
            n => usize::from(n),
        };
        match body {
            [] => Ok(cmd(&[], None)),
            [le] => Ok(cmd(&[], Some(short_ne(*le)))),
            [0, rest @ ..] => match rest {
                [hi, lo] => Ok(cmd(&[], Some(ext_ne(*hi, *lo)))),
                [hi, lo, tail @ ..] => {
                    let nc = usize::from(u16::from_be_bytes([*hi, *lo]));
                    if nc == 0 {
                        return Err(ApduError::BadLength);
                    }
                    match tail.len().checked_sub(nc) {
                        Some(0) => Ok(cmd(tail, None)),
                        Some(2) => {
                            let (data, le) = tail.split_at(nc);
                            Ok(cmd(data, Some(ext_ne(le[0], le[1]))))
                        }
                        _ => Err(ApduError::BadLength),
                    }
                }
                _ => Err(ApduError::BadLength),
            },
            [lc, tail @ ..] => {
                let nc = usize::from(*lc);
                match tail.len().checked_sub(nc) {
                    Some(0) => Ok(cmd(tail, None)),
                    Some(1) => Ok(cmd(&tail[..nc], Some(short_ne(tail[nc])))),
                    _ => Err(ApduError::BadLength),
                }
            }
        }
    }

    /// Whether emitting needs the extended form.
    pub fn is_extended(&self) -> bool {
        self.data.len() > 255 || self.ne.is_some_and(|ne| ne > 256)
    }

    /// Append the encoded APDU to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), ApduError> {
        let nc = self.data.len();
        if nc > MAX_NC || self.ne.is_some_and(|ne| ne == 0 || ne > MAX_NE) {
            return Err(ApduError::TooLong);
        }
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if self.is_extended() {
            out.push(0);
            if nc > 0 {
                out.extend_from_slice(&(nc as u16).to_be_bytes());
                out.extend_from_slice(self.data);
            }
            if let Some(ne) = self.ne {
                // 65536 encodes as 0000; the cast keeps the low 16 bits.
                out.extend_from_slice(&((ne & 0xFFFF) as u16).to_be_bytes());
            }
        } else {
            if nc > 0 {
                out.push(nc as u8);
                out.extend_from_slice(self.data);
            }
            if let Some(ne) = self.ne {
                out.push((ne & 0xFF) as u8);
            }
        }
        Ok(())
    }
}

/// A status word SW1 SW2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SW {:04X}", self.0)
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

impl StatusWord {
    pub const OK: Self = Self(0x9000);
    /// Verification failed, no retry counter information (a bad domain authorization).
    pub const VERIFICATION_FAILED: Self = Self(0x6300);
    pub const MEMORY_FAILURE: Self = Self(0x6581);
    pub const WRONG_LENGTH: Self = Self(0x6700);
    pub const SECURITY_STATUS: Self = Self(0x6982);
    pub const AUTH_BLOCKED: Self = Self(0x6983);
    pub const CONDITIONS_OF_USE: Self = Self(0x6985);
    pub const WRONG_DATA: Self = Self(0x6A80);
    pub const FILE_NOT_FOUND: Self = Self(0x6A82);
    pub const NOT_ENOUGH_MEMORY: Self = Self(0x6A84);
    pub const WRONG_P1P2: Self = Self(0x6A86);
    pub const DATA_NOT_FOUND: Self = Self(0x6A88);
    pub const INS_NOT_SUPPORTED: Self = Self(0x6D00);
    pub const CLA_NOT_SUPPORTED: Self = Self(0x6E00);
    pub const UNKNOWN: Self = Self(0x6F00);

    /// `63Cx`: wrong PIN, `x` tries left.
    pub fn wrong_pin(retries_left: u8) -> Self {
        Self(0x63C0 | u16::from(retries_left & 0x0F))
    }

    /// The `x` of `63Cx`.
    pub fn retries_left(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some((self.0 & 0x0F) as u8)
    }

    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    pub fn sw2(self) -> u8 {
        self.0 as u8
    }
}

/// A parsed R-APDU, borrowing its data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    pub data: &'a [u8],
    pub sw: StatusWord,
}

impl fmt::Debug for Response<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Response {{ {} data bytes, {:?} }}", self.data.len(), self.sw)
    }
}

impl<'a> Response<'a> {
    pub fn new_checked(b: &'a [u8]) -> Result<Self, ApduError> {
        let (data, sw) = b.split_last_chunk::<2>().ok_or(ApduError::TooShort)?;
        Ok(Response { data, sw: StatusWord(u16::from_be_bytes(*sw)) })
    }

    /// Append `data ‖ SW1 SW2` to `out`.
    pub fn emit(data: &[u8], sw: StatusWord, out: &mut Vec<u8>) {
        out.extend_from_slice(data);
        out.extend_from_slice(&sw.0.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn roundtrip(c: Command<'_>) -> Vec<u8> {
        let mut v = Vec::new();
        c.emit(&mut v).unwrap();
        assert_eq!(Command::new_checked(&v).unwrap(), c);
        v
    }

    #[test]
    fn cases_short_and_extended() {
        assert_eq!(roundtrip(Command::new(0, 0xA4, 4, 0)), [0, 0xA4, 4, 0]);
        assert_eq!(roundtrip(Command::new(0, 0xCA, 0, 0x6E).with_ne(256)), [0, 0xCA, 0, 0x6E, 0]);
        assert_eq!(roundtrip(Command::new(0, 0x20, 0, 0x81).with_data(&[1, 2])), [0, 0x20, 0, 0x81, 2, 1, 2]);
        assert_eq!(roundtrip(Command::new(0, 0x88, 0, 0).with_data(&[9]).with_ne(256)), [0, 0x88, 0, 0, 1, 9, 0]);
        assert_eq!(roundtrip(Command::new(0, 0xCA, 0, 0xD0).with_ne(MAX_NE)), [0, 0xCA, 0, 0xD0, 0, 0, 0]);
        assert_eq!(roundtrip(Command::new(0, 0xCA, 0, 0xD0).with_ne(300)), [0, 0xCA, 0, 0xD0, 0, 1, 0x2C]);
        let big = vec![7u8; 300];
        let e = roundtrip(Command::new(0, 0xDA, 0, 0xD0).with_data(&big));
        assert_eq!(&e[4..7], &[0, 1, 0x2C]);
        let e = roundtrip(Command::new(0, 0xDA, 0, 0xD0).with_data(&big).with_ne(MAX_NE));
        assert_eq!(&e[e.len() - 2..], &[0, 0]);
        // Short data with a large Ne forces the extended form.
        let e = roundtrip(Command::new(0, 1, 2, 3).with_data(&[5]).with_ne(1000));
        assert_eq!(e, [0, 1, 2, 3, 0, 0, 1, 5, 0x03, 0xE8]);
    }

    #[test]
    fn rejects_inconsistent_lengths() {
        for bad in [
            &[0u8, 1, 2][..],
            &[0, 1, 2, 3, 2, 9],
            &[0, 1, 2, 3, 1, 9, 9, 9],
            &[0, 1, 2, 3, 0, 0],
            &[0, 1, 2, 3, 0, 0, 0, 0],
            &[0, 1, 2, 3, 0, 0, 2, 1],
            &[0, 1, 2, 3, 0, 0, 1, 1, 0],
        ] {
            assert!(Command::new_checked(bad).is_err(), "{bad:?}");
        }
        assert!(Command::new(0, 0, 0, 0).with_ne(0).emit(&mut Vec::new()).is_err());
    }

    #[test]
    fn hostile_input_never_panics() {
        // Every short input, and a pseudo-random sweep of longer ones.
        let mut x: u32 = 1;
        for len in 0..600usize {
            for _ in 0..40 {
                let v: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        if x.is_multiple_of(3) { 0 } else { x as u8 }
                    })
                    .collect();
                if let Ok(c) = Command::new_checked(&v) {
                    let mut out = Vec::new();
                    c.emit(&mut out).unwrap();
                    assert_eq!(Command::new_checked(&out).unwrap(), c);
                }
                let _ = Response::new_checked(&v);
            }
        }
    }

    #[test]
    fn status_words() {
        assert_eq!(StatusWord::wrong_pin(2).0, 0x63C2);
        assert_eq!(StatusWord(0x63C0).retries_left(), Some(0));
        assert_eq!(StatusWord::OK.retries_left(), None);
        let r = Response::new_checked(&[1, 2, 0x90, 0]).unwrap();
        assert_eq!((r.data, r.sw), (&[1u8, 2][..], StatusWord::OK));
    }
}

//! Framing: a 4-byte big-endian length, then a postcard message of that length.
//!
//! Every message starts with a [`FrameHeader`] (protocol version, request id), so a receiver
//! can answer a frame whose body it cannot decode with the right request id.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{Principal, Request, Response, Status};

/// The largest message (after the length prefix) a peer accepts: 1 MiB plus room for the
/// header and encoding overhead.
pub const MAX_FRAME_LEN: usize = (1 << 20) + 4096;

/// The largest message to sign or verify in one request.
pub const MAX_MESSAGE_LEN: usize = 1 << 20;

/// The fields every frame begins with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameHeader {
    pub version: u16,
    pub id: u64,
}

/// Client → daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    pub header: FrameHeader,
    pub request: Request,
}

/// Daemon → client and card → daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerFrame {
    pub header: FrameHeader,
    pub result: Result<Response, Status>,
}

/// Daemon → card: the request with the principal the daemon authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardFrame {
    pub header: FrameHeader,
    pub principal: Principal,
    /// The daemon's connection id: session state (handles, authorizations) lives per session
    /// and dies with [`Request::CloseSession`].
    pub session: u64,
    pub request: Request,
}

/// Why bytes could not become a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announced more than [`MAX_FRAME_LEN`]; the deframer skips that many
    /// bytes and carries on with the next frame.
    TooLarge { len: usize },
    /// The message did not decode. `header` is set when at least the header decoded.
    Malformed { header: Option<FrameHeader> },
    /// Encoding failed (a value over a bound).
    Encode,
}

/// Encode `msg` as a complete frame (length prefix included).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = alloc::vec![0u8; 4];
    out = postcard::to_extend(msg, out).map_err(|_| FrameError::Encode)?;
    let len = out.len() - 4;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::Encode);
    }
    out[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(out)
}

/// Decode one message body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::from_bytes::<T>(body) {
        Ok(v) => Ok(v),
        Err(_) => {
            let header = postcard::take_from_bytes::<FrameHeader>(body).ok().map(|(h, _)| h);
            Err(FrameError::Malformed { header })
        }
    }
}

/// Splits a byte stream into frame bodies. Holds at most one frame's worth of bytes plus
/// what the last read added.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    skip: usize,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the peer.
    pub fn push(&mut self, mut data: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(data.len());
            self.skip -= n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_FRAME_LEN {
            let have = self.buf.len() - 4;
            let drop = have.min(len);
            self.skip = len - drop;
            self.buf.drain(..4 + drop);
            return Err(FrameError::TooLarge { len });
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let body = self.buf[4..4 + len].to_vec();
        self.buf.drain(..4 + len);
        Ok(Some(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Label, Mechanism};

    fn frame(id: u64) -> ClientFrame {
        ClientFrame {
            header: FrameHeader { version: crate::PROTOCOL_VERSION, id },
            request: Request::Sign {
                label: Label::try_from("k1").unwrap(),
                mechanism: Mechanism::sm2_default(),
                message: alloc::vec![1, 2, 3],
            },
        }
    }

    #[test]
    fn round_trip_byte_by_byte() {
        let mut wire = encode(&frame(7)).unwrap();
        wire.extend(encode(&frame(8)).unwrap());
        let mut d = Deframer::new();
        let mut got = alloc::vec::Vec::new();
        for b in wire {
            d.push(&[b]);
            while let Some(body) = d.next_frame().unwrap() {
                got.push(decode::<ClientFrame>(&body).unwrap());
            }
        }
        assert_eq!(got, alloc::vec![frame(7), frame(8)]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn oversized_frame_is_skipped_and_stream_resyncs() {
        let big = (MAX_FRAME_LEN + 10) as u32;
        let mut wire = big.to_be_bytes().to_vec();
        wire.extend(core::iter::repeat_n(0xAA, big as usize));
        wire.extend(encode(&frame(9)).unwrap());
        let mut d = Deframer::new();
        let mut errors = 0;
        let mut frames = alloc::vec::Vec::new();
        for chunk in wire.chunks(7000) {
            d.push(chunk);
            loop {
                match d.next_frame() {
                    Ok(Some(b)) => frames.push(decode::<ClientFrame>(&b).unwrap()),
                    Ok(None) => break,
                    Err(FrameError::TooLarge { len }) => {
                        assert_eq!(len, big as usize);
                        errors += 1
                    }
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert_eq!(errors, 1);
        assert_eq!(frames, alloc::vec![frame(9)]);
    }

    #[test]
    fn malformed_body_still_yields_header() {
        let mut body = postcard::to_allocvec(&FrameHeader { version: 1, id: 42 }).unwrap();
        body.extend([0xff, 0xff, 0xff]);
        match decode::<ClientFrame>(&body) {
            Err(FrameError::Malformed { header: Some(h) }) => assert_eq!(h.id, 42),
            other => panic!("{other:?}"),
        }
        assert!(matches!(decode::<ClientFrame>(&[]), Err(FrameError::Malformed { header: None })));
    }

    #[test]
    fn label_over_bound_is_rejected() {
        // A 65-byte label encoded by hand: variant index of GenerateKey (2), then the string.
        let mut body = postcard::to_allocvec(&FrameHeader { version: 1, id: 1 }).unwrap();
        body.push(2);
        body.push(65);
        body.extend(core::iter::repeat_n(b'a', 65));
        body.push(0);
        assert!(decode::<ClientFrame>(&body).is_err());
    }
}

//! Framing: a 4-byte big-endian length, then a postcard message of that length.
//!
//! Every message starts with a [`FrameHeader`] (protocol version, request id), so a receiver
//! can answer a frame whose body it cannot decode with the right request id.

use alloc::vec::Vec;
use core::ops::Range;
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
    let mut out = Vec::new();
    encode_into(msg, &mut out)?;
    Ok(out)
}

/// Append `msg` to `out` as a complete frame (length prefix included), the same bytes as
/// [`encode`] without a buffer of its own. On error `out` is left as it was.
pub fn encode_into<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if postcard::serialize_with_flavor(msg, Append(out)).is_err() {
        out.truncate(start);
        return Err(FrameError::Encode);
    }
    finish_frame(out, start)
}

/// Append a [`CardFrame`] whose request arrives already encoded: `request` must be exactly
/// the bytes of one [`Request`], e.g. the range [`decode_client`] reports in a client's frame.
/// The result is byte for byte what [`encode_into`] makes of the same `CardFrame` (postcard
/// encodes a struct as its fields one after the other), without decoding and re-encoding the
/// payload. On error `out` is left as it was.
pub fn encode_card_frame(
    header: &FrameHeader,
    principal: &Principal,
    session: u64,
    request: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if postcard::serialize_with_flavor(&(header, principal, session), Append(out)).is_err() {
        out.truncate(start);
        return Err(FrameError::Encode);
    }
    out.extend_from_slice(request);
    finish_frame(out, start)
}

/// A [`ServerFrame`] body split without decoding its response: the header, and either the
/// bytes of the encoded [`Response`] (to relay as they are, with [`encode_answer`]) or the
/// status. postcard encodes `Result` as a one-byte tag (0: `Ok`, 1: `Err`) before the value,
/// so the split costs no allocation however large the response. Only the status is decoded;
/// the response bytes are whatever followed the tag (the card encodes them, the client
/// decodes them).
pub fn split_answer(body: &[u8]) -> Result<(FrameHeader, Result<&[u8], Status>), FrameError> {
    let malformed = || FrameError::Malformed { header: header_of(body) };
    let (header, rest) = postcard::take_from_bytes::<FrameHeader>(body).map_err(|_| malformed())?;
    match rest.split_first() {
        Some((0, response)) if !response.is_empty() => Ok((header, Ok(response))),
        Some((1, status)) => {
            let (status, _) = postcard::take_from_bytes::<Status>(status).map_err(|_| malformed())?;
            Ok((header, Err(status)))
        }
        _ => Err(malformed()),
    }
}

/// Append a [`ServerFrame`] with `header` whose `Ok` response arrives already encoded
/// (`response`: the bytes [`split_answer`] gave): byte for byte what [`encode_into`] makes of
/// the same frame, without decoding and re-encoding the response. On error `out` is left as
/// it was.
pub fn encode_answer(header: &FrameHeader, response: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    if postcard::serialize_with_flavor(header, Append(out)).is_err() {
        out.truncate(start);
        return Err(FrameError::Encode);
    }
    out.push(0);
    out.extend_from_slice(response);
    finish_frame(out, start)
}

/// Check the length of the frame begun at `start` and write its prefix.
fn finish_frame(out: &mut Vec<u8>, start: usize) -> Result<(), FrameError> {
    let len = out.len() - start - 4;
    if len > MAX_FRAME_LEN {
        out.truncate(start);
        return Err(FrameError::Encode);
    }
    out[start..start + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// A postcard output appending to a borrowed `Vec`, so a frame is encoded in place.
struct Append<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for Append<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, b: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// Decode one message body (without its length prefix).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    match postcard::from_bytes::<T>(body) {
        Ok(v) => Ok(v),
        Err(_) => Err(FrameError::Malformed { header: header_of(body) }),
    }
}

/// Decode a [`ClientFrame`] body exactly as [`decode`] does, and say where its request's
/// bytes are in `body` (for [`encode_card_frame`]). Bytes after the request are ignored, as
/// [`decode`] ignores them.
pub fn decode_client(body: &[u8]) -> Result<(ClientFrame, Range<usize>), FrameError> {
    let malformed = || FrameError::Malformed { header: header_of(body) };
    let (header, rest) = postcard::take_from_bytes::<FrameHeader>(body).map_err(|_| malformed())?;
    let (request, tail) = postcard::take_from_bytes::<Request>(rest).map_err(|_| malformed())?;
    let range = body.len() - rest.len()..body.len() - tail.len();
    Ok((ClientFrame { header, request }, range))
}

fn header_of(body: &[u8]) -> Option<FrameHeader> {
    postcard::take_from_bytes::<FrameHeader>(body).ok().map(|(h, _)| h)
}

/// Splits a byte stream into frame bodies. Holds at most one frame's worth of bytes plus
/// what the last read added.
///
/// The buffer is reused: bytes can be read straight into it ([`Deframer::spare`] then
/// [`Deframer::commit`]) and frame bodies borrowed from it ([`Deframer::next_body`]), so a
/// frame is neither allocated nor moved on its way through. Unconsumed bytes move to the
/// front only when room is needed; a buffer grown past [`Deframer::KEEP`] by a large frame is
/// released once it is empty.
#[derive(Debug, Default)]
pub struct Deframer {
    /// Storage; `buf[start..end]` are the bytes not yet returned as frames.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of an oversized frame still to drop as they arrive.
    skip: usize,
}

impl Deframer {
    /// Buffer capacity kept across frames; a larger buffer is freed when it empties.
    pub const KEEP: usize = 256 * 1024;

    pub fn new() -> Self {
        Self::default()
    }

    /// Append bytes read from the peer.
    pub fn push(&mut self, data: &[u8]) {
        let n = data.len();
        self.spare(n)[..n].copy_from_slice(data);
        self.commit(n);
    }

    /// Room for at least `min` more bytes, to read into; then [`Deframer::commit`] the number
    /// of bytes read.
    pub fn spare(&mut self, min: usize) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > Self::KEEP && min <= Self::KEEP {
                self.buf = Vec::new();
            }
        }
        if self.buf.len() - self.end < min {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < min {
                self.buf.resize(self.end + min, 0);
            }
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes were written at the start of the slice [`Deframer::spare`] returned.
    pub fn commit(&mut self, mut n: usize) {
        n = n.min(self.buf.len() - self.end);
        if self.skip > 0 {
            let k = self.skip.min(n);
            self.skip -= k;
            self.buf.copy_within(self.end + k..self.end + n, self.end);
            n -= k;
        }
        self.end += n;
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The next complete frame body, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.next_body().map(|b| b.map(<[u8]>::to_vec))
    }

    /// The next complete frame body, borrowed from the buffer; `Ok(None)` if more bytes are
    /// needed.
    pub fn next_body(&mut self) -> Result<Option<&[u8]>, FrameError> {
        let have = self.end - self.start;
        if have < 4 {
            return Ok(None);
        }
        let s = self.start;
        let len = u32::from_be_bytes([self.buf[s], self.buf[s + 1], self.buf[s + 2], self.buf[s + 3]]) as usize;
        if len > MAX_FRAME_LEN {
            let drop = (have - 4).min(len);
            self.skip = len - drop;
            self.start += 4 + drop;
            return Err(FrameError::TooLarge { len });
        }
        if have < 4 + len {
            return Ok(None);
        }
        self.start += 4 + len;
        Ok(Some(&self.buf[s + 4..s + 4 + len]))
    }
}

#[cfg(test)]
mod tests;

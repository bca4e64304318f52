//! On-flash layout of the store: geometry arithmetic, page headers, record headers, commit words.
//!
//! Every decoder here takes untrusted bytes and returns `None` for anything it does not
//! recognise; lengths are range-checked before anything is sized from them.

use alloc::vec::Vec;

use gmhsm_platform::FlashGeometry;

use super::crc::crc32;

/// Longest key, in bytes.
pub const MAX_KEY: usize = 80;
/// Longest value, in bytes.
pub const MAX_VALUE: usize = 4096;

const PAGE_MAGIC: u32 = 0x504d_5347; // "GSMP"
/// Meaningful bytes of a page header: magic, sequence (u64), first-record offset, CRC-32.
const PAGE_HEADER_BYTES: usize = 20;
/// Record header magic, bits 22..26 of the header word.
const RECORD_MAGIC: u32 = 0b0101;

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `key` now maps to `value`.
    Value = 0,
    /// `key` is removed; no value.
    Tombstone = 1,
    /// No key; the value is the new log head (u64 little endian) after a compaction step.
    Head = 2,
}

/// A decoded record header word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: Kind,
    pub key_len: usize,
    pub value_len: usize,
}

/// A decoded page header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageHeader {
    /// Virtual page number; the page sits at physical page `seq % page_count`.
    pub seq: u64,
    /// Offset (in the page's data area) of the first record that starts in this page, or
    /// `usable` if none does (the page is covered by a record that started earlier).
    pub first: usize,
}

/// Geometry-derived sizes. Virtual addresses count data bytes only: page `q` holds virtual
/// addresses `q * usable .. (q + 1) * usable`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub page_size: usize,
    pub pages: u64,
    pub word: usize,
    /// Bytes of the page header (a whole number of words).
    pub header: usize,
    /// Data bytes per page.
    pub usable: usize,
}

impl Layout {
    /// `None` if the geometry cannot hold the format (words of 4..=64 bytes, dividing the
    /// page; at least 4 pages; room for a header and some records in each page).
    pub fn new(g: FlashGeometry) -> Option<Self> {
        let word = g.word_size;
        if !(4..=64).contains(&word) || !g.page_size.is_multiple_of(word) || g.page_count < 4 {
            return None;
        }
        let header = PAGE_HEADER_BYTES.div_ceil(word) * word;
        if g.page_size < header + 8 * word || g.page_size > u32::MAX as usize {
            return None;
        }
        Some(Layout { page_size: g.page_size, pages: g.page_count as u64, word, header, usable: g.page_size - header })
    }

    pub fn round(&self, n: usize) -> usize {
        n.div_ceil(self.word) * self.word
    }

    /// Total bytes of a record: header word, key and value padded to a word, commit word.
    pub fn record_len(&self, key_len: usize, value_len: usize) -> usize {
        self.word + self.round(key_len + value_len) + self.word
    }

    /// Virtual page of virtual address `v`.
    pub fn page(&self, v: u64) -> u64 {
        v / self.usable as u64
    }

    pub fn page_start(&self, q: u64) -> u64 {
        q * self.usable as u64
    }

    pub fn offset(&self, v: u64) -> usize {
        (v % self.usable as u64) as usize
    }

    pub fn physical_page(&self, q: u64) -> usize {
        (q % self.pages) as usize
    }

    /// Flash address of virtual address `v`.
    pub fn addr(&self, v: u64) -> usize {
        self.physical_page(self.page(v)) * self.page_size + self.header + self.offset(v)
    }

    /// Data bytes in the whole ring.
    pub fn ring(&self) -> usize {
        self.pages as usize * self.usable
    }

    pub fn encode_page_header(&self, h: PageHeader) -> Vec<u8> {
        let mut b = Vec::with_capacity(self.header);
        b.extend_from_slice(&PAGE_MAGIC.to_le_bytes());
        b.extend_from_slice(&h.seq.to_le_bytes());
        b.extend_from_slice(&(h.first as u32).to_le_bytes());
        let crc = crc32(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.resize(self.header, 0);
        b
    }

    /// Decode the page header read from physical page `phys`; `None` unless it is intact and
    /// belongs there.
    pub fn decode_page_header(&self, phys: usize, b: &[u8]) -> Option<PageHeader> {
        if b.len() != self.header || b[PAGE_HEADER_BYTES..].iter().any(|&x| x != 0) {
            return None;
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if u32_at(0) != PAGE_MAGIC || u32_at(16) != crc32(&b[..16]) {
            return None;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&b[4..12]);
        let seq = u64::from_le_bytes(seq);
        let first = u32_at(12) as usize;
        let ok = self.physical_page(seq) == phys && first <= self.usable && first.is_multiple_of(self.word);
        ok.then_some(PageHeader { seq, first })
    }

    pub fn encode_record_header(&self, h: RecordHeader) -> Vec<u8> {
        let low = (h.value_len as u32) | (h.key_len as u32) << 13 | (h.kind as u32) << 20 | RECORD_MAGIC << 22;
        let mut b = Vec::with_capacity(self.word);
        b.extend_from_slice(&(low | header_check(low) << 26).to_le_bytes());
        b.resize(self.word, 0);
        b
    }

    /// Decode a header word; `None` if erased, torn, or out of range.
    pub fn decode_record_header(&self, b: &[u8]) -> Option<RecordHeader> {
        if b.len() != self.word || b[4..].iter().any(|&x| x != 0) {
            return None;
        }
        let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let low = w & 0x03ff_ffff;
        if (w >> 22) & 0xf != RECORD_MAGIC || w >> 26 != header_check(low) {
            return None;
        }
        let value_len = (w & 0x1fff) as usize;
        let key_len = ((w >> 13) & 0x7f) as usize;
        let kind = match (w >> 20) & 0x3 {
            0 if (1..=MAX_KEY).contains(&key_len) && value_len <= MAX_VALUE => Kind::Value,
            1 if (1..=MAX_KEY).contains(&key_len) && value_len == 0 => Kind::Tombstone,
            2 if key_len == 0 && value_len == 8 => Kind::Head,
            _ => return None,
        };
        Some(RecordHeader { kind, key_len, value_len })
    }

    /// Encode a whole record; the last word is the commit word and must be written last.
    pub fn encode_record(&self, kind: Kind, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut b = self.encode_record_header(RecordHeader { kind, key_len: key.len(), value_len: value.len() });
        b.extend_from_slice(key);
        b.extend_from_slice(value);
        b.resize(self.record_len(key.len(), value.len()) - self.word, 0);
        let commit = self.commit_word(&b);
        b.extend_from_slice(&commit);
        b
    }

    /// The commit word for a record body (header word, key, value, padding): the CRC-32 of the
    /// body with its top bit cleared, so it can never read as erased.
    fn commit_word(&self, body: &[u8]) -> Vec<u8> {
        let mut c = Vec::with_capacity(self.word);
        c.extend_from_slice(&(crc32(body) & 0x7fff_ffff).to_le_bytes());
        c.resize(self.word, 0);
        c
    }

    /// Whether a whole record (as read back) is committed: its commit word matches its body.
    pub fn is_committed(&self, record: &[u8]) -> bool {
        let (body, commit) = record.split_at(record.len() - self.word);
        commit == self.commit_word(body).as_slice()
    }
}

/// Six check bits over the low 26 bits of a record header word.
fn header_check(low: u32) -> u32 {
    low.wrapping_mul(0x9e37_79b1) >> 26
}

/// Whether bytes are erased flash.
pub fn is_erased(b: &[u8]) -> bool {
    b.iter().all(|&x| x == 0xff)
}

//! The log: a ring of pages addressed by virtual address, appended at the tail and walked
//! record by record.

use alloc::vec;
use alloc::vec::Vec;

use gmhsm_platform::{Flash, FlashError};

use super::format::{Layout, PageHeader, RecordHeader, is_erased};

/// The log's position on flash and what is known about each physical page.
pub struct Log<F: Flash> {
    pub flash: F,
    pub lay: Layout,
    /// Virtual address of the first record of the log.
    pub head: u64,
    /// Virtual address where the next record goes.
    pub tail: u64,
    /// Highest opened virtual page (`None`: nothing written yet). Pages from the head's page
    /// to `top` all carry valid headers.
    pub top: Option<u64>,
    /// First-record offset of each physical page in the log.
    pub first: Vec<usize>,
    /// Physical pages known to be erased.
    pub blank: Vec<bool>,
}

/// Whether a record's commit word is there and matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Yes,
    /// Still erased: the write was cut before it.
    Torn,
    /// Written but not matching: the record was damaged after it was written.
    Bad,
}

/// One step of a walk along the log.
pub enum Step {
    /// A record with an intact header at `at`; `bytes` is the whole record as read. The walk
    /// continues at `next`.
    Record { at: u64, header: RecordHeader, bytes: Vec<u8>, commit: Commit, next: u64 },
    /// Nothing usable here (a record cut short by a page opened later, or a header word that
    /// is neither erased nor valid: `garbage`); the walk continues at `next`.
    Skip { next: u64, garbage: Option<u64> },
    /// End of the log. `tail` is where appending may resume: right here if the rest of the
    /// page is erased, else at the start of the next page.
    End { tail: u64, garbage: Option<u64> },
}

impl<F: Flash> Log<F> {
    /// Read `out.len()` bytes from virtual address `v`, across pages.
    pub fn read(&self, mut v: u64, out: &mut [u8]) -> Result<(), FlashError> {
        let mut done = 0;
        while done < out.len() {
            let n = (self.lay.usable - self.lay.offset(v)).min(out.len() - done);
            self.flash.read(self.lay.addr(v), &mut out[done..done + n])?;
            done += n;
            v += n as u64;
        }
        Ok(())
    }

    /// Append a record (as made by `Layout::encode_record`) at the tail: everything but the
    /// commit word first, then the commit word. Returns its virtual address.
    pub fn append(&mut self, record: &[u8]) -> Result<u64, FlashError> {
        let start = self.tail;
        let end = start + record.len() as u64;
        let (body, commit) = record.split_at(record.len() - self.lay.word);
        self.write(start, body, start, end)?;
        self.write(start + body.len() as u64, commit, start, end)?;
        self.tail = end;
        Ok(start)
    }

    /// Write `data` at virtual address `v`, part of the record spanning `start..end`,
    /// opening pages as it goes.
    fn write(&mut self, mut v: u64, data: &[u8], start: u64, end: u64) -> Result<(), FlashError> {
        let mut done = 0;
        while done < data.len() {
            let q = self.lay.page(v);
            if self.top.is_none_or(|t| q > t) {
                let page_start = self.lay.page_start(q);
                let first = if start >= page_start {
                    (start - page_start) as usize
                } else {
                    ((end - page_start) as usize).min(self.lay.usable)
                };
                self.open_page(q, first)?;
            }
            let n = (self.lay.usable - self.lay.offset(v)).min(data.len() - done);
            self.flash.write(self.lay.addr(v), &data[done..done + n])?;
            done += n;
            v += n as u64;
        }
        Ok(())
    }

    /// Take virtual page `q` into the log: erase it unless known blank, write its header.
    fn open_page(&mut self, q: u64, first: usize) -> Result<(), FlashError> {
        let phys = self.lay.physical_page(q);
        if !self.blank[phys] {
            self.flash.erase(phys)?;
        }
        self.blank[phys] = false;
        let header = self.lay.encode_page_header(PageHeader { seq: q, first });
        self.flash.write(phys * self.lay.page_size, &header)?;
        self.first[phys] = first;
        self.top = Some(q);
        Ok(())
    }

    /// Erase the physical page of virtual page `q` (leaving the log).
    pub fn erase_page(&mut self, q: u64) -> Result<(), FlashError> {
        let phys = self.lay.physical_page(q);
        self.blank[phys] = false;
        self.flash.erase(phys)?;
        self.blank[phys] = true;
        Ok(())
    }

    /// Whether a whole physical page reads as erased.
    pub fn page_is_blank(&self, phys: usize) -> Result<bool, FlashError> {
        let mut buf = vec![0u8; self.lay.page_size];
        self.flash.read(phys * self.lay.page_size, &mut buf)?;
        Ok(is_erased(&buf))
    }

    /// Position of the first record starting at or after virtual page `q`, or the end.
    pub fn first_from(&self, mut q: u64) -> Result<u64, Step> {
        loop {
            match self.top {
                Some(t) if q <= t => {}
                _ => {
                    return Err(Step::End { tail: self.lay.page_start(q), garbage: None });
                }
            }
            let first = self.first[self.lay.physical_page(q)];
            if first < self.lay.usable {
                return Ok(self.lay.page_start(q) + first as u64);
            }
            q += 1;
        }
    }

    /// Walk one step from `pos`, a record boundary in an opened page (or the start of the
    /// page after `top`).
    pub fn step(&self, pos: u64) -> Result<Step, FlashError> {
        let lay = self.lay;
        let q = lay.page(pos);
        let Some(top) = self.top.filter(|&t| q <= t) else {
            return Ok(Step::End { tail: pos, garbage: None });
        };
        let skip_page = |garbage: Option<u64>| -> Step {
            if q == top {
                Step::End { tail: lay.page_start(top + 1), garbage }
            } else {
                match self.first_from(q + 1) {
                    Ok(next) => Step::Skip { next, garbage },
                    Err(_) => Step::End { tail: lay.page_start(top + 1), garbage },
                }
            }
        };
        let mut word = vec![0u8; lay.word];
        self.read(pos, &mut word)?;
        let Some(header) = lay.decode_record_header(&word) else {
            if !is_erased(&word) {
                return Ok(skip_page(Some(pos)));
            }
            if q == top {
                let mut rest = vec![0u8; lay.usable - lay.offset(pos)];
                self.read(pos, &mut rest)?;
                if is_erased(&rest) {
                    return Ok(Step::End { tail: pos, garbage: None });
                }
            }
            return Ok(skip_page(None));
        };
        let len = lay.record_len(header.key_len, header.value_len);
        let end = pos + len as u64;
        // Pages the record runs into must have been opened for it.
        for r in q + 1..=lay.page(end - 1) {
            if r > top {
                return Ok(Step::End { tail: lay.page_start(top + 1), garbage: None });
            }
            let expect = ((end - lay.page_start(r)) as usize).min(lay.usable);
            if self.first[lay.physical_page(r)] != expect {
                return Ok(match self.first_from(r) {
                    Ok(next) => Step::Skip { next, garbage: None },
                    Err(end) => end,
                });
            }
        }
        let mut bytes = vec![0u8; len];
        self.read(pos, &mut bytes)?;
        let commit = if lay.is_committed(&bytes) {
            Commit::Yes
        } else if is_erased(&bytes[len - lay.word..]) {
            Commit::Torn
        } else {
            Commit::Bad
        };
        Ok(Step::Record { at: pos, header, bytes, commit, next: end })
    }
}

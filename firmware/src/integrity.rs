//! Authenticity and freshness of the flash: every record that carries authority or policy is
//! MACed under a DMK-derived key, and the set of them is pinned by a digest in tamper RAM.
//!
//! # Scheme
//!
//! Three keys are derived from the DMK, `HMAC-SM3(DMK, purpose)` (kept in zeroizing HMAC
//! states): `record`, `set` and `audit` (the audit log's record tags, see [`crate::audit`]).
//!
//! * *Covered records* ([`covered`]): every store record except the audit log (`a:`, tagged
//!   by its own scheme) and the informational boot counter `m:boots`. A covered record's
//!   stored value is `payload ‖ tag`, `tag = HMAC-SM3(record, len(name) ‖ name ‖ payload)[..16]`,
//!   checked on every read ([`Integrity::open`]). A record that fails is never used: the card
//!   enters its error state, says so in `GetStatus`, and audits it.
//! * *Set digest*: `D = XOR of HMAC-SM3(set, len(name) ‖ name ‖ stored value)` over all
//!   covered records. These elements are never written anywhere, so a flash writer cannot
//!   compute them; two different sets of records have different digests (short of forging
//!   the PRF). `D` is kept in card RAM and updated per write with two PRF calls: O(1).
//! * *Register* (the platform's rollback register, inside the tamper boundary): `committed`
//!   and `pending` digests. A write of one record goes: register := (D, D'); store the
//!   record (atomic); register := (D', D'). At boot the card recomputes the digest of what
//!   the flash holds (O(records)) and accepts it only if it equals `committed`, or `pending`
//!   (a power cut after the record was stored: the write completes); anything else is a
//!   rolled-back or altered image, and the card refuses to serve. So an old authentic copy
//!   of one record, a deleted record, or a whole older image is detected, and a power cut at
//!   any write leaves the old or the new state, both accepted.
//!
//! This replaces a monotonic counter plus a MACed root record in flash: the register holds
//! the digest itself, so no flash record needs to be fresh, and the `pending` slot closes
//! the window in which a counter scheme must accept "one version back" after a cut.

use alloc::vec::Vec;
use gmhsm_platform::{Flash, TamperRam};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::alg::sm3::{HmacSm3Ctx, sm3};
use crate::store::{Store, StoreError};

/// Bytes of a covered record's tag.
pub const TAG_LEN: usize = 16;
/// Bytes of the register the card uses.
pub const REGISTER_LEN: usize = 80;
const REGISTER_MAGIC: &[u8; 4] = b"GMSR";

/// Why the flash or the register could not be trusted or written. Each leaves the card in
/// its error state (`describe` is the reason shown by `GetStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityError {
    /// A covered record's tag does not verify (altered, moved, or written without the DMK).
    BadRecord,
    /// The covered records are authentic one by one but are not the set the register pins:
    /// an older image, an old copy of a record, or a deleted record.
    Rollback,
    /// The register is unreadable, malformed, or could not be written.
    Register,
    /// The store failed; `Full` and `TooLarge` changed nothing.
    Store(StoreError),
}

impl IntegrityError {
    pub fn describe(self) -> &'static str {
        match self {
            IntegrityError::BadRecord => "flash: a record failed authentication (altered or foreign)",
            IntegrityError::Rollback => "flash: rolled back or records replayed or deleted (state digest mismatch)",
            IntegrityError::Register => "tamper RAM: rollback register unreadable or unwritable",
            IntegrityError::Store(_) => "store: flash unreadable",
        }
    }
}

impl From<StoreError> for IntegrityError {
    fn from(e: StoreError) -> Self {
        IntegrityError::Store(e)
    }
}

/// Whether a store record is covered (authenticated and pinned).
pub fn covered(name: &[u8]) -> bool {
    !(name.starts_with(b"a:") || name == b"m:boots")
}

/// The register's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    pub committed: [u8; 32],
    pub pending: [u8; 32],
}

impl Register {
    /// `"GMSR"` ‖ version 1 ‖ 3 zero bytes ‖ committed ‖ pending ‖ SM3(first 72)[..8].
    /// All zeros (never written, or zeroized) reads as the digest of the empty set.
    fn decode(buf: &[u8]) -> Result<Register, IntegrityError> {
        let buf = buf.get(..REGISTER_LEN).ok_or(IntegrityError::Register)?;
        if buf.iter().all(|&b| b == 0) {
            return Ok(Register { committed: [0; 32], pending: [0; 32] });
        }
        if &buf[..4] != REGISTER_MAGIC || buf[4] != 1 || buf[72..80] != sm3(&buf[..72])[..8] {
            return Err(IntegrityError::Register);
        }
        let mut r = Register { committed: [0; 32], pending: [0; 32] };
        r.committed.copy_from_slice(&buf[8..40]);
        r.pending.copy_from_slice(&buf[40..72]);
        Ok(r)
    }

    fn encode(&self, out: &mut [u8]) {
        out.fill(0);
        out[..4].copy_from_slice(REGISTER_MAGIC);
        out[4] = 1;
        out[8..40].copy_from_slice(&self.committed);
        out[40..72].copy_from_slice(&self.pending);
        let check = sm3(&out[..72]);
        out[72..80].copy_from_slice(&check[..8]);
    }

    pub fn read<T: TamperRam>(t: &mut T) -> Result<Register, IntegrityError> {
        if T::REGISTER_SIZE < REGISTER_LEN {
            return Err(IntegrityError::Register);
        }
        let mut buf = alloc::vec![0u8; T::REGISTER_SIZE];
        t.read_register(&mut buf).map_err(|_| IntegrityError::Register)?;
        Register::decode(&buf)
    }

    pub fn write<T: TamperRam>(&self, t: &mut T) -> Result<(), IntegrityError> {
        if T::REGISTER_SIZE < REGISTER_LEN {
            return Err(IntegrityError::Register);
        }
        let mut buf = alloc::vec![0u8; T::REGISTER_SIZE];
        self.encode(&mut buf[..REGISTER_LEN]);
        t.write_register(&buf).map_err(|_| IntegrityError::Register)
    }

    /// Zero the register (zeroize, interrupted initialization).
    pub fn clear<T: TamperRam>(t: &mut T) -> Result<(), IntegrityError> {
        let buf = alloc::vec![0u8; T::REGISTER_SIZE];
        t.write_register(&buf).map_err(|_| IntegrityError::Register)
    }
}

/// The DMK-derived keys and the running set digest.
pub struct Integrity {
    record: HmacSm3Ctx,
    set: HmacSm3Ctx,
    audit: HmacSm3Ctx,
    digest: [u8; 32],
}

fn derive(dmk: &[u8; 32], purpose: &[u8]) -> HmacSm3Ctx {
    // HMAC takes keys of any length: neither `new` can fail.
    let Ok(mut c) = HmacSm3Ctx::new(dmk) else { unreachable!("HMAC-SM3 accepts every key length") };
    c.update(purpose);
    let k = Zeroizing::new(c.finalize());
    let Ok(c) = HmacSm3Ctx::new(&k[..]) else { unreachable!("HMAC-SM3 accepts every key length") };
    c
}

fn mac(ctx: &HmacSm3Ctx, name: &[u8], value: &[u8]) -> [u8; 32] {
    let mut c = ctx.clone();
    c.update(&[name.len() as u8]);
    c.update(name);
    c.update(value);
    c.finalize()
}

fn seal_with(ctx: &HmacSm3Ctx, name: &[u8], payload: &[u8]) -> Vec<u8> {
    let tag = mac(ctx, name, payload);
    let mut v = Vec::with_capacity(payload.len() + TAG_LEN);
    v.extend_from_slice(payload);
    v.extend_from_slice(&tag[..TAG_LEN]);
    v
}

fn open_with<'a>(ctx: &HmacSm3Ctx, name: &[u8], stored: &'a [u8]) -> Result<&'a [u8], IntegrityError> {
    let split = stored.len().checked_sub(TAG_LEN).ok_or(IntegrityError::BadRecord)?;
    let (payload, tag) = stored.split_at(split);
    let want = mac(ctx, name, payload);
    if bool::from(want[..TAG_LEN].ct_eq(tag)) { Ok(payload) } else { Err(IntegrityError::BadRecord) }
}

fn xor(a: &mut [u8; 32], b: &[u8; 32]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
}

impl Integrity {
    /// Keys for `dmk`, with the digest of the empty set (call [`Integrity::verify`] next).
    pub fn new(dmk: &[u8; 32]) -> Self {
        Integrity {
            record: derive(dmk, b"gmhsm/v3/record-mac"),
            set: derive(dmk, b"gmhsm/v3/set-digest"),
            audit: derive(dmk, b"gmhsm/v3/audit-tag"),
            digest: [0; 32],
        }
    }

    /// `payload ‖ tag`, as stored.
    pub fn seal(&self, name: &[u8], payload: &[u8]) -> Vec<u8> {
        seal_with(&self.record, name, payload)
    }

    /// The payload of a stored covered value, if its tag verifies.
    pub fn open<'a>(&self, name: &[u8], stored: &'a [u8]) -> Result<&'a [u8], IntegrityError> {
        open_with(&self.record, name, stored)
    }

    /// An audit record as stored: its encoding ‖ tag under the audit key.
    pub fn seal_audit(&self, name: &[u8], encoding: &[u8]) -> Vec<u8> {
        seal_with(&self.audit, name, encoding)
    }

    /// The encoding of a stored audit record, if its tag verifies.
    pub fn open_audit<'a>(&self, name: &[u8], stored: &'a [u8]) -> Result<&'a [u8], IntegrityError> {
        open_with(&self.audit, name, stored)
    }

    fn element(&self, name: &[u8], stored: &[u8]) -> [u8; 32] {
        mac(&self.set, name, stored)
    }

    /// Boot: check every covered record and their set against the register, finishing a
    /// write that a power cut interrupted after its record was stored.
    pub fn verify<F: Flash, T: TamperRam>(&mut self, store: &Store<F>, t: &mut T) -> Result<(), IntegrityError> {
        let reg = Register::read(t)?;
        let mut digest = [0u8; 32];
        for name in store.keys().filter(|k| covered(k)) {
            let stored = store.get(name)?.ok_or(IntegrityError::Store(StoreError::Corrupt))?;
            self.open(name, &stored)?;
            xor(&mut digest, &self.element(name, &stored));
        }
        let fresh = bool::from(digest.ct_eq(&reg.committed)) || bool::from(digest.ct_eq(&reg.pending));
        if !fresh {
            return Err(IntegrityError::Rollback);
        }
        self.digest = digest;
        if reg.committed != reg.pending {
            Register { committed: digest, pending: digest }.write(t)?;
        }
        Ok(())
    }

    /// The payload of covered record `name` (`None` if absent), authenticated.
    pub fn get<F: Flash>(&self, store: &Store<F>, name: &[u8]) -> Result<Option<Vec<u8>>, IntegrityError> {
        let Some(mut stored) = store.get(name)? else { return Ok(None) };
        let len = self.open(name, &stored)?.len();
        stored.truncate(len);
        Ok(Some(stored))
    }

    /// Set (`Some`) or remove (`None`) covered record `name`: register intent, the record,
    /// register commit. `Ok(false)`: a removal of an absent record (nothing written).
    pub fn put<F: Flash, T: TamperRam>(
        &mut self,
        store: &mut Store<F>,
        t: &mut T,
        name: &[u8],
        payload: Option<&[u8]>,
    ) -> Result<bool, IntegrityError> {
        let mut next = self.digest;
        if let Some(old) = store.get(name)? {
            self.open(name, &old)?;
            xor(&mut next, &self.element(name, &old));
        } else if payload.is_none() {
            return Ok(false);
        }
        let sealed = payload.map(|p| self.seal(name, p));
        if let Some(v) = &sealed {
            xor(&mut next, &self.element(name, v));
        }
        Register { committed: self.digest, pending: next }.write(t)?;
        match &sealed {
            Some(v) => store.insert(name, v)?,
            None => {
                store.remove(name)?;
            }
        }
        Register { committed: next, pending: next }.write(t)?;
        self.digest = next;
        Ok(true)
    }

    /// Start from an empty set (fresh initialization): the register pins it.
    pub fn reset<T: TamperRam>(&mut self, t: &mut T) -> Result<(), IntegrityError> {
        self.digest = [0; 32];
        Register { committed: [0; 32], pending: [0; 32] }.write(t)
    }
}
